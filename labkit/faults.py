"""Faults injected on purpose (lesson 08): take Redis away, kill an instance, slow a service down,
shrink Redis's memory. Each function says what it did and returns what is needed to undo it.

Two ways to take Redis away, because they fail differently:

* ``freeze_redis`` (SIGSTOP): the server keeps its port and its data but answers nothing — clients hang
  until their timeouts fire. The nastiest kind of outage for a client.
* ``restart_redis``: a planned restart on the same port. ``SHUTDOWN SAVE`` writes a snapshot that the
  new server loads, so the durable parts (streams, sessions) come back; clients see refused connections
  meanwhile and must reconnect by themselves.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import redis

from services.core.settings import Settings, get_settings

from . import procs, redis_server
from .auth import ServiceAuth
from .errors import LabkitError
from .lab import kill_instance  # noqa: F401 - SIGKILL one instance is a fault too: faults.kill_instance


def _managed_server(settings: Settings) -> redis_server.RedisServer:
    server = redis_server.current(settings)
    if server is None or not server.managed:
        raise LabkitError("this fault needs the Redis server labkit started (not one behind REDIS_URL); "
                          "run `labkit start-all` without REDIS_URL")
    return server


def freeze_redis(settings: Settings | None = None) -> int:
    """SIGSTOP the server: connections stay open, nothing answers. Returns its pid (for ``thaw_redis``)."""
    server = _managed_server(settings or get_settings())
    os.kill(server.pid, signal.SIGSTOP)
    return server.pid


def thaw_redis(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)


def restart_redis(settings: Settings | None = None, down_for_s: float = 0.0) -> redis_server.RedisServer:
    """Stop the server with a snapshot, stay down ``down_for_s`` seconds, start it on the same port."""
    settings = settings or get_settings()
    server = _managed_server(settings)
    client = server.client(socket_timeout=2)
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it goes: that is the success case
    deadline = time.monotonic() + 10
    while procs.is_alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    redis_server.state_path(settings).unlink(missing_ok=True)
    time.sleep(down_for_s)
    # Detached: the restarted server belongs to the lab, not to whoever asked for the restart.
    return redis_server.start(settings, detached=True)


def set_knobs(service: str, settings: Settings | None = None, **knobs) -> dict:
    """Change a service's fault knobs (``sor_latency_ms``, ``delay_ms``, ``error_rate``); returns the old ones."""
    settings = settings or get_settings()
    with httpx.Client(base_url=settings.url_of(service), auth=ServiceAuth(settings), timeout=5) as client:
        before = client.get("/admin/knobs").json()
        client.put("/admin/knobs", json=knobs).raise_for_status()
    return before


def shrink_redis_memory(maxmemory: str = "4mb", policy: str = "allkeys-lru",
                        settings: Settings | None = None) -> dict:
    """Lower ``maxmemory`` so eviction happens under load; returns the old values for ``restore_redis_memory``."""
    server = redis_server.current(settings or get_settings())
    if server is None:
        raise LabkitError("Redis is not running: `labkit start-all`")
    client = server.client()
    before = {**client.config_get("maxmemory"), **client.config_get("maxmemory-policy")}
    client.config_set("maxmemory-policy", policy)
    client.config_set("maxmemory", maxmemory)
    return before


def restore_redis_memory(before: dict, settings: Settings | None = None) -> None:
    client = redis_server.current(settings or get_settings()).client()
    client.config_set("maxmemory", before["maxmemory"])
    client.config_set("maxmemory-policy", before["maxmemory-policy"])
