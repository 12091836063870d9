"""Notebook 01's experiments: what a cache buys, measured on the running lab. Each returns a DataFrame.

* ``cold_vs_warm`` — the same reads straight to a service with an empty cache (MISS) and a full one (HIT),
  with the system of record slowed down on purpose (restored afterwards);
* ``zipf_hit_rate`` — a skewed workload read through ``services.patterns.cache`` at several TTLs at once;
* ``eviction_hit_rate`` — the same with a memory limit, ``allkeys-lru`` vs ``allkeys-lfu``, on a scratch
  server of its own (an ``allkeys-*`` policy on the lab's server would evict its streams and sessions too);
* ``round_trips`` — N GETs one by one vs one MGET vs one pipeline;
* ``counters_vs_info`` — the services' hit counters next to Redis's own ``keyspace_hits``/``misses``.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time

import httpx
import numpy as np
import pandas as pd
import redis

from services.core import keys
from services.core.ids import make_id
from services.core.settings import Settings, get_settings
from services.patterns import cache
from services.patterns.cache import CacheStats, Ttl

from .. import procs, redis_server
from ..auth import ASK_THE_SERVICE, ServiceAuth, gateway_client
from ..faults import set_knobs
from . import run_async


def _redis(settings: Settings) -> redis.Redis:
    return redis_server.current(settings).client()


def cold_vs_warm(settings: Settings | None = None, service: str = "policy", n: int = 100,
                 sor_latency_ms: float = 5.0) -> pd.DataFrame:
    """Read ``n`` entities twice straight from ``service``: first with their copies deleted, then again.

    The service's ``sor_latency_ms`` knob is set for the run and put back as it was.
    """
    settings = settings or get_settings()
    kind = {"policy": "policy", "claims": "claim", "customer": "customer"}[service]
    path = {"policy": "/policies/", "claims": "/claims/", "customer": "/customers/"}[service]
    ids = [make_id(kind, i) for i in range(1, n + 1)]
    r = _redis(settings)
    r.unlink(*[keys.cache_entity(kind, i) for i in ids])
    before = set_knobs(service, settings, sor_latency_ms=sor_latency_ms)
    rows = []
    try:
        with httpx.Client(base_url=settings.url_of(service), auth=ServiceAuth(settings), timeout=10) as client:
            client.get("/health")  # open the connection first: the first request should not pay for it
            for phase in ("cold (cache empty)", "warm (cached)"):
                for entity_id in ids:
                    started = time.perf_counter()
                    response = client.get(path + entity_id)
                    rows.append({"path": phase, "id": entity_id, "status": response.status_code,
                                 "x_cache": response.headers.get("x-cache", ""),
                                 "latency_ms": (time.perf_counter() - started) * 1000})
    finally:
        set_knobs(service, settings, sor_latency_ms=before["sor_latency_ms"])
        r.close()
    return pd.DataFrame(rows)


def zipf_ids(keyspace: int, count: int, exponent: float = 1.1, seed: int = 1) -> np.ndarray:
    """``count`` ids in ``[0, keyspace)``, rank r drawn with probability ∝ 1/r^exponent (a few are hot)."""
    ranks = np.arange(1, keyspace + 1)
    weights = 1 / ranks ** exponent
    return np.random.default_rng(seed).choice(keyspace, size=count, p=weights / weights.sum())


async def _zipf_run(url: str, variants: dict[str, Ttl], keyspace: int, duration_s: float, bucket_s: float,
                    exponent: float) -> list[dict]:
    r = redis.asyncio.Redis.from_url(url, decode_responses=True)
    draws = itertools.cycle(zipf_ids(keyspace, 200_000, exponent).tolist())
    rows = []

    async def load(entity_id: str) -> dict:
        return {"id": entity_id, "premium_cents": 90_000}

    try:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < duration_s:
            entity_id = make_id("policy", next(draws) + 1)
            for name, ttl in variants.items():  # every variant sees the very same request sequence
                _, hit = await cache.cache_aside_get(r, keys.cache_entity(f"zipf-{name}", entity_id),
                                                     lambda: load(entity_id), ttl, timeout_s=None)
                rows.append({"variant": name, "t_s": elapsed, "bucket_s": (elapsed // bucket_s) * bucket_s,
                             "hit": hit})
        pipe = r.pipeline(transaction=False)
        for name in variants:
            for i in range(1, keyspace + 1):
                pipe.unlink(keys.cache_entity(f"zipf-{name}", make_id("policy", i)))
        await pipe.execute()
    finally:
        await r.aclose()
    return rows


def zipf_hit_rate(settings: Settings | None = None, ttls_s=(0.25, 1.0, 4.0), keyspace: int = 2_000,
                  duration_s: float = 4.0, bucket_s: float = 0.25, exponent: float = 1.1) -> pd.DataFrame:
    """Hit rate over time of a Zipf-skewed read workload, one cache per TTL, all fed the same requests.

    Uses the pattern module directly against the lab's Redis (keys ``lab:cache:zipf-<ttl>:...``, deleted at
    the end) with an in-process "system of record", so only the TTL differs between the lines.
    """
    settings = settings or get_settings()
    variants = {f"TTL {t:g} s": Ttl.fixed(t) for t in ttls_s}
    rows = run_async(_zipf_run(redis_server.current(settings).url, variants, keyspace, duration_s, bucket_s,
                               exponent))
    return pd.DataFrame(rows)


def _scratch_server(maxmemory: str, policy: str) -> tuple[subprocess.Popen, redis.Redis]:
    binary, _ = redis_server.find_binary()
    port = procs.free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no", "--maxmemory", maxmemory, "--maxmemory-policy", policy],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, decode_responses=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc, client
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.02)


def eviction_hit_rate(policies=("allkeys-lru", "allkeys-lfu"), maxmemory: str = "3mb", keyspace: int = 20_000,
                      value_bytes: int = 500, requests: int = 12_000, scan_every: int = 2_000,
                      scan_length: int = 1_500, bucket: int = 500, exponent: float = 1.0) -> pd.DataFrame:
    """Cache-aside under a memory limit: which eviction policy keeps the hot keys?

    A Zipf workload, interrupted every ``scan_every`` requests by a one-off scan of ``scan_length`` cold keys
    (a report, a batch job). LRU lets the scan push hot keys out; LFU remembers they were used often. Each
    policy runs on its own scratch server with ``maxmemory`` (stopped at the end), the same requests each.
    """
    hot = zipf_ids(keyspace, requests, exponent, seed=7).tolist()
    value = "x" * value_bytes
    scan = itertools.count(keyspace)  # scanned ids are beyond the hot range: each is read once
    sequence = []
    for i, entity in enumerate(hot):
        if i and i % scan_every == 0:
            sequence.extend(("scan", next(scan)) for _ in range(scan_length))
        sequence.append(("zipf", entity))
    rows = []
    for policy in policies:
        proc, r = _scratch_server(maxmemory, policy)
        try:
            count = 0
            for source, entity in sequence:
                key = keys.cache_entity("eviction", make_id("policy", entity + 1))
                hit = r.get(key) is not None
                if not hit:
                    r.set(key, value, ex=3600)
                if source == "zipf":
                    rows.append({"policy": policy, "request": count, "bucket": count // bucket * bucket, "hit": hit})
                    count += 1
            evicted = r.info("stats")["evicted_keys"]
            for row in rows[-count:]:
                row["evicted_keys"] = evicted
        finally:
            r.close()
            proc.kill()
            proc.wait(timeout=5)
    return pd.DataFrame(rows)


def round_trips(settings: Settings | None = None, sizes=(1, 5, 10, 25, 50, 100, 200), repeats: int = 15
                ) -> pd.DataFrame:
    """Time reading N cached values: N GETs one after another, one MGET, one pipeline of N GETs."""
    settings = settings or get_settings()
    r = _redis(settings)
    all_keys = [keys.cache_entity("round-trip", make_id("policy", i)) for i in range(1, max(sizes) + 1)]
    r.mset({k: '{"id":"x","premium_cents":90000}' for k in all_keys})
    rows = []

    def one_by_one(ks):
        return [r.get(k) for k in ks]

    def mget(ks):
        return r.mget(ks)

    def pipeline(ks):
        pipe = r.pipeline(transaction=False)
        for k in ks:
            pipe.get(k)
        return pipe.execute()

    try:
        for _ in range(repeats):
            for n in sizes:
                for method, read in (("N GETs", one_by_one), ("MGET", mget), ("pipeline", pipeline)):
                    started = time.perf_counter()
                    values = read(all_keys[:n])
                    rows.append({"method": method, "n": n, "latency_ms": (time.perf_counter() - started) * 1000,
                                 "values": len(values)})
    finally:
        r.unlink(*all_keys)
        r.close()
    return pd.DataFrame(rows)


def counters_vs_info(settings: Settings | None = None, requests: int = 400, keyspace: int = 200) -> pd.DataFrame:
    """A Zipf mix of policy reads through the gateway; what the policy service counted vs Redis's INFO.

    Redis counts *every* key lookup of every client (registry, sessions, streams...), the service only its
    cache-aside reads — the two hit rates tell the same story only when the cache dominates the traffic.
    """
    settings = settings or get_settings()
    r = _redis(settings)
    ids = [make_id("policy", i + 1) for i in zipf_ids(keyspace, requests, seed=3)]
    r.unlink(*{keys.cache_entity("policy", i) for i in ids})  # start cold, so both counters see misses
    with httpx.Client(base_url=settings.url_of("policy"), auth=ServiceAuth(settings), timeout=10) as policy, \
            gateway_client(settings) as gateway:
        service_before, info_before = policy.get("/stats").json(), r.info("stats")
        for entity_id in ids:
            gateway.get(f"/api/policies/{entity_id}", headers=ASK_THE_SERVICE)  # past the gateway's own cache
        service_after, info_after = policy.get("/stats").json(), r.info("stats")
    r.close()
    service_hits = service_after["by_kind"].get("policy", {}).get("hits", 0) - \
        service_before["by_kind"].get("policy", {}).get("hits", 0)
    service_misses = service_after["by_kind"].get("policy", {}).get("misses", 0) - \
        service_before["by_kind"].get("policy", {}).get("misses", 0)
    redis_hits = info_after["keyspace_hits"] - info_before["keyspace_hits"]
    redis_misses = info_after["keyspace_misses"] - info_before["keyspace_misses"]
    rows = [{"counted by": "policy service /stats (its cache reads)", "hits": service_hits, "misses": service_misses},
            {"counted by": "Redis INFO stats (every key lookup)", "hits": redis_hits, "misses": redis_misses}]
    frame = pd.DataFrame(rows)
    frame["hit_rate"] = (frame["hits"] / (frame["hits"] + frame["misses"])).round(3)
    return frame
