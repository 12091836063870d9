"""``GET /health``: is this instance alive, which one is it, and can it reach Redis?

Redis down is *degraded*, not dead: the service still answers from its system of record, so a load
balancer should keep sending traffic. The answer is 200 either way; ``status`` tells the difference.
"""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Request

from .redis_client import ping_latency_ms

health_router = APIRouter(tags=["health"])


@health_router.get("/health")
async def health(request: Request) -> dict:
    s = request.app.state
    latency = await ping_latency_ms(s.redis)
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
