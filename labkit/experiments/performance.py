"""Lesson 07's bottleneck experiment: change one thing, and compare like with like.

Two load runs differ in more than the change unless care is taken. The first run of a lesson meets cold
caches (most reads go to the system of record), a later one warm caches (almost none do): a slowed system
of record then looks like a *speed-up*. So every round here starts from the same state — the services'
Redis cache and the gateway's answer cache emptied — and sends the same requests (the same seed), one at a
time, with and without the change. Rounds alternate A B B A ..., so a machine that gets busier during the experiment
weighs on both sides alike. The two halves of one condition's rounds also give the noise yardstick: how far
apart two measurements with *nothing* changed land.
"""

from __future__ import annotations

import os
from typing import Callable

import httpx
import numpy as np
import pandas as pd

from services.core import keys
from services.core.settings import Settings, get_settings

from .. import redis_server
from ..auth import ServiceAuth
from ..load import LoadResult, run_load
from . import load_average


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


#: The mix the bottleneck experiment sends: every route often enough for its own median in a few seconds of
#: one-at-a-time requests. No login: it is tens of milliseconds of password hashing on purpose (lesson 04),
#: touches no policy data, and would take a third of the time.
BOTTLENECK_MIX = {"read_policy": 25, "read_customer": 15, "read_claim": 15, "customer_overview": 15,
                  "submit_claim": 20, "change_claim_status": 10}


def servable_rate(concurrency: int, seconds: float = 1.5, fraction: float = 0.5, mix: dict | str | None = None,
                  settings: Settings | None = None) -> tuple[float, LoadResult]:
    """What the lab serves flat out right now (a short closed loop with ``concurrency`` connections), and
    ``fraction`` of it: an open-loop rate this machine can keep up with. Asking a busy machine for more than
    it can serve measures only its queue (and the open loop refuses to report it)."""
    probe = run_load(mode="closed", concurrency=concurrency, duration=seconds, mix=mix, progress=False, save=False,
                     settings=settings)
    return max(1.0, round(fraction * probe.meta["achieved_rate"])), probe


