"""Every chart the lab draws: one module, one style.

The style, in one place (``_figure`` and ``_finish``), so that every chart reads the same way:

* **Log axes carry plain labels at major ticks only** (1, 2, 5, 10, 20 ...), the densest set whose labels
  cannot touch at the axis's drawn length; minor ticks are unlabelled.
* **Legends sit outside the data**, to the right of the figure, and list only series that draw something.
* **Units on every axis**; instances named the way labkit names them (``claims#2``: ``instance_label``).
* **Events at the times they were measured**, with the window a fault lasted shaded.
* **No empty panels**: a panel with nothing to show is left out and its title says so ("0 failed").

Each function takes a DataFrame an experiment returned and gives back a matplotlib Figure, so a notebook
shows it inline and ``labkit analyze`` saves it as PNG. ``tests/unit/test_charts_overlap.py`` draws every
public function on sample data and fails if any two texts, or a legend and the data, overlap.
"""

from __future__ import annotations

import itertools
import re
import textwrap

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.axis import XAxis
from matplotlib.container import BarContainer
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, Locator, LogLocator, MaxNLocator, NullFormatter
import numpy as np
import pandas as pd

STYLE = {"figure.figsize": (9, 4.2), "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "figure.dpi": 100, "legend.fontsize": 8, "legend.frameon": False}
plt.rcParams.update(STYLE)

PLAIN = FuncFormatter(lambda v, _: f"{v:g}")
#: the least distance between two labelled ticks, in pixels, along an x axis and along a y axis
MIN_GAP_PX = {"x": 42, "y": 24}


# --- the style --------------------------------------------------------------------------------------

def _figure(nrows: int = 1, height: float = 4.2, width: float = 9, **kwargs):
    """A figure laid out by matplotlib's constrained layout: room is made for outside legends and labels."""
    return plt.subplots(nrows, 1, figsize=(width, height), layout="constrained", **kwargs)


class _ReadableLogLocator(Locator):
    """Major ticks of a log axis at every decade, at 1-2-5, or at 1..9 — the densest choice whose labels
    stay ``MIN_GAP_PX`` apart at the axis's drawn length. "6070809100" cannot happen."""

    def __call__(self):
        low, high = sorted(self.axis.get_view_interval())
        return self.tick_values(low, high)

    def tick_values(self, vmin, vmax):
        low, high = max(min(vmin, vmax), 1e-12), max(vmin, vmax)
        box = self.axis.axes.get_window_extent()
        horizontal = isinstance(self.axis, XAxis)
        length = box.width if horizontal else box.height
        span = max(np.log10(high) - np.log10(low), 1e-9)
        px_per_decade = max(length, 50) / span
        gap = MIN_GAP_PX["x" if horizontal else "y"]
        for subs in ((1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 5), (1, 3), (1,)):
            ticks = self._ticks(low, high, subs)
            if len(ticks) >= 2 and np.diff(np.log10(ticks)).min() * px_per_decade >= gap:
                return ticks
        every = 1  # many decades on a short axis: every second, fifth ... decade
        while len(ticks := self._ticks(low, high, (1,), every)) > 2 and \
                np.diff(np.log10(ticks)).min() * px_per_decade < gap:
            every += 1
        if len(ticks) >= 2:
            return ticks
        return MaxNLocator(3).tick_values(low, high)  # less than a decade and no round numbers inside

    @staticmethod
    def _ticks(low, high, subs, every=1):
        decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
        ticks = [s * 10.0 ** d for d in decades if d % every == 0 for s in subs]
        return np.array([t for t in ticks if low * (1 - 1e-9) <= t <= high * (1 + 1e-9)])


def _log_axis(axis, base: int = 10) -> None:
    """A log scale with plain, readable numbers at the major ticks and unlabelled minor ticks."""
    (axis.axes.set_xscale if isinstance(axis, XAxis) else axis.axes.set_yscale)("log", base=base)
    axis.set_major_locator(_ReadableLogLocator())
    axis.set_major_formatter(PLAIN)
    axis.set_minor_locator(LogLocator(base=base, subs="auto"))
    axis.set_minor_formatter(NullFormatter())


def _draws_something(artist) -> bool:
    """A legend entry only for a series that is on the chart (a bar of height 0 is not)."""
    if isinstance(artist, BarContainer):
        return any(p.get_height() != 0 and p.get_width() != 0 for p in artist.patches)
    if hasattr(artist, "get_xydata"):
        xy = np.asarray(artist.get_xydata(), float)
        return bool(len(xy)) and bool(np.isfinite(xy).all(axis=1).any())
    if hasattr(artist, "get_paths") and not isinstance(artist, Patch):
        return len(artist.get_paths()) > 0
    return True


def _finish(fig, extra_handles: list | None = None, title: str | None = None):
    """The last step of every chart: one legend outside the data, right of the axes, with only the series
    that draw something (plus ``extra_handles``, proxies the chart made itself)."""
    titles = {ax: ax.get_title() for ax in fig.axes}
    for ax, text in titles.items():  # a long title would run into the legend beside the axes: wrap it
        ax.set_title(_wrapped_title(text, 68))
    handles, labels, seen = [], [], set()
    for ax in fig.axes:
        if ax.get_legend():
            ax.get_legend().remove()
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in seen and not label.startswith("_") and _draws_something(handle):
                seen.add(label)
                handles.append(handle)
                labels.append(label)
    for handle in extra_handles or []:
        if handle.get_label() not in seen:
            seen.add(handle.get_label())
            handles.append(handle)
            labels.append(handle.get_label())
    if handles:
        fig.legend(handles, labels, loc="outside right upper", title=title)
    _fit_titles(fig, titles)
    return fig


def _wrapped_title(text: str, width: int) -> str:
    """``text`` wrapped at ``width`` characters, its own line breaks kept."""
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def _fit_titles(fig, titles: dict) -> None:
    """Wrap each axes' title (``titles``: as the chart set it) until it is no wider than its axes: centred
    over the axes, a wider title runs out to the right, up to the legend beside them."""
    titled = {ax: text for ax, text in titles.items() if text}
    if not titled:
        return
    fig.draw_without_rendering()
    for ax, text in titled.items():
        longest = max(len(line) for line in text.split("\n"))
        for lines in range(2, 6):  # balanced lines: "... past its cache vs from it", not "...\nit"
            if ax.title.get_window_extent().width <= ax.get_window_extent().width:
                break
            ax.set_title(_wrapped_title(text, max(20, -(-longest // lines) + 4)))
            fig.draw_without_rendering()


_INSTANCE_ID = re.compile(r"^(?P<service>[a-z]+)-(?P<port>\d+)-[0-9a-f]+$")


def instance_label(instance_id: str, names: dict[int, str] | None = None) -> str:
    """``claims-44547-9052`` -> ``claims#3``: the name labkit gives that instance (``labkit status``,
    ``kill_instance("claims#3")``), found by the port in its id. ``names`` maps port -> name; by default the
    running lab's pidfiles are read. An id labkit did not start keeps ``service:port``."""
    match = _INSTANCE_ID.match(str(instance_id))
    if not match:
        return str(instance_id)  # "gateway-cache", "" ...
    port = int(match["port"])
    if names is None:
        names = _lab_instance_names()
    return names.get(port, f"{match['service']}:{port}")


def _lab_instance_names() -> dict[int, str]:
    try:
        from services.core.settings import get_settings

        from . import procs

        return {record.port: name for name, record in procs.read_pidfiles(get_settings().run_dir).items()
                if getattr(record, "port", None)}
    except Exception:  # noqa: BLE001 - no lab here (a saved results file, a test): fall back to service:port
        return {}


def _wrapped(labels, width: int = 18) -> list[str]:
    """Category labels on an x axis, wrapped onto lines so that neighbours cannot run into each other."""
    return [textwrap.fill(str(label), width) for label in labels]


def _shade(ax, start: float, end: float, label: str | None = "fault window (measured)") -> None:
    ax.axvspan(start, max(end, start + 1e-3), color="tab:red", alpha=0.10, linewidth=0, label=label)


# --- lessons 00-02, 04 -------------------------------------------------------------------------------

def latency_distribution(df: pd.DataFrame, by: str = "path", value: str = "latency_ms",
                         title: str = "Latency per request", log_x: bool = True):
    """One outlined histogram per group (log-spaced bins; outlines, so overlapping groups stay visible)
    with the p50 of each group marked."""
    fig, ax = _figure()
    low, high = max(df[value].min(), 1e-3), df[value].max()
    bins = np.logspace(np.log10(low), np.log10(high * 1.05), 50) if log_x else 50
    for colour, (label, group) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"],
                                      df.groupby(by, sort=False)):
        p50 = group[value].median()
        ax.hist(group[value], bins=bins, histtype="step", linewidth=1.8, color=colour,
                label=f"{label} (p50 {p50:.2f} ms)")
        ax.axvline(p50, linestyle="--", linewidth=1, color=colour)
    if log_x:
        _log_axis(ax.xaxis)
    ax.set_xlabel("latency (ms, log scale)" if log_x else "latency (ms)")
    ax.set_ylabel("requests (per bin)")
    ax.set_title(title)
    return _finish(fig)


def percentile_table(df: pd.DataFrame, by: str = "path", value: str = "latency_ms") -> pd.DataFrame:
    """p50/p90/p99 and count per group, in ms, rounded for reading."""
    q = df.groupby(by, sort=False)[value].quantile([0.5, 0.9, 0.99]).unstack()
    q.columns = ["p50_ms", "p90_ms", "p99_ms"]
    q["requests"] = df.groupby(by, sort=False)[value].count()
    return q.round(3)


def session_ttl_timeline(df: pd.DataFrame, idle_s: float, absolute_s: float):
    """TTL of each session over time, with the idle timeout and the absolute cap marked."""
    fig, ax = _figure()
    for label, group in df.groupby("session", sort=False):
        ax.plot(group["t_s"], group["ttl_s"], label=label, linewidth=2)
    ax.axhline(idle_s, linestyle=":", color="grey", label=f"idle timeout ({idle_s:g} s)")
    ax.axvline(absolute_s, linestyle="--", color="red", label=f"absolute cap ({absolute_s:g} s after login)")
    ax.set_xlabel("seconds since login (s)")
    ax.set_ylabel("TTL of the session key in Redis (s)")
    ax.set_title("Sliding idle timeout vs absolute cap, measured in Redis")
    return _finish(fig)


def login_attempts(df: pd.DataFrame):
    """One bar per login attempt, coloured by what the gateway answered (the legend lists only answers given)."""
    colours = {200: "tab:green", 401: "tab:orange", 429: "tab:red"}
    labels = {200: "200 logged in", 401: "401 wrong password (scrypt checked it)",
              429: "429 locked out (password not even checked)"}
    fig, ax = _figure()
    ax.bar(df["attempt"], df["latency_ms"], color=[colours.get(s, "grey") for s in df["status"]])
    given = [s for s in colours if s in set(df["status"])]
    ax.set_xlabel("attempt (number)")
    ax.set_ylabel("response time (ms)")
    ax.set_title("Brute force against one account")
    return _finish(fig, [Patch(color=colours[s], label=labels[s]) for s in given])


def received_per_listener(df: pd.DataFrame):
    """Lesson 02: events published per phase vs received by a pub/sub subscriber and a consumer group."""
    table = df.pivot(index="phase", columns="listener", values="received")
    published = df.groupby("phase")["published"].first()
    fig, ax = _figure()
    x = np.arange(len(table.index))
    width = 0.8 / (len(table.columns) + 1)
    ax.bar(x - width, published.reindex(table.index), width, color="lightgrey", label="published")
    for i, listener in enumerate(table.columns):
        ax.bar(x + i * width, table[listener], width, label=listener)
    ax.set_xticks(x, _wrapped(table.index))
    ax.set_xlabel("phase")
    ax.set_ylabel("claim events (count)")
    ax.set_title("Offline for phase 2: pub/sub misses it, the consumer group catches up")
    return _finish(fig)


def claim_timeline(df: pd.DataFrame, claim_id: str):
    """Lesson 02: one claim's audit trail (from its event stream) as a step line through its statuses."""
    order = ["submitted", "under_review", "approved", "rejected", "paid"]
    fig, ax = _figure()
    levels = [order.index(s) for s in df["to"]]
    ax.step(df["t_s"], levels, where="post", linewidth=2)
    ax.scatter(df["t_s"], levels, zorder=3)
    for t, level, actor, note in zip(df["t_s"], levels, df["actor"], df["note"]):
        ax.annotate(f"{actor}" + (f": {note}" if isinstance(note, str) else ""), (t, level), textcoords="offset points",
                    xytext=(6, 6), fontsize=8)
    span = float(df["t_s"].max() - df["t_s"].min()) or 1.0
    ax.set_xlim(df["t_s"].min() - 0.05 * span, df["t_s"].max() + 0.45 * span)  # room for the last note
    ax.set_ylim(-0.5, len(order) - 0.5)
    ax.set_yticks(range(len(order)), order)
    ax.set_xlabel("seconds since the claim was submitted (s)")
    ax.set_ylabel("status")
    ax.set_title(f"Audit trail of {claim_id}, read from its event stream")
    return _finish(fig)


def pending_per_consumer(df: pd.DataFrame):
    """Lesson 02: pending entries per consumer as a dead consumer's work is reclaimed (XAUTOCLAIM), and
    how many entries the survivor reclaimed and handled (it acknowledges each, so its own pending stays low)."""
    table = df.pivot(index="moment", columns="consumer", values="pending")
    fig, ax = _figure()
    moments = list(table.index)
    x = np.arange(len(moments))
    series = [(f"pending at {c}", table[c].to_numpy()) for c in table.columns if table[c].any()]
    if "reclaimed_by_B" in df and df["reclaimed_by_B"].max() > 0:
        reclaimed = np.zeros(len(moments))
        reclaimed[-1] = df["reclaimed_by_B"].max()
        series.append(("reclaimed by worker-B and acknowledged", reclaimed))
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label)
    idle = [c for c in table.columns if not table[c].any()]
    ax.set_xticks(x, _wrapped(moments))
    ax.set_xlabel("moment")
    ax.set_ylabel("entries (count)")
    ax.set_title("A worker dies mid-batch; another reclaims its pending entries"
                 + (f"\n0 pending at every moment: {', '.join(idle)}" if idle else ""))
    return _finish(fig)


# --- lesson 07: load tests (labkit load / labkit analyze) ---------------------------------------------

def latency_cdf(records: pd.DataFrame, by: str = "route", value: str = "latency_ms",
                title: str = "Latency per route"):
    """Share of requests answered within x ms, one line per group (log x): the tail shows on the right."""
    fig, ax = _figure()
    if records.empty:
        title += "\nnothing to draw: no request here (a run that fell behind its schedule is left out)"
    for label, group in records.groupby(by, sort=True):
        values = np.sort(group[value].to_numpy())
        if len(values):
            ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=f"{label} (n={len(values)})")
    for q in (0.5, 0.99):
        ax.axhline(q, linestyle=":", color="grey", linewidth=1)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 0.99], ["0", "0.25", "p50", "0.75", "p99"])
    if ax.lines:
        _log_axis(ax.xaxis)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("share answered within x ms")
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    return _finish(fig)


