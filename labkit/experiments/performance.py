"""Lesson 07's bottleneck experiment: change one thing, and compare like with like.

Two load runs differ in more than the change unless care is taken. The first run of a lesson meets cold
caches (most reads go to the system of record), a later one warm caches (almost none do): a slowed system
of record then looks like a *speed-up*. So every round here starts from the same state — the services'
Redis cache and the gateway's answer cache emptied — and sends the same requests (the same seed) with and
without the change. Rounds alternate A B B A ..., so a machine that gets busier during the experiment
weighs on both sides alike. Two rounds of the same condition also give the noise yardstick: how far apart
two runs with *nothing* changed land.
"""

from __future__ import annotations

from typing import Callable

import httpx
import numpy as np
import pandas as pd

from services.core import keys
from services.core.settings import Settings, get_settings

from .. import redis_server
from ..auth import ServiceAuth
from ..load import LoadResult, run_load


def empty_caches(settings: Settings | None = None) -> int:
    """Delete every cached copy in Redis (``lab:cache:*``) and empty the gateway's answer cache.
    Returns how many Redis keys went. Only copies go: the system of record still has everything."""
    settings = settings or get_settings()
    client = redis_server.current(settings).client()
    doomed = list(client.scan_iter(keys.cache_prefix() + "*", count=1000))
    for start in range(0, len(doomed), 500):
        client.delete(*doomed[start:start + 500])
    with httpx.Client(base_url=settings.url_of("gateway"), auth=ServiceAuth(settings), timeout=5) as gateway:
        view = gateway.put("/admin/gateway-cache", json={"ttl_s": settings.gateway_cache_ttl_s})
        view.raise_for_status()  # setting the TTL empties the gateway's cache
    return len(doomed)


def alternating_rounds(change: Callable[[], object], undo: Callable[[], object], rounds: int = 4,
                       settings: Settings | None = None, **load) -> dict[str, list[LoadResult]]:
    """Run ``rounds`` pairs of open-loop loads, ``baseline`` and ``changed`` (``change()`` before,
    ``undo()`` after, always), in the order A B, B A, A B ... Each round empties the caches first and uses
    the pair's own seed, so both sides of a pair see the same requests from the same cache state."""
    settings = settings or get_settings()
    out: dict[str, list[LoadResult]] = {"baseline": [], "changed": []}
    for pair in range(rounds // 2 or 1):
        order = ("baseline", "changed") if pair % 2 == 0 else ("changed", "baseline")
        for side in order:
            empty_caches(settings)
            if side == "changed":
                change()
            try:
                result = run_load(mode="open", seed=100 + pair, progress=False, save=False, settings=settings, **load)
            finally:
                if side == "changed":
                    undo()
            out[side].append(result)
    return out


def per_route_change(runs: dict[str, list[LoadResult]], metric_q: float = 0.5) -> pd.DataFrame:
    """Per route: the p50 (or another quantile) of each side, pooled over its rounds, the change, the
    noise (the largest gap between two rounds of the *same* side) and each side's cache hit rate."""
    def pooled(side):
        frame = pd.concat([r.records for r in runs[side]], ignore_index=True)
        return frame[frame["status"].between(200, 399)]

    def per_round(side):
        return pd.DataFrame({i: r.records[r.records["status"].between(200, 399)].groupby("route")["latency_ms"]
                             .quantile(metric_q) for i, r in enumerate(runs[side])})

    base, changed = pooled("baseline"), pooled("changed")
    table = pd.DataFrame({
        "requests": changed.groupby("route").size(),
        "baseline_ms": base.groupby("route")["latency_ms"].quantile(metric_q),
        "changed_ms": changed.groupby("route")["latency_ms"].quantile(metric_q),
        "hit_rate_baseline": _hit_rate(base), "hit_rate_changed": _hit_rate(changed),
    })
    table["change_ms"] = table["changed_ms"] - table["baseline_ms"]
    spread = pd.concat([per_round("baseline").max(axis=1) - per_round("baseline").min(axis=1),
                        per_round("changed").max(axis=1) - per_round("changed").min(axis=1)], axis=1)
    table["noise_ms"] = spread.max(axis=1)
    return table.sort_values("change_ms", ascending=False).round(2)


def _hit_rate(records: pd.DataFrame) -> pd.Series:
    cached = records["x_cache"].astype(str).str.upper()
    carrying = records[cached.isin(["HIT", "MISS"])]
    return carrying.assign(hit=cached[cached.isin(["HIT", "MISS"])].eq("HIT")).groupby("route")["hit"].mean()


def slowed_routes(table: pd.DataFrame, at_least_ms: float = 1.0) -> pd.Index:
    """Routes whose change is larger than the noise between same-side rounds and than ``at_least_ms``."""
    return table.index[(table["change_ms"] > np.maximum(table["noise_ms"], at_least_ms))]
