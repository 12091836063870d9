"""The API gateway (:3000): one front door, routing /api/* to the service that owns it."""

from __future__ import annotations

import aiohttp
from fastapi import FastAPI

from services.auth.routes import router as auth_router
from services.auth.users import open_user_store
from services.core.app import ServiceSpec, create_app

from .proxy import ProxyMiddleware
from .routes import router, services_health
from .upstreams import StaticUpstreams


async def open_upstreams(app: FastAPI) -> None:
    settings = app.state.settings
    app.state.upstreams = StaticUpstreams(settings)
    app.state.upstream_session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout_s, connect=1.0),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
    )
    app.state.health_extra = services_health
    app.state.user_db = open_user_store(settings.database_path("gateway-users"))


async def close_upstreams(app: FastAPI) -> None:
    await app.state.upstream_session.close()
    app.state.user_db.close()


SPEC = ServiceSpec(
    name="gateway", routers=[router, auth_router], middleware=[(ProxyMiddleware, {})],
    on_startup=[open_upstreams], on_shutdown=[close_upstreams],
    description="Routes /api/customers, /api/policies and /api/claims to their services.",
)


def build(**kwargs):
    return create_app(SPEC, **kwargs)
