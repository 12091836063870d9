"""Lesson 02's experiments on the running lab; each returns a DataFrame of raw observations.

They make real claims through the gateway (small amounts, so the worker leaves them ``submitted``) and read
the real ``lab:events:claims`` channel and ``lab:stream:claims`` log. Every consumer group they create is
their own (``lesson02-...``) and is deleted at the end, so the worker's group is never touched.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import httpx
import pandas as pd
import redis
import redis.asyncio as aioredis

from services.core import keys
from services.patterns import streams
from services.patterns.envelope import Event

from ..coroutines import run_async

STREAM, CHANNEL = keys.stream("claims"), keys.channel("claims")


def _new_policy(client: httpx.Client) -> str:
    """A fresh customer with one policy with a large cover, so test claims stay low-risk."""
    customer = client.post("/api/customers", json={"name": "Lesson Two", "email": "lesson02@example.com",
                                                   "date_of_birth": "1980-02-02"}).json()
    policy = client.post("/api/policies", json={"customer_id": customer["id"], "product": "home",
                                                "premium_cents": 50_000, "coverage_cents": 50_000_000,
                                                "start_date": "2026-01-01", "end_date": "2027-01-01"}).json()
    return policy["id"]


def _submit(client: httpx.Client, policy_id: str, description: str = "lesson 02 claim") -> dict:
    response = client.post("/api/claims", json={"policy_id": policy_id, "amount_cents": 10_000,
                                                "description": description})
    response.raise_for_status()
    return response.json()


def _drain_pubsub(pubsub, wait_s: float) -> list[str]:
    seen, deadline = [], time.monotonic() + wait_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message:
            seen.append(Event.from_json(message["data"]).subject)
    return seen


def pubsub_vs_consumer_group(client: httpx.Client, r: redis.Redis, per_phase: int = 10,
                             settle_s: float = 0.5) -> pd.DataFrame:
    """Three phases of ``per_phase`` claims: both listeners online; both offline; both back.

    The pub/sub subscriber is offline = unsubscribed; the consumer group is offline = nobody reads it.
    After each online phase we count which of the phase's claims each one received.
    """
    group = f"lesson02-{uuid.uuid4().hex[:6]}"
    r.xgroup_create(STREAM, group, id="$", mkstream=True)
    pubsub = r.pubsub()
    pubsub.subscribe(CHANNEL)
    _drain_pubsub(pubsub, 0.1)
    policy_id = _new_policy(client)
    made: dict[str, list[str]] = {}
    heard: dict[str, set[str]] = {"pub/sub subscriber": set(), "stream consumer group": set()}
    try:
        for phase, online in (("1 both online", True), ("2 both offline", False), ("3 back online", True)):
            if online:
                pubsub.subscribe(CHANNEL)
            else:
                pubsub.unsubscribe(CHANNEL)
                _drain_pubsub(pubsub, 0.1)
            made[phase] = [_submit(client, policy_id)["id"] for _ in range(per_phase)]
            time.sleep(settle_s)  # let the outbox relay publish
            if online:
                heard["pub/sub subscriber"] |= set(_drain_pubsub(pubsub, settle_s))
                while answer := r.xreadgroup(group, "notebook", {STREAM: ">"}, count=500, block=200):
                    for entry_id, fields in answer[0][1]:
                        heard["stream consumer group"].add(fields.get("subject"))
                        r.xack(STREAM, group, entry_id)
        rows = []
        for phase, claim_ids in made.items():
            for listener, subjects in heard.items():
                rows.append({"phase": phase, "listener": listener, "published": len(claim_ids),
                             "received": sum(1 for c in claim_ids if c in subjects)})
        return pd.DataFrame(rows)
    finally:
        pubsub.close()
        r.xgroup_destroy(STREAM, group)


def event_latency(client: httpx.Client, redis_url: str, n: int = 100) -> pd.DataFrame:
    """Submit ``n`` claims one after another; a thread tails the claims log (XREAD BLOCK) and notes when
    each claim's event arrives. Rows: the HTTP write alone, and write sent -> event seen by the consumer."""
    policy_id = _new_policy(client)
    seen: dict[str, float] = {}
    stop = threading.Event()
    reader = redis.Redis.from_url(redis_url, decode_responses=True)
    last_id = (reader.xrevrange(STREAM, count=1) or [("0-0", {})])[0][0]

    def tail() -> None:
        cursor = last_id
        while not stop.is_set():
            answer = reader.xread({STREAM: cursor}, count=500, block=100)
            for entry_id, fields in (answer[0][1] if answer else []):
                seen.setdefault(fields.get("subject"), time.perf_counter())
                cursor = entry_id

    thread = threading.Thread(target=tail, daemon=True)
    thread.start()
    sent: dict[str, tuple[float, float]] = {}
    try:
        for _ in range(n):
            started = time.perf_counter()
            claim = _submit(client, policy_id)
            sent[claim["id"]] = (started, time.perf_counter())
        deadline = time.monotonic() + 5
        while any(c not in seen for c in sent) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=2)
        reader.close()
    rows = []
    for i, (claim_id, (started, answered)) in enumerate(sent.items()):
        rows.append({"i": i, "claim": claim_id, "what": "HTTP write (POST /api/claims)",
                     "latency_ms": (answered - started) * 1000})
        if claim_id in seen:
            rows.append({"i": i, "claim": claim_id, "what": "write sent -> consumer saw the event",
                         "latency_ms": (seen[claim_id] - started) * 1000})
    return pd.DataFrame(rows)


