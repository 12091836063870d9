"""The gateway's own routes (everything under ``/api/`` is proxied, see proxy.py)."""

from __future__ import annotations

import asyncio

import aiohttp
from fastapi import APIRouter, FastAPI, Request

router = APIRouter(tags=["gateway"])


@router.get("/services")
async def list_services(request: Request) -> dict:
    """The instances the gateway routes to, per service."""
    return {"services": request.app.state.upstreams.describe()}


async def services_health(app: FastAPI) -> dict:
    """Ask every service's ``/health`` at once; a silent one is reported as down, naming it."""
    session: aiohttp.ClientSession = app.state.upstream_session
    timeout = aiohttp.ClientTimeout(total=1.5)

    async def probe(service: str) -> tuple[str, dict]:
        target = app.state.upstreams.pick(service)
        if target is None:
            return service, {"status": "down", "error": "no instance registered"}
        try:
            async with session.get(target.base_url + "/health", timeout=timeout) as response:
                return service, await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return service, {"status": "down", "url": target.base_url, "error": type(exc).__name__}

    results = await asyncio.gather(*(probe(name) for name in sorted(app.state.upstreams.targets)))
    return {"services": dict(results)}
