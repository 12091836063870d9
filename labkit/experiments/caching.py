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
                    exponent: float, rate: float) -> list[dict]:
    r = redis.asyncio.Redis.from_url(url, decode_responses=True)
    draws = itertools.cycle(zipf_ids(keyspace, 200_000, exponent).tolist())
    rows = []

    async def load(entity_id: str) -> dict:
        return {"id": entity_id, "premium_cents": 90_000}

    try:
        started, sent = time.monotonic(), 0
        while (elapsed := time.monotonic() - started) < duration_s:
            # a steady request rate, so the hit rate does not depend on how fast this machine is today
            await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
            elapsed, sent = time.monotonic() - started, sent + 1
            if elapsed >= duration_s:
                break
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
                  duration_s: float = 12.0, bucket_s: float = 1.0, exponent: float = 1.1,
                  rate: float = 50.0) -> pd.DataFrame:
    """Hit rate over time of a Zipf-skewed read workload at ``rate`` requests/s, one cache per TTL, all fed the
    same requests.

    Uses the pattern module directly against the lab's Redis (keys ``lab:cache:zipf-<ttl>:...``, deleted at
    the end) with an in-process "system of record", so only the TTL differs between the lines. Run it for a
    few times the longest TTL: before that, the longest TTL's copies have never expired and its curve is
    only filling up. ``df.attrs["rate"]``: the request rate reached (below ``rate`` on a busy machine).
    """
    settings = settings or get_settings()
    variants = {f"TTL {t:g} s": Ttl.fixed(t) for t in ttls_s}
    rows = run_async(_zipf_run(redis_server.current(settings).url, variants, keyspace, duration_s, bucket_s,
                               exponent, rate))
    df = pd.DataFrame(rows)
    df.attrs["rate"] = len(df) / len(variants) / duration_s
    return df


def ttl_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per TTL, once every copy has had time to expire at least once (after the longest TTL): the hit rate,
    and how many reads per second still went to the system of record (the misses). Also the first stretch,
    while the caches were still filling, to show why a run must last longer than the TTL it measures."""
    longest = max(float(v.split()[1]) for v in df["variant"].unique())
    duration = df["t_s"].max()
    rows = []
    for variant, runs in df.groupby("variant", sort=False):
        settled = runs[runs["t_s"] >= longest]
        rows.append({"variant": variant, "hit_rate_first_ttl": runs.loc[runs["t_s"] < longest, "hit"].mean(),
                     "hit_rate_after": settled["hit"].mean(),
                     "sor_loads_per_s_after": (~settled["hit"]).sum() / max(duration - longest, 1e-9)})
    return pd.DataFrame(rows).set_index("variant")


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
                      value_bytes: int = 500, requests: int = 12_000, scan_every: int = 3_000,
                      scan_length: int = 4_000, bucket: int = 500, exponent: float = 1.0) -> pd.DataFrame:
    """Cache-aside under a memory limit: which eviction policy keeps the hot keys?

    A Zipf workload, interrupted every ``scan_every`` requests by a one-off scan of ``scan_length`` cold keys
    (a report, a batch job: each read once, a miss, stored — in pipelines of 200, the scan is not what we
    time). LRU lets the scan push hot keys out; LFU remembers they were used often. Each policy runs on its
    own scratch server with ``maxmemory`` (stopped at the end), the same requests each.
    ``df.attrs["scans_at"]``: the Zipf request counts at which a scan ran, so a chart can mark them.
    """
    hot = zipf_ids(keyspace, requests, exponent, seed=7).tolist()
    value = "x" * value_bytes
    scans_at = list(range(scan_every, requests, scan_every))
    rows = []
    for policy in policies:
        proc, r = _scratch_server(maxmemory, policy)
        try:
            scanned = itertools.count(keyspace)  # scanned ids are beyond the hot range: each is read once
            for count, entity in enumerate(hot):
                if count in scans_at:
                    for _ in range(0, scan_length, 200):
                        pipe = r.pipeline(transaction=False)
                        for _ in range(200):
                            key = keys.cache_entity("eviction", make_id("policy", next(scanned) + 1))
                            pipe.get(key)
                            pipe.set(key, value, ex=3600)
                        pipe.execute()
                key = keys.cache_entity("eviction", make_id("policy", entity + 1))
                hit = r.get(key) is not None
                if not hit:
                    r.set(key, value, ex=3600)
                rows.append({"policy": policy, "request": count, "bucket": count // bucket * bucket, "hit": hit})
            evicted = r.info("stats")["evicted_keys"]
            for row in rows[-len(hot):]:
                row["evicted_keys"] = evicted
        finally:
            r.close()
            proc.kill()
            proc.wait(timeout=5)
    df = pd.DataFrame(rows)
    df.attrs["scans_at"] = scans_at
    return df


def hit_rate_around_scans(df: pd.DataFrame, window: int = 250) -> pd.DataFrame:
    """Per policy: the hit rate of the ``window`` Zipf requests just before each scan and just after it.

    The lesson's claim — a scan pushes LRU's hot keys out, LFU keeps them — is this table: the drop from
    "before" to "after" is the price of one scan."""
    rows = []
    for policy, runs in df.groupby("policy", sort=False):
        hits = runs.set_index("request")["hit"]
        for at in df.attrs["scans_at"]:
            rows.append({"policy": policy, "scan_at": at,
                         "before": hits.loc[at - window: at - 1].mean(), "after": hits.loc[at: at + window - 1].mean()})
    table = pd.DataFrame(rows).groupby("policy", sort=False)[["before", "after"]].mean()
    table["drop"] = table["before"] - table["after"]
    return table


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


# --- the lesson's claims, checked against this run's numbers ---------------------------------------------

def ttl_in_words(summary: pd.DataFrame, rate: float) -> str:
    """Lesson 01's TTL claim — shorter TTLs send more reads to the system of record — read off ``ttl_summary``."""
    shortest, longest = summary.index[0], summary.index[-1]
    loads = summary["sor_loads_per_s_after"]
    holds = loads.is_monotonic_decreasing and loads.iloc[0] > loads.iloc[-1]
    lines = [f"Requests per second reached: {rate:.0f}.",
             f"Once every TTL had run out at least once: {shortest} hit {summary['hit_rate_after'].iloc[0]:.0%} "
             f"and sent {loads.iloc[0]:.1f} reads/s to the system of record; {longest} hit "
             f"{summary['hit_rate_after'].iloc[-1]:.0%} and sent {loads.iloc[-1]:.1f} reads/s."]
    lines.append("So in this run, the shorter the TTL, the more reads reached the system of record." if holds else
                 "This run did NOT show a steady order from short to long TTL (too few requests per bucket on a "
                 "busy machine?): raise ZIPF_SECONDS and run it again.")
    return "\n".join(lines)


