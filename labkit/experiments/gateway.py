"""Lesson 05's experiments: balancing strategies side by side, one slow instance, the rate limiter, and the
gateway's own response cache.

Each experiment changes the gateway at run time through its ``/admin`` routes (as the lab's system user)
and puts back what it found, so the lab is left as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import httpx
import pandas as pd

from services.core.settings import Settings, get_settings

from .. import procs
from ..auth import gateway_headers, service_client
from . import PATHS, run_async

STRATEGIES = ("round_robin", "random", "least_outstanding", "weighted")


@contextlib.contextmanager
def gateway_admin(settings: Settings):
    with service_client(settings, "gateway") as client:
        yield client


def current_strategy(settings: Settings, service: str) -> str:
    with gateway_admin(settings) as admin:
        return admin.get("/services").json()["services"][service]["strategy"]


def set_strategy(settings: Settings, service: str, strategy: str) -> None:
    with gateway_admin(settings) as admin:
        admin.put("/admin/balancer", json={"service": service, "strategy": strategy}).raise_for_status()


async def _closed_loop(settings: Settings, path: str, n: int, concurrency: int) -> list[dict]:
    url, rows = settings.url_of("gateway") + path, []
    async with aiohttp.ClientSession(headers=gateway_headers(settings, ask_the_service=True),
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        sent = 0

        async def worker():
            nonlocal sent
            while sent < n:
                seq, sent = sent, sent + 1
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    rows.append({"seq": seq, "status": response.status,
                                 "served_by": response.headers.get("x-served-by", "-"),
                                 "latency_ms": (time.perf_counter() - started) * 1000})

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return rows


def strategies_side_by_side(service: str = "claims", requests: int = 300, concurrency: int = 8,
                            strategies: tuple[str, ...] = STRATEGIES, settings: Settings | None = None) -> pd.DataFrame:
    """``requests`` reads through the gateway per strategy, ``concurrency`` at a time. One row per request:
    strategy, seq (the order it was sent in), first_wave (one of the first ``concurrency``, sent while every
    instance was idle), served_by, status, latency_ms. The strategy the gateway had is restored at the end."""
    settings = settings or get_settings()
    before = current_strategy(settings, service)
    frames = []
    try:
        for strategy in strategies:
            set_strategy(settings, service, strategy)
            rows = run_async(_closed_loop(settings, PATHS[service], requests, concurrency))
            frame = pd.DataFrame(rows).sort_values("seq", ignore_index=True)
            frames.append(frame.assign(strategy=strategy, first_wave=frame["seq"] < concurrency))
    finally:
        set_strategy(settings, service, before)
    return pd.concat(frames, ignore_index=True)


def with_one_slow_instance(instance: str = "claims#2", delay_ms: float = 30.0, service: str = "claims",
                           requests: int = 300, concurrency: int = 8,
                           strategies: tuple[str, ...] = ("round_robin", "random", "least_outstanding"),
                           settings: Settings | None = None) -> pd.DataFrame:
    """Make ``instance`` slow (its ``delay_ms`` knob), run every strategy, put the knob back."""
    settings = settings or get_settings()
    record = procs.read_pidfiles(settings.run_dir)[instance]
    with service_client(settings, service) as client:
        client.base_url = record.url
        before = client.get("/admin/knobs").json()["delay_ms"]
        client.put("/admin/knobs", json={"delay_ms": delay_ms}).raise_for_status()
        try:
            return strategies_side_by_side(service, requests, concurrency, strategies, settings)
        finally:
            client.put("/admin/knobs", json={"delay_ms": before}).raise_for_status()


async def _open_loop(settings: Settings, path: str, rate: float, seconds: float) -> list[dict]:
    url, rows = settings.url_of("gateway") + path, []
    async with aiohttp.ClientSession(headers=gateway_headers(settings, ask_the_service=True)) as session:
        started = time.perf_counter()

        async def one(t_s: float):
            async with session.get(url) as response:
                await response.read()
                rows.append({"t_s": t_s, "status": response.status,
                             "retry_after_s": response.headers.get("retry-after")})

        tasks, n = [], 0
        while (now := time.perf_counter() - started) < seconds:
            tasks.append(asyncio.create_task(one(now)))
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
    return rows


def rate_limit_in_action(limit: int = 20, window_s: float = 1.0, rate: float = 40.0, seconds: float = 4.0,
                         settings: Settings | None = None) -> pd.DataFrame:
    """Turn the gateway's limiter on (``limit`` per ``window_s`` per client), send ``rate`` req/s for
    ``seconds`` as one client, turn it off again. One row per request: t_s, status, retry_after_s."""
    settings = settings or get_settings()
    with gateway_admin(settings) as admin:
        before = admin.get("/services").json()["rate_limit"] or {"requests": 0, "window_s": 1.0}
        admin.put("/admin/ratelimit", json={"requests": limit, "window_s": window_s}).raise_for_status()
        try:
            rows = run_async(_open_loop(settings, PATHS["customer"], rate, seconds))
        finally:
            admin.put("/admin/ratelimit", json=before).raise_for_status()
    df = pd.DataFrame(rows)
    df["allowed"] = df["status"] != 429
    return df


def response_cache_side_by_side(reads: int = 200, path: str = PATHS["policy"],
                                settings: Settings | None = None) -> pd.DataFrame:
    """The same read through the gateway, alternately past its response cache (``Cache-Control: no-cache``:
    a hop to the policy service and its Redis cache) and from it. One row per read: path, latency_ms,
    gateway_cache (``REFRESH``/``HIT``/``MISS``), served_by."""
    settings = settings or get_settings()
    labels = {"past the gateway cache (no-cache)": gateway_headers(settings, ask_the_service=True),
              "gateway cache": gateway_headers(settings)}
    rows = []
    with httpx.Client(base_url=settings.url_of("gateway"), timeout=10) as client:
        for i in range(-10, reads):  # ten warm-up rounds, not recorded
            for label, headers in labels.items():
                started = time.perf_counter()
                response = client.get(path, headers=headers)
                if i >= 0:
                    rows.append({"path": label, "latency_ms": (time.perf_counter() - started) * 1000,
                                 "gateway_cache": response.headers.get("x-gateway-cache", ""),
                                 "served_by": response.headers.get("x-served-by", "")})
    return pd.DataFrame(rows)


def write_elsewhere_reaches_the_gateway(settings: Settings | None = None, ttl_s: float = 60.0) -> dict:
    """A policy is read through the gateway (so the gateway keeps it), then changed *straight at the policy
    service* — the gateway never sees that write. How long does the gateway keep answering the old value?

    The gateway's TTL is raised to ``ttl_s`` meanwhile (and put back), so only the policy service's event
    can explain a fresh answer before then. Returns the write's time and what the gateway answered after it.
    """
    settings = settings or get_settings()
    with gateway_admin(settings) as admin, \
            httpx.Client(base_url=settings.url_of("gateway"), headers=gateway_headers(settings), timeout=10) as api, \
            service_client(settings, "policy") as policy_service:
        before = admin.get("/services").json()["response_cache"]["ttl_s"]
        admin.put("/admin/gateway-cache", json={"ttl_s": ttl_s}).raise_for_status()
        try:
            created = api.post("/api/policies", json={
                "customer_id": "CUS-000001", "product": "home", "premium_cents": 50_000,
                "coverage_cents": 10_000_000, "start_date": "2026-01-01", "end_date": "2027-01-01"})
            created.raise_for_status()
            path = f"/api/policies/{created.json()['id']}"
            api.get(path)
            kept = api.get(path).headers.get("x-gateway-cache")
            written = time.perf_counter()
            policy_service.patch(path.removeprefix("/api"), json={"premium_cents": 65_000}).raise_for_status()
            acknowledged_ms = (time.perf_counter() - written) * 1000
            stale_answers, seen_ms = 0, None
            while (time.perf_counter() - written) < 5:
                answer = api.get(path)
                if answer.json()["premium_cents"] == 65_000:
                    seen_ms = (time.perf_counter() - written) * 1000
                    break
                stale_answers += 1
        finally:
            admin.put("/admin/gateway-cache", json={"ttl_s": before}).raise_for_status()
    return {"policy": path, "before_the_write": kept, "write_acknowledged_ms": round(acknowledged_ms, 2),
            "new_value_seen_ms": round(seen_ms, 2) if seen_ms is not None else None,
            "stale_answers_after_the_write": stale_answers}
