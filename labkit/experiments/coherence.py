"""Notebook 06's experiments: how stale and how expensive each coherence strategy is, measured.

Runs in-process against the lab's Redis with the pattern modules (``services.patterns.coherence`` and
``near_cache``), so each strategy gets the same workload and nothing else on the machine is measured.
The system of record is a stand-in with a version per key, a simulated query latency and a load counter.

* ``mixed_workload`` — readers on several "instances" and one writer on a few hot keys. Per read: whether it
  hit, which version it returned, the latest committed version when it started, how long the returned
  version had already been superseded (the staleness window). Per key: loads on the system of record.
* ``compare_strategies`` — ``mixed_workload`` once per strategy (plus ``near_cache``: an L1 per instance over
  ``delete_with_token``), concatenated; ``strategy_summary`` gives hit rate vs stale-read rate.
* ``stampede`` — a hot key with a short TTL read by 100 concurrent readers for a few expiries: loads on the
  system of record per refresh, with no protection, a single-flight lock, and XFetch.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter

import pandas as pd
import redis.asyncio as aioredis

from services.core import keys
from services.core.settings import Settings, get_settings
from services.patterns import coherence
from services.patterns.coherence import CachedEntity
from services.patterns.near_cache import NearCache

from .. import redis_server
from . import run_async

STRATEGIES = (*coherence.COHERENCE_STRATEGIES, "near_cache")


class VersionedSource:
    """The system of record: one row per key, its version, when each version committed, loads counted."""

    def __init__(self, names: list[str], load_ms: float, clock=time.perf_counter):
        self.clock, self.load_ms = clock, load_ms
        self.version = {name: 1 for name in names}
        self.committed_at = {name: {1: clock()} for name in names}
        self.loads: Counter = Counter()

    async def load(self, name: str) -> dict:
        snapshot = self.version[name]  # the SELECT sees this row; the answer travels back slowly
        self.loads[name] += 1
        await asyncio.sleep(self.load_ms / 1000)
        return {"id": name, "version": snapshot}

    def commit(self, name: str) -> int:
        self.version[name] += 1
        self.committed_at[name][self.version[name]] = self.clock()
        return self.version[name]


def _redis_url(settings: Settings) -> str:
    return redis_server.current(settings).url


async def _mixed(url: str, strategy: str, n_keys: int, instances: int, readers: int, seconds: float,
                 write_interval_ms: float, load_ms: float, ttl_ms: int, seed: int) -> pd.DataFrame:
    run_id = uuid.uuid4().hex[:8]
    kind, topic = f"coherence-{run_id}", f"coherence-lab-{run_id}"
    names = [f"K-{i:03d}" for i in range(n_keys)]
    entities = {name: CachedEntity(kind, name) for name in names}
    source = VersionedSource(names, load_ms)
    clients = [aioredis.Redis.from_url(url, decode_responses=True) for _ in range(instances + 1)]
    writer_redis, instance_redis = clients[0], clients[1:]
    background, nears = [], []
    rows: list[dict] = []
    try:
        if strategy == "event_driven":  # each instance listens for changes and deletes its copies
            for r in instance_redis:
                subscribed = asyncio.Event()
                background.append(asyncio.create_task(coherence.invalidate_on_events(
                    r, [topic], lambda event: event.data["keys"], on_subscribed=subscribed.set)))
                await asyncio.wait_for(subscribed.wait(), 5)
        if strategy == "near_cache":
            nears = [await NearCache(r, [keys.cache_prefix(kind)], max_age_s=5.0).start() for r in instance_redis]
        base_strategy = "delete_with_token" if strategy == "near_cache" else strategy
        started = time.perf_counter()
        deadline = started + seconds

        async def read_once(instance: int, name: str) -> tuple[dict, str]:
            r, entity = instance_redis[instance], entities[name]
            if nears:
                raw, from_l1 = await nears[instance].get(entity.key)
                if raw is not None:
                    return json.loads(raw), "l1" if from_l1 else "redis"
            value, hit = await coherence.read(r, entity, lambda: source.load(name), ttl_ms, base_strategy)
            return value, "redis" if hit else "system of record"

        async def reader(number: int) -> None:
            rng = random.Random(seed * 1000 + number)
            instance = number % instances
            while (now := time.perf_counter()) < deadline:
                name = names[min(int(rng.paretovariate(1.2)) - 1, n_keys - 1)]  # a few keys are hot
                latest = source.version[name]
                value, tier = await read_once(instance, name)
                returned = value["version"]
                superseded_at = source.committed_at[name].get(returned + 1)
                stale = returned < latest
                rows.append({"strategy": strategy, "instance": instance, "key": name, "tier": tier,
                             "hit": tier != "system of record", "version": returned, "latest_version": latest,
                             "stale": stale, "staleness_ms": (now - superseded_at) * 1000 if stale else 0.0,
                             "time_s": now - started, "latency_ms": (time.perf_counter() - now) * 1000})
                await asyncio.sleep(0.001)

        async def writer() -> None:
            rng = random.Random(seed)
            while time.perf_counter() < deadline:
                name = names[min(int(rng.paretovariate(1.2)) - 1, n_keys - 1)]
                version = source.commit(name)  # the system of record commits first ...
                await coherence.after_write(writer_redis, entities[name], base_strategy, ttl_ms=ttl_ms,
                                            new_value={"id": name, "version": version}, topic=topic)
                await asyncio.sleep(write_interval_ms / 1000)  # ... then the cache follows

        await asyncio.gather(writer(), *(reader(i) for i in range(readers)))
    finally:
        for task in background:
            task.cancel()
        for near in nears:
            await near.close()
        await asyncio.gather(*background, return_exceptions=True)
        await _forget(writer_redis, kind)
        for r in clients:
            await r.aclose()
    df = pd.DataFrame(rows)
    df.attrs["sor_loads"] = dict(source.loads)
    return df


async def _forget(r: aioredis.Redis, kind: str) -> None:
    """Delete the run's keys (SCAN by its own prefix: an experiment, never service code)."""
    for pattern in (keys.cache_prefix(kind) + "*", keys.cache_generation(kind, "*")):
        doomed = [k async for k in r.scan_iter(match=pattern, count=500)]
        if doomed:
            await r.unlink(*doomed)


