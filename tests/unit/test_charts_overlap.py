"""Every public chart in ``labkit.charts``, drawn on sample data shaped like the experiments' own, must be
readable: no two texts (tick labels, titles, axis labels, annotations, legend entries) on top of each
other, no legend over plotted data, no legend entry for a series that draws nothing.

The functions are enumerated with ``inspect``: a new chart without sample data here fails the test.
The samples are made hard on purpose (latencies spread over three decades, two strategies on the same
point, events a few hundredths of a second apart), because that is what the lessons' real runs produce.
"""

from __future__ import annotations

import inspect
import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import Collection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.path import Path as MplPath  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from labkit import charts  # noqa: E402

RNG = np.random.default_rng(7)

#: Public functions of the module that return a table or a label, not a Figure (still need a sample).
NOT_FIGURES = {"percentile_table", "instance_label"}


def _latencies(n, median, spread=0.6):
    return RNG.lognormal(np.log(median), spread, n)


def _two_groups():
    return pd.DataFrame({"path": ["MISS (system of record)"] * 150 + ["HIT (Redis)"] * 150,
                         "latency_ms": np.concatenate([_latencies(150, 30), _latencies(150, 0.9)])})


def _traffic(instances, milestones, newcomer=None, failed_between=None):
    rows = []
    for i in range(240):
        t = i * 0.025
        ok = not (failed_between and failed_between[0] <= t < failed_between[1] and i % 3 == 0)
        serving = [x for x in instances if x != newcomer or t >= milestones.get("gateway_routes", 0)]
        rows.append({"t_s": t, "status": 200 if ok else 502, "served_by": serving[i % len(serving)] if ok else "",
                     "ok": ok, "latency_ms": float(_latencies(1, 3)[0])})
    df = pd.DataFrame(rows)
    df.attrs["milestones"] = milestones
    return df


def _load_records(runs=(("baseline", 1.0), ("slow", 1.3))):
    routes = ["GET /api/policies/{id}", "GET /api/customers/{id}", "GET /api/claims/{id}", "POST /api/claims",
              "POST /api/auth/login"]
    rows = []
    for run, factor in runs:
        for i in range(400):
            route = routes[i % len(routes)]
            base = 110 if "login" in route else 4
            rows.append({"run": run, "route": route, "latency_ms": float(_latencies(1, base * factor)[0]),
                         "status": 200})
    return pd.DataFrame(rows)


def _timeline():
    t = np.arange(0, 4, 0.2)
    return pd.DataFrame({"t_s": t, "req_s": 150 + RNG.normal(0, 5, len(t)), "errors_s": np.where(t > 3, 5.0, 0.0),
                         "hit_rate": np.linspace(0.4, 0.99, len(t)), "p50_ms": 3.0, "p99_ms": 30.0})


def _fault(failures=True):
    t = np.arange(0, 7, 1 / 30)
    kind = np.array(["read", "read", "write"] * len(t))[:len(t)]
    down = (t >= 2) & (t < 4.2)
    ok = ~down | (kind == "read") if failures else np.ones(len(t), bool)
    latency = np.where(down, _latencies(len(t), 300), _latencies(len(t), 4))
    requests = pd.DataFrame({"t_s": t, "kind": kind, "status": np.where(ok, 200, 502), "created": None,
                             "latency_ms": latency, "ok": ok})
    events = pd.DataFrame([{"t_s": 2.0, "end_s": 2.02, "event": "claims SIGKILLed"},
                           {"t_s": 4.0, "end_s": 5.4, "event": "claims restarted"}])
    return requests, events


def _slot_map():
    ports = [21521, 21522, 21523, 21524, 21525, 21526]
    return pd.DataFrame({"role": ["primary"] * 3 + ["replica"] * 3, "memory_mb": [4.3, 4.1, 3.5, 3.6, 3.7, 3.3],
                         "cached copies": [15, 23, 22] * 2, "audit trails": [20, 60, 0] * 2, "streams": [1, 1, 0] * 2,
                         "other": [34, 40, 31] * 2}, index=[f"127.0.0.1:{p}" for p in ports])


