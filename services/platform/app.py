"""The app factory every service is built by, and the lifespan that owns its connections.

A service is a name, its routers, and (for domain services) the SQLite schema of its system of record.
The lifespan opens exactly one Redis pool, one SQLite connection and one HTTP client per process and
closes them on shutdown; nothing else is global. Everything lives on ``app.state``, a typed ``AppState``
(``state.py``), and every background task is started on, and stopped by, its ``BackgroundTasks``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

import aiohttp
from fastapi import APIRouter, FastAPI
from opentelemetry import trace

from services.core import acl, redis_client
from services.core.db import Database
from services.core.errors import ERROR_RESPONSES
from services.core.settings import Settings, get_settings

from .cache_stats import install_cache_stats
from .discovery import start_registration, stop_registration
from .error_handlers import install_error_handlers
from .health import health_router
from .invalidation_subscriber import event_driven_invalidation
from .knobs import Knobs, knobs_router
from .middleware import BodyLimit, RequestContext, loggable
from .peers import PeerDirectory
from .state import AppState
from .tracing import fastapi_options, start_tracing, stop_tracing, traced_asgi

Hook = Callable[[FastAPI], Awaitable[None]]


@dataclass
class ServiceSpec:
    name: str
    routers: list[APIRouter]
    schema: str | None = None  # SQLite DDL of the system of record; None for the gateway
    on_startup: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)
    description: str = ""
    middleware: list[tuple[type, dict]] = field(default_factory=list)  # inside FastAPI, innermost first
    # Raw ASGI handlers in front of FastAPI (innermost first), built as ``handler(inner, state=app.state,
    # **options)``: what they answer themselves costs no framework at all (the gateway's proxy).
    front: list[tuple[type, dict]] = field(default_factory=list)
    state: type[AppState] = AppState  # an app with more to hold names its subclass (GatewayState, WorkerState)


def new_instance_id(service: str, port: int) -> str:
    return f"{service}-{port}-{secrets.token_hex(2)}"


class LogFormatter(logging.Formatter):
    """The standard format, with the date and time part of ``asctime`` made once per second, not once per
    line: ``time.strftime`` was a sixth of the cost of each access log line.

    Every line written inside a trace ends with ``trace=<trace id>``. One record is one line: every message goes through ``loggable`` (a newline a client smuggled into a
    path or a name becomes ``\\n``, a byte that is not UTF-8 ``\\xff``), and each line of a traceback is
    indented with ``  | `` — a line that starts with a timestamp is always a record this process wrote.
    """

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._second, self._second_text = -1, ""

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        return f"{self._second_text},{int(record.msecs):03d}"

    def formatMessage(self, record):  # noqa: N802 - logging's name
        record.message = loggable(record.message, limit=8192)
        # Lesson 10: the trace a line belongs to, so the logs of every service join on it (a sampled request,
        # and an unsampled one too: ``SampleAtTheEdge`` gives it a trace id that its next hops carry on).
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.message += f" trace={span_context.trace_id:032x}"
        return super().formatMessage(record)

    def formatException(self, ei):  # noqa: N802 - logging's name
        return self._continuation(super().formatException(ei))

    def formatStack(self, stack_info):  # noqa: N802 - logging's name
        return self._continuation(super().formatStack(stack_info))

    @staticmethod
    def _continuation(text: str) -> str:
        return "\n".join("  | " + loggable(line, limit=8192) for line in text.splitlines())


class OneWritePerLoopTurn(logging.StreamHandler):
    """Log lines written to stderr once per turn of the event loop, not once per line.

    A plain ``StreamHandler`` flushes after every record: one ``write`` system call per access log line, on
    top of the two uvicorn makes per response. Measured with wrk (c=16) on the gateway answering from its
    cache, that was half of its throughput (about 6,000 req/s with the access log, 11,000 without).
    Here a line waits in the buffer until the loop has run what is ready now (``call_soon``), so a burst
    of requests finished in one turn costs one write, and a line is never later than that turn. A warning
    or an error, and anything logged outside the event loop, is written at once.
    """

    def __init__(self, fd: int | None = None):
        super().__init__(open(sys.stderr.fileno() if fd is None else fd, "w", buffering=1 << 16, encoding="utf-8",
                              errors="backslashreplace", closefd=False))
        self._flush_scheduled = False

    def emit(self, record):
        try:
            self.stream.write(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop's thread
            self.flush()
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush_now)

    def _flush_now(self):
        self._flush_scheduled = False
        self.flush()


def configure_logging() -> None:
    level = os.environ.get("LAB_LOG_LEVEL", "INFO").upper()
    handler = OneWritePerLoopTurn()
    handler.setFormatter(LogFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # One log line per request is on the hot path. Skipped per record, as the logging HOWTO's "Optimization"
    # section suggests: the caller's file and line (a stack walk), thread, process and multiprocessing
    # names — no lab log line shows them. (Handing records to a QueueListener thread was measured too: the
    # thread wake-up per record cost more than the write it saved.)
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def freeze_what_startup_made() -> None:
    """Move every object alive after start-up (modules, FastAPI's routes and models, pydantic's validators:
    about 100,000 of them) out of the garbage collector's reach, for good.

    A full collection walks every tracked object: measured here, 130-200 ms for a service, during which the
    process answers nothing — a stall in the tail of whatever requests are waiting. Objects made at start-up
    live as long as the process, so walking them again finds nothing; ``gc.freeze`` (Python's docs suggest it,
    Instagram's servers made it known) leaves the collector only what requests allocate.
    """
    gc.collect()
    gc.freeze()


def create_app(spec: ServiceSpec, settings: Settings | None = None, *, port: int | None = None,
               instance_id: str | None = None):
    """The service as one ASGI app: request context and body limit, the spec's front handlers, FastAPI."""
    settings = settings or get_settings()
    port = port or settings.port_of(spec.name)
    instance_id = instance_id or new_instance_id(spec.name, port)
    tracer_provider = start_tracing(spec.name, instance_id, settings)  # lesson 10; None under OTEL_SDK_DISABLED

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL is not set: start the services with `labkit start-all`, "
                               "which starts Redis and passes its URL on")
        # labkit hands each service its own Redis user's URL; LAB_REDIS_ACL=1 is for a process that holds
        # the master secret and the admin URL (started by hand) and should still connect as its own user.
        redis_url = acl.service_url(settings, spec.name) if settings.redis_acl else settings.redis_url
        app.state.redis = redis_client.connect(redis_url, settings.redis_timeout_s, client_name=instance_id,
                                               cluster=settings.redis_cluster)
        # aiohttp, like the gateway: measured here, an httpx call to a peer cost about 1 ms more CPU in the
        # caller than the same call with aiohttp (1.3-1.5 ms vs 0.3-0.4 ms), on every claim's policy check.
        app.state.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout_s))
        app.state.peers = PeerDirectory(app.state.redis, settings)  # lesson 03: where the other services are
        app.state.db = (Database(settings.database_path(spec.name), spec.schema, settings.sor_latency_ms)
                        if spec.schema else None)
        for hook in spec.on_startup:
            await hook(app)
        if (subscriber := event_driven_invalidation(app.state)) is not None:  # lesson 06, LAB_CACHE_COHERENCE
            app.state.tasks.start("event-driven-invalidation", subscriber)
        start_registration(app)  # lesson 03: register in Redis, heartbeat, deregister on shutdown
        if settings.gc_freeze:
            freeze_what_startup_made()
        try:
            yield
        finally:
            await stop_registration(app)
            await app.state.tasks.stop_all()  # every background task of the app, cancelled and awaited here
            for hook in reversed(spec.on_shutdown):
                await hook(app)
            await app.state.http.close()
            await app.state.redis.aclose()
            if app.state.db:
                app.state.db.close()
            stop_tracing()  # the spans still queued are written before the process ends

    app = FastAPI(title=f"{spec.name} service", version=settings.version, description=spec.description,
                  lifespan=lifespan, **fastapi_options())
    app.state = spec.state(service=spec.name, settings=settings, instance_id=instance_id, port=port,
                           started_at=time.time(), knobs=Knobs(sor_latency_ms=settings.sor_latency_ms))

    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(knobs_router, responses=ERROR_RESPONSES)
    install_cache_stats(app)  # lesson 01: cache counters, GET /stats and GET /metrics
    for router in spec.routers:
        app.include_router(router, responses=ERROR_RESPONSES)
    for middleware, options in spec.middleware:
        app.add_middleware(middleware, **options)
    entry = app
    for handler, options in spec.front:
        entry = handler(entry, state=app.state, **options)
    # Outermost, around the front handlers too: every request gets its id and its log line, and no body
    # over the limit reaches anything.
    # Around all of it, the tracing middleware: the server span of every hop (lesson 10).
    return traced_asgi(RequestContext(BodyLimit(entry, max_bytes=settings.max_body_bytes), service=spec.name),
                       tracer_provider, settings)
