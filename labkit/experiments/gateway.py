"""Lesson 05's experiments: balancing strategies side by side, one slow instance, the rate limiter, and the
gateway's own response cache.

Each experiment changes the gateway at run time through its ``/admin`` routes (as the lab's system user)
and puts back what it found, so the lab is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import time

import aiohttp
import httpx
import pandas as pd

from services.core.settings import Settings, get_settings
from services.core.vocabulary import BALANCERS

from .. import procs
from ..auth import gateway_headers, service_client
from ..coroutines import run_async
from ..traffic import Request, closed_loop, open_loop
from . import PATHS, load_average

@contextlib.contextmanager
def gateway_admin(settings: Settings):
    with service_client(settings, "gateway") as client:
        yield client


def current_strategy(settings: Settings, service: str) -> str:
    with gateway_admin(settings) as admin:
        return admin.get("/services").json()["services"][service]["strategy"]


def set_strategy(settings: Settings, service: str, strategy: str) -> None:
    with gateway_admin(settings) as admin:
        admin.put("/admin/balancer", json={"service": service, "strategy": strategy}).raise_for_status()


async def _closed_loop(settings: Settings, path: str, n: int | None, concurrency: int,
                       seconds: float | None = None) -> list[dict]:
    """``n`` reads of ``path`` through the gateway (or as many as ``seconds`` allow), ``concurrency`` at a time
    (``labkit.traffic``'s closed loop)."""
    read = Request("GET", path)
    async with aiohttp.ClientSession(headers=gateway_headers(settings, ask_the_service=True),
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        traffic = await closed_loop(session, settings.url_of("gateway"), lambda _: read, concurrency, requests=n,
                                    duration_s=seconds)
    return traffic.records


def strategies_side_by_side(service: str = "claims", requests: int = 300, concurrency: int = 8,
                            strategies: tuple[str, ...] = BALANCERS, settings: Settings | None = None,
                            rounds: int = 1, seconds_per_round: float | None = None) -> pd.DataFrame:
    """``requests`` reads through the gateway per strategy, ``concurrency`` at a time, in ``rounds``
    alternating rounds (each strategy runs ``requests / rounds`` reads per round — or, with
    ``seconds_per_round``, sends for that long —, the order rotating: with two strategies A B, B A, A B ...),
    so a burst of load from elsewhere on the machine hits every strategy alike.
    One row per request: strategy, round, seq (the order it was sent in within its round), first_wave (one of
    the first ``concurrency`` of its round, sent while every instance was idle), served_by, status,
    latency_ms, round_s (how long its round took). The strategy the gateway had is restored at the end.
    ``df.attrs["load_average"]``: the 1-minute load average read before every round and after the last."""
    settings = settings or get_settings()
    before = current_strategy(settings, service)
    frames, load = [], []
    try:
        for round_ in range(rounds):
            shift = round_ % len(strategies)
            for strategy in strategies[shift:] + strategies[:shift]:
                set_strategy(settings, service, strategy)
                load.append(load_average())
                started = time.perf_counter()
                rows = run_async(_closed_loop(settings, PATHS[service], None if seconds_per_round else requests // rounds,
                                               concurrency, seconds_per_round))
                took = time.perf_counter() - started
                frame = pd.DataFrame(rows).sort_values("seq", ignore_index=True)
                frames.append(frame.assign(strategy=strategy, round=round_, first_wave=frame["seq"] < concurrency,
                                           round_s=took))
        load.append(load_average())
    finally:
        set_strategy(settings, service, before)
    order = {s: i for i, s in enumerate(strategies)}
    both = pd.concat(frames, ignore_index=True)
    both = both.sort_values(["strategy", "round", "seq"], key=lambda c: c.map(order) if c.name == "strategy" else c,
                            ignore_index=True)
    both.attrs["load_average"] = [value for value in load if value is not None]
    return both


def spread_in_words(spread: pd.DataFrame) -> str:
    """Section 1 of lesson 05, read off the run: how evenly each strategy spread the requests, and — for
    least outstanding, which follows how fast each instance answers — how fast each instance was."""
    from ..charts import instance_label  # claims-44547-9052 -> claims#3, the name the lesson uses

    spread = spread.assign(served_by=spread["served_by"].map(instance_label))
    counts = spread.groupby(["strategy", "served_by"], sort=False).size().unstack(fill_value=0)
    lines = [f"{strategy}: " + " / ".join(f"{n} ({name})" for name, n in row.items()) + " requests per instance"
             for strategy, row in counts.iterrows()]
    if "least_outstanding" in counts.index:
        lo = spread[spread["strategy"] == "least_outstanding"]
        speed = lo.groupby("served_by")["latency_ms"].median()
        busiest, quietest = counts.loc["least_outstanding"].idxmax(), counts.loc["least_outstanding"].idxmin()
        even = counts.loc["least_outstanding"].max() <= 1.25 * counts.loc["least_outstanding"].min()
        lines.append(
            "Least outstanding split them " + ("about evenly" if even else "unevenly") + ": it sends each request "
            "to the instance with the fewest in flight, so it follows how fast each one answers. Median latency "
            f"there: {busiest} {speed[busiest]:.1f} ms (most requests), {quietest} {speed[quietest]:.1f} ms "
            "(fewest)." + ("" if even else " On a busy machine the instances are not equally fast: one that gets "
                           "a core more often answers sooner and is picked more."))
    return "\n".join(lines)


def with_one_slow_instance(instance: str = "claims#2", delay_ms: float = 2000.0, service: str = "claims",
                           seconds_per_round: float = 3.0, concurrency: int = 8,
                           strategies: tuple[str, ...] = ("round_robin", "least_outstanding"),
                           settings: Settings | None = None, rounds: int = 4) -> pd.DataFrame:
    """Make ``instance`` slow (its ``delay_ms`` knob), send through each strategy for ``seconds_per_round`` in
    alternating rounds (A B, B A, ...: ``strategies_side_by_side``), put the knob back. ``df.attrs``:
    ``slow_instance`` (the slow instance's id, what ``X-Served-By`` says), ``delay_ms``, ``load_average`` (read
    around every round), ``cores``.

    Why these sizes: least outstanding keeps about as many requests in flight at the slow instance as at each
    fast one, and each instance answers its in-flight requests at its own speed, so the slow one's share of the
    requests is about (fast latency) / (fast instances x delay): with two fast instances at 10-30 ms on a busy
    machine and a 2 s delay, 0.25-0.75% — under the 1% a p99 can hide. Rounds last a fixed time, not a fixed
    count: round robin, stuck a third of the time behind the delay, sends few requests a second, and its p99 is
    a slow answer with a hundred or so of them; least outstanding sends many, which its p99 needs. A round
    longer than the delay lets the slow instance finish its first wave and be picked again: the steady state."""
    settings = settings or get_settings()
    record = procs.read_pidfiles(settings.run_dir)[instance]
    with service_client(settings, service) as client:
        client.base_url = record.url
        slow_id = client.get("/health").json()["instance"]
        before = client.get("/admin/knobs").json()["delay_ms"]
        client.put("/admin/knobs", json={"delay_ms": delay_ms}).raise_for_status()
        try:
            df = strategies_side_by_side(service, 0, concurrency, strategies, settings, rounds,
                                         seconds_per_round=seconds_per_round)
        finally:
            client.put("/admin/knobs", json={"delay_ms": before}).raise_for_status()
    df.attrs.update(slow_instance=slow_id, delay_ms=delay_ms, cores=os.cpu_count() or 1)
    return df


def slow_instance_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, steady state (first waves left out): how many requests, p50/p90/p99, how many and what
    share the slow instance served, the median latency of the requests the other instances served, what the
    slow instance got of the first waves, and the requests per second the lab served in that strategy's rounds.
    ``summary.attrs`` carries the run's ``slow_instance``, ``delay_ms``, ``load_average`` and ``cores``."""
    slow_id, steady = df.attrs["slow_instance"], df[~df["first_wave"]]
    by = steady.groupby("strategy", sort=False)
    summary = pd.DataFrame({"requests": by.size()})
    quantiles = by["latency_ms"].quantile([0.5, 0.9, 0.99]).unstack().round(1)
    summary[["p50_ms", "p90_ms", "p99_ms"]] = quantiles.to_numpy()
    summary["to_slow"] = by["served_by"].apply(lambda s: int((s == slow_id).sum()))
    summary["share_to_slow"] = (summary["to_slow"] / summary["requests"]).round(4)
    summary["fast_ones_p50_ms"] = steady[steady["served_by"] != slow_id].groupby("strategy", sort=False)[
        "latency_ms"].median().round(1)
    summary["first_wave_to_slow"] = df[df["first_wave"]].groupby("strategy", sort=False)["served_by"].apply(
        lambda s: f"{(s == slow_id).sum()} of {len(s)}")
    rounds = df.groupby(["strategy", "round"], sort=False).agg(n=("seq", "size"), took=("round_s", "first"))
    per_strategy = rounds.groupby(level="strategy", sort=False).sum()
    summary["req_per_s"] = (per_strategy["n"] / per_strategy["took"]).round(0)
    summary.attrs = {key: df.attrs[key] for key in ("slow_instance", "delay_ms", "load_average", "cores")
                     if key in df.attrs}
    summary.attrs["fast_instances"] = int(df.loc[df["served_by"] != slow_id, "served_by"].nunique())
    return summary


#: Fewer steady-state requests than this and a p99 is one of the slowest two answers: too few to compare.
ENOUGH_FOR_P99 = 200


def slow_instance_in_words(summary: pd.DataFrame, delay_ms: float | None = None) -> str:
    """Lesson 05's claim — with one slow instance, least outstanding has the lower p99 — checked against the
    run, every figure from ``slow_instance_summary``.

    The arithmetic behind it: p99 is the slowest 1%, so a strategy's p99 escapes the slow instance only if that
    instance served under 1% of its requests. Round robin sends it a third whatever happens. Least outstanding
    keeps about as many requests in flight there as at each fast instance, and each instance answers its own
    at its own speed, so the slow one's share is roughly (fast latency) / (fast instances × ``delay_ms``).
    When the run does not show the claim, the sentence says which of these failed and the measured facts
    behind it (the fast instances' latency, the load average), never a reason it did not measure."""
    delay_ms = summary.attrs.get("delay_ms", delay_ms)
    ranked = summary.sort_values("p99_ms")
    best, rest = ranked.index[0], ranked.iloc[1:]
    lines = []
    if len(rest):
        runner_up = rest.index[0]
        gap = rest.iloc[0]["p99_ms"] - ranked.iloc[0]["p99_ms"]
        ratio = rest.iloc[0]["p99_ms"] / max(ranked.iloc[0]["p99_ms"], 0.1)
        lines.append(f"Lower p99: {best}, {ranked.iloc[0]['p99_ms']:,.0f} ms against {runner_up}'s "
                     f"{rest.iloc[0]['p99_ms']:,.0f} ms ({gap:,.0f} ms lower, {ratio:.1f}x).")
    lines.append("Share of the steady-state requests the slow instance served: " + "; ".join(
        f"{name} {row['share_to_slow']:.1%} ({row['to_slow']:.0f} of {row['requests']:.0f})"
        for name, row in summary.iterrows()) + ".")
    load = summary.attrs.get("load_average") or []
    cores = summary.attrs.get("cores", os.cpu_count() or 1)
    load_words = (f"load average {min(load):.1f} to {max(load):.1f} on {cores} cores during the run"
                  if load else "load average not available on this system")
    busy = bool(load) and max(load) > cores
    if "least_outstanding" not in summary.index:
        return "\n".join(lines + [f"({load_words}.)"])

    lo = summary.loc["least_outstanding"]
    too_few = ["least_outstanding"] if lo["requests"] < ENOUGH_FOR_P99 else []
    shown = best == "least_outstanding" and lo["share_to_slow"] < 0.01 and not too_few
    if shown:
        lines.append(f"As the lesson says: least outstanding sent the slow instance under 1% of its requests, so its "
                     f"slowest 1% were answered by the fast instances; "
                     + (f"the others sent it {summary.drop(index='least_outstanding')['share_to_slow'].min():.0%} or "
                        "more, so their p99 is a slow answer"
                        + (f" (the {delay_ms:,.0f} ms delay and more)." if delay_ms else ".")
                        if len(summary) > 1 else "")
                     + f" ({load_words}.)")
    else:
        lines.append("This run did NOT show least outstanding with the lower p99 and under 1% of its requests to "
                     "the slow instance. What was measured:")
        if too_few:
            lines.append(f"- too few steady-state requests for a p99 ({', '.join(too_few)}: under {ENOUGH_FOR_P99}); "
                         "raise SLOW_SECONDS.")
        if lo["share_to_slow"] >= 0.01:
            fast = summary.attrs.get("fast_instances") or 2
            expected = (f" With the fast instances answering in {lo['fast_ones_p50_ms']:,.0f} ms (median) and the slow "
                        f"one {delay_ms:,.0f} ms later, about {lo['fast_ones_p50_ms'] / (fast * delay_ms):.1%} was to "
                        "be expected: (fast latency) / (fast instances x delay)." if delay_ms else "")
            lines.append(f"- least outstanding sent the slow instance {lo['share_to_slow']:.1%} of its requests, over "
                         f"1%, so its p99 is a slow answer.{expected} {load_words[0].upper() + load_words[1:]}"
                         + (": other processes wanted more cores than there are, so the fast instances answered "
                            "slower and the slow one's share grew." if busy else "."))
        elif best != "least_outstanding":
            lines.append(f"- least outstanding kept the slow instance under 1% ({lo['share_to_slow']:.1%}), yet its "
                         f"p99 ({lo['p99_ms']:,.0f} ms) was not the lowest: its slowest 1% were fast-instance answers "
                         f"that waited that long (median of the fast ones {lo['fast_ones_p50_ms']:,.0f} ms); "
                         f"{load_words}.")
        else:
            lines.append(f"- ({load_words}.)")
    others = summary.drop(index="least_outstanding")
    if len(others) and (lo["p50_ms"] > 1.25 * others["p50_ms"]).all():  # a quarter higher: not noise
        lines.append(f"Least outstanding's p50 is the higher ({lo['p50_ms']:,.0f} ms against "
                     f"{others['p50_ms'].min():,.0f} ms): nearly all its requests go to the fast instances, which "
                     "then queue, while round robin parks a third of its requests at the slow one, out of the "
                     f"fast ones' way (requests per second served: least outstanding {lo['req_per_s']:,.0f}, "
                     + ", ".join(f"{name} {row['req_per_s']:,.0f}" for name, row in others.iterrows()) + ").")
    return "\n".join(lines)


def cache_answers_in_words(cached: pd.DataFrame) -> str:
    """What the gateway answered on each path of ``response_cache_side_by_side`` (X-Gateway-Cache), and how
    busy the machine was: two humps in the "gateway cache" histogram with no MISS among its answers are not
    the cache, they are requests that waited for a core."""
    counts = cached.groupby("path", sort=False)["gateway_cache"].value_counts().unstack(fill_value=0)
    parts = ["; ".join(f"{path}: " + ", ".join(f"{n} {header or 'none'}" for header, n in row.items() if n)
                       for path, row in counts.iterrows())]
    hits = cached.loc[cached["gateway_cache"] == "HIT", "latency_ms"]
    wide = False
    if len(hits):
        low, high = hits.quantile(0.1), hits.quantile(0.9)
        wide = high > 2 * low
        parts.append(f"The HITs took {low:.1f} ms (p10) to {high:.1f} ms (p90): a {high / low:.1f}x spread for "
                     "the very same answer from the gateway's memory, with no MISS among them"
                     + (" — a wide histogram." if wide else
                        f" — a narrow spread: {(high - low):.1f} ms from p10 to p90, so any humps the histogram shows "
                        "lie that close together, all of them HITs."))
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        parts.append(f"Load average {load:.1f} on {cores} cores: " + (
            ("a HIT often waits for a core; those waits widened its histogram (or made a second, slower hump)."
             if wide else "busy, yet the HITs' spread stayed narrow.") if load > cores else
            "a quiet machine, so a HIT should rarely wait for a core."))
    except OSError:
        pass
    return "\n".join(parts)


async def _open_loop(settings: Settings, path: str, rate: float, seconds: float) -> list[dict]:
    read = Request("GET", path)
    async with aiohttp.ClientSession(headers=gateway_headers(settings, ask_the_service=True)) as session:
        return (await open_loop(session, settings.url_of("gateway"), lambda _: read, rate, seconds)).records


def rate_limit_in_action(limit: int = 20, window_s: float = 1.0, rate: float = 40.0, seconds: float = 4.0,
                         settings: Settings | None = None) -> pd.DataFrame:
    """Turn the gateway's limiter on (``limit`` per ``window_s`` per client), send ``rate`` req/s for
    ``seconds`` as one client, turn it off again. One row per request: t_s, status, retry_after_s."""
    settings = settings or get_settings()
    with gateway_admin(settings) as admin:
        before = admin.get("/services").json()["rate_limit"] or {"requests": 0, "window_s": 1.0}
        admin.put("/admin/ratelimit", json={"requests": limit, "window_s": window_s}).raise_for_status()
        try:
            rows = run_async(_open_loop(settings, PATHS["customer"], rate, seconds))
        finally:
            admin.put("/admin/ratelimit", json=before).raise_for_status()
    df = pd.DataFrame(rows).rename(columns={"intended_s": "t_s"})
    df["retry_after_s"] = df["retry_after"].replace("", None)
    df["allowed"] = df["status"] != 429
    return df


def response_cache_side_by_side(reads: int = 200, path: str = PATHS["policy"],
                                settings: Settings | None = None) -> pd.DataFrame:
    """The same read through the gateway, alternately past its response cache (``Cache-Control: no-cache``:
    a hop to the policy service and its Redis cache) and from it. One row per read: path, latency_ms,
    gateway_cache (``REFRESH``/``HIT``/``MISS``), served_by."""
    settings = settings or get_settings()
    labels = {"past the gateway cache (no-cache)": gateway_headers(settings, ask_the_service=True),
              "gateway cache": gateway_headers(settings)}
    rows = []
    with httpx.Client(base_url=settings.url_of("gateway"), timeout=10) as client:
        for i in range(-10, reads):  # ten warm-up rounds, not recorded
            for label, headers in labels.items():
                started = time.perf_counter()
                response = client.get(path, headers=headers)
                if i >= 0:
                    rows.append({"path": label, "latency_ms": (time.perf_counter() - started) * 1000,
                                 "gateway_cache": response.headers.get("x-gateway-cache", ""),
                                 "served_by": response.headers.get("x-served-by", "")})
    return pd.DataFrame(rows)


def write_elsewhere_reaches_the_gateway(settings: Settings | None = None, ttl_s: float = 60.0) -> dict:
    """A policy is read through the gateway (so the gateway keeps it), then changed *straight at the policy
    service* — the gateway never sees that write. How long does the gateway keep answering the old value?

    The gateway's TTL is raised to ``ttl_s`` meanwhile (and put back), so only the policy service's event
    can explain a fresh answer before then. Returns the write's time and what the gateway answered after it.
    """
    settings = settings or get_settings()
    with gateway_admin(settings) as admin, \
            httpx.Client(base_url=settings.url_of("gateway"), headers=gateway_headers(settings), timeout=10) as api, \
            service_client(settings, "policy") as policy_service:
        before = admin.get("/services").json()["response_cache"]["ttl_s"]
        admin.put("/admin/gateway-cache", json={"ttl_s": ttl_s}).raise_for_status()
        try:
            created = api.post("/api/policies", json={
                "customer_id": "CUS-000001", "product": "home", "premium_cents": 50_000,
                "coverage_cents": 10_000_000, "start_date": "2026-01-01", "end_date": "2027-01-01"})
            created.raise_for_status()
            path = f"/api/policies/{created.json()['id']}"
            api.get(path)
            kept = api.get(path).headers.get("x-gateway-cache")
            written = time.perf_counter()
            policy_service.patch(path.removeprefix("/api"), json={"premium_cents": 65_000}).raise_for_status()
            acknowledged_ms = (time.perf_counter() - written) * 1000
            stale_answers, seen_ms = 0, None
            while (time.perf_counter() - written) < 5:
                answer = api.get(path)
                if answer.json()["premium_cents"] == 65_000:
                    seen_ms = (time.perf_counter() - written) * 1000
                    break
                stale_answers += 1
        finally:
            admin.put("/admin/gateway-cache", json={"ttl_s": before}).raise_for_status()
    return {"policy": path, "before_the_write": kept, "write_acknowledged_ms": round(acknowledged_ms, 2),
            "new_value_seen_ms": round(seen_ms, 2) if seen_ms is not None else None,
            "stale_answers_after_the_write": stale_answers}
