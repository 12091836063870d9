"""The API gateway (:3000): one front door, routing /api/* to the service that owns it."""

from __future__ import annotations

import aiohttp
from fastapi import FastAPI

from services.auth.routes import router as auth_router
from services.auth.users import open_user_store
from services.core import keys
from services.patterns.envelope import Event
from services.patterns.ratelimit import SlidingWindowLimiter
from services.patterns.subscriber import subscribe_forever
from services.platform.app import ServiceSpec, create_app

from .proxy import ProxyMiddleware
from .response_cache import ENTITY_ID, INVALIDATING_CHANNELS, ResponseCache
from .routes import router, services_health
from .state import GatewayState
from .upstreams import RegistryUpstreams, StaticUpstreams


async def open_upstreams(app: FastAPI) -> None:
    settings = app.state.settings
    app.state.upstream_session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=settings.gateway_pool_idle_s),
        timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout_s, connect=1.0),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        # A proxy keeps no cookies: a jar would hand one client's Set-Cookie to the next client's requests.
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    if settings.gateway_discovery == "static":
        app.state.upstreams = StaticUpstreams(settings)
    else:
        app.state.upstreams = RegistryUpstreams(settings, app.state.redis, app.state.upstream_session)
    await app.state.upstreams.start(app.state.tasks)
    app.state.rate_limiter = (SlidingWindowLimiter(app.state.redis, settings.rate_limit_requests,
                                                   settings.rate_limit_window_s)
                              if settings.rate_limit_requests > 0 else None)
    app.state.response_cache = ResponseCache(settings.gateway_cache_ttl_s)
    app.state.tasks.start("gateway-cache-invalidation", subscribe_forever(
        app.state.redis, [keys.channel(name) for name in INVALIDATING_CHANNELS],
        lambda event: drop_cached_answers(app, event), on_subscribed=app.state.response_cache.empty_after_resubscribe))
    app.state.health_extra = services_health
    app.state.user_db = open_user_store(settings.database_path("gateway-users"))


async def drop_cached_answers(app: FastAPI, event: Event) -> None:
    """An entity changed (domain event or cache.invalidated): drop every cached answer that holds it, and
    those holding an entity the event names in its data (a new claim changes its policy's claim list)."""
    cache: ResponseCache = app.state.response_cache
    if not cache.answers:
        return
    named = {event.subject}
    for value in event.data.values():
        for item in value if isinstance(value, list) else [value]:  # ``parents`` is a list of ids
            if isinstance(item, str) and ENTITY_ID.fullmatch(item.encode()):
                named.add(item)
    cache.drop_entities(named)


async def close_upstreams(app: FastAPI) -> None:
    """After the lifespan stopped every background task (the watchers and the answer-cache subscriber)."""
    await app.state.upstream_session.close()
    app.state.user_db.close()


SPEC = ServiceSpec(
    name="gateway", routers=[router, auth_router], front=[(ProxyMiddleware, {})],
    on_startup=[open_upstreams], on_shutdown=[close_upstreams], state=GatewayState,
    description="Routes /api/customers, /api/policies and /api/claims to their services.",
)


def build(**kwargs):
    return create_app(SPEC, **kwargs)
