"""Every chart the lab draws: one module, one style (titles, units, labelled axes).

Each function takes a DataFrame an experiment returned and gives back a matplotlib Figure, so a notebook
shows it inline and ``labkit analyze`` saves it as PNG.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter, ScalarFormatter
import numpy as np
import pandas as pd

STYLE = {"figure.figsize": (8, 4.2), "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "figure.dpi": 100}
plt.rcParams.update(STYLE)


def latency_distribution(df: pd.DataFrame, by: str = "path", value: str = "latency_ms",
                         title: str = "Latency per request", log_x: bool = True):
    """Overlaid histograms (log-spaced bins) with the p50 of each group marked."""
    fig, ax = plt.subplots()
    low, high = max(df[value].min(), 1e-3), df[value].max()
    bins = np.logspace(np.log10(low), np.log10(high * 1.05), 50) if log_x else 50
    for label, group in df.groupby(by, sort=False):
        p50 = group[value].median()
        ax.hist(group[value], bins=bins, alpha=0.55, label=f"{label} (p50 {p50:.2f} ms)")
        ax.axvline(p50, linestyle="--", linewidth=1, color=ax.patches[-1].get_facecolor())
    if log_x:
        ax.set_xscale("log")
        _plain_numbers(ax.xaxis)
        ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("latency (ms, log scale)" if log_x else "latency (ms)")
    ax.set_ylabel("requests")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def percentile_table(df: pd.DataFrame, by: str = "path", value: str = "latency_ms") -> pd.DataFrame:
    """p50/p90/p99 and count per group, in ms, rounded for reading."""
    q = df.groupby(by, sort=False)[value].quantile([0.5, 0.9, 0.99]).unstack()
    q.columns = ["p50_ms", "p90_ms", "p99_ms"]
    q["requests"] = df.groupby(by, sort=False)[value].count()
    return q.round(3)


def session_ttl_timeline(df: pd.DataFrame, idle_s: float, absolute_s: float):
    """TTL of each session over time, with the idle timeout and the absolute cap marked."""
    fig, ax = plt.subplots()
    for label, group in df.groupby("session", sort=False):
        ax.plot(group["t_s"], group["ttl_s"], label=label, linewidth=2)
    ax.axhline(idle_s, linestyle=":", color="grey", label=f"idle timeout ({idle_s:g} s)")
    ax.axvline(absolute_s, linestyle="--", color="red", label=f"absolute cap ({absolute_s:g} s after login)")
    ax.set_xlabel("seconds since login")
    ax.set_ylabel("TTL of the session key in Redis (s)")
    ax.set_title("Sliding idle timeout vs absolute cap, measured in Redis")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def login_attempts(df: pd.DataFrame):
    """One bar per login attempt, coloured by what the gateway answered."""
    colours = {200: "tab:green", 401: "tab:orange", 429: "tab:red"}
    fig, ax = plt.subplots()
    ax.bar(df["attempt"], df["latency_ms"], color=[colours.get(s, "grey") for s in df["status"]])
    labels = {200: "200 logged in", 401: "401 wrong password (scrypt checked it)",
              429: "429 locked out (password not even checked)"}
    ax.legend(handles=[Patch(color=colours[s], label=labels[s]) for s in colours], loc="upper right")
    ax.set_xlabel("attempt")
    ax.set_ylabel("response time (ms)")
    ax.set_title("Brute force against one account")
    fig.tight_layout()
    return fig


def received_per_listener(df: pd.DataFrame):
    """Lesson 02: events published per phase vs received by a pub/sub subscriber and a consumer group."""
    table = df.pivot(index="phase", columns="listener", values="received")
    published = df.groupby("phase")["published"].first()
    fig, ax = plt.subplots()
    x = np.arange(len(table.index))
    width = 0.8 / (len(table.columns) + 1)
    ax.bar(x - width, published.reindex(table.index), width, color="lightgrey", label="published")
    for i, listener in enumerate(table.columns):
        ax.bar(x + i * width, table[listener], width, label=listener)
    ax.set_xticks(x, table.index)
    ax.set_ylabel("claim events")
    ax.set_title("Offline for phase 2: pub/sub misses it, the consumer group catches up")
    ax.legend()
    fig.tight_layout()
    return fig


def claim_timeline(df: pd.DataFrame, claim_id: str):
    """Lesson 02: one claim's audit trail (from its event stream) as a step line through its statuses."""
    order = ["submitted", "under_review", "approved", "rejected", "paid"]
    fig, ax = plt.subplots()
    levels = [order.index(s) for s in df["to"]]
    ax.step(df["t_s"], levels, where="post", linewidth=2)
    ax.scatter(df["t_s"], levels, zorder=3)
    for t, level, actor, note in zip(df["t_s"], levels, df["actor"], df["note"]):
        ax.annotate(f"{actor}" + (f": {note}" if isinstance(note, str) else ""), (t, level), textcoords="offset points",
                    xytext=(6, 6), fontsize=8)
    ax.set_yticks(range(len(order)), order)
    ax.set_xlabel("seconds since the claim was submitted")
    ax.set_title(f"Audit trail of {claim_id}, read from its event stream")
    fig.tight_layout()
    return fig