def mixed_workload(strategy: str, settings: Settings | None = None, *, n_keys: int = 8, instances: int = 2,
                   readers: int = 8, seconds: float = 1.0, write_interval_ms: float = 10.0,
                   load_ms: float = 5.0, ttl_ms: int = 500, seed: int = 6) -> pd.DataFrame:
    """One strategy under the mixed workload: one row per read (``attrs["sor_loads"]``: loads per key)."""
    url = _redis_url(settings or get_settings())
    return run_async(_mixed(url, strategy, n_keys, instances, readers, seconds, write_interval_ms, load_ms,
                            ttl_ms, seed))


def compare_strategies(settings: Settings | None = None, strategies=STRATEGIES, **workload) -> pd.DataFrame:
    """``mixed_workload`` for every strategy, one after the other, in one DataFrame."""
    frames = [mixed_workload(s, settings, **workload) for s in strategies]
    return pd.concat(frames, ignore_index=True)


def strategy_summary(reads: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: reads, hit rate, stale-read rate, staleness p50/p99 of the stale reads (ms)."""
    def one(group: pd.DataFrame) -> pd.Series:
        stale = group.loc[group["stale"], "staleness_ms"]
        return pd.Series({"reads": len(group), "hit_rate": group["hit"].mean(),
                          "stale_rate": group["stale"].mean(),
                          "staleness_p50_ms": stale.quantile(0.5) if len(stale) else 0.0,
                          "staleness_p99_ms": stale.quantile(0.99) if len(stale) else 0.0,
                          "sor_loads": int((group["tier"] == "system of record").sum())})
    return reads.groupby("strategy", sort=False)[list(reads.columns)].apply(one)


# ------------------------------------------------------------------------------------------- stampede

async def _stampede(url: str, protection: str, readers: int, ttl_ms: int, load_ms: float, expiries: int,
                    beta: float) -> pd.DataFrame:
    entity = CachedEntity(f"coherence-stampede-{uuid.uuid4().hex[:8]}", "HOT")
    r = aioredis.Redis.from_url(url, decode_responses=True, max_connections=readers + 10)
    loads: list[float] = []
    started = time.perf_counter()

    async def load():
        loads.append(time.perf_counter() - started)
        await asyncio.sleep(load_ms / 1000)
        return {"premium_cents": 90_000}

    async def read_once():
        if protection == "lock":
            return await coherence.single_flight_read(r, entity, load, ttl_ms, lock_ms=10 * int(load_ms) + 100)
        if protection == "xfetch":
            return await coherence.xfetch_read(r, entity.key, load, ttl_ms, beta=beta)
        return await coherence.read(r, entity, load, ttl_ms, "ttl_only")

    try:
        await read_once()  # warm: the copy exists, then it expires ``expiries`` times under load
        loads.clear()
        deadline = time.perf_counter() + (expiries * (ttl_ms + load_ms) + ttl_ms / 2) / 1000

        async def reader():
            while time.perf_counter() < deadline:
                await read_once()
                await asyncio.sleep(0.002)
        await asyncio.gather(*(reader() for _ in range(readers)))
    finally:
        await r.unlink(entity.key, entity.lock)
        await r.aclose()
    df = pd.DataFrame({"protection": protection, "load_at_s": loads})
    # Loads that start within one load time of each other are one refresh of the copy.
    df["refresh"] = (df["load_at_s"].diff().fillna(1.0) > load_ms / 1000).cumsum()
    return df


def stampede(settings: Settings | None = None, protections=("none", "lock", "xfetch"), *, readers: int = 100,
             ttl_ms: int = 300, load_ms: float = 30.0, expiries: int = 4, beta: float = 1.0) -> pd.DataFrame:
    """One row per system-of-record load while ``readers`` hammer one hot key: when, and in which refresh."""
    url = _redis_url(settings or get_settings())
    return pd.concat([run_async(_stampede(url, p, readers, ttl_ms, load_ms, expiries, beta))
                      for p in protections], ignore_index=True)


def loads_per_refresh(loads: pd.DataFrame) -> pd.DataFrame:
    """Per protection: loads, refreshes, loads per refresh (mean and worst)."""
    per = loads.groupby(["protection", "refresh"], sort=False).size().rename("loads").reset_index()
    return per.groupby("protection", sort=False)["loads"].agg(
        total="sum", refreshes="count", per_refresh_mean="mean", per_refresh_max="max")
