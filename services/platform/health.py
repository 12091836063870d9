"""``GET /health``: is this instance alive, which one is it, and can it reach Redis?

Redis down is *degraded*, not dead: the service still answers from its system of record, so a load
balancer should keep sending traffic. The answer is 200 either way; ``status`` tells the difference.

**Health answers in time whatever Redis does.** The gateway's probe gives an instance about a second
(``upstreams.py``); a Redis that is frozen rather than gone makes a plain PING wait for its socket timeout,
times the client's retries — longer than that. An instance that answers too late is taken out of rotation,
though it could serve from its system of record. So the Redis check gets a budget of its own,
``REDIS_CHECK_BUDGET_S``, well inside the probe's, with no retries past it: no answer in time = degraded.
"""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import APIRouter, Request

from services.core.redis_client import ping_latency_ms

health_router = APIRouter(tags=["health"])

#: How long ``/health`` waits for Redis's PING: a quarter of the gateway's (smallest) probe timeout.
REDIS_CHECK_BUDGET_S = 0.25


async def redis_latency_ms(redis) -> float | None:
    """PING's round trip in ms, or None if Redis did not answer within ``REDIS_CHECK_BUDGET_S``."""
    try:
        async with asyncio.timeout(REDIS_CHECK_BUDGET_S):
            return await ping_latency_ms(redis)
    except TimeoutError:
        return None


@health_router.get("/health")
async def health(request: Request) -> dict:
    s = request.app.state
    latency = await redis_latency_ms(s.redis)
    body = {
        "status": "ok" if latency is not None else "degraded",
        "service": s.service,
        "instance": s.instance_id,
        "version": s.settings.version,
        "uptime_s": round(time.time() - s.started_at, 3),
        "pid": os.getpid(),
        "port": s.port,
        "redis": {"ok": latency is not None, "latency_ms": latency},
    }
    extra = getattr(s, "health_extra", None)  # the gateway adds the health of every service it routes to
    if extra is not None:
        body.update(await extra(request.app))
        if any(part.get("status") != "ok" for part in body.get("services", {}).values()):
            body["status"] = "degraded"
    return body
