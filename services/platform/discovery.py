"""Wiring lesson 03's registry into every service's lifespan (the app factory calls these two).

The instance registers only once its port accepts connections, so a gateway that hears
``instance.registered`` never routes to a socket that is not listening yet. On a graceful shutdown it
deregisters (a gateway stops routing to it at once); on SIGKILL its key just expires after the TTL.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from services.patterns.registry import Instance, deregister_instance, heartbeat_forever

from services.core.redis_client import REDIS_DOWN

log = logging.getLogger("lab.discovery")
HEARTBEAT = "registry-heartbeat"


async def _wait_listening(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        return


async def _register_when_listening(app: FastAPI, instance: Instance) -> None:
    s = app.state.settings
    await _wait_listening(s.host if s.host not in ("0.0.0.0", "") else "127.0.0.1", instance.port)
    await heartbeat_forever(app.state.redis, instance, s.registry_heartbeat_s, s.registry_ttl_s)


def start_registration(app: FastAPI) -> None:
    s = app.state.settings
    instance = Instance(service=app.state.service, instance_id=app.state.instance_id, host=s.advertised_host,
                        port=app.state.port, version=s.version, started_at=app.state.started_at,
                        weight=s.instance_weight)
    app.state.registration = instance
    app.state.tasks.start(HEARTBEAT, _register_when_listening(app, instance))


async def stop_registration(app: FastAPI) -> None:
    """Stop the heartbeat first (on the app's task owner), then deregister: no beat can re-register after."""
    if app.state.registration is None:
        return
    await app.state.tasks.stop(HEARTBEAT)
    try:
        await asyncio.wait_for(deregister_instance(app.state.redis, app.state.registration), timeout=1.0)
    except (*REDIS_DOWN, asyncio.TimeoutError) as exc:  # its key will expire by itself
        log.warning("could not deregister %s (%s)", app.state.instance_id, type(exc).__name__)
