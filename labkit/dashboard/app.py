"""The dashboard's web app: one page, one Server-Sent Events stream, a few actions for the system user.

* ``GET /`` — the page (``static/index.html`` + ``dashboard.js`` + ``dashboard.css``: no build step, no CDN);
* ``GET /events`` — ``text/event-stream``: a ``snapshot`` every second, a ``lab-event`` as each event arrives
  (FastAPI's own SSE support, ``fastapi.sse``, since FastAPI 0.135);
* ``GET /snapshot`` — one snapshot as JSON (for curl, the tests and the benchmark);
* ``/actions/...`` — kill, restart, scale, slow down, freeze Redis: the same functions ``labkit fault`` and
  ``labkit scale`` call, behind the lab's API key (``Authorization: Bearer <key>``, checked like the
  gateway checks it). Without it: 401. Every action, done or refused, is written to the dashboard's log
  with who asked and what.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from services.core import redis_client
from services.core.errors import LabError
from services.platform.error_handlers import install_error_handlers
from services.core.settings import SERVICE_NAMES, Settings, get_settings

from .. import faults, lab, redis_server
from ..errors import LabkitError
from .collect import Collector
from .hub import Hub

log = logging.getLogger("lab.dashboard")
STATIC = Path(__file__).parent / "static"
MAX_INSTANCES = 8  # scaling from a button: enough to watch a balancer, not enough to swamp two cores
MAX_FREEZE_S = 30.0


def system_user(request: Request) -> str:
    """The caller must send the lab's API key; returns who it is, for the log. 401 otherwise."""
    settings: Settings = request.app.state.settings
    authorization = request.headers.get("authorization", "")
    if not (authorization.lower().startswith("bearer ") and settings.is_api_key(authorization[7:].strip())):
        client = request.client.host if request.client else "unknown"
        log.warning("action refused: %s %s from %s without the lab's API key", request.method, request.url.path,
                    client)
        raise LabError(401, "unauthenticated", "actions need the lab's API key: Authorization: Bearer "
                       "$(labkit api-key)")
    return f"system user (API key) from {request.client.host if request.client else 'unknown'}"


SystemUser = Annotated[str, Depends(system_user)]


class InstanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instance: str = Field(pattern=r"^[a-z]+(#[0-9]{1,2})?$", description="labkit's name: claims, claims#2 ...")


class ScaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: Literal[SERVICE_NAMES]  # type: ignore[valid-type]
    n: int = Field(ge=1, le=MAX_INSTANCES)


class SlowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: Literal[SERVICE_NAMES]  # type: ignore[valid-type]
    delay_ms: float | None = Field(default=None, ge=0, le=10_000, description="added to every request")
    sor_ms: float | None = Field(default=None, ge=0, le=10_000, description="added to every system-of-record query")
    error_rate: float | None = Field(default=None, ge=0, le=1, description="fraction of requests answered 500")


class FreezeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(default=3.0, gt=0, le=MAX_FREEZE_S)


async def _act(request: Request, who: str, what: str, action, *args, **kwargs):
    """Run a (blocking) labkit function in a thread; log who did what and how it went."""
    settings = request.app.state.settings
    try:
        result = await asyncio.to_thread(action, *args, settings=settings, **kwargs)
    except LabkitError as exc:
        log.warning("action %s by %s failed: %s", what, who, exc)
        raise LabError(409, "action_failed", str(exc)) from exc
    log.info("action %s by %s: done", what, who)
    return result


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        server = redis_server.current(settings)
        url = server.url if server else (settings.redis_url or f"redis://127.0.0.1:{settings.redis_port}/0")
        app.state.redis = redis_client.connect(url, timeout_s=1.0, client_name="labkit-dashboard")
        app.state.http = httpx.AsyncClient(timeout=0.8)
        app.state.hub = Hub(Collector(settings, app.state.redis, app.state.http))
        app.state.thaw_tasks = set()
        try:
            yield
        finally:
            await app.state.hub.stop()
            for task in app.state.thaw_tasks:  # never leave Redis frozen behind us
                task.cancel()
            await asyncio.gather(*app.state.thaw_tasks, return_exceptions=True)
            await app.state.http.aclose()
            await app.state.redis.aclose()

    app = FastAPI(title="lab dashboard", version=settings.version, lifespan=lifespan,
                  description="The lab, live: services, instances, caches, streams, sessions and Redis.")
    app.state.settings = settings
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "service": "dashboard", "version": settings.version, "pid": os.getpid(),
                "pages_open": len(app.state.hub.queues)}

    @app.get("/snapshot")
    async def snapshot() -> dict:
        return await app.state.hub.snapshot()

    @app.get("/events", response_class=EventSourceResponse)
    async def events(request: Request):
        async with app.state.hub.subscribe() as queue:
            while True:
                kind, text = await queue.get()
                yield ServerSentEvent(raw_data=text, event=kind)

    @app.get("/actions/whoami", tags=["actions"])
    async def whoami(who: SystemUser) -> dict:
        """200 with the key (the page checks a key with it before it shows the buttons), 401 without."""
        return {"who": who}

    @app.post("/actions/kill", tags=["actions"])
    async def kill(body: InstanceIn, request: Request, who: SystemUser) -> dict:
        pid = await _act(request, who, f"kill {body.instance}", lab.kill_instance, body.instance)
        return {"killed": body.instance, "pid": pid}

    @app.post("/actions/restart", tags=["actions"])
    async def restart(body: InstanceIn, request: Request, who: SystemUser) -> dict:
        await _act(request, who, f"restart {body.instance}", lab.restart_instance, body.instance)
        return {"restarted": body.instance}

    @app.post("/actions/scale", tags=["actions"])
    async def scale(body: ScaleIn, request: Request, who: SystemUser) -> dict:
        await _act(request, who, f"scale {body.service} to {body.n}", lab.scale, body.service, body.n)
        return {"scaled": body.service, "n": body.n}

    @app.post("/actions/slow", tags=["actions"])
    async def slow(body: SlowIn, request: Request, who: SystemUser) -> dict:
        knobs = {k: v for k, v in (("delay_ms", body.delay_ms), ("sor_latency_ms", body.sor_ms),
                                   ("error_rate", body.error_rate)) if v is not None}
        if not knobs:
            raise LabError(422, "invalid_input", "give at least one of delay_ms, sor_ms, error_rate", "delay_ms")
        before = await _act(request, who, f"slow {body.service} {knobs}", faults.set_knobs, body.service, **knobs)
        return {"service": body.service, "knobs": knobs, "before": before}

    @app.post("/actions/freeze-redis", tags=["actions"])
    async def freeze_redis(body: FreezeIn, request: Request, who: SystemUser) -> dict:
        pid = await _act(request, who, f"freeze Redis for {body.seconds:g} s", faults.freeze_redis)

        async def thaw_later():
            try:
                await asyncio.sleep(body.seconds)
            finally:
                faults.thaw_redis(pid)
                log.info("Redis thawed (SIGCONT, pid %s) after %g s", pid, body.seconds)

        task = asyncio.create_task(thaw_later())
        app.state.thaw_tasks.add(task)
        task.add_done_callback(app.state.thaw_tasks.discard)
        return {"frozen_pid": pid, "seconds": body.seconds}

    return app