def _failover(failures=True):
    t = np.arange(0, 9, 1 / 20)
    down = (t >= 2.0) & (t < 5.8)
    ok = ~(down & (np.arange(len(t)) % 4 == 0)) if failures else np.ones(len(t), bool)
    requests = pd.DataFrame({"t_s": t, "ok": ok, "status": np.where(ok, 201, 503),
                             "latency_ms": np.where(down, _latencies(len(t), 400), _latencies(len(t), 20))})
    events = pd.DataFrame([{"t_s": 2.0, "end_s": 2.0, "event": "primary :21521 SIGKILLed"},
                           {"t_s": 5.81, "end_s": 5.81, "event": "replica promoted"},
                           {"t_s": 5.95, "end_s": 5.95, "event": "first write to its slots"}])
    return requests, events


def _coherence_summary():
    return pd.DataFrame({"hit_rate": [0.0, 0.95, 0.93, 0.93, 0.97], "stale_rate": [0.0, 0.30, 0.01, 0.01, 0.0]},
                        index=pd.Index(["no_cache", "ttl_only", "delete_with_token", "versioned_keys", "near_cache"],
                                       name="strategy"))


def _staleness_reads():
    rows = []
    for strategy, stale_ms in (("ttl_only", 800), ("delete_on_write", 3), ("delete_with_token", 0)):
        for i in range(200):
            stale = stale_ms > 0 and i % 4 == 0
            rows.append({"strategy": strategy, "stale": stale,
                         "staleness_ms": float(_latencies(1, stale_ms, 1.2)[0]) if stale else 0.0})
    return pd.DataFrame(rows)


def _concurrency():
    rows = []
    for c, req_s, p50 in ((1, 300, 3.0), (2, 520, 3.5), (4, 700, 2.9), (8, 820, 9.0), (16, 840, 19.0),
                          (32, 845, 38.0)):
        rows.append({"run": f"c{c}", "mode": "closed", "concurrency": c, "req_s": req_s, "p50_ms": p50,
                     "p90_ms": p50 * 2.2, "p99_ms": p50 * 6, "p99.9_ms": p50 * 9})
    return pd.DataFrame(rows)


def _comparison():
    routes = ["GET /api/policies/{id}", "GET /api/customers/{id}", "GET /api/claims/{id}", "POST /api/claims"]
    return pd.concat({"p50_ms": pd.DataFrame({"baseline": [3.1, 2.9, 3.0, 8.0], "policy SoR +5 ms": [8.2, 3.0, 3.1, 13.5]},
                                             index=routes),
                      "p99_ms": pd.DataFrame({"baseline": [9.0, 8.0, 8.5, 20.0],
                                              "policy SoR +5 ms": [15.0, 8.3, 8.4, 30.0]}, index=routes)}, axis=1)


def _rejoin_exact_sample():
    df = _traffic(["claims-41001-a1b2", "claims-41002-c3d4", "claims-41003-e5f6"],
                  {"restarted": 1.0, "registered": 2.55, "gateway_routes": 2.58, "first_served": 2.6},
                  newcomer="claims-41003-e5f6")
    df["answered_s"] = df["t_s"] + df["latency_ms"] / 1000
    df.attrs["instance"] = "claims-41003-e5f6"
    return df


def _collapsed_stacks():
    """py-spy's collapsed stacks of a cached read, shaped like a real profile (deep, many narrow frames)."""
    base = ["run (asyncio/runners.py:118)", "run_asgi (uvicorn/protocols/http/httptools_impl.py:409)"]
    base += [f"__call__ (starlette/middleware/m{i}.py:{i})" for i in range(8)]
    route = [*base, "app (fastapi/routing.py:161)", "get_policy (services/policy/routes.py:74)",
             "read (services/platform/service_cache.py:61)"]
    lines = [f"{';'.join(route)};execute (redis/asyncio/client.py:2262) 90",
             f"{';'.join(route)};loads (json/__init__.py:346) 12",
             f"{';'.join(base)};info (logging/__init__.py:1489) 9",
             f"{';'.join(base[:2])};data_received (uvicorn/protocols/http/httptools_impl.py:120) 40"]
    lines += [f"{';'.join(base)};f{i} (starlette/x.py:{i}) {1 + i % 3}" for i in range(40)]
    return "\n".join(lines)


