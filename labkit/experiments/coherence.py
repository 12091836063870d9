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
from services.patterns.cache import Ttl
from services.patterns.coherence import CachedEntity
from services.patterns.near_cache import NearCache

from .. import redis_server
from . import run_async

#: What lesson 06 compares: the services' coherence strategies, and the near cache on top of one of them.
COMPARED = (*coherence.COHERENCE_STRATEGIES, "near_cache")


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
    kind = f"coherence-{run_id}"
    names = [f"K-{i:03d}" for i in range(n_keys)]
    entities = {name: CachedEntity(kind, name) for name in names}
    source = VersionedSource(names, load_ms)
    clients = [aioredis.Redis.from_url(url, decode_responses=True) for _ in range(instances + 1)]
    writer_redis, instance_redis = clients[0], clients[1:]
    background, nears = [], []
    rows: list[dict] = []
    writes: list[str] = []
    try:
        if strategy == "event_driven":  # each instance listens for changes and deletes its copies
            for r in instance_redis:
                subscribed = asyncio.Event()
                background.append(asyncio.create_task(coherence.invalidate_on_events(
                    r, from_source=f"lab/{run_id}", on_subscribed=subscribed.set)))
                await asyncio.wait_for(subscribed.wait(), 5)
        if strategy == "near_cache":
            nears = [await NearCache(r, [keys.cache_prefix(kind)], max_age_s=5.0).start() for r in instance_redis]
        base_strategy = "delete_with_token" if strategy == "near_cache" else strategy
        ttl = Ttl.fixed(ttl_ms / 1000)
        started = time.perf_counter()
        deadline = started + seconds

        async def read_once(instance: int, name: str) -> tuple[dict, str]:
            r, entity = instance_redis[instance], entities[name]
            if nears:
                raw, from_l1 = await nears[instance].get(entity.key)
                if raw is not None:
                    return json.loads(raw), "l1" if from_l1 else "redis"
            value, hit = await coherence.read(r, entity, lambda: source.load(name), ttl, base_strategy)
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
                writes.append(name)
                version = source.commit(name)  # the system of record commits first ...
                await coherence.after_write(writer_redis, entities[name], base_strategy, ttl=ttl,
                                            new_value={"id": name, "version": version}, source=f"lab/{run_id}")
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
    df["writes_in_run"] = len(writes)  # the same for every row: the writer's commits during this run
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


def compare_strategies(settings: Settings | None = None, strategies=COMPARED, **workload) -> pd.DataFrame:
    """``mixed_workload`` for every strategy, one after the other, in one DataFrame."""
    frames = [mixed_workload(s, settings, **workload) for s in strategies]  # writes_in_run: per frame
    return pd.concat(frames, ignore_index=True)


