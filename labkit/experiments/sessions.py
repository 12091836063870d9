"""Lesson 04's experiments: a session's TTL over time, and a brute-force attempt against the login."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import httpx
import pandas as pd
import redis
import redis.asyncio as aioredis

from services.core import keys
from services.patterns import sessions

from ..coroutines import run_async


async def _ttl_timeline(redis_url: str, idle_s: float, absolute_s: float, duration_s: float, touch_every_s: float,
                        sample_every_s: float) -> list[dict]:
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    user = {"user_id": "u-demo", "username": "demo", "roles": ("customer",), "customer_id": None}
    try:
        active = await sessions.create_session(r, user, idle_s, absolute_s)
        idle = await sessions.create_session(r, user, idle_s, absolute_s)
        started = last_touch = time.monotonic()
        rows = []
        while (now := time.monotonic()) - started < duration_s:
            if now - last_touch >= touch_every_s:
                await sessions.touch_session(r, active.id, idle_s)  # what the gateway does on every request
                last_touch = now
            for label, s in (("active (used every %.1f s)" % touch_every_s, active), ("idle (never used)", idle)):
                ttl_ms = await r.pttl(sessions.session_key(s.id))
                rows.append({"session": label, "t_s": now - started, "ttl_s": max(ttl_ms, 0) / 1000,
                             "alive": ttl_ms > 0})
            await asyncio.sleep(sample_every_s)
        await sessions.destroy_all_sessions(r, user["user_id"])
        return rows
    finally:
        await r.aclose()


def session_ttl_timeline(redis_url: str, idle_s: float = 3, absolute_s: float = 7, duration_s: float = 9,
                         touch_every_s: float = 1.0, sample_every_s: float = 0.1) -> pd.DataFrame:
    """Two sessions made by the lab's own code with a short idle timeout and absolute cap; one is used
    every ``touch_every_s`` seconds, one never. Their TTLs are sampled from Redis as time passes."""
    return pd.DataFrame(run_async(_ttl_timeline(redis_url, idle_s, absolute_s, duration_s, touch_every_s,
                                                  sample_every_s)))


def brute_force(gateway_url: str, username: str, guesses: list[str]) -> pd.DataFrame:
    """Try each password in turn, as an attacker would; record what the gateway answered."""
    rows = []
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        for attempt, password in enumerate(guesses, start=1):
            started = time.perf_counter()
            response = client.post("/api/auth/login", json={"username": username, "password": password})
            rows.append({"attempt": attempt, "password": password, "status": response.status_code,
                         "retry_after_s": response.headers.get("retry-after"),
                         "latency_ms": (time.perf_counter() - started) * 1000,
                         "answer": response.json().get("error", {}).get("code", "logged in")})
    return pd.DataFrame(rows)


def what_redis_answers(attempts: dict[str, Callable[[], object]]) -> pd.DataFrame:
    """Run each attempt (a Redis call made as some service's user) and say what Redis answered: ``allowed``,
    or ``refused: <the server's NOPERM message>``. Any other error is not an answer about permissions and
    is raised."""

    def answer(attempt) -> str:
        try:
            attempt()
        except redis.exceptions.NoPermissionError as refused:
            return f"refused: {refused}"
        return "allowed"

    return pd.DataFrame([{"attempt": what, "Redis answers": answer(attempt)} for what, attempt in attempts.items()])