def claim_audit_trail(client: httpx.Client, steps: tuple[str, ...] = ("under_review", "approved", "paid"),
                      pause_s: float = 0.3) -> tuple[str, pd.DataFrame]:
    """Walk one new claim through ``steps`` (as the lab's system user) and read its history back."""
    claim = _submit(client, _new_policy(client), "lesson 02 audit trail")
    for step in steps:
        time.sleep(pause_s)
        client.post(f"/api/claims/{claim['id']}/status", json={"status": step, "note": f"moved to {step}"})
    deadline = time.monotonic() + 5
    while True:
        history = client.get(f"/api/claims/{claim['id']}/history").json()
        if len(history["events"]) == len(steps) + 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    df = pd.DataFrame(history["events"])
    df["time"] = pd.to_datetime(df["time"])
    df["t_s"] = (df["time"] - df["time"].iloc[0]).dt.total_seconds()
    return claim["id"], df


RECLAIM_GROUP_PREFIX = "lesson02-reclaim-"  # every group the reclaim experiment creates starts with this


async def _kill_mid_batch(redis_url: str, client: httpx.Client, batch: int, handled_before_death: int,
                          idle_ms: int) -> tuple[list[dict], dict]:
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    group = f"{RECLAIM_GROUP_PREFIX}{uuid.uuid4().hex[:6]}"
    rows = []
    facts = {"group": group, "idle_ms": idle_ms, "acked_before_death": handled_before_death}

    async def snapshot(moment: str) -> None:
        summary = await r.xpending(STREAM, group)
        per_consumer = {c["name"]: c["pending"] for c in summary["consumers"]}
        for consumer in ("worker-A (dies)", "worker-B"):
            rows.append({"moment": moment, "consumer": consumer, "pending": per_consumer.get(consumer, 0)})

    try:
        await streams.ensure_group(r, STREAM, group, start_id="$")
        policy_id = await asyncio.to_thread(_new_policy, client)
        for _ in range(batch):
            await asyncio.to_thread(_submit, client, policy_id)
        await asyncio.sleep(0.3)
        answer = await r.xreadgroup(group, "worker-A (dies)", {STREAM: ">"}, count=batch)
        facts["read_by_A"] = len(answer[0][1])
        for entry_id, _fields in answer[0][1][:handled_before_death]:  # A handles a few, then "crashes"
            await r.xack(STREAM, group, entry_id)
        await snapshot("1 A died mid-batch")
        handled = []

        async def handle(event: Event) -> None:
            handled.append(event.subject)

        await streams.consume_once(r, STREAM, group, "worker-B", handle, dead_key=keys.dead_letter("claims"),
                                   min_idle_ms=idle_ms, block_ms=10)
        await snapshot("2 B, too early")
        facts["handled_by_B_before_idle"] = len(handled)
        await asyncio.sleep(idle_ms / 1000)

        async def handle_reclaimed(event: Event) -> None:
            if not handled:  # the first reclaimed entry: XAUTOCLAIM has moved them all to B, none acked yet
                await snapshot("3 B: XAUTOCLAIM")
                delivered = await r.xpending_range(STREAM, group, min="-", max="+", count=1000)
                facts["delivered_twice"] = sum(p["times_delivered"] >= 2 for p in delivered)
            handled.append(event.subject)

        handled.clear()
        await streams.consume_once(r, STREAM, group, "worker-B", handle_reclaimed,
                                   dead_key=keys.dead_letter("claims"), min_idle_ms=idle_ms, block_ms=10)
        await snapshot("4 B acked them")
        facts["reclaimed_by_B"] = len(handled)
        for row in rows:
            row["reclaimed_by_B"] = len(handled)
        return rows, facts
    finally:
        await r.xgroup_destroy(STREAM, group)
        await r.aclose()


def kill_worker_mid_batch(redis_url: str, client: httpx.Client, batch: int = 10, handled_before_death: int = 3,
                          idle_ms: int = 1000) -> pd.DataFrame:
    """A consumer reads ``batch`` claims events, acknowledges ``handled_before_death`` and dies; another
    consumer of the same group reclaims the rest with XAUTOCLAIM once they have been idle ``idle_ms``.

    One row per moment and consumer: its pending entries. Moment 2 is B's first round, before the entries
    were idle ``idle_ms`` (nothing to reclaim yet). Moment 3 is seen from inside worker-B's handler,
    after XAUTOCLAIM moved the dead worker's entries to B and before B acknowledged any. ``df.attrs``: the
    group's name, how many entries A read, how many B reclaimed, how many had been delivered twice."""
    rows, facts = run_async(_kill_mid_batch(redis_url, client, batch, handled_before_death, idle_ms))
    df = pd.DataFrame(rows)
    df.attrs.update(facts)
    return df