def _trace(redis: bool = False):
    spans = [  # (depth, name, service, start_ms, duration_ms)
        (0, "POST /api/claims", "gateway", 0.0, 9.0), (1, "POST /claims", "gateway", 0.4, 8.2),
        (2, "POST /claims", "claims", 0.9, 7.5), (3, "GET /policies/POL-000001", "claims", 1.2, 2.1),
        (4, "GET /policies/POL-000001", "policy", 1.5, 1.6), (5, "GET", "policy", 1.7, 0.2),
        (3, "claim.submitted publish", "claims", 6.8, 0.4), (4, "EVALSHA", "claims", 6.9, 0.3),
        (3, "claim.submitted process", "worker", 9.5, 4.0), (4, "POST /claims/CLM-000001/status", "worker", 10.0, 3.0),
        (5, "POST /claims/CLM-000001/status", "claims", 10.3, 2.5)]
    df = pd.DataFrame([{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "depth": d, "name": n, "service": s,
                        "start_ms": t, "duration_ms": dt} for d, n, s, t, dt in spans])
    if redis:  # as labkit.traces.load gives them: the Redis calls say so in their attributes
        df["attributes"] = [{"db.system": "redis"} if n in ("GET", "EVALSHA") else {} for n in df["name"]]
    return df


SAMPLES = {
    "latency_distribution": lambda: charts.latency_distribution(_two_groups()),
    "latency_distribution_long_title": lambda: charts.latency_distribution(  # lesson 00's: once ran into the legend
        _two_groups(), title="GET one policy: straight to the service, through the gateway, from its copy"),
    "percentile_table": lambda: charts.percentile_table(_two_groups()),
    "instance_label": lambda: charts.instance_label("claims-44547-9052", {44547: "claims#3"}),
    "session_ttl_timeline": lambda: charts.session_ttl_timeline(pd.DataFrame(
        [{"session": s, "t_s": t, "ttl_s": max(0.0, (4 if s == "idle" else 3) - t % (4 if s == "idle" else 3))}
         for s in ("touched every 1 s", "idle") for t in np.arange(0, 7, 0.25)]), idle_s=3, absolute_s=6),
    "login_attempts": lambda: charts.login_attempts(pd.DataFrame(
        {"attempt": range(1, 9), "password": ["wrong"] * 8, "status": [401] * 5 + [429] * 3,
         "latency_ms": [60, 62, 61, 64, 60, 2, 2, 2]})),
    "received_per_listener": lambda: charts.received_per_listener(pd.DataFrame(
        [{"phase": p, "listener": listener, "published": 10, "received": r}
         for p, vals in (("1 both online", (10, 10)), ("2 listeners offline", (0, 10)), ("3 back online", (10, 10)))
         for listener, r in zip(("pub/sub subscriber", "consumer group"), vals)])),
    "claim_timeline": lambda: charts.claim_timeline(pd.DataFrame(
        {"t_s": [0.0, 0.31, 0.62, 0.93], "to": ["submitted", "under_review", "approved", "paid"],
         "actor": ["customer", "adjuster", "adjuster", "payments"],
         "note": [None, "moved to under_review", "moved to approved", "moved to paid"]}), "CLM-000042"),
    "pending_per_consumer": lambda: charts.pending_per_consumer(pd.DataFrame(
        [{"moment": m, "consumer": c, "pending": p, "reclaimed_by_B": 7}
         for m, vals in (("1 worker-A died mid-batch", (7, 0)), ("2 worker-B ran before 1000 ms idle", (7, 0)),
                         ("3 worker-B after XAUTOCLAIM", (0, 0)))
         for c, p in zip(("worker-A (dies)", "worker-B"), vals)])),
    "latency_cdf": lambda: charts.latency_cdf(_load_records()),
    "latency_cdf_nothing_to_draw": lambda: charts.latency_cdf(_load_records().iloc[:0]),
    "throughput_over_time": lambda: charts.throughput_over_time(_timeline()),
    "hit_rate_over_time": lambda: charts.hit_rate_over_time(_timeline()),
    "percentiles_vs_concurrency": lambda: charts.percentiles_vs_concurrency(_concurrency()),
    "compare_runs": lambda: charts.compare_runs(
        _comparison(), "p50_ms", title="p50 per route, caches emptied before each round: baseline vs policy SoR +5 ms"),
    "fault_timeline": lambda: charts.fault_timeline(*_fault(), "The claims service killed, then restarted"),
    "cold_vs_warm_latency": lambda: charts.cold_vs_warm_latency(_two_groups(), 25),
    "cache_hit_rate_lines": lambda: charts.cache_hit_rate_lines(pd.DataFrame(
        [{"policy": p, "bucket": b, "hit": bool(RNG.random() < r)} for p, r in (("allkeys-lru", 0.8), ("noeviction", 0.3))
         for b in range(0, 1000, 100) for _ in range(20)]), by="policy", x="bucket", xlabel="request number",
        title="Hit rate per eviction policy"),
    "round_trips_vs_n": lambda: charts.round_trips_vs_n(pd.DataFrame(
        [{"method": m, "n": n, "latency_ms": k * n ** e * float(RNG.uniform(0.9, 1.1))}
         for m, k, e in (("N x GET", 0.15, 1.0), ("MGET", 0.2, 0.3), ("pipeline", 0.22, 0.35))
         for n in (1, 2, 5, 10, 20, 50, 100, 200, 500) for _ in range(5)])),
    "hit_counters": lambda: charts.hit_counters(pd.DataFrame(
        {"counted by": ["the service (/stats)", "Redis (INFO keyspace)"], "hits": [900, 905], "misses": [100, 98],
         "hit_rate": [0.9, 0.902]})),
    "kill_timeline": lambda: charts.kill_timeline(_traffic(
        ["claims-41001-a1b2", "claims-41002-c3d4", "claims-41003-e5f6"],
        {"killed": 2.0, "gateway_stops_routing": 2.03, "registry_expires": 5.0}, failed_between=(2.0, 2.05))),
    "rejoin_timeline": lambda: charts.rejoin_timeline(_traffic(
        ["claims-41001-a1b2", "claims-41002-c3d4", "claims-41003-e5f6"],
        {"restarted": 1.0, "registered": 2.55, "gateway_routes": 2.58}, newcomer="claims-41003-e5f6")),
    "rejoin_exact": lambda: charts.rejoin_exact(_rejoin_exact_sample()),
    "requests_per_instance": lambda: charts.requests_per_instance(pd.DataFrame(
        [{"strategy": s, "served_by": f"claims-4100{i}-ab{i}"} for s in ("round_robin", "random", "least_connections")
         for i in (1, 2, 3) for _ in range(int(RNG.integers(20, 40)))])),
    "p99_per_strategy": lambda: charts.p99_per_strategy(pd.DataFrame(
        [{"strategy": s, "latency_ms": float(x), "served_by": f"claims-4100{1 + i % 3}-ab"}
         for s, m in (("round_robin", 12), ("least_connections", 5), ("weighted", 8))
         for i, x in enumerate(_latencies(100, m))]),
        slow_instance="claims#2", slow_id="claims-41002-ab"),
    "p99_per_strategy_one_slow_second": lambda: charts.p99_per_strategy(pd.DataFrame(
        [{"strategy": "round_robin", "latency_ms": 1000.0 + x if i % 3 == 1 else x, "served_by": f"claims-4100{1 + i % 3}-ab"}
         for i, x in enumerate(_latencies(300, 12))]
        + [{"strategy": "least_outstanding", "latency_ms": 1000.0 + x if i == 5 else 2 * x,
            "served_by": "claims-41002-ab" if i == 5 else f"claims-4100{1 + 2 * (i % 2)}-ab"}
           for i, x in enumerate(_latencies(300, 12))]),
        slow_instance="claims#2", slow_id="claims-41002-ab"),
    "rate_limit_over_time": lambda: charts.rate_limit_over_time(pd.DataFrame(
        {"t_s": np.arange(0, 4, 0.02), "allowed": [i % 50 < 20 for i in range(200)]}), limit=20),
    "stale_vs_hit_rate": lambda: charts.stale_vs_hit_rate(_coherence_summary()),
    "staleness_windows": lambda: charts.staleness_windows(_staleness_reads()),
    "keys_before_after": lambda: charts.keys_before_after(pd.DataFrame(
        [{"policy": p, "kind": k, "before": b, "after": a}
         for p, rows in (("noeviction", ((104, 104), (431, 434), (10, 10), (5, 5))),
                         ("allkeys-lru", ((104, 31), (441, 190), (14, 2), (5, 3))))
         for k, (b, a) in zip(("cached copies", "audit trails", "sessions", "service registrations"), rows)])
        .set_index(["policy", "kind"])),
    "flame_graph": lambda: charts.flame_graph(_collapsed_stacks()),
    "layer_shares": lambda: charts.layer_shares(pd.DataFrame(
        [{"run": run, "layer": layer, "share": share * k} for run, k in (("before", 1.0), ("after", 0.8))
         for layer, share in (("framework (FastAPI, Starlette)", 0.34), ("Redis client", 0.27),
                              ("event loop (asyncio)", 0.12), ("server (uvicorn, HTTP parsing)", 0.11),
                              ("our code (routes, patterns)", 0.08), ("logging", 0.03), ("identity check", 0.03))])),
    "stampede_loads": lambda: charts.stampede_loads(pd.DataFrame(
        [{"protection": p, "refresh": r} for p, n in (("none", 48), ("lock", 1), ("early refresh", 1))
         for r in range(5) for _ in range(n)])),
    "waterfall": lambda: charts.waterfall(_trace()),
    "keys_per_node": lambda: charts.keys_per_node(_slot_map(), ["cached copies", "audit trails", "streams", "other"]),
    "failover_timeline": lambda: charts.failover_timeline(*_failover(), "A primary SIGKILLed under claim traffic"),
    "failover_timeline_no_failures": lambda: charts.failover_timeline(*_failover(failures=False),
                                                                      "A primary SIGKILLed under claim traffic"),
    "events_lost": lambda: charts.events_lost(pd.DataFrame(
        {"committed": [8, 8], "exactly_one": [0, 8], "lost": [8, 0], "doubled": [0, 0]},
        index=pd.Index(["none (outbox_replica_acks=0)", "WAIT 1 (outbox_replica_acks=1)"], name="safeguard"))),
    "ops_per_node": lambda: charts.ops_per_node(pd.DataFrame(
        {"before (cmd/s)": [12.4, 55.4, 42.0, 6.9, 0.0], "after (cmd/s)": [5.8, 53.1, 36.5, 8.1, 44.2],
         "keys after": [116, 280, 139, 280, 574]},
        index=["127.0.0.1:21521", "127.0.0.1:21522", "127.0.0.1:21523", "127.0.0.1:21525", "127.0.0.1:21980 (new)"])),
    "cluster_cost": lambda: charts.cluster_cost(pd.DataFrame(
        {"one server": [19993.0, 13730.0, 6275.0], "cluster": [8588.0, 2378.0, 1590.0]},
        index=["GET one key", "MGET of 10 keys", "pipeline of 10 GETs"])),
    "waterfalls": lambda: charts.waterfalls({"cache MISS (POL-000007)": _trace(redis=True),
                                             "cache HIT (POL-000007)": _trace(redis=True).iloc[:6]}),
    "self_time_bars": lambda: charts.self_time_bars(pd.DataFrame(
        {"service": ["policy", "claims", "gateway", "worker"] * 2, "self_ms": [2.1, 6.3, 1.6, 0.7, 52.4, 6.0, 1.8, 0.6],
         "run": ["as it is"] * 4 + ["policy slowed by 50 ms"] * 4})),
}