def pending_per_consumer(df: pd.DataFrame):
    """Lesson 02: pending entries per consumer as a dead consumer's work is reclaimed (XAUTOCLAIM)."""
    table = df.pivot(index="moment", columns="consumer", values="pending")
    fig, ax = plt.subplots()
    table.plot.bar(ax=ax, rot=0)
    ax.set_xlabel("")
    ax.set_ylabel("pending entries (delivered, not acknowledged)")
    ax.set_title("A worker dies mid-batch; another reclaims its pending entries")
    fig.tight_layout()
    return fig


# --- lesson 07: load tests (labkit load / labkit analyze) ---------------------------------------------

def _plain_numbers(*axes) -> None:
    """Log axes labelled 2, 5, 10, 20 rather than 2x10^0: easier to read off a latency."""
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    for axis in axes:
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)


def latency_cdf(records: pd.DataFrame, by: str = "route", value: str = "latency_ms",
                title: str = "Latency per route"):
    """Share of requests answered within x ms, one line per group (log x): the tail shows on the right."""
    fig, ax = plt.subplots()
    for label, group in records.groupby(by, sort=True):
        values = np.sort(group[value].to_numpy())
        if len(values):
            ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=f"{label} (n={len(values)})")
    for q in (0.5, 0.99):
        ax.axhline(q, linestyle=":", color="grey", linewidth=1)
        ax.annotate(f"p{q * 100:g}", (1, q), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    color="grey", fontsize=8)
    ax.set_xscale("log")
    _plain_numbers(ax.xaxis)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("share of requests answered within")
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    if ax.lines:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def throughput_over_time(timeline: pd.DataFrame, title: str = "Throughput and errors over time"):
    """Requests/s as a line, errors/s as bars, per time bucket of the run."""
    fig, ax = plt.subplots()
    ax.plot(timeline["t_s"], timeline["req_s"], marker=".", label="requests/s")
    if len(timeline) > 1:
        width = float(np.diff(timeline["t_s"]).min()) * 0.8
    else:
        width = 0.1
    ax.bar(timeline["t_s"], timeline["errors_s"], width=width, color="tab:red", alpha=0.6, label="errors/s")
    ax.set_xlabel("seconds since the run started (intended send time)")
    ax.set_ylabel("per second")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def hit_rate_over_time(timeline: pd.DataFrame, title: str = "Cache hit rate over time (X-Cache)"):
    """Share of X-Cache: HIT among the answers that carried the header, per time bucket."""
    fig, ax = plt.subplots()
    carried = timeline.dropna(subset=["hit_rate"])
    if carried.empty:
        ax.text(0.5, 0.5, "no answer carried an X-Cache header\n(no cache on these routes yet)",
                ha="center", va="center", transform=ax.transAxes, color="grey")
    else:
        ax.plot(carried["t_s"], carried["hit_rate"] * 100, marker=".")
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("hit rate (%)")
    ax.set_ylim(0, 101)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def percentiles_vs_concurrency(by_run: pd.DataFrame, title: str = "Latency percentiles vs concurrency"):
    """p50/p90/p99 (left, log) per concurrency, one line style per mode; closed-loop req/s on the right.

    Where p99 climbs while req/s stops growing, requests are queueing: the system is saturated.
    """
    fig, ax = plt.subplots()
    right = None
    styles = {"closed": "-", "open": ":"}
    for mode, frame in by_run.dropna(subset=["p50_ms"]).groupby("mode"):
        frame = frame.groupby("concurrency", as_index=False).mean(numeric_only=True)
        for name, colour in (("p50_ms", "tab:blue"), ("p90_ms", "tab:orange"), ("p99_ms", "tab:green")):
            ax.plot(frame["concurrency"], frame[name], marker="o", color=colour, linestyle=styles.get(mode, "-"),
                    label=f"{name.replace('_ms', '')} ({mode} loop)")
        if mode == "closed":
            right = right or ax.twinx()
            right.plot(frame["concurrency"], frame["req_s"], color="black", linestyle="--", marker="s",
                       label="req/s (closed loop)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _plain_numbers(ax.xaxis, ax.yaxis)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("concurrency (connections, log scale)")
    ax.set_ylabel("latency (ms, log scale)")
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        right.set_ylabel("requests/s")
        right.set_ylim(bottom=0)
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if handles:
        ax.legend(handles, labels, loc="upper left", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def compare_runs(comparison: pd.DataFrame, metric: str = "p50_ms", title: str | None = None):
    """Grouped bars: one group per route, one bar per run (``analyze.compare`` gives the table)."""
    table = comparison[metric]
    fig, ax = plt.subplots()
    table.plot.bar(ax=ax, rot=20)
    ax.set_xlabel("")
    ax.set_ylabel({"p50_ms": "p50 latency (ms)", "p99_ms": "p99 latency (ms)", "req_s": "requests/s",
                   "error_rate": "error rate", "hit_rate": "hit rate"}.get(metric, metric))
    ax.set_title(title or f"{metric} per route, runs side by side")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig


def fault_timeline(requests: pd.DataFrame, events: pd.DataFrame, title: str, bucket_s: float = 0.5):
    """Error rate and p50/max latency per time bucket, with the fault's events as vertical lines."""
    df = requests.copy()
    df["bucket"] = (df["t_s"] // bucket_s) * bucket_s
    per = df.groupby("bucket").agg(error_rate=("ok", lambda s: 1 - s.mean()), p50=("latency_ms", "median"),
                                   worst=("latency_ms", "max"))
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 5.5))
    top.bar(per.index, per["error_rate"] * 100, width=bucket_s * 0.9, align="edge", color="tab:red")
    top.set_ylabel("failed requests (%)")
    top.set_ylim(0, 105)
    bottom.plot(per.index + bucket_s / 2, per["p50"], marker="o", label="p50")
    bottom.plot(per.index + bucket_s / 2, per["worst"], marker=".", linestyle=":", label="slowest")
    bottom.set_yscale("log")
    bottom.yaxis.set_major_formatter(ScalarFormatter())
    bottom.yaxis.set_minor_formatter(NullFormatter())
    bottom.set_ylabel("latency (ms, log)")
    bottom.set_xlabel("seconds since the traffic started")
    bottom.legend(loc="upper right")
    for ax in (top, bottom):
        for _, mark in events.iterrows():
            ax.axvline(mark["t_s"], color="black", linestyle="--", linewidth=1)
    for _, mark in events.iterrows():
        top.annotate(mark["event"], (mark["t_s"], 100), rotation=90, va="top", ha="right", fontsize=8)
    top.set_title(title)
    fig.tight_layout()
    return fig


def cold_vs_warm_latency(df: pd.DataFrame, sor_latency_ms: float):
    """Lesson 01: the latency distribution of MISSes and HITs, with the system of record's delay marked."""
    fig = latency_distribution(df, title="Reading one policy: cache empty (MISS) vs cached (HIT)")
    ax = fig.axes[0]
    ax.axvline(sor_latency_ms, color="black", linestyle=":", linewidth=1.5,
               label=f"system of record's simulated latency ({sor_latency_ms:g} ms)")
    ax.legend()
    _plain_numbers(ax.xaxis)
    return fig


def cache_hit_rate_lines(df: pd.DataFrame, by: str, x: str, xlabel: str, title: str):
    """Lesson 01: share of hits per bucket ``x``, one line per ``by`` (TTL, eviction policy)."""
    fig, ax = plt.subplots()
    for label, group in df.groupby(by, sort=False):
        rate = group.groupby(x)["hit"].mean() * 100
        ax.plot(rate.index, rate.values, marker=".", label=f"{label} (overall {group['hit'].mean():.0%})")
    ax.set_ylim(0, 100)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cache hit rate (%)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def round_trips_vs_n(df: pd.DataFrame):
    """Lesson 01: median time to read N values — N GETs vs one MGET vs one pipeline (log-log)."""
    fig, ax = plt.subplots()
    for method, group in df.groupby("method", sort=False):
        median = group.groupby("n")["latency_ms"].median()
        ax.plot(median.index, median.values, marker="o", label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_numbers(ax.xaxis, ax.yaxis)
    ax.set_xlabel("values read (N, log scale)")
    ax.set_ylabel("median time for all N (ms, log scale)")
    ax.set_title("One round trip per value vs one round trip for all")
    ax.legend()
    fig.tight_layout()
    return fig


def hit_counters(df: pd.DataFrame):
    """Lesson 01: hits and misses as the service counted them and as Redis's INFO counted them."""
    fig, ax = plt.subplots()
    labels = df["counted by"].tolist()
    ax.barh(labels, df["hits"], color="tab:green", label="hits")
    ax.barh(labels, df["misses"], left=df["hits"], color="tab:orange", label="misses")
    for i, row in df.reset_index(drop=True).iterrows():
        ax.text(row["hits"] + row["misses"], i, f"  hit rate {row['hit_rate']:.1%}", va="center")
    ax.set_xlabel("lookups during the run")
    ax.set_title("The same traffic, counted by the service and by Redis")
    ax.legend(loc="lower right")
    ax.set_xlim(0, (df["hits"] + df["misses"]).max() * 1.35)
    fig.tight_layout()
    return fig


# --- lessons 03 and 05: discovery and the gateway -----------------------------------------------------

def _traffic_over_time(df: pd.DataFrame, title: str, marks: dict[str, tuple[str, str, str]], bucket_s: float):
    """Requests per second per instance (stacked), failed requests per second (red), milestones as lines."""
    fig, ax = plt.subplots(figsize=(10, 4.2))
    bucket = (df["t_s"] // bucket_s) * bucket_s
    served = df[df["ok"]].groupby([bucket[df["ok"]], "served_by"]).size().unstack(fill_value=0) / bucket_s
    if not served.empty:
        ax.stackplot(served.index, served.T.values, labels=served.columns, alpha=0.75, step="post")
    # Failures are drawn even when there are none: a flat red line at 0 is the result, not a missing series.
    failed = (df[~df["ok"]].groupby(bucket[~df["ok"]]).size() / bucket_s).reindex(
        sorted(bucket.unique()), fill_value=0)
    ax.step(failed.index, failed.values, where="post", color="red", linewidth=2.5, zorder=4,
            label=f"failed ({int((~df['ok']).sum())} of {len(df)})")
    for name, (colour, line, text) in marks.items():
        t = df.attrs.get("milestones", {}).get(name)
        if t is not None:
            ax.axvline(t, color=colour, linestyle=line, linewidth=1.5, label=f"{text} ({t:.2f} s)")
    top = ax.get_ylim()[1]
    ax.set_ylim(-0.02 * top, top)  # lift the x axis a little, so a red line at 0 stays visible
    ax.set_xlabel("seconds since the traffic started")
    ax.set_ylabel("requests per second")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def kill_timeline(df: pd.DataFrame, bucket_s: float = 0.25):
    """Lesson 03: requests per instance (stacked) and failed requests per time bucket around a SIGKILL,
    with the moments the gateway and the registry noticed marked."""
    marks = {"killed": ("black", "-", "SIGKILL"), "gateway_stops_routing": ("black", "--", "gateway stops routing"),
             "registry_expires": ("purple", ":", "registration expired")}
    return _traffic_over_time(df, "One of three instances SIGKILLed under traffic", marks, bucket_s)


def rejoin_timeline(df: pd.DataFrame, bucket_s: float = 0.25):
    """Lesson 03: the same view while a stopped instance starts again and rejoins."""
    marks = {"restarted": ("green", "-", "restart begins"), "registered": ("purple", ":", "registered in Redis"),
             "gateway_routes": ("black", "--", "gateway routes to it")}
    return _traffic_over_time(df, "The instance starts again and rejoins under traffic", marks, bucket_s)


def requests_per_instance(df: pd.DataFrame):
    """Lesson 05: how many requests each instance served, one group of bars per strategy."""
    table = df.groupby(["strategy", "served_by"], sort=False).size().unstack(fill_value=0)
    fig, ax = plt.subplots()
    table.plot.bar(ax=ax, rot=0)
    ax.set_xlabel("balancing strategy")
    ax.set_ylabel("requests served")
    ax.set_title("Requests per instance, per strategy (X-Served-By)")
    ax.legend(title="instance", fontsize=8)
    fig.tight_layout()
    return fig


def p99_per_strategy(df: pd.DataFrame, slow_instance: str | None = None):
    """Lesson 05: p50, p90 and p99 latency per strategy when one instance is slow."""
    table = df.groupby("strategy", sort=False)["latency_ms"].quantile([0.5, 0.9, 0.99]).unstack()
    table.columns = ["p50", "p90", "p99"]
    fig, ax = plt.subplots()
    table.plot.bar(ax=ax, rot=0, color=["tab:blue", "tab:green", "tab:orange"])
    for i, value in enumerate(table["p99"]):
        ax.annotate(f"{value:.0f}", (i + 0.17, value), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("balancing strategy")
    ax.set_ylabel("latency through the gateway (ms)")
    ax.set_title("One slow instance" + (f" ({slow_instance})" if slow_instance else "") + ": latency per strategy")
    fig.tight_layout()
    return fig


def rate_limit_over_time(df: pd.DataFrame, limit: int | None = None):
    """Lesson 05: allowed vs refused (429) requests per second for one client."""
    second = df["t_s"].astype(int)
    table = df.groupby([second, df["allowed"].map({True: "allowed", False: "refused (429)"})]).size().unstack(
        fill_value=0)
    fig, ax = plt.subplots()
    colours = {"allowed": "tab:green", "refused (429)": "tab:red"}
    table.plot.bar(ax=ax, stacked=True, rot=0, color=[colours[c] for c in table.columns])
    if limit is not None:
        ax.axhline(limit, linestyle="--", color="grey", label=f"limit ({limit} per window)")
        ax.legend()
    ax.set_xlabel("second of the run")
    ax.set_ylabel("requests")
    ax.set_title("Sliding-window rate limiter at the gateway")
    fig.tight_layout()
    return fig


def stale_vs_hit_rate(summary: pd.DataFrame):
    """Lesson 06: one point per coherence strategy — how often it hit, how often it returned a stale value."""
    fig, ax = plt.subplots()
    for strategy, row in summary.iterrows():
        ax.scatter(row["hit_rate"] * 100, row["stale_rate"] * 100, s=60)
        ax.annotate(strategy, (row["hit_rate"] * 100, row["stale_rate"] * 100), textcoords="offset points",
                    xytext=(6, 4), fontsize=9)
    ax.set_xlabel("cache hit rate (%)")
    ax.set_ylabel("stale reads (% of reads)")
    ax.set_title("Coherence strategies: hit rate vs stale reads (same workload)")
    ax.set_ylim(bottom=-2)
    fig.tight_layout()
    return fig


def staleness_windows(reads: pd.DataFrame):
    """Lesson 06: for the stale reads of each strategy, how long the value had already been replaced (ms)."""
    stale = reads[reads["stale"] & (reads["staleness_ms"] > 0)]
    strategies = [s for s in reads["strategy"].unique() if s in set(stale["strategy"])]
    fig, ax = plt.subplots()
    if strategies:
        ax.boxplot([stale.loc[stale["strategy"] == s, "staleness_ms"] for s in strategies], whis=(1, 99),
                   showfliers=False)
        ax.set_xticks(range(1, len(strategies) + 1), strategies, rotation=20)
        ax.set_yscale("log")
        _plain_numbers(ax.yaxis)
    none = [s for s in reads["strategy"].unique() if s not in strategies]
    ax.set_ylabel("staleness window (ms, log)")
    ax.set_title("How stale the stale reads were (box p25-p75, whiskers p1-p99)"
                 + (f"\nno stale read: {', '.join(none)}" if none else ""))
    fig.tight_layout()
    return fig


def stampede_loads(loads: pd.DataFrame):
    """Lesson 06: system-of-record loads per refresh of a hot key under many concurrent readers."""
    per = loads.groupby(["protection", "refresh"], sort=False).size().rename("loads").reset_index()
    fig, ax = plt.subplots()
    protections = list(per["protection"].unique())
    means = [per.loc[per["protection"] == p, "loads"].mean() for p in protections]
    bars = ax.bar(protections, means, color=["tab:red", "tab:green", "tab:blue"][:len(protections)])
    for bar, mean in zip(bars, means):
        ax.annotate(f"{mean:.1f}", (bar.get_x() + bar.get_width() / 2, mean), ha="center", va="bottom")
    ax.set_yscale("log")
    _plain_numbers(ax.yaxis)
    ax.set_xlabel("stampede protection")
    ax.set_ylabel("loads on the system of record per refresh (log)")
    ax.set_title("A hot key expires under concurrent readers")
    fig.tight_layout()
    return fig


# --- added by the lessons2 helper: exact times, no buckets --------------------------------------------

def rejoin_exact(df: pd.DataFrame, margin_s: float = 0.3):
    """Lesson 03: the moments around a rejoin at their exact times — one tick per answer, when it arrived, one
    row per instance — with the registration (the event's own time), the gateway's first healthy view and the
    newcomer's first answer as labelled lines. No time buckets, so nothing is drawn before it happened. Shows
    from ``margin_s`` before the registration to ``margin_s`` after the last of those moments."""
    m = df.attrs.get("milestones", {})
    newcomer = df.attrs.get("instance")
    fig, ax = plt.subplots()
    answered = df[df["ok"]]
    instances = sorted(answered["served_by"].unique(), key=lambda i: (i == newcomer, i))
    for row, instance in enumerate(instances):
        times = answered.loc[answered["served_by"] == instance, "answered_s"]
        ax.plot(times, [row] * len(times), "|", markersize=14,
                label=f"{instance} (the newcomer)" if instance == newcomer else instance)
    ax.set_yticks(range(len(instances)), instances, fontsize=8)
    marks = [("registered", "purple", ":", "registered (event time)"),
             ("gateway_routes", "black", "--", "gateway's view: healthy (sampled)"),
             ("first_served", "tab:green", "-", "its first answer arrives")]
    shown = [m[name] for name, *_ in marks if name in m]
    if shown:
        ax.set_xlim(min(shown) - margin_s, max(shown) + margin_s)
    left, right = ax.get_xlim()
    for level, (name, colour, line, text) in enumerate(marks):
        if name in m:
            ax.axvline(m[name], color=colour, linestyle=line, linewidth=1.5)
            # the registration's label left of its line (the next line follows closely), and any near the edge
            late = name == "registered" or m[name] > left + 0.6 * (right - left)
            ax.annotate(f"{text}\n{m[name]:.3f} s", (m[name], len(instances) - 0.4 + 0.45 * level),
                        fontsize=8, color=colour, ha="right" if late else "left", va="bottom",
                        xytext=(-3 if late else 3, 0), textcoords="offset points")
    ax.set_ylim(-0.6, len(instances) + 1.0)
    ax.set_xlabel("seconds since the traffic started (each tick: one answer, when it arrived)")
    ax.set_title("The rejoin at exact times: registered, routed to, serving")
    fig.tight_layout()
    return fig
