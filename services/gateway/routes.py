"""The gateway's own routes (everything under ``/api/`` is proxied, see proxy.py).

``GET /services`` shows the gateway's local view: every instance, healthy or not, its breaker state,
requests in flight and served, and each service's balancing strategy. The ``/admin`` routes change the
gateway's behaviour at run time (the lab's system user only), so a notebook can compare strategies or
turn the rate limiter on and off without restarting anything.
"""

from __future__ import annotations

import asyncio

import aiohttp
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from services.core.errors import LabError
from services.core.settings import ROUTES
from services.patterns.loadbalance import BALANCERS
from services.patterns.ratelimit import SlidingWindowLimiter
from services.platform.access import Caller

router = APIRouter(tags=["gateway"])


def _view(app: FastAPI) -> dict:
    s = app.state
    limiter = s.rate_limiter
    return {"services": s.upstreams.describe(),
            "discovery": s.settings.gateway_discovery,
            "rate_limit": ({"requests": limiter.limit, "window_s": limiter.window_ms / 1000} if limiter else None),
            "response_cache": s.response_cache.describe(),
            "refused": dict(s.refusals)}


@router.get("/services")
async def list_services(request: Request) -> dict:
    """The instances the gateway routes to, per service, with health and circuit-breaker state."""
    return _view(request.app)


class BalancerChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: str = Field(description=f"one of {', '.join(BALANCERS)}")
    service: str | None = Field(default=None, description="one service; all when left out")


@router.put("/admin/balancer", tags=["admin"])
async def change_balancer(change: BalancerChange, request: Request, who: Caller) -> dict:
    who.require("system")
    if change.strategy not in BALANCERS:
        raise LabError(422, "invalid_input", f"unknown strategy {change.strategy!r}; choose one of "
                       f"{', '.join(BALANCERS)}", field="strategy")
    services = [change.service] if change.service else list(ROUTES.values())
    if change.service and change.service not in ROUTES.values():
        raise LabError(422, "invalid_input", f"unknown service {change.service!r}; choose one of "
                       f"{', '.join(ROUTES.values())}", field="service")
    for service in services:
        request.app.state.upstreams.set_strategy(service, change.strategy)
    return _view(request.app)


class RateLimitChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: int = Field(ge=0, le=1_000_000, description="per client per window; 0 turns the limiter off")
    window_s: float = Field(default=1.0, gt=0, le=3600)


@router.put("/admin/ratelimit", tags=["admin"])
async def change_rate_limit(change: RateLimitChange, request: Request, who: Caller) -> dict:
    who.require("system")
    s = request.app.state
    s.rate_limiter = SlidingWindowLimiter(s.redis, change.requests, change.window_s) if change.requests else None
    return _view(request.app)


class CacheChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_s: float = Field(ge=0, le=3600, description="how long a GET answer is kept; 0 turns the cache off")


@router.put("/admin/gateway-cache", tags=["admin"])
async def change_gateway_cache(change: CacheChange, request: Request, who: Caller) -> dict:
    who.require("system")
    cache = request.app.state.response_cache
    cache.ttl_s = change.ttl_s
    cache.clear()
    return _view(request.app)


async def services_health(app: FastAPI) -> dict:
    """Ask one instance of every routed service for its ``/health`` at once; a silent one is reported as down."""
    session: aiohttp.ClientSession = app.state.upstream_session
    timeout = aiohttp.ClientTimeout(total=1.5)

    async def probe(service: str) -> tuple[str, dict]:
        target = app.state.upstreams.any_instance(service)
        if target is None:
            return service, {"status": "down", "error": "no instance registered"}
        try:
            async with session.get(target.base_url + "/health", timeout=timeout) as response:
                return service, await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return service, {"status": "down", "url": target.base_url, "error": type(exc).__name__}

    results = await asyncio.gather(*(probe(name) for name in sorted(set(ROUTES.values()))))
    return {"services": dict(results)}