def public_functions():
    return sorted(name for name, fn in inspect.getmembers(charts, inspect.isfunction)
                  if not name.startswith("_") and fn.__module__ == charts.__name__)


def test_every_public_chart_function_has_sample_data():
    missing = set(public_functions()) - set(SAMPLES)
    assert not missing, f"add sample data for: {sorted(missing)}"


# --- what "readable" means, measured on the drawn canvas ---------------------------------------------

def _visible_ticklabels(axis) -> list[Text]:
    labels = []
    if not axis.get_visible():
        return labels
    for tick in axis._update_ticks():  # the ticks that are drawn at the current view limits
        for label in (tick.label1, tick.label2):
            if label.get_visible() and label.get_text().strip():
                labels.append(label)
    return labels


def _texts(fig: Figure) -> list[Text]:
    """Every text a reader sees: tick labels, titles, axis labels, annotations, legend entries."""
    texts = [t for t in fig.texts]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += _visible_ticklabels(ax.xaxis) + _visible_ticklabels(ax.yaxis)
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        texts += list(ax.texts)
        if ax.get_legend():
            texts += ax.get_legend().get_texts() + [ax.get_legend().get_title()]
    for legend in fig.legends:
        texts += legend.get_texts() + [legend.get_title()]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def _shrunk(box: Bbox, px: float = 1.0) -> Bbox:
    return Bbox.from_extents(box.x0 + px, box.y0 + px, box.x1 - px, box.y1 - px)


