"""Lesson 02's figures: event latency from commit to consumer, and outbox relay throughput.

* latency: claims are written one after another through the gateway while a consumer tails
  ``lab:stream:claims``; p50/p99 of (write sent -> event seen) next to the write alone (expect a few ms);
* relay throughput: N events put in an outbox table, then published by ``relay_once`` pipelined (one
  round trip per batch) vs one by one (one round trip per event), alternating, events/s side by side.

Run: ``python -m benchmarks.events [--claims 200] [--events 2000]``. Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from labkit.experiments.events import event_latency
from labkit.tables import text_table
from services.core import keys
from services.patterns import outbox
from services.patterns.envelope import Event, EventType

from .harness import running_lab


def _pct(values, q):
    data = sorted(values)
    return data[min(len(data) - 1, int(q * len(data)))]


async def _relay_rate(redis_url: str, n: int, pipelined: bool, batch: int) -> float:
    topic = f"bench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "outbox.sqlite3", isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.executescript(outbox.OUTBOX_SCHEMA)
        conn.execute("BEGIN")
        for i in range(n):
            outbox.add_to_outbox(conn, Event(EventType.CLAIM_SUBMITTED, "bench", f"CLM-{i:06d}", {"n": i}), topic)
        conn.execute("COMMIT")
        r = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            started = time.perf_counter()
            while await outbox.relay_once(r, conn, batch=batch, pipelined=pipelined):
                pass
            seconds = time.perf_counter() - started
            assert await r.xlen(keys.stream(topic)) == n
            await r.delete(keys.stream(topic))  # the per-subject streams and dedupe keys expire or stay small
        finally:
            await r.aclose()
        conn.close()
    return n / seconds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=200, help="claims written for the latency figure")
    parser.add_argument("--events", type=int, default=2000, help="outbox events per relay run")
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)

    with running_lab() as lab:
        latency = event_latency(lab.client, lab.redis.url, n=args.claims)
        rates = {"pipelined": [], "one by one": []}
        for _ in range(3):  # alternate, so machine noise falls on both alike
            for label, pipelined in (("pipelined", True), ("one by one", False)):
                rates[label].append(asyncio.run(_relay_rate(lab.redis.url, args.events, pipelined, args.batch)))

    rows = []
    for what, group in latency.groupby("what", sort=False):
        values = group["latency_ms"].tolist()
        rows.append({"measure": what, "n": len(values), "p50_ms": f"{_pct(values, 0.5):.2f}",
                     "p99_ms": f"{_pct(values, 0.99):.2f}"})
    print(f"\nEvent latency, {args.claims} claims written one after another through the gateway")
    print(text_table(rows))
    print(f"\nOutbox relay, {args.events} events, batch {args.batch}, median of 3 alternating runs")
    print(text_table([{"relay": label, "events_s": f"{statistics.median(v):,.0f}"} for label, v in rates.items()]))
    return {"latency": latency, "rates": rates}


if __name__ == "__main__":
    main()
