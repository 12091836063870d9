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


#: Routes whose answer needs the policy service's data: a policy read; a claim submission (the claims service
#: asks the policy service whether the policy is active); a customer overview (it lists the customer's policies).
READS_POLICY_DATA = ("GET /api/policies/{id}", "POST /api/claims", "GET /api/customers/{id}/overview")


def bottleneck_verdict(table: pd.DataFrame, runs: dict[str, list[LoadResult]], min_requests: int = 20,
                       expected: tuple[str, ...] = READS_POLICY_DATA) -> str:
    """Which route slowed most, in words, and whether this run showed what the lesson expects: the routes
    that need the policy service's data slower than the noise, the others not. Says plainly when it did not."""
    behind = [r for side in runs.values() for r in side if r.percentiles_refused]
    enough = table[table["requests"] >= min_requests]
    few = [route for route in table.index if route not in enough.index]
    lines = []
    if few:
        lines.append(f"left out of the verdict, too few requests (< {min_requests}): {', '.join(few)}")
    if behind:
        lines.append(f"{len(behind)} of {sum(len(s) for s in runs.values())} rounds fell behind their schedule "
                     "(the generator could not send on time: a busy machine), so their latencies include waiting "
                     "to be sent.")
    if enough.empty:
        return "\n".join(lines + ["This run did not show anything: no route had enough requests."])
    top = enough.index[0]
    row = enough.iloc[0]
    lines.append(f"slowed down most: {top} ({row['change_ms']:+.1f} ms at p50; two rounds with nothing changed "
                 f"differed by up to {row['noise_ms']:.1f} ms)")
    slowed = set(slowed_routes(enough))
    should = [r for r in expected if r in enough.index]
    shouldnt = [r for r in enough.index if r not in expected]
    lines.append("slower than the noise, needing policy data: " + (", ".join(r for r in should if r in slowed) or "none"))
    lines.append("slower than the noise, not needing policy data: " + (", ".join(r for r in shouldnt if r in slowed) or "none"))
    shown = top in expected and any(r in slowed for r in should) and not any(r in slowed for r in shouldnt)
    if shown and not behind:
        lines.append("This run shows the bottleneck: the routes that need the policy service's data slowed, "
                     "the others did not.")
    elif shown:
        lines.append("This run points at the policy service, but some rounds fell behind: read it with care.")
    else:
        lines.append("This run did NOT show it clearly: " + (
            "the noise between two rounds with nothing changed is as large as the change — the machine is busy; "
            "run the cell again, or raise ROUND_SECONDS." if not behind else
            "the generator fell behind its schedule (a busy machine); lower RATE or run again when it is quieter."))
    return "\n".join(lines)


def sweep_verdict(sweep: list[LoadResult], flat: float = 0.10) -> str:
    """Did throughput stop growing (a plateau), and why p50 moved the way it did, from the sweep's own records."""
    rows = []
    for result in sorted(sweep, key=lambda r: r.meta["concurrency"]):
        ok = result.records[result.records["status"].between(200, 399)]
        cached = ok["x_cache"].astype(str).str.upper()
        carrying = cached[cached.isin(["HIT", "MISS"])]
        rows.append({"c": result.meta["concurrency"], "req_s": result.meta["achieved_rate"],
                     "p50": ok["latency_ms"].median(), "hit": (carrying == "HIT").mean() if len(carrying) else np.nan,
                     "n": len(ok), "cpu": result.meta.get("generator_cpu_pct", 0)})
    lines = []
    for a, b in zip(rows, rows[1:]):
        gain = b["req_s"] / a["req_s"] - 1 if a["req_s"] else np.inf
        lines.append(f"c={a['c']} -> c={b['c']}: throughput {a['req_s']:,.0f} -> {b['req_s']:,.0f} req/s "
                     f"({gain:+.0%}), p50 {a['p50']:.1f} -> {b['p50']:.1f} ms, cache hit rate "
                     f"{a['hit']:.0%} -> {b['hit']:.0%}")
        if b["p50"] < a["p50"]:
            if b["hit"] > a["hit"] + 0.05:
                lines.append("  p50 fell while the hit rate rose: with more requests per second, more reads find "
                             "an answer another request cached a moment ago, and a hit is cheaper than a miss")
            else:
                lines.append(f"  p50 fell with the hit rate unchanged: with {b['n']} requests in a short run this "
                             "is run-to-run variation, not a speed-up from concurrency")
    last_gain = rows[-1]["req_s"] / rows[-2]["req_s"] - 1 if len(rows) > 1 and rows[-2]["req_s"] else np.inf
    if last_gain < flat:
        lines.append(f"Plateau: going from c={rows[-2]['c']} to c={rows[-1]['c']} added {last_gain:+.0%} throughput "
                     f"while p50 went {rows[-2]['p50']:.1f} -> {rows[-1]['p50']:.1f} ms: the lab is saturated, "
                     "more connections only queue (Little's law).")
    else:
        lines.append(f"No plateau yet: throughput still grew {last_gain:+.0%} at the last step; this sweep did not "
                     "reach the ceiling.")
    if rows[-1]["cpu"] > 80:
        lines.append(f"The load generator itself used {rows[-1]['cpu']:.0f}% of a core at c={rows[-1]['c']}: on a "
                     "2-core machine it competes with the lab it measures, so the ceiling seen here is partly its own.")
    return "\n".join(lines)


def login_tail_verdict(result: LoadResult) -> str:
    """Do the reads' slowest answers last about as long as one login (reads stuck behind password hashing)?"""
    ok = result.records[result.records["status"].between(200, 399)]
    reads = ok[ok["route"].str.startswith("GET ")]["latency_ms"]
    logins = ok[ok["route"] == "POST /api/auth/login"]["latency_ms"]
    if len(logins) < 5 or len(reads) < 100:
        return (f"Not enough data in this run to compare ({len(logins)} logins, {len(reads)} reads): "
                "raise DURATION to see it.")
    read_p99, login_p50 = reads.quantile(0.99), logins.median()
    share = read_p99 / login_p50
    text = (f"reads' p99 {read_p99:.1f} ms vs one login's p50 {login_p50:.1f} ms ({len(logins)} logins): "
            f"the reads' tail is {share:.0%} of a login. ")
    if share < 0.5:
        return text + ("The reads do not wait behind the logins: the password is checked in a worker thread "
                       "(asyncio.to_thread in services/auth/routes.py), off the event loop.")
    return text + ("The reads' tail is as long as a login: either reads waited behind password hashing, or the "
                   "machine was busy (compare with a run where the mix has no logins: --mix reads).")