def alternating_rounds(change: Callable[[], object], undo: Callable[[], object], rounds: int = 8,
                       seconds: float = 1.5, mix: dict | str | None = None,
                       settings: Settings | None = None) -> dict[str, list[LoadResult]]:
    """Run ``rounds`` rounds, ``baseline`` and ``changed`` (``change()`` before, ``undo()`` after, always), in
    the order A B, B A, A B ... Each round empties the caches first, then sends requests **one at a time**
    (a closed loop with one connection) from the pair's own seed.

    One at a time, because the question is what each request costs, not how a queue grows: an open loop at a
    fixed rate that a busy machine cannot serve measures the queue (and falls behind its schedule), and the
    queue would hide the change. Sequential requests never queue behind each other, so a busy machine adds
    its noise to both sides alike. The changed side is slower, so it sends fewer requests in the same time:
    both rounds of a pair keep only as many as the shorter one sent — the same requests, in the same order,
    from the same (empty) cache state."""
    settings = settings or get_settings()
    mix = BOTTLENECK_MIX if mix is None else mix
    out: dict[str, list[LoadResult]] = {"baseline": [], "changed": []}
    for pair in range(max(rounds // 2, 1)):
        order = ("baseline", "changed") if pair % 2 == 0 else ("changed", "baseline")
        sent: dict[str, LoadResult] = {}
        for side in order:
            empty_caches(settings)
            if side == "changed":
                change()
            try:
                sent[side] = run_load(mode="closed", concurrency=1, duration=seconds, mix=mix, seed=100 + pair,
                                      progress=False, save=False, settings=settings)
            finally:
                if side == "changed":
                    undo()
        same = min(len(r.records) for r in sent.values())
        for side, result in sent.items():
            records = result.records.sort_values("start_s", kind="stable").head(same).reset_index(drop=True)
            out[side].append(LoadResult(records, {**result.meta, "sent": len(result.records), "kept": same}))
    return out


def rounds_in_words(runs: dict[str, list[LoadResult]]) -> str:
    """How many requests each round sent and how many both rounds of its pair kept."""
    lines = []
    for side, results in runs.items():
        lines.append(f"{side:>8}: " + ", ".join(f"{r.meta['sent']} sent, {r.meta['kept']} kept" for r in results))
    return "\n".join(lines)


def per_route_change(runs: dict[str, list[LoadResult]], metric_q: float = 0.5) -> pd.DataFrame:
    """Per route: the p50 (or another quantile) of each side, pooled over its rounds, the change, the
    noise (the gap between the two halves of the *same* side's rounds, the larger of the two sides) and each
    side's cache hit rate."""
    def pooled(side):
        frame = pd.concat([r.records for r in runs[side]], ignore_index=True)
        return frame[frame["status"].between(200, 399)]

    def halves_apart(side):
        """The gap between the first and the second half of one side's rounds, each pooled: how far two
        measurements land when *nothing* changed (each half holds as many requests as half a side)."""
        rounds = runs[side]
        if len(rounds) < 2:
            return pd.Series(dtype=float)
        half = len(rounds) // 2
        first, second = (pd.concat([r.records for r in part], ignore_index=True) for part in (rounds[:half], rounds[half:]))
        q = [part[part["status"].between(200, 399)].groupby("route")["latency_ms"].quantile(metric_q)
             for part in (first, second)]
        return (q[0] - q[1]).abs()

    base, changed = pooled("baseline"), pooled("changed")
    table = pd.DataFrame({
        "requests": changed.groupby("route").size(),
        "baseline_ms": base.groupby("route")["latency_ms"].quantile(metric_q),
        "changed_ms": changed.groupby("route")["latency_ms"].quantile(metric_q),
        "hit_rate_baseline": _hit_rate(base), "hit_rate_changed": _hit_rate(changed),
    })
    table["change_ms"] = table["changed_ms"] - table["baseline_ms"]
    table["noise_ms"] = pd.concat([halves_apart("baseline"), halves_apart("changed")], axis=1).max(axis=1)
    return table.sort_values("change_ms", ascending=False).round(2)


def _hit_rate(records: pd.DataFrame) -> pd.Series:
    cached = records["x_cache"].astype(str).str.upper()
    carrying = records[cached.isin(["HIT", "MISS"])]
    return carrying.assign(hit=cached[cached.isin(["HIT", "MISS"])].eq("HIT")).groupby("route")["hit"].mean()


def slowed_routes(table: pd.DataFrame, at_least_ms: float = 1.0) -> pd.Index:
    """Routes whose change is larger than the noise (two halves of one side) and than ``at_least_ms``."""
    return table.index[(table["change_ms"] > np.maximum(table["noise_ms"], at_least_ms))]


#: Routes whose answer needs the policy service's data: a policy read; a claim submission (the claims service
#: asks the policy service whether the policy is active); a customer overview (it lists the customer's policies).
READS_POLICY_DATA = ("GET /api/policies/{id}", "POST /api/claims", "GET /api/customers/{id}/overview")


def bottleneck_verdict(table: pd.DataFrame, delay_ms: float, min_requests: int = 20,
                       expected: tuple[str, ...] = READS_POLICY_DATA) -> str:
    """Which route slowed most, in words, and whether this run showed what the lesson expects: the routes
    that need the policy service's data slower than the noise, the others not. Says plainly when it did not.

    A route counts as slowed when its median rose by more than the noise (two halves of one side)
    and by more than a quarter of ``delay_ms``: a request that reaches the slowed database pays the whole
    delay at least once, so a rise of a fraction of it is not the change at work."""
    enough = table[table["requests"] >= min_requests]
    few = [route for route in table.index if route not in enough.index]
    lines = []
    if few:
        lines.append(f"left out of the verdict, too few requests (< {min_requests}): {', '.join(few)}")
    if enough.empty:
        return "\n".join(lines + ["This run did not show anything: no route had enough requests; raise ROUND_SECONDS."])
    top = enough.index[0]
    row = enough.iloc[0]
    lines.append(f"slowed down most: {top} ({row['change_ms']:+.1f} ms at p50; two halves of one side, with "
                 f"nothing changed between them, differed by {row['noise_ms']:.1f} ms)")
    slowed = set(slowed_routes(enough, at_least_ms=max(1.0, delay_ms / 4)))
    should = [r for r in expected if r in enough.index]
    shouldnt = [r for r in enough.index if r not in expected]
    missed = [r for r in should if r not in slowed]
    wrong = [r for r in shouldnt if r in slowed]
    lines.append("slowed, needing policy data: " + (", ".join(r for r in should if r in slowed) or "none"))
    lines.append("slowed, not needing policy data: " + (", ".join(wrong) or "none"))
    if should and not missed and not wrong:
        moved = enough.loc[should, "change_ms"]
        lines.append(f"This run shows the bottleneck: every route that needs the policy service's data slowed, by "
                     f"{moved.min():.0f} to {moved.max():.0f} ms against a delay of {delay_ms:g} ms per query (a "
                     "request pays it once for every query that reaches the slowed database); the others did not "
                     "move beyond the noise.")
    elif not wrong and len(missed) < len(should):
        lines.append("This run points at the policy service, but not every route that needs its data slowed: "
                     f"{', '.join(missed)} (look at its hit rate: an answer already cached never reaches the database).")
    else:
        lines.append("This run did NOT show it clearly: " + (
            f"{', '.join(wrong)} slowed too, without touching the policy data — the machine got busier during "
            "the changed rounds; run the cell again." if wrong else
            "no route moved beyond the noise between two halves with nothing changed — the machine is busy; "
            "run the cell again, or raise ROUND_SECONDS."))
    return "\n".join(lines)


def mirrored_sweep(concurrencies: tuple[int, ...], seconds: float, mix: dict | str | None = "reads",
                   settings: Settings | None = None) -> list[LoadResult]:
    """A closed-loop run per concurrency, swept up and then back down (1, 4, 16, 64, 64, 16, 4, 1), the two
    runs of each concurrency pooled into one result. A machine that gets busier (or quieter) during the sweep
    would otherwise bend the curve by itself: swept one way, the last step takes all of a slow-down; swept
    both ways, every step takes its share. ``meta``: the pooled duration and the mean of the two rates."""
    order = list(concurrencies) + list(reversed(concurrencies))
    runs: dict[int, list[LoadResult]] = {c: [] for c in concurrencies}
    for c in order:
        runs[c].append(run_load(mode="closed", concurrency=c, duration=seconds, mix=mix, progress=False, save=False,
                                settings=settings))
    pooled = []
    for c, (up, down) in runs.items():
        meta = {**up.meta, "duration_s": up.meta["duration_s"] + down.meta["duration_s"],
                "requests": up.meta["requests"] + down.meta["requests"],
                "achieved_rate": (up.meta["achieved_rate"] + down.meta["achieved_rate"]) / 2,
                "generator_cpu_pct": (up.meta["generator_cpu_pct"] + down.meta["generator_cpu_pct"]) / 2,
                "rates_up_down": (up.meta["achieved_rate"], down.meta["achieved_rate"])}
        pooled.append(LoadResult(pd.concat([up.records, down.records], ignore_index=True), meta))
    return pooled


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
    peak = max(rows, key=lambda row: row["req_s"])
    if peak is not rows[-1] and rows[-1]["req_s"] < 0.8 * peak["req_s"]:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        lines.append(f"Throughput FELL after c={peak['c']} ({peak['req_s']:,.0f} -> {rows[-1]['req_s']:,.0f} req/s). "
                     "A saturated server serves as fast as before with more connections waiting, not slower; a drop "
                     f"means less CPU for the lab during those steps: load average {load:.1f} on {cores} cores now, "
                     "and the load generator's own work grows with the connections. Raise SWEEP_SECONDS, or run the "
                     "cell again when the machine is quieter.")
    last_gain = rows[-1]["req_s"] / rows[-2]["req_s"] - 1 if len(rows) > 1 and rows[-2]["req_s"] else np.inf
    if last_gain < -flat:
        lines.append(f"The ceiling was reached by c={peak['c']}: past it, more connections only queued (p50 "
                     f"{peak['p50']:.1f} -> {rows[-1]['p50']:.1f} ms, Little's law), and got less CPU (above).")
    elif last_gain < flat:
        lines.append(f"Plateau: going from c={rows[-2]['c']} to c={rows[-1]['c']} added {last_gain:+.0%} throughput "
                     f"while p50 went {rows[-2]['p50']:.1f} -> {rows[-1]['p50']:.1f} ms: the lab is saturated, "
                     "more connections only queue (Little's law).")
    elif (earlier := max(rows[:-1], key=lambda row: row["req_s"]))["req_s"] * (1 + flat) >= rows[-1]["req_s"]:
        lines.append(f"Throughput grew {last_gain:+.0%} at the last step, but only back to where it was at "
                     f"c={earlier['c']} ({earlier['req_s']:,.0f} -> {rows[-1]['req_s']:,.0f} req/s, within "
                     f"{flat:.0%}): the ceiling was reached by c={earlier['c']}, and the dip between is this machine's "
                     f"noise; p50 meanwhile went {earlier['p50']:.1f} -> {rows[-1]['p50']:.1f} ms (Little's law).")
    else:
        lines.append(f"No plateau yet: throughput still grew {last_gain:+.0%} at the last step; this sweep did not "
                     "reach the ceiling.")
    both_ways = [(r.meta["concurrency"], *r.meta["rates_up_down"]) for r in sorted(sweep, key=lambda r: r.meta["concurrency"])
                 if "rates_up_down" in r.meta]
    if both_ways:
        lines.append("Each concurrency ran twice, on the way up and on the way down (req/s): "
                     + ", ".join(f"c={c}: {up:,.0f} / {down:,.0f}" for c, up, down in both_ways)
                     + " — how far the two land apart is the noise of this machine.")
        apart = [c for c, up, down in both_ways if abs(up - down) > 0.5 * max(up, down)]
        if apart:
            lines.append(f"At c={', c='.join(map(str, apart))} the two directions differ by more than half: the "
                         "machine's load changed more during the sweep than the concurrency did, so the curve's shape "
                         "(and the plateau or its absence above) is NOT shown reliably by this run. Raise "
                         "SWEEP_SECONDS, or run the cell again when the machine is quieter.")
    if rows[-1]["cpu"] > 80:
        lines.append(f"The load generator itself used {rows[-1]['cpu']:.0f}% of a core at c={rows[-1]['c']}: on a "
                     "2-core machine it competes with the lab it measures, so the ceiling seen here is partly its own.")
    return "\n".join(lines)


#: The reads of the login comparison, and the login mix built on them (same reads, in the same proportions).
TAIL_READS = {"read_policy": 4, "read_customer": 3, "read_claim": 3}


def _login_mixes(rate: float, logins_per_s: float) -> dict[str, dict[str, float]]:
    per_login = max(1.0, rate / logins_per_s - 1)
    return {"without logins": TAIL_READS,
            "with logins": {**{op: w * per_login / sum(TAIL_READS.values()) for op, w in TAIL_READS.items()},
                            "login": 1}}


def with_and_without_logins(rate: float, concurrency: int, seconds: float, logins_per_s: float = 2,
                            rounds: int = 8, settings: Settings | None = None) -> dict[str, LoadResult]:
    """The same reads at the same open-loop ``rate``, without and with ``logins_per_s`` logins among them.

    Like with like, because a first run that meets cold caches looks slow by itself (a run of lesson 07 once
    printed the reads' p99 97 ms without logins and 10 ms with: the rounds without logins went first and
    alone read ids nobody had cached yet — every round sends the same seeded ids):

    * one warm-up round of each side first, not recorded: every recorded round finds the ids it reads cached
      and its connections open (each side's hit rate is kept to show it);
    * ``rounds`` rounds of ``seconds``, alternating A B B A A B B A, so a machine that gets busier weighs on
      both sides; each side's rounds pooled. ``meta["halves_p99_ms"]``: the reads' p99 of the first and the
      second half of that side's rounds, the noise yardstick (nothing changed between them);
      ``meta["load_average"]``: the 1-minute load average read before every round and after the last.

    Two logins a second are enough to see whether reads wait behind them, and too few for the hashing itself to
    take the machine's cores."""
    mixes = _login_mixes(rate, logins_per_s)

    def one_round(side: str) -> LoadResult:
        return run_load(mode="open", rate=rate, concurrency=concurrency, duration=seconds, mix=mixes[side],
                        progress=False, save=False, settings=settings)

    for side in mixes:  # warm-up: caches and connections, not recorded
        one_round(side)
    order = [("without logins", "with logins", "with logins", "without logins")[i % 4] for i in range(max(rounds, 2))]
    results: dict[str, list[LoadResult]] = {side: [] for side in mixes}
    load = []
    for number, side in enumerate(order):
        load.append(load_average())
        result = one_round(side)
        result.records["round"] = number  # each round's clock starts at 0: keep which round a record is from
        results[side].append(result)
    load.append(load_average())

    def reads_p99(part: list[LoadResult]) -> float:
        return _reads(pd.concat([r.records for r in part], ignore_index=True)).quantile(0.99)

    out = {}
    for side, side_rounds in results.items():
        half = max(len(side_rounds) // 2, 1)
        halves = [reads_p99(side_rounds[:half]), reads_p99(side_rounds[half:])] if len(side_rounds) > 1 else []
        out[side] = LoadResult(pd.concat([r.records for r in side_rounds], ignore_index=True), {
            **side_rounds[0].meta, "rounds": len(side_rounds),
            "percentiles_refused": any(r.percentiles_refused for r in side_rounds),
            "on_schedule": min(r.meta["on_schedule"] for r in side_rounds),
            "halves_p99_ms": halves, "load_average": [v for v in load if v is not None],
            "cores": os.cpu_count() or 1})
    return out


def _ok(records: pd.DataFrame) -> pd.DataFrame:
    return records[records["status"].between(200, 399)]


def _reads(records: pd.DataFrame) -> pd.Series:
    """The latencies of the answered reads (GET routes) among ``records``."""
    ok = _ok(records)
    return ok.loc[ok["route"].str.startswith("GET "), "latency_ms"]


def login_tail_verdict(runs: dict[str, LoadResult]) -> str:
    """Do reads wait behind a login (password hashing on the event loop)? Compared like with like: the reads'
    p99 with logins among them against the same reads without, beside how long one login takes and beside the
    noise — how far the two halves of one side's rounds landed apart with nothing changed between them.
    A difference inside the noise is not an effect; a noise as large as a login means the run cannot tell."""
    refused = [side for side, result in runs.items() if result.percentiles_refused]
    if refused:
        return (f"The runs {' and '.join(refused)} fell behind their schedule: their latencies include waiting to be "
                "sent, so they cannot answer it. Run the cell again, or lower the rate.")
    reads = {side: _reads(result.records) for side, result in runs.items()}
    login_ok = _ok(runs["with logins"].records)
    logins = login_ok.loc[login_ok["route"] == "POST /api/auth/login", "latency_ms"]
    if len(logins) < 5 or min(len(r) for r in reads.values()) < 100:
        return (f"Not enough data in this run to compare ({len(logins)} logins, "
                f"{min(len(r) for r in reads.values())} reads on the smaller side): raise DURATION to see it.")
    without, with_ = reads["without logins"].quantile(0.99), reads["with logins"].quantile(0.99)
    login_p50, growth = logins.median(), with_ - without
    halves = {side: result.meta.get("halves_p99_ms") or [] for side, result in runs.items()}
    noise = max((abs(h[0] - h[1]) for h in halves.values() if len(h) == 2), default=0.0)
    hits = {side: _hit_rate_of(result.records) for side, result in runs.items()}
    load = runs["with logins"].meta.get("load_average") or []
    cores = runs["with logins"].meta.get("cores") or os.cpu_count() or 1
    facts = (f"reads' p99 without logins {without:.1f} ms ({len(reads['without logins'])} reads), with logins "
             f"{with_:.1f} ms ({len(reads['with logins'])} reads): {growth:+.1f} ms; one login takes "
             f"{login_p50:.1f} ms (p50 of {len(logins)}). Noise: the two halves of one side's rounds, with nothing "
             f"changed between them, differed by up to {noise:.1f} ms. Cache hit rate of the reads: "
             + ", ".join(f"{side} {rate:.0%}" for side, rate in hits.items())
             + (f"; load average {min(load):.1f} to {max(load):.1f} on {cores} cores." if load else "."))
    overlap = _reads_during_logins(runs["with logins"].records)
    if overlap is not None:
        during, others = overlap
        facts += (f"\nIn the rounds with logins, the reads in flight while a login was being answered: p90 "
                  f"{during.quantile(0.9):.1f} ms ({len(during)} reads); the other reads: p90 "
                  f"{others.quantile(0.9):.1f} ms ({len(others)}).")
        waited = bool(during.quantile(0.9) - others.quantile(0.9) >= 0.5 * login_p50)
    else:
        waited = None
    if growth < -noise:
        return facts + ("\nThis run did NOT show what was expected: the reads were FASTER with logins among them, by "
                        "more than the noise. Logins cannot speed reads up, so something else differed between the "
                        "sides — compare their hit rates and the load average above — run the cell again.")
    busy = bool(load) and max(load) > cores
    if waited:
        if busy:
            return facts + ("\nThe reads in flight during a login were slower than the others by more than half a "
                            "login. On a machine this busy (load average above the core count) this run canNOT tell "
                            "the two causes apart: reads queued behind the hashing on the event loop, or the "
                            "hashing's CPU (tens of ms per login) took a core they were waiting for. Run the cell "
                            "again when the machine is quieter: if they still are, the hashing blocks the loop.")
        return facts + ("\nReads waited behind logins: the ones in flight during a login were slower than the others "
                        "by more than half a login, on a machine that was not overloaded — the hashing is holding up "
                        "the event loop.")
    if abs(growth) <= noise:
        if noise < 0.5 * login_p50:
            return facts + ("\nThe reads' tail did not move beyond the noise, and the noise is under half a login: "
                            "reads do not wait behind password hashing — it runs in a worker thread "
                            "(asyncio.to_thread in services/auth/routes.py), off the event loop.")
        if waited is False:
            return facts + ("\nThe two sides' tails are too noisy to compare here (the halves of one side differ by "
                            "half a login or more), but the comparison inside the rounds with logins is direct: the "
                            "reads in flight during a login were not slower than the reads beside them by half a "
                            "login. They do not wait behind password hashing — it runs in a worker thread "
                            "(asyncio.to_thread in services/auth/routes.py), off the event loop; what gap there is, "
                            "is the hashing's CPU, shared with everything else on the machine.")
        return facts + ("\nThis run canNOT tell: the reads' tail moved less than the noise, but the noise itself is "
                        "as large as half a login or more, so a wait behind one login would hide in it. Run the cell "
                        "again, or raise the rounds' length, when the machine is quieter.")
    if growth < 0.5 * login_p50:
        return facts + (f"\nAdding logins moved the reads' tail by {growth / login_p50:.0%} of one login — beyond the "
                        "noise but less than half a login: the reads do not wait behind password hashing (it runs "
                        "in a worker thread, asyncio.to_thread in services/auth/routes.py); what growth there is, "
                        "is the hashing's CPU, shared with everything else on the machine.")
    if waited is False:
        return facts + ("\nThe reads' tail grew by half a login or more, beyond the noise — but the reads in flight "
                        "during a login were not slower by that much than the others: the tail grew for every read "
                        "alike, so they did not wait behind a login. The hashing's CPU (tens of ms per login) and "
                        "whatever else ran on the machine (load average above) slowed everything.")
    return facts + ("\nThe reads' tail grew by about a login, beyond the noise: either reads waited behind password "
                    "hashing, or the machine got busier during the runs with logins (too few reads overlapped a "
                    "login to tell them apart).")


def _reads_during_logins(records: pd.DataFrame, at_least: int = 20) -> tuple[pd.Series, pd.Series] | None:
    """The latencies of the reads that were in flight while a login of the same round was being answered, and
    of the other reads; None when fewer than ``at_least`` reads fall on either side (or rounds are unknown)."""
    if "round" not in records or "start_s" not in records:
        return None
    ok = _ok(records).assign(end_s=lambda r: r["start_s"] + r["service_ms"] / 1000)
    logins = ok[ok["route"] == "POST /api/auth/login"]
    reads = ok[ok["route"].str.startswith("GET ")]
    during = pd.Series(False, index=reads.index)
    for _, login in logins.iterrows():
        during |= ((reads["round"] == login["round"]) & (reads["start_s"] < login["end_s"])
                   & (reads["end_s"] > login["start_s"]))
    if min(during.sum(), (~during).sum()) < at_least:
        return None
    return reads.loc[during, "latency_ms"], reads.loc[~during, "latency_ms"]


def _hit_rate_of(records: pd.DataFrame) -> float:
    if "x_cache" not in records:
        return float("nan")
    cached = _ok(records)["x_cache"].astype(str).str.upper()
    carrying = cached[cached.isin(["HIT", "MISS"])]
    return float((carrying == "HIT").mean()) if len(carrying) else float("nan")