def throughput_over_time(timeline: pd.DataFrame, title: str = "Throughput and errors over time"):
    """Requests/s as a line, errors/s as bars, per time bucket of the run."""
    fig, ax = _figure()
    ax.plot(timeline["t_s"], timeline["req_s"], marker=".", label="requests/s")
    width = float(np.diff(timeline["t_s"]).min()) * 0.8 if len(timeline) > 1 else 0.1
    errors = int(round(float((timeline["errors_s"] * (width / 0.8)).sum()))) if len(timeline) else 0
    if timeline["errors_s"].any():
        ax.bar(timeline["t_s"], timeline["errors_s"], width=width, color="tab:red", alpha=0.6, label="errors/s")
    ax.set_xlabel("seconds since the run started (intended send time, s)")
    ax.set_ylabel("requests per second")
    ax.set_ylim(bottom=0)
    ax.set_title(title + ("" if errors else " — 0 errors"))
    return _finish(fig)


def hit_rate_over_time(timeline: pd.DataFrame, title: str = "Cache hit rate over time (X-Cache)"):
    """Share of X-Cache: HIT among the answers that carried the header, per time bucket."""
    fig, ax = _figure()
    carried = timeline.dropna(subset=["hit_rate"])
    if carried.empty:
        title += "\nno answer carried an X-Cache header (no cache on these routes yet)"
    else:
        ax.plot(carried["t_s"], carried["hit_rate"] * 100, marker=".")
    ax.set_xlabel("seconds since the run started (s)")
    ax.set_ylabel("hit rate (%)")
    ax.set_ylim(0, 101)
    ax.set_title(title)
    return _finish(fig)


