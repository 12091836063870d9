"""Every chart the lab draws: one module, one style (titles, units, labelled axes).

Each function takes a DataFrame an experiment returned and gives back a matplotlib Figure, so a notebook
shows it inline and ``labkit analyze`` saves it as PNG.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
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
