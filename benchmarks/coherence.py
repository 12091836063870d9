"""Lesson 06's targets, side by side in one run: near cache vs Redis, staleness under tracking, stampedes.

* a near-cache (L1) hit vs a Redis GET round trip from the same process: ratio of medians (target >= 20x);
* with CLIENT TRACKING, reads that start after a writer's acknowledged SET and still return the old value:
  their window (read start - ack) p99 (target <= 5 ms on loopback) and their rate among all reads;
* a hot key expiring under 100 concurrent readers: system-of-record loads per refresh with no protection,
  a single-flight lock (target <= 1) and XFetch (reported).

Run: ``python -m benchmarks.coherence [--seconds 2]``. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import redis.asyncio as aioredis

from labkit.experiments import coherence as experiments
from labkit.tables import text_table
from services.core import keys
from services.patterns.near_cache import NearCache

from .harness import print_figures, running_lab

TARGETS = {"l1_vs_redis_get_ratio": (">=", 20.0), "stale_after_ack_window_p99_ms": ("<=", 5.0),
           "stampede_lock_loads_per_refresh": ("<=", 1.0)}
QUICK_ARGV = ["--seconds", "1"]


async def near_cache_figures(url: str, seconds: float, reads: int = 3000) -> dict:
    kind = f"bench-near-{uuid.uuid4().hex[:8]}"
    key = keys.cache_entity(kind, "HOT")
    r = aioredis.Redis.from_url(url, decode_responses=True)
    writer = aioredis.Redis.from_url(url, decode_responses=True)
    near = await NearCache(r, [keys.cache_prefix(kind)], max_age_s=60).start()
    try:
        await writer.set(key, "0")
        l1, redis_get = [], []
        for _ in range(reads):  # alternate so machine noise falls on both alike
            await near.get(key)
            started = time.perf_counter()
            await near.get(key)
            l1.append(time.perf_counter() - started)
            started = time.perf_counter()
            await r.get(key)
            redis_get.append(time.perf_counter() - started)

        acked: list[tuple[int, float]] = []  # (version, when the writer's SET was acknowledged)
        observations: list[tuple[float, int]] = []  # (read start, version returned)
        deadline = time.perf_counter() + seconds

        async def write_loop():
            version = 0
            while time.perf_counter() < deadline:
                version += 1
                await writer.set(key, str(version))
                acked.append((version, time.perf_counter()))
                await asyncio.sleep(0.002)

        async def read_loop():
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                raw, _ = await near.get(key)
                observations.append((started, int(raw)))
                await asyncio.sleep(0)

        await asyncio.gather(write_loop(), read_loop(), read_loop())
    finally:
        await near.close()
        await writer.delete(key)
        await r.aclose()
        await writer.aclose()
    acked_at = dict(acked)  # versions are acknowledged in order: the first newer one is version + 1
    windows = [(started - acked_at[version + 1]) * 1000 for started, version in observations
               if acked_at.get(version + 1, float("inf")) <= started]  # a newer write was acked before it began
    windows.sort()
    return {"l1_hit_us": statistics.median(l1) * 1e6, "redis_get_us": statistics.median(redis_get) * 1e6,
            "l1_vs_redis_get_ratio": statistics.median(redis_get) / statistics.median(l1),
            "reads_after_writes": len(observations), "writes": len(acked),
            "stale_after_ack_rate": len(windows) / len(observations) if observations else 0.0,
            "stale_after_ack_window_p99_ms": windows[min(len(windows) - 1, int(0.99 * len(windows)))]
            if windows else 0.0}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="write/read phase of the tracking test")
    parser.add_argument("--readers", type=int, default=100, help="concurrent readers of the hot key")
    args = parser.parse_args(argv)

    with running_lab() as lab:
        near = experiments.run_async(near_cache_figures(lab.redis.url, args.seconds))
        per_refresh = experiments.loads_per_refresh(
            experiments.stampede(lab.settings, readers=args.readers, expiries=3))

    print("\nNear cache (L1 over CLIENT TRACKING) vs Redis, one process, loopback:")
    print(text_table([{"read": "L1 hit", "median_us": f"{near['l1_hit_us']:.2f}"},
                      {"read": "Redis GET", "median_us": f"{near['redis_get_us']:.1f}"}]))
    print(f"\nWhile one writer SETs every ~2 ms: {near['reads_after_writes']} reads, {near['writes']} writes; "
          f"{near['stale_after_ack_rate']:.2%} returned a value older than an acknowledged write, "
          f"p99 window {near['stale_after_ack_window_p99_ms']:.3f} ms")
    print(f"\nHot key expiring under {args.readers} concurrent readers (system of record at 30 ms):")
    print(text_table([{"protection": p, "refreshes": int(row["refreshes"]),
                       "loads_per_refresh": f"{row['per_refresh_mean']:.1f}", "worst": int(row["per_refresh_max"])}
                      for p, row in per_refresh.iterrows()]))
    figures = {"l1_vs_redis_get_ratio": near["l1_vs_redis_get_ratio"],
               "stale_after_ack_window_p99_ms": near["stale_after_ack_window_p99_ms"],
               "stale_after_ack_rate": near["stale_after_ack_rate"],
               **{f"stampede_{p}_loads_per_refresh": float(row["per_refresh_mean"])
                  for p, row in per_refresh.iterrows()}}
    print_figures(figures, TARGETS)
    return figures


if __name__ == "__main__":
    main()