def percentiles_vs_concurrency(by_run: pd.DataFrame, title: str = "Latency percentiles vs concurrency"):
    """p50/p90/p99 (left, log) per concurrency, one line style per mode; closed-loop req/s on the right.

    Where p99 climbs while req/s stops growing, requests are queueing: the system is saturated.
    """
    fig, ax = _figure()
    styles = {"closed": "-", "open": ":"}
    levels = sorted(by_run["concurrency"].dropna().unique())
    for mode, frame in by_run.dropna(subset=["p50_ms"]).groupby("mode"):
        frame = frame.groupby("concurrency", as_index=False).mean(numeric_only=True)
        for name, colour in (("p50_ms", "tab:blue"), ("p90_ms", "tab:orange"), ("p99_ms", "tab:green")):
            ax.plot(frame["concurrency"], frame[name], marker="o", color=colour, linestyle=styles.get(mode, "-"),
                    label=f"{name.replace('_ms', '')} latency ({mode} loop)")
        if mode == "closed":
            right = ax.twinx()
            right.plot(frame["concurrency"], frame["req_s"], color="black", linestyle="--", marker="s",
                       label="throughput (closed loop, right axis)")
            right.set_ylabel("requests per second")
            right.set_ylim(bottom=0)
            right.spines["right"].set_visible(True)
            right.grid(False)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(levels or [1]))
    ax.xaxis.set_major_formatter(PLAIN)
    ax.xaxis.set_minor_formatter(NullFormatter())
    if ax.lines:
        _log_axis(ax.yaxis)
    ax.set_xlabel("concurrency (connections, log scale)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(title)
    return _finish(fig)


def compare_runs(comparison: pd.DataFrame, metric: str = "p50_ms", title: str | None = None):
    """Horizontal bars: one group per route, one bar per run (``analyze.compare`` gives the table);
    route names on the y axis, where long names cannot collide."""
    table = comparison[metric].iloc[::-1]
    fig, ax = _figure(height=max(3.0, 0.55 * len(table) * len(table.columns) + 1.2))
    table.plot.barh(ax=ax, legend=False)
    unit = {"p50_ms": "p50 latency (ms)", "p99_ms": "p99 latency (ms)", "req_s": "requests per second",
            "error_rate": "error rate (share of requests)", "hit_rate": "hit rate (share of answers)"}
    ax.set_xlabel(unit.get(metric, metric))
    ax.set_ylabel("route")
    ax.set_title(title or f"{metric} per route, runs side by side")
    return _finish(fig, title="run")


def fault_timeline(requests: pd.DataFrame, events: pd.DataFrame, title: str, bucket_s: float = 0.5):
    """Failed requests and p50/slowest latency per time bucket; each fault event as a line at the time it
    began, and the fault's window (first event's start to last event's end, as measured) shaded.

    ``events``: ``t_s`` (the action began), optional ``end_s`` (it returned: a restart takes a while)."""
    df = requests.copy()
    df["bucket"] = (df["t_s"] // bucket_s) * bucket_s
    per = df.groupby("bucket").agg(error_rate=("ok", lambda s: 1 - s.mean()), p50=("latency_ms", "median"),
                                   worst=("latency_ms", "max"))
    failed = int((~df["ok"]).sum())
    if failed:
        fig, (top, bottom) = _figure(2, height=5.5, sharex=True)
        top.bar(per.index, per["error_rate"] * 100, width=bucket_s * 0.9, align="edge", color="tab:red",
                label="failed requests (%)")
        top.set_ylabel("failed (% of bucket)")
        top.set_ylim(0, 105)
        top.set_title(f"{title} — {failed} of {len(df)} requests failed")
        panels = (top, bottom)
    else:
        fig, bottom = _figure()
        bottom.set_title(f"{title} — 0 of {len(df)} requests failed")
        panels = (bottom,)
    bottom.plot(per.index + bucket_s / 2, per["p50"], marker="o", label="p50 latency")
    bottom.plot(per.index + bucket_s / 2, per["worst"], marker=".", linestyle=":", label="slowest request")
    _log_axis(bottom.yaxis)
    bottom.set_ylabel("latency (ms, log)")
    bottom.set_xlabel(f"seconds since the traffic started (s; {bucket_s:g} s buckets)")
    if len(events):
        ends = events["end_s"] if "end_s" in events else events["t_s"]
        styles = itertools.cycle([("black", "--"), ("tab:purple", "-."), ("tab:green", "-"), ("tab:brown", ":")])
        for ax in panels:
            _shade(ax, float(events["t_s"].min()), float(ends.max()),
                   label=f"fault window {events['t_s'].min():.2f}-{ends.max():.2f} s (measured)")
        for (_, mark), (colour, line) in zip(events.iterrows(), styles):
            took = mark.get("end_s", mark["t_s"]) - mark["t_s"]
            label = f"{mark['event']} at {mark['t_s']:.2f} s" + (f" (took {took:.2f} s)" if took >= 0.05 else "")
            for ax in panels:
                ax.axvline(mark["t_s"], color=colour, linestyle=line, linewidth=1.2, label=label)
    # the traffic's span: a fault that outlasts it (a slow restart) is shaded to the edge, its end in the legend
    bottom.set_xlim(min(0.0, float(events["t_s"].min()) if len(events) else 0.0),
                    max(float(df["t_s"].max()) + bucket_s, float(events["t_s"].max()) + 0.2 if len(events) else 0.0))
    return _finish(fig)


def cold_vs_warm_latency(df: pd.DataFrame, sor_latency_ms: float):
    """Lesson 01: the latency distribution of MISSes and HITs, with the system of record's delay marked."""
    fig = latency_distribution(df, title="Reading one policy: cache empty (MISS) vs cached (HIT)")
    ax = fig.axes[0]
    ax.axvline(sor_latency_ms, color="black", linestyle=":", linewidth=1.5,
               label=f"system of record's simulated latency ({sor_latency_ms:g} ms)")
    for legend in fig.legends:
        legend.remove()
    return _finish(fig)


def cache_hit_rate_lines(df: pd.DataFrame, by: str, x: str, xlabel: str, title: str):
    """Lesson 01: share of hits per bucket ``x``, one line per ``by`` (TTL, eviction policy)."""
    fig, ax = _figure()
    for label, group in df.groupby(by, sort=False):
        rate = group.groupby(x)["hit"].mean() * 100
        ax.plot(rate.index, rate.values, marker=".", label=f"{label} (overall {group['hit'].mean():.0%})")
    ax.set_ylim(0, 100)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cache hit rate (%)")
    ax.set_title(title)
    return _finish(fig)


def round_trips_vs_n(df: pd.DataFrame):
    """Lesson 01: median time to read N values — N GETs vs one MGET vs one pipeline (log-log)."""
    fig, ax = _figure()
    for method, group in df.groupby("method", sort=False):
        median = group.groupby("n")["latency_ms"].median()
        ax.plot(median.index, median.values, marker="o", label=method)
    _log_axis(ax.xaxis)
    _log_axis(ax.yaxis)
    ax.set_xlabel("values read (N, log scale)")
    ax.set_ylabel("median time for all N (ms, log scale)")
    ax.set_title("One round trip per value vs one round trip for all")
    return _finish(fig)


def hit_counters(df: pd.DataFrame):
    """Lesson 01: hits and misses as the service counted them and as Redis's INFO counted them."""
    fig, ax = _figure(height=3.2)
    labels = df["counted by"].tolist()
    ax.barh(labels, df["hits"], color="tab:green", label="hits")
    ax.barh(labels, df["misses"], left=df["hits"], color="tab:orange", label="misses")
    for i, row in df.reset_index(drop=True).iterrows():
        ax.text(row["hits"] + row["misses"], i, f"  hit rate {row['hit_rate']:.1%}", va="center")
    ax.set_xlabel("lookups during the run (count)")
    ax.set_title("The same traffic, counted by the service and by Redis")
    ax.set_xlim(0, (df["hits"] + df["misses"]).max() * 1.35)
    return _finish(fig)


# --- lessons 03 and 05: discovery and the gateway -----------------------------------------------------

def _traffic_over_time(df: pd.DataFrame, title: str, marks: dict[str, tuple[str, str, str]]):
    """One row per instance with a tick for every request it served, at the time the request was sent —
    no binning, so nothing appears before it happened; failed requests on a red row; milestones as lines
    at the times they were measured."""
    ok = df["ok"].astype(bool)
    served = df[ok]
    names = _lab_instance_names()
    instances = sorted(served["served_by"].unique(), key=lambda i: instance_label(i, names))
    rows = [(instance_label(i, names), served.loc[served["served_by"] == i, "t_s"], "tab:blue") for i in instances]
    failed = int((~ok).sum())
    rows.append((f"failed ({failed} of {len(df)})", df.loc[~ok, "t_s"], "red"))
    fig, ax = _figure(height=1.6 + 0.45 * len(rows), width=10)
    for y, (label, times, colour) in enumerate(rows):
        ax.scatter(times, np.full(len(times), y), marker="|", s=120, color=colour, linewidths=1, zorder=3)
    ax.set_yticks(range(len(rows)), [label for label, _, _ in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    milestones = df.attrs.get("milestones", {})
    for name, (colour, line, text) in marks.items():
        t = milestones.get(name)
        if t is not None:
            ax.axvline(t, color=colour, linestyle=line, linewidth=1.5, label=f"{text} at {t:.2f} s")
    ax.set_xlabel("seconds since the traffic started (request sent at, s)")
    ax.set_ylabel("served by (one tick per request)")
    ax.set_title(title)
    return _finish(fig)


def kill_timeline(df: pd.DataFrame, bucket_s: float | None = None):
    """Lesson 03: which instance served each request, and which failed, around a SIGKILL, with the moments
    the gateway and the registry noticed marked. (``bucket_s`` is accepted for old callers; nothing is binned.)"""
    marks = {"killed": ("black", "-", "SIGKILL"), "gateway_stops_routing": ("tab:orange", "--", "gateway stops routing"),
             "registry_expires": ("purple", ":", "registration expired")}
    return _traffic_over_time(df, "One of three instances SIGKILLed under traffic", marks)


def rejoin_timeline(df: pd.DataFrame, bucket_s: float | None = None):
    """Lesson 03: the same view while a stopped instance starts again and rejoins."""
    marks = {"restarted": ("green", "-", "restart begins"), "registered": ("purple", ":", "registered in Redis"),
             "gateway_routes": ("tab:orange", "--", "gateway routes to it")}
    return _traffic_over_time(df, "The instance starts again and rejoins under traffic", marks)


def requests_per_instance(df: pd.DataFrame):
    """Lesson 05: how many requests each instance served, one group of bars per strategy."""
    names = _lab_instance_names()
    labelled = df.assign(served_by=df["served_by"].map(lambda i: instance_label(i, names)))
    table = labelled.groupby(["strategy", "served_by"], sort=False).size().unstack(fill_value=0)
    fig, ax = _figure()
    table.plot.bar(ax=ax, rot=0)
    ax.set_xlabel("balancing strategy")
    ax.set_ylabel("requests served (count)")
    ax.set_title("Requests per instance, per strategy (X-Served-By)")
    return _finish(fig, title="instance")


def p99_per_strategy(df: pd.DataFrame, slow_instance: str | None = None, slow_id: str | None = None):
    """Lesson 05: p50, p90 and p99 latency per strategy when one instance is slow, on a log axis (a p50 of
    15 ms and a p99 of 1,000 ms both readable), each p99 written on its bar. With ``slow_id`` (the slow
    instance's ``X-Served-By``; default ``df.attrs["slow_instance"]``) each strategy's label says what share
    of its requests that instance served: the number p99 depends on."""
    table = df.groupby("strategy", sort=False)["latency_ms"].quantile([0.5, 0.9, 0.99]).unstack()
    table.columns = ["p50", "p90", "p99"]
    slow_id = slow_id or df.attrs.get("slow_instance")
    if slow_id is not None and "served_by" in df:
        share = df.groupby("strategy", sort=False)["served_by"].apply(lambda s: (s == slow_id).mean())
        table.index = [f"{name}\n{share[name]:.1%} to {slow_instance or 'the slow one'}" for name in table.index]
    fig, ax = _figure()
    table.plot.bar(ax=ax, rot=0, color=["tab:blue", "tab:green", "tab:orange"])
    _log_axis(ax.yaxis)
    for i, value in enumerate(table["p99"]):
        ax.annotate(f"{value:,.0f} ms", (i + 0.17, value), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("balancing strategy (and the share of its requests the slow instance served)"
                  if slow_id is not None and "served_by" in df else "balancing strategy")
    ax.set_ylabel("latency through the gateway (ms, log)")
    low, high = max(table.to_numpy().min() * 0.5, 0.1), table.to_numpy().max() * 2.5
    ax.set_ylim(low, high)
    ax.set_title("One slow instance" + (f" ({slow_instance})" if slow_instance else "") + ": latency per strategy")
    return _finish(fig)


def rate_limit_over_time(df: pd.DataFrame, limit: int | None = None):
    """Lesson 05: allowed vs refused (429) requests per second for one client."""
    second = df["t_s"].astype(int)
    table = df.groupby([second, df["allowed"].map({True: "allowed", False: "refused (429)"})]).size().unstack(
        fill_value=0)
    fig, ax = _figure()
    colours = {"allowed": "tab:green", "refused (429)": "tab:red"}
    table.plot.bar(ax=ax, stacked=True, rot=0, color=[colours[c] for c in table.columns])
    if limit is not None:
        ax.axhline(limit, linestyle="--", color="grey", label=f"limit ({limit} per window)")
    ax.set_xlabel("second of the run (s)")
    ax.set_ylabel("requests (count)")
    ax.set_title("Sliding-window rate limiter at the gateway")
    return _finish(fig)


def stale_vs_hit_rate(summary: pd.DataFrame):
    """Lesson 06: one point per coherence strategy — how often it hit, how often it returned a stale value.
    Named in the legend, not beside the point: two strategies on the same point cannot print over each other
    (their markers shrink in turn so both stay visible, and the title says which coincide)."""
    fig, ax = _figure()
    markers = itertools.cycle(["o", "s", "D", "^", "v", "P", "X"])
    sizes = np.linspace(220, 40, max(2, len(summary)))
    points = {}
    colours = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for (strategy, row), marker, size, colour in zip(summary.iterrows(), markers, sizes, colours):
        x, y = row["hit_rate"] * 100, row["stale_rate"] * 100
        ax.scatter([x], [y], s=size, marker=marker, facecolors="none" if size > 100 else colour, edgecolors=colour,
                   linewidths=1.8, label=f"{strategy} ({x:.0f}% hits, {y:.1f}% stale)", zorder=3)
        points.setdefault((round(x), round(y, 1)), []).append(str(strategy))
    same = [" and ".join(names) for names in points.values() if len(names) > 1]
    ax.set_xlabel("cache hit rate (%)")
    ax.set_ylabel("stale reads (% of reads)")
    ax.set_title("Coherence strategies: hit rate vs stale reads (same workload)"
                 + (f"\non the same point: {'; '.join(same)}" if same else ""))
    ax.set_ylim(bottom=-2)
    ax.set_xlim(-3, 103)
    return _finish(fig, title="strategy")


def staleness_windows(reads: pd.DataFrame):
    """Lesson 06: for the stale reads of each strategy, how long the value had already been replaced (ms)."""
    stale = reads[reads["stale"] & (reads["staleness_ms"] > 0)]
    strategies = [s for s in reads["strategy"].unique() if s in set(stale["strategy"])]
    fig, ax = _figure()
    if strategies:
        ax.boxplot([stale.loc[stale["strategy"] == s, "staleness_ms"] for s in strategies], whis=(1, 99),
                   showfliers=False)
        ax.set_xticks(range(1, len(strategies) + 1), strategies)
        _log_axis(ax.yaxis)
    none = [s for s in reads["strategy"].unique() if s not in strategies]
    ax.set_xlabel("coherence strategy")
    ax.set_ylabel("staleness window (ms, log)")
    ax.set_title("How stale the stale reads were (box p25-p75, whiskers p1-p99)"
                 + (f"\nno stale read: {', '.join(none)}" if none else ""))
    return _finish(fig)


def stampede_loads(loads: pd.DataFrame):
    """Lesson 06: system-of-record loads per refresh of a hot key under many concurrent readers."""
    per = loads.groupby(["protection", "refresh"], sort=False).size().rename("loads").reset_index()
    fig, ax = _figure()
    protections = list(per["protection"].unique())
    means = [per.loc[per["protection"] == p, "loads"].mean() for p in protections]
    bars = ax.bar(protections, means, color=["tab:red", "tab:green", "tab:blue"][:len(protections)])
    for bar, mean in zip(bars, means):
        ax.annotate(f"{mean:.1f}", (bar.get_x() + bar.get_width() / 2, mean), ha="center", va="bottom")
    _log_axis(ax.yaxis)
    ax.set_ylim(top=max(means) * 2)
    ax.set_xlabel("stampede protection")
    ax.set_ylabel("SoR loads per refresh (log)")
    ax.set_title("A hot key expires under concurrent readers")
    return _finish(fig)


# --- lesson 08: resilience ------------------------------------------------------------------------------

def keys_before_after(counts: pd.DataFrame):
    """Lesson 08: keys of each kind in Redis before and after a memory squeeze, per eviction policy.
    ``counts``: index (policy, kind), columns ``before`` and ``after``. Horizontal bars: long labels fit."""
    table = counts[["before", "after"]].copy()
    table.index = [f"{policy}: {kind}" for policy, kind in table.index]
    table = table.iloc[::-1]
    fig, ax = _figure(height=max(3.0, 0.42 * len(table) + 1.3))
    y = np.arange(len(table))
    ax.barh(y + 0.2, table["before"], 0.4, color="tab:grey", label="before the squeeze")
    ax.barh(y - 0.2, table["after"], 0.4, color="tab:blue", label="after the squeeze")
    for i, (before, after) in enumerate(zip(table["before"], table["after"])):
        if after != before:
            ax.text(max(before, after), i, f"  {after - before:+d}", va="center", fontsize=8)
    ax.set_yticks(y, table.index)
    ax.set_xlim(0, table.to_numpy().max() * 1.18 or 1)
    ax.set_xlabel("keys in Redis (count)")
    ax.set_title("Keys of each kind before and after the squeeze")
    return _finish(fig)


# --- lesson 03: a rejoin at exact times, no buckets --------------------------------------------

def rejoin_exact(df: pd.DataFrame, margin_s: float = 0.3):
    """Lesson 03: the moments around a rejoin at their exact times — one tick per answer, when it arrived, one
    row per instance — with the registration (the event's own time), the gateway's first healthy view and the
    newcomer's first answer as labelled lines. No time buckets, so nothing is drawn before it happened. Shows
    from ``margin_s`` before the registration to ``margin_s`` after the last of those moments."""
    m = df.attrs.get("milestones", {})
    newcomer = df.attrs.get("instance")
    fig, ax = plt.subplots()
    answered = df[df["ok"]]
    names = _lab_instance_names()
    instances = sorted(answered["served_by"].unique(), key=lambda i: (i == newcomer, instance_label(i, names)))
    labels = [instance_label(i, names) + (" (new)" if i == newcomer else "") for i in instances]
    for row, instance in enumerate(instances):
        times = answered.loc[answered["served_by"] == instance, "answered_s"]
        ax.plot(times, [row] * len(times), "|", markersize=14)
    ax.set_yticks(range(len(instances)), labels)
    ax.set_ylabel("served by (one tick per answer)")
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
            late = name == "registered" or m[name] > left + 0.75 * (right - left)
            ax.annotate(f"{text}\n{m[name]:.3f} s", (m[name], len(instances) - 0.4 + 0.45 * level),
                        fontsize=8, color=colour, ha="right" if late else "left", va="bottom",
                        xytext=(-3 if late else 3, 0), textcoords="offset points")
    ax.set_ylim(-0.6, len(instances) + 1.0)
    ax.set_xlabel("seconds since the traffic started (each tick: one answer, when it arrived)")
    ax.set_title("The rejoin at exact times: registered, routed to, serving")
    fig.tight_layout()
    return fig


# --- lesson 07: where a cached read's time goes ---------------------------------------------------------

#: Colour of a flame-graph frame, by where its code lives (the first needle found in the frame's text).
_FLAME_COLOURS = [("services/", "tab:blue"), ("redis", "tab:red"), ("fastapi/", "tab:orange"),
                  ("starlette/", "tab:orange"), ("pydantic", "tab:purple"), ("json", "tab:purple"),
                  ("uvicorn/", "tab:green"), ("logging", "tab:brown"), ("asyncio", "tab:gray")]
_FLAME_LEGEND = {"tab:blue": "our code (services/)", "tab:red": "redis-py", "tab:orange": "FastAPI / Starlette",
                 "tab:purple": "JSON / pydantic", "tab:green": "uvicorn", "tab:brown": "logging",
                 "tab:gray": "asyncio", "lightgray": "other"}


def _flame_colour(frame: str) -> str:
    return next((colour for needle, colour in _FLAME_COLOURS if needle in frame), "lightgray")


def flame_graph(collapsed: str, title: str = "Where the CPU time goes (py-spy samples)",
                min_share: float = 0.005, max_depth: int = 60):
    """An icicle flame graph of py-spy's collapsed stacks (``a;b;c 42`` per line): the outermost call on
    top, each call's width its share of the samples, coloured by where the code lives. Frames under
    ``min_share`` of the samples are left out; a name is written only where it fits its box."""
    tree: dict = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        node = tree
        for frame in stack.split(";")[:max_depth]:
            entry = node.setdefault(frame, [0, {}])
            entry[0] += int(count)
            node = entry[1]
    fig, ax = _figure(height=5.2, width=11)
    boxes = []

    def draw(node: dict, x: float, depth: int) -> int:
        deepest = depth
        for frame, (count, children) in sorted(node.items(), key=lambda kv: -kv[1][0]):
            if total and count / total >= min_share:
                ax.barh(-depth, count / total, left=x, height=0.92, color=_flame_colour(frame),
                        edgecolor="white", linewidth=0.3)
                boxes.append((x, depth, count / total, frame.split(" (")[0].split(".")[-1]))
                deepest = max(deepest, draw(children, x, depth + 1))
            x += count / total if total else 0
        return deepest

    deepest = draw(tree, 0.0, 0)
    ax.set_xlim(0, 1)
    ax.set_ylim(-deepest - 0.6, 0.6)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel(f"share of the {total:,} samples (%)")
    ax.set_ylabel("call depth (outermost on top)")
    ax.set_yticks([])
    ax.set_title(title)
    fig.canvas.draw()  # now boxes have a size in pixels: write a name only where it fits
    px_per_share = ax.get_window_extent().width
    for x, depth, width, name in boxes:
        if width * px_per_share > 6.5 * len(name) + 4:
            ax.text(x + width / 2, -depth, name, ha="center", va="center", fontsize=7, clip_on=True)
    handles = [Patch(color=c, label=label) for c, label in _FLAME_LEGEND.items()
               if any(_flame_colour(f) == c for f in _frames(tree))]
    return _finish(fig, handles)


def _frames(tree: dict):
    for frame, (_, children) in tree.items():
        yield frame
        yield from _frames(children)


def layer_shares(shares: pd.DataFrame, title: str = "Where a cached read's CPU time goes", value: str = "share"):
    """Horizontal bars: each layer's share of the samples (columns ``layer``, ``share``, and ``run`` when
    several profiles are compared, e.g. before and after a change). ``value="us_per_request"`` draws that
    column instead: each layer's CPU microseconds per request (its share times the run's CPU per request),
    which compares runs that did different amounts of work."""
    runs = list(dict.fromkeys(shares["run"])) if "run" in shares else ["this run"]
    layers = list(dict.fromkeys(shares.sort_values(value, ascending=False)["layer"]))
    fig, ax = _figure(height=0.35 * len(layers) * (1 + 0.5 * (len(runs) - 1)) + 1.2)
    height = 0.8 / len(runs)
    for i, run in enumerate(runs):
        part = shares[shares["run"] == run] if "run" in shares else shares
        by_layer = part.set_index("layer")[value].reindex(layers).fillna(0)
        ax.barh(np.arange(len(layers)) + i * height, by_layer.values, height=height, label=run)
    ax.set_yticks(np.arange(len(layers)) + height * (len(runs) - 1) / 2, _wrapped(layers, 30))
    ax.invert_yaxis()
    if value == "share":
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.set_xlabel("share of CPU samples (%)")
    else:
        ax.set_xlabel("CPU per request (µs)")
    ax.set_title(title)
    return _finish(fig)


def _is_redis_call(df: pd.DataFrame) -> pd.Series:
    if "attributes" not in df:
        return pd.Series(False, index=df.index)
    return df["attributes"].map(lambda a: (a or {}).get("db.system", (a or {}).get("db.system.name")) == "redis")


_REDIS_HATCH = "////"


def _draw_waterfall(ax, df: pd.DataFrame, colours: dict, total: float) -> None:
    rows = np.arange(len(df))
    redis = _is_redis_call(df).to_numpy()
    # a span too short to see still gets a sliver (0.3 % of the axis), so each row shows where it happened
    bars = ax.barh(rows, np.maximum(df["duration_ms"], total * 0.003), left=df["start_ms"], height=0.7,
                   color=[colours[s] for s in df["service"]])
    for bar, is_redis in zip(bars, redis):  # a Redis call: its caller's colour, hatched
        if is_redis:
            bar.set_hatch(_REDIS_HATCH)
            bar.set_edgecolor("white")
    names = ["  " * int(depth) + textwrap.shorten(name, 38, placeholder="…")
             for depth, name in zip(df["depth"], df["name"])]
    ax.set_yticks(rows, names, fontsize=8, family="monospace", ha="left")
    # left-aligned, so the indent shows: the labels start a fixed distance left of the axis
    ax.yaxis.set_tick_params(pad=0.65 * 8 * max(len(n) for n in names) + 12)
    ax.set_ylim(len(df) - 0.5, -0.5)  # the first span on top
    ax.set_xlim(0, total * 1.02)
    ax.grid(axis="y", visible=False)


def _waterfall_legend(dfs: list[pd.DataFrame], colours: dict) -> list:
    handles = [Patch(color=colour, label=service) for service, colour in colours.items()]
    if any(_is_redis_call(df).any() for df in dfs):
        handles.append(Patch(facecolor="lightgrey", edgecolor="white", hatch=_REDIS_HATCH,
                             label="a Redis call (hatched, in its caller's colour)"))
    return handles


def _service_colours(dfs: list[pd.DataFrame]) -> dict:
    services = list(dict.fromkeys(s for df in dfs for s in df["service"]))
    return dict(zip(services, itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])))


def waterfall(df: pd.DataFrame, title: str | None = None):
    """Lesson 10: one trace as a waterfall (``labkit.traces.load``): a bar per span from its start to its
    end on the trace's time axis, indented under its parent, coloured by the service it ran in; Redis calls
    hatched."""
    colours = _service_colours([df])
    total = float((df["start_ms"] + df["duration_ms"]).max()) or 1.0
    fig, ax = _figure(height=0.28 * len(df) + 1.6, width=10)
    _draw_waterfall(ax, df, colours, total)
    ax.set_xlabel("time since the trace started (ms)")
    ax.set_ylabel("span (indented under its parent)")
    ax.set_title(title or f"Trace {df['trace_id'].iloc[0][:12]}…: {len(df)} spans, {total:.1f} ms")
    return _finish(fig, _waterfall_legend([df], colours), title="service")


# --- lesson 09: the lab on a cluster ------------------------------------------------------------------------

def keys_per_node(slot_map: pd.DataFrame, kinds: list[str]):
    """Lesson 09: each node's keys by kind (stacked horizontal bars) and the memory it uses. ``slot_map``:
    one row per node (index: its address) with ``role``, ``memory_mb`` and a count column per kind."""
    table = slot_map.iloc[::-1]
    labels = [f"{node} ({role})" for node, role in zip(table.index, table["role"])]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, max(3.2, 0.45 * len(table) + 1.6)), layout="constrained",
                                      sharey=True, gridspec_kw={"width_ratios": [3, 1.3]})
    y = np.arange(len(table))
    start = np.zeros(len(table))
    colours = plt.get_cmap("tab10").colors
    for kind, colour in zip(kinds, itertools.cycle(colours)):
        counts = table[kind].to_numpy(float)
        if counts.any():
            left.barh(y, counts, 0.6, left=start, color=colour, label=kind)
        start += counts
    left.set_yticks(y, labels)
    left.set_xlabel("keys on the node (count)")
    left.set_xlim(0, max(start.max() * 1.1, 1))
    left.set_title("Where the lab's keys landed")
    right.barh(y, table["memory_mb"].fillna(0), 0.6, color="tab:grey")
    right.set_xlabel("memory used (MB)")
    right.set_xlim(0, max(float(table["memory_mb"].max()) * 1.15, 1))
    right.set_title("Memory per node")
    return _finish(fig, title="kind of key")


def failover_timeline(requests: pd.DataFrame, events: pd.DataFrame, title: str, bucket_s: float = 0.5):
    """Lesson 09: requests per second (answered vs failed), and p50/slowest latency per time bucket, with
    the kill, the promotion (and any later mark) at their measured times; kill to promotion shaded."""
    df = requests.copy()
    df["bucket"] = (df["t_s"] // bucket_s) * bucket_s
    per = df.groupby("bucket").agg(ok=("ok", "sum"), failed=("ok", lambda s: int((~s).sum())),
                                   p50=("latency_ms", "median"), worst=("latency_ms", "max"))
    fig, (top, bottom) = _figure(2, height=5.8, sharex=True)
    top.bar(per.index, per["ok"] / bucket_s, width=bucket_s * 0.9, align="edge", color="tab:blue",
            label="answered (req/s)")
    if per["failed"].any():
        top.bar(per.index, per["failed"] / bucket_s, width=bucket_s * 0.9, align="edge", bottom=per["ok"] / bucket_s,
                color="tab:red", label="failed (req/s)")
    top.set_ylabel("requests per second")
    top.set_ylim(0, float((per["ok"] + per["failed"]).max() / bucket_s) * 1.15 or 1)
    top.set_title(f"{title}: {int((~df['ok']).sum())} of {len(df)} failed")
    bottom.plot(per.index + bucket_s / 2, per["p50"], marker="o", label="p50 latency")
    bottom.plot(per.index + bucket_s / 2, per["worst"], marker=".", linestyle=":", label="slowest request")
    _log_axis(bottom.yaxis)
    bottom.set_ylabel("latency (ms, log)")
    bottom.set_xlabel(f"seconds since the traffic started (s; {bucket_s:g} s buckets)")
    start, end = float(events["t_s"].iloc[0]), float(events["t_s"].iloc[1])
    for ax in (top, bottom):
        _shade(ax, start, end, label=f"kill to promotion: {end - start:.2f} s (measured)")
        for (_, mark), colour in zip(events.iterrows(), ("black", "tab:green", "tab:purple")):
            ax.axvline(mark["t_s"], color=colour, linestyle="--", linewidth=1.2,
                       label=f"{mark['event']} at {mark['t_s']:.2f} s")
    return _finish(fig)


def events_lost(table: pd.DataFrame):
    """Lesson 09: per safeguard, claims committed, claims whose event survived the failover, events lost."""
    fig, ax = _figure(height=3.4)
    y = np.arange(len(table))[::-1]
    ax.barh(y + 0.27, table["committed"], 0.27, color="tab:grey", label="claims committed (201)")
    ax.barh(y, table["exactly_one"], 0.27, color="tab:green", label="with exactly one claim.submitted")
    ax.barh(y - 0.27, table["lost"], 0.27, color="tab:red", label="event lost")
    for i, lost in zip(y, table["lost"]):
        ax.text(max(float(lost), 0) + 0.1, i - 0.27, f" {int(lost)} lost", va="center", fontsize=8)
    ax.set_yticks(y, [str(name).replace(" (", "\n(") for name in table.index])
    ax.set_xlim(0, max(float(table["committed"].max()) * 1.3, 1))
    ax.set_xlabel("claims (count)")
    ax.set_title("Events a failover lost, per safeguard")
    return _finish(fig)


def ops_per_node(ops: pd.DataFrame):
    """Lesson 09: commands per second each node served before and after slots moved to a new primary."""
    fig, ax = _figure(height=max(3.2, 0.45 * len(ops) + 1.4))
    y = np.arange(len(ops))[::-1]
    ax.barh(y + 0.2, ops["before (cmd/s)"], 0.4, color="tab:grey", label="before the reshard")
    ax.barh(y - 0.2, ops["after (cmd/s)"], 0.4, color="tab:blue", label="after the reshard")
    ax.set_yticks(y, ops.index)
    ax.set_xlim(0, max(float(ops[["before (cmd/s)", "after (cmd/s)"]].to_numpy().max()) * 1.1, 1))
    ax.set_xlabel("commands processed per second (INFO stats)")
    ax.set_title("Work per node, before and after slots moved to the new primary")
    return _finish(fig)


def cluster_cost(cost: pd.DataFrame):
    """Lesson 09: the same reads on one server and on the cluster: operations per second per kind of read
    (bars) — ``cost``: index the read, columns the setups."""
    fig, ax = _figure(height=3.8)
    x = np.arange(len(cost))
    width = 0.8 / len(cost.columns)
    for i, (setup, colour) in enumerate(zip(cost.columns, ("tab:grey", "tab:orange", "tab:blue"))):
        bars = ax.bar(x + (i - (len(cost.columns) - 1) / 2) * width, cost[setup], width, color=colour, label=setup)
        for bar, value in zip(bars, cost[setup]):
            ax.annotate(f"{value:,.0f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                        fontsize=7)
    ax.set_xticks(x, _wrapped(cost.index, 20))
    ax.set_ylim(0, float(cost.to_numpy().max()) * 1.15 or 1)
    ax.set_ylabel("operations per second (one client)")
    ax.set_title("The same reads on one server and on the cluster (this machine)")
    return _finish(fig)


def waterfalls(traces: dict[str, pd.DataFrame], title: str = "Two traces on one time scale"):
    """Lesson 10: several traces one above the other on the same millisecond axis (e.g. a cache MISS and a
    HIT), so their lengths compare at a glance; each panel titled by its key."""
    dfs = list(traces.values())
    colours = _service_colours(dfs)
    total = max(float((df["start_ms"] + df["duration_ms"]).max()) for df in dfs) or 1.0
    fig, axes = _figure(nrows=len(dfs), height=sum(0.28 * len(df) + 0.9 for df in dfs) + 1.0, width=10,
                        sharex=True, gridspec_kw={"height_ratios": [len(df) + 2 for df in dfs]})
    axes = np.atleast_1d(axes)
    for ax, (label, df) in zip(axes, traces.items()):
        _draw_waterfall(ax, df, colours, total)
        span_total = float((df["start_ms"] + df["duration_ms"]).max())
        ax.set_title(f"{label}: {len(df)} spans, {span_total:.1f} ms", fontsize=10)
        ax.set_ylabel("span")
    axes[-1].set_xlabel("time since the trace started (ms)")
    fig.suptitle(title)
    return _finish(fig, _waterfall_legend(dfs, colours), title="service")


def self_time_bars(table: pd.DataFrame, title: str = "Where a trace's time went: self time per service"):
    """Lesson 10: each service's self time (``labkit.traces.self_time_by_service``), one bar per service and
    run (columns ``service``, ``self_ms``, and ``run`` when several traces are compared)."""
    runs = list(dict.fromkeys(table["run"])) if "run" in table else ["this trace"]
    services = list(dict.fromkeys(table.sort_values("self_ms", ascending=False)["service"]))
    fig, ax = _figure(height=0.45 * len(services) * (1 + 0.5 * (len(runs) - 1)) + 1.4)
    height = 0.8 / len(runs)
    for i, run in enumerate(runs):
        part = table[table["run"] == run] if "run" in table else table
        by_service = part.set_index("service")["self_ms"].reindex(services).fillna(0)
        ax.barh(np.arange(len(services)) + i * height, by_service.values, height=height, label=run)
    ax.set_yticks(np.arange(len(services)) + height * (len(runs) - 1) / 2, services)
    ax.invert_yaxis()
    ax.set_xlabel("self time (ms): the span's time minus what its child spans cover")
    ax.set_title(title)
    return _finish(fig)
