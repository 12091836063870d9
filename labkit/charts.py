"""Every chart the lab draws: one module, one style (titles, units, labelled axes).

Each function takes a DataFrame an experiment returned and gives back a matplotlib Figure, so a notebook
shows it inline and ``labkit analyze`` saves it as PNG.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Patch
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