def _legends(fig: Figure):
    found = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [legend for legend in found if legend.get_visible()]


def _data_paths(ax):
    """(label, display-space path, filled) for every line, patch and collection plotted in ``ax``."""
    for line in ax.lines:
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        xy = xy[np.isfinite(xy).all(axis=1)]
        if line.get_visible() and len(xy):
            yield line, MplPath(xy), False
    for patch in ax.patches:
        box = patch.get_window_extent()
        if patch.get_visible() and box.width > 0.5 and box.height > 0.5:
            yield patch, patch.get_path().transformed(patch.get_transform()), True
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        offsets = coll.get_offsets()
        if len(coll.get_paths()) and len(offsets) > 1:  # a scatter: one marker per offset
            points = coll.get_offset_transform().transform(np.asarray(offsets, float))
            for x, y in points[np.isfinite(points).all(axis=1)]:
                yield coll, MplPath([(x - 3, y - 3), (x + 3, y - 3), (x + 3, y + 3), (x - 3, y + 3), (x - 3, y - 3)]), True
        else:
            for path in coll.get_paths():
                yield coll, path.transformed(coll.get_transform()), True


def readability_problems(fig: Figure) -> list[str]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    texts = _texts(fig)
    boxes = [(t, t.get_window_extent(renderer)) for t in texts]
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        if _shrunk(box_a).overlaps(_shrunk(box_b)):
            problems.append(f"texts overlap: {a.get_text()!r} and {b.get_text()!r}")
    for ax in fig.axes:  # a title wider than its axes runs out towards the legend beside them
        if ax.get_title() and ax.title.get_window_extent(renderer).width > ax.get_window_extent(renderer).width + 1:
            problems.append(f"title wider than its axes: {ax.get_title()!r}")
    for legend in _legends(fig):
        box = _shrunk(legend.get_window_extent(renderer), 0.5)
        for ax in fig.axes:
            for artist, path, filled in _data_paths(ax):
                if path.intersects_bbox(box, filled=filled):
                    problems.append(f"legend over plotted data: {artist.get_label() or type(artist).__name__}")
                    break
        for text, handle in zip(legend.get_texts(), legend.legend_handles):
            label = text.get_text()
            drawn = [a for ax in fig.axes for a in [*ax.lines, *ax.patches, *ax.collections, *ax.containers]
                     if getattr(a, "get_label", lambda: None)() == label]
            if drawn and not any(_draws_something(a) for a in drawn):
                problems.append(f"legend names a series that draws nothing: {label!r}")
    return problems


