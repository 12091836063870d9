"""Lesson 08's experiment: steady traffic through the gateway while a fault comes and goes.

Requests are sent on a fixed schedule (open loop: a slow or failing answer does not delay the next
request), each with its own timeout, so the record shows exactly when errors started, how long they
lasted and what latency looked like around the fault.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Callable

import aiohttp
import pandas as pd

from pathlib import Path

from services.core import keys
from services.core.settings import SERVICE_NAMES, Settings
from services.patterns.envelope import Event, EventType

from .. import procs
from ..errors import PortBusyError
from ..auth import gateway_headers
from ..lab import Lab, start_all
from . import run_async


def private_settings(run_dir: Path) -> Settings:
    """Settings for a second, throw-away lab on free ports: a lesson that breaks things breaks this one."""
    ports = {f"{name}_port": procs.free_port() for name in SERVICE_NAMES}
    return Settings(_env_file=None, run_dir=run_dir, redis_port=procs.free_port(), **ports)


def start_private_lab(run_dir: Path, attempts: int = 3, timeout: float | None = None) -> Lab:
    """Start a lab on ports picked now; if one is taken before its server binds it, try fresh ports
    (``start_all`` has already stopped what it started)."""
    for _ in range(attempts - 1):
        try:
            return start_all(private_settings(run_dir), timeout=timeout)
        except PortBusyError:
            pass
    return start_all(private_settings(run_dir), timeout=timeout)


async def _traffic(settings: Settings, requests: list[tuple[str, str, dict | None]], rate: float,
                   duration_s: float, events: list[tuple[float, str, Callable[[], object]]],
                   timeout_s: float) -> tuple[list[dict], list[dict]]:
    rows, marks = [], []
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(base_url=settings.url_of("gateway"), timeout=timeout,
                                     headers=gateway_headers(settings, ask_the_service=True)) as session:
        async def one(intended: float, kind: str, method: str, path: str, body):
            started = time.monotonic()
            created = None
            try:
                async with session.request(method, path, json=body) as response:
                    payload = await response.read()
                    status = response.status
                if status == 201:
                    created = json.loads(payload).get("id")
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                status = 599 if isinstance(exc, asyncio.TimeoutError) else 598
            rows.append({"t_s": intended, "kind": kind, "status": status, "created": created,
                         "latency_ms": (time.monotonic() - started) * 1000, "ok": status < 500})

        async def run_events(t0: float):
            for at, label, action in events:
                await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
                await loop.run_in_executor(None, action)
                marks.append({"t_s": time.monotonic() - t0, "event": label})

        t0 = time.monotonic()
        event_task = asyncio.create_task(run_events(t0))
        tasks = []
        for i, (method, path, body) in zip(itertools.count(), itertools.cycle(requests)):
            intended = i / rate
            if intended >= duration_s:
                break
            await asyncio.sleep(max(0.0, t0 + intended - time.monotonic()))
            kind = "write" if method != "GET" else "read"
            tasks.append(asyncio.create_task(one(intended, kind, method, path, body)))
        await asyncio.gather(*tasks)
        await event_task
    return rows, marks


def traffic_around_fault(settings: Settings, requests: list[tuple[str, str, dict | None]],
                         events: list[tuple[float, str, Callable[[], object]]], rate: float = 40,
                         duration_s: float = 8, timeout_s: float = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Send ``requests`` (method, path, json) round-robin at ``rate``/s for ``duration_s``; run each
    ``(at_s, label, action)`` event on schedule. Returns (one row per request, one row per event)."""
    rows, marks = run_async(_traffic(settings, requests, rate, duration_s, events, timeout_s))
    return pd.DataFrame(rows).sort_values("t_s").reset_index(drop=True), pd.DataFrame(marks)


def audit_claims(redis_client, claim_ids: list[str]) -> pd.DataFrame:
    """For each claim the system of record committed: how many ``claim.submitted`` events its audit trail
    (its own stream) holds. Exactly one each = nothing lost, nothing doubled."""
    rows = []
    for claim_id in claim_ids:
        entries = redis_client.xrange(keys.subject_history("claims", claim_id))
        types = [Event.from_json(fields["event"]).type for _, fields in entries]
        rows.append({"claim": claim_id, "submitted_events": types.count(EventType.CLAIM_SUBMITTED)})
    return pd.DataFrame(rows, columns=["claim", "submitted_events"])


def wait_for_audit(redis_client, claim_ids: list[str], timeout_s: float = 20) -> tuple[pd.DataFrame, float]:
    """Poll until every claim has its event (the outboxes drain once Redis is back); (audit, seconds waited)."""
    started = time.monotonic()
    while True:
        audit = audit_claims(redis_client, claim_ids)
        if (audit["submitted_events"] >= 1).all() or time.monotonic() - started > timeout_s:
            return audit, time.monotonic() - started
        time.sleep(0.2)