def scans_in_words(around: pd.DataFrame) -> str:
    """Lesson 01's eviction claim — a scan costs LRU more hits than LFU — read off ``hit_rate_around_scans``."""
    lru, lfu = around.loc["allkeys-lru"], around.loc["allkeys-lfu"]
    text = (f"Just after a scan, LRU's hit rate fell from {lru['before']:.0%} to {lru['after']:.0%}; "
            f"LFU's from {lfu['before']:.0%} to {lfu['after']:.0%}.")
    if lru["drop"] > lfu["drop"]:
        return text + " The scans cost LRU more hot keys than LFU, as the prose says."
    return text + " In this run the scans did NOT hurt LRU more than LFU — the claim above is not shown here."


def round_trips_in_words(trips: pd.DataFrame) -> str:
    """Lesson 01's round-trip claim, with what it leaves out: one round trip is not one unit of work."""
    medians = trips.groupby(["n", "method"])["latency_ms"].median().unstack()
    small, large = medians.index.min(), medians.index.max()
    at = medians.loc[large]
    lines = [f"N = {large}: {large} GETs took {at['N GETs']:.2f} ms, one pipeline {at['pipeline']:.2f} ms, "
             f"one MGET {at['MGET']:.2f} ms (medians)."]
    if at["pipeline"] < at["N GETs"] and at["MGET"] < at["N GETs"]:
        lines.append(f"Paying one round trip instead of {large} made the read {at['N GETs'] / at['pipeline']:.0f}x "
                     f"(pipeline) and {at['N GETs'] / at['MGET']:.0f}x (MGET) faster.")
    else:
        lines.append("This run did NOT show one round trip beating N (a busy machine?): run it again.")
    for method in ("pipeline", "MGET"):
        growth = medians.loc[large, method] / medians.loc[small, method]
        if growth <= 1.1:
            lines.append(f"From N = {small} to N = {large}, one {method} did not get measurably slower in this run "
                         "(the round trip dominated, or noise).")
            continue
        lines.append(f"From N = {small} to N = {large}, one {method} got {growth:.1f}x slower: one round trip, "
                     "but the server still looks up N keys and sends N values"
                     + (", and redis-py packs and parses N commands" if method == "pipeline" else "") + ".")
    return "\n".join(lines)