def strategy_summary(reads: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: reads, hit rate, stale-read rate, staleness p50/p99 of the stale reads (ms), loads on the
    system of record, writes, and loads per write — the fair comparison, since a strategy whose reads are
    faster makes more reads (and so more misses) in the same second."""
    def one(group: pd.DataFrame) -> pd.Series:
        stale = group.loc[group["stale"], "staleness_ms"]
        loads = int((group["tier"] == "system of record").sum())
        writes = int(group["writes_in_run"].iloc[0])
        return pd.Series({"reads": len(group), "hit_rate": group["hit"].mean(),
                          "l1_rate": (group["tier"] == "l1").mean(),
                          "stale_rate": group["stale"].mean(),
                          "staleness_p50_ms": stale.quantile(0.5) if len(stale) else 0.0,
                          "staleness_p99_ms": stale.quantile(0.99) if len(stale) else 0.0,
                          "sor_loads": loads, "writes": writes, "loads_per_write": loads / max(writes, 1)})
    return reads.groupby("strategy", sort=False)[list(reads.columns)].apply(one)


def strategies_in_words(summary: pd.DataFrame) -> str:
    """Lesson 06's comparison, read off ``strategy_summary`` for this run — with a plain word where the run
    did not show what the lesson expects."""
    s = summary
    lines = [f"{name}: {row['hit_rate']:.0%} hits, {row['stale_rate']:.1%} of reads stale, "
             f"{row['loads_per_write']:.2f} system-of-record loads per write ({int(row['reads'])} reads, "
             f"{int(row['writes'])} writes)" for name, row in s.iterrows()]
    dow = s.loc["delete_on_write", "stale_rate"]
    closed = [n for n in ("delete_with_token", "versioned_keys") if s.loc[n, "stale_rate"] == 0]
    lines.append("")
    lines.append(f"delete_on_write served {dow:.1%} of its reads stale (the stale-set race of section 1: a slow "
                 "reader stored the old value back after the write's delete); " + (
                     f"{' and '.join(closed)} served none: the race is closed." if len(closed) == 2 else
                     f"the token / versioned keys served {s.loc['delete_with_token', 'stale_rate']:.1%} / "
                     f"{s.loc['versioned_keys', 'stale_rate']:.1%} stale: NOT zero in this run."))
    near, token = s.loc["near_cache"], s.loc["delete_with_token"]
    lines.append(f"near_cache answered {near['l1_rate']:.0%} of its reads from the process (L1), without a round "
                 f"trip. Underneath it is delete_with_token, so every write still empties the copy and the next "
                 f"readers load: {near['loads_per_write']:.2f} loads per write vs {token['loads_per_write']:.2f} "
                 "for delete_with_token alone. Compare loads per write, not raw loads: a strategy whose reads are "
                 "faster makes more reads in the same second, and more of them arrive while a copy is missing.")
    if near["stale_rate"] > 0:
        lines.append(f"near_cache's stale reads ({near['stale_rate']:.1%}) were stale for "
                     f"{near['staleness_p50_ms']:.1f} ms at the median: the time an invalidation took to travel "
                     "from Redis to the process.")
    return "\n".join(lines)


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
        # unbounded like the two protections (a service bounds each call to LAB_CACHE_TIMEOUT_S)
        return await coherence.read(r, entity, load, Ttl.fixed(ttl_ms / 1000), "ttl_only", timeout_s=None)

    try:
        # open every reader's connection before the clock starts: on a busy machine opening a hundred
        # connections can take longer than the run, and the readers would then never be there at an expiry
        await asyncio.gather(*(r.ping() for _ in range(readers)))
        # warm, after the connections: the copy exists when the readers start (warmed before, it could expire
        # while the connections opened, and the first refresh would be a cold start, not an expiry under load)
        await read_once()
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


def stampede_in_words(loads: pd.DataFrame, readers: int) -> str:
    """Lesson 06's stampede claims, read off this run: loads per refresh without protection, with the lock."""
    per = loads_per_refresh(loads)
    lines = [f"{name}: {int(row['total'])} loads in {int(row['refreshes'])} refreshes, "
             f"{row['per_refresh_mean']:.1f} per refresh on average, {int(row['per_refresh_max'])} at worst"
             for name, row in per.iterrows()]
    none, lock = per.loc["none"], per.loc["lock"]
    if none["per_refresh_mean"] > lock["per_refresh_mean"] and lock["per_refresh_max"] == 1:
        lines.append(f"Without protection each expiry sent {none['per_refresh_mean']:.0f} of the {readers} readers "
                     "to the system of record at once; with the lock exactly one reader loaded each time.")
    else:
        lines.append("This run did NOT show the stampede the prose describes (too few readers reached an expiry "
                     "together — a busy machine?): run it again.")
    if "xfetch" in per.index:
        xfetch = per.loc["xfetch"]
        if xfetch["per_refresh_mean"] < none["per_refresh_mean"] / 2:
            lines.append(f"XFetch cut it to {xfetch['per_refresh_mean']:.1f} loads per refresh, with no lock: a "
                         "few readers went early, now and then together." + (
                             f" But not every time: in its worst refresh {int(xfetch['per_refresh_max'])} readers "
                             "loaded — the copy expired before any reader went early, and every reader that found "
                             "it missing loaded, as with no protection." if xfetch["per_refresh_max"] > readers / 2
                             else ""))
        else:
            lines.append(f"In this run XFetch did NOT avoid the stampede ({xfetch['per_refresh_mean']:.0f} loads per "
                         "refresh): it needs a reader to go early in the last few load-times before the expiry, and "
                         "when every read is slow (a busy machine) the copy can expire before one does.")
    return "\n".join(lines)


def loads_per_refresh(loads: pd.DataFrame) -> pd.DataFrame:
    """Per protection: loads, refreshes, loads per refresh (mean and worst)."""
    per = loads.groupby(["protection", "refresh"], sort=False).size().rename("loads").reset_index()
    return per.groupby("protection", sort=False)["loads"].agg(
        total="sum", refreshes="count", per_refresh_mean="mean", per_refresh_max="max")