def _draws_something(artist) -> bool:
    if isinstance(artist, Line2D):
        xy = np.asarray(artist.get_xydata(), float)
        return artist.get_visible() and bool(np.isfinite(xy).all(axis=1).any())
    if isinstance(artist, Patch):
        box = artist.get_window_extent()
        return artist.get_visible() and box.width > 0.5 and box.height > 0.5
    if isinstance(artist, Collection):
        return artist.get_visible() and len(artist.get_paths()) > 0
    patches = getattr(artist, "patches", None)  # a BarContainer: one bar at least with a height
    if patches is not None:
        return any(_draws_something(p) for p in patches)
    return True


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_chart_is_readable(name):
    result = SAMPLES[name]()
    if name in NOT_FIGURES:
        assert not isinstance(result, Figure)
        return
    assert isinstance(result, Figure), f"{name} should return a Figure"
    try:
        for ax in result.axes:
            assert ax.get_xlabel() or ax.get_ylabel() or not ax.has_data() or ax.get_title(), \
                f"{name}: an axes without labels"
        problems = readability_problems(result)
        assert not problems, f"{name}:\n  " + "\n  ".join(sorted(set(problems)))
    finally:
        plt.close(result)


def test_the_overlap_check_can_fail():
    """A chart built to be unreadable is caught: the check is not vacuous."""
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [1, 2, 3], label="a line")
    ax.legend(loc="center")
    ax.text(2, 2, "one label")
    ax.text(2, 2, "another label")
    problems = readability_problems(fig)
    plt.close(fig)
    assert any("legend over plotted data" in p for p in problems)
    assert any("texts overlap" in p for p in problems)
