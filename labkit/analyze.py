"""``labkit analyze RESULTS``: from per-request records to the numbers and charts that find a bottleneck.

What it reads: the records ``labkit load`` wrote (CSV + the ``.json`` sidecar with the run's own
numbers), and, if the lab is up, Redis ``INFO`` (stats, commandstats, latencystats) and each service's
``/stats`` and ``/metrics`` (skipped where a service does not have them). What it gives: a summary per
route (req/s, error rate, p50/p90/p99/p99.9, cache hit rate from ``X-Cache``), a timeline, percentiles
per concurrency when several runs are given, and PNG charts. Every function returns a DataFrame or a
Figure, so a notebook shows the same thing inline.

Percentiles of an open-loop run that fell behind its schedule are left empty (NaN), on purpose: they
would describe a lighter load than the one that was asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from services.core.settings import Settings, get_settings

from . import charts
from .errors import LabkitError
from .load import COLUMNS, LoadResult

PERCENTILES = {"p50_ms": 0.50, "p90_ms": 0.90, "p99_ms": 0.99, "p99.9_ms": 0.999}
ALL_ROUTES = "(all routes)"


def read_results(*paths: str | Path) -> list[LoadResult]:
    """Each results file with its sidecar; a file without one gets the numbers its records can tell."""
    results = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise LabkitError(f"no results file at {path} (run `labkit load` first; it prints where it wrote)")
        records = pd.read_csv(path, keep_default_na=False, na_values={"latency_ms": [""], "service_ms": [""]})
        missing = [c for c in COLUMNS if c not in records.columns]
        if missing:
            raise LabkitError(f"{path} is not a `labkit load` results file: no column(s) {', '.join(missing)}")
        sidecar = path.with_suffix(".json")
        meta = json.loads(sidecar.read_text()) if sidecar.exists() else _meta_from_records(records)
        results.append(LoadResult(records, meta, path))
    return results


def _meta_from_records(records: pd.DataFrame) -> dict:
    span = float(records["start_s"].max()) if len(records) else 0.0
    first = records.iloc[0] if len(records) else {}
    return {"run": first.get("run", "?"), "mode": first.get("mode", "?"), "concurrency": first.get("concurrency"),
            "duration_s": span, "requests": len(records), "percentiles_refused": False}


def is_error(status: pd.Series) -> pd.Series:
    """Anything but a 2xx/3xx answer, and 0 (no answer at all: timeout, refused connection)."""
    return ~status.between(200, 399)


def route_summary(result: LoadResult) -> pd.DataFrame:
    """One row per route plus one for all routes: requests, req/s, errors, percentiles, hit rate."""
    records, meta = result.records, result.meta
    duration = meta.get("duration_s") or max(float(records["start_s"].max()), 1e-9)
    groups = [(route, g) for route, g in records.groupby("route", sort=True)] + [(ALL_ROUTES, records)]
    rows = []
    for route, group in groups:
        ok_latency = group.loc[~is_error(group["status"]), "latency_ms"]
        cached = group["x_cache"].astype(str).str.upper()
        carrying = cached[cached.isin(["HIT", "MISS"])]
        row = {"route": route, "requests": len(group), "req_s": len(group) / duration,
               "errors": int(is_error(group["status"]).sum()),
               "error_rate": float(is_error(group["status"]).mean()) if len(group) else 0.0}
        for name, q in PERCENTILES.items():
            row[name] = float(ok_latency.quantile(q)) if len(ok_latency) and not result.percentiles_refused else np.nan
        row["hit_rate"] = float((carrying == "HIT").mean()) if len(carrying) else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("route").round(3)


def timeline(records: pd.DataFrame, bucket_s: float | None = None) -> pd.DataFrame:
    """Per time bucket (by intended send time): requests/s, errors/s, hit rate, p50 and p99."""
    if records.empty:
        return pd.DataFrame(columns=["t_s", "req_s", "errors_s", "hit_rate", "p50_ms", "p99_ms"])
    span = float(records["intended_s"].max())
    bucket_s = bucket_s or max(0.1, round(span / 20, 1))
    bucket = (records["intended_s"] // bucket_s) * bucket_s
    cached = records["x_cache"].astype(str).str.upper()
    frame = pd.DataFrame({"t_s": bucket, "error": is_error(records["status"]), "latency_ms": records["latency_ms"],
                          "hit": cached.eq("HIT").where(cached.isin(["HIT", "MISS"]))})
    out = frame.groupby("t_s").agg(requests=("error", "size"), errors=("error", "sum"), hit_rate=("hit", "mean"),
                                   p50_ms=("latency_ms", "median"),
                                   p99_ms=("latency_ms", lambda s: s.quantile(0.99)))
    out["req_s"] = out["requests"] / bucket_s
    out["errors_s"] = out["errors"] / bucket_s
    return out.reset_index()[["t_s", "req_s", "errors_s", "hit_rate", "p50_ms", "p99_ms"]]


def by_concurrency(results: list[LoadResult]) -> pd.DataFrame:
    """One row per run: its concurrency, achieved req/s and percentiles (NaN where refused)."""
    rows = []
    for result in results:
        total = route_summary(result).loc[ALL_ROUTES]
        rows.append({"run": result.meta.get("run"), "mode": result.meta.get("mode"),
                     "concurrency": int(result.meta.get("concurrency") or 0), "req_s": total["req_s"],
                     **{name: total[name] for name in PERCENTILES}})
    return pd.DataFrame(rows).sort_values(["mode", "concurrency"]).reset_index(drop=True)


def compare(summaries: dict[str, pd.DataFrame], metrics=("req_s", "p50_ms", "p99_ms", "error_rate", "hit_rate")):
    """Two (or more) runs side by side: for each metric, one column per run, one row per route."""
    return pd.concat({metric: pd.DataFrame({label: s[metric] for label, s in summaries.items()})
                      for metric in metrics}, axis=1)


def redis_overview(settings: Settings | None = None) -> dict:
    """Redis ``INFO``: a few stats, per-command calls and µs/call, per-command latency percentiles."""
    from . import redis_server

    server = redis_server.current(settings or get_settings())
    if server is None:
        return {}
    client = server.client(socket_timeout=2)
    stats = client.info("stats")
    keep = ("total_commands_processed", "instantaneous_ops_per_sec", "keyspace_hits", "keyspace_misses",
            "expired_keys", "evicted_keys", "total_connections_received", "rejected_connections")
    commands = pd.DataFrame([{"command": name.removeprefix("cmdstat_"), "calls": v["calls"],
                              "usec_per_call": v["usec_per_call"]}
                             for name, v in client.info("commandstats").items()])
    try:
        latency = client.info("latencystats")
    except Exception:  # noqa: BLE001 - older servers have no latencystats section
        latency = {}
    percentiles = pd.DataFrame([{"command": name.removeprefix("latency_percentiles_usec_"), **values}
                                for name, values in latency.items()])
    if not commands.empty:
        commands = commands.sort_values("calls", ascending=False).reset_index(drop=True)
        if not percentiles.empty:
            commands = commands.merge(percentiles, on="command", how="left")
    return {"server": server.info(), "stats": {k: stats.get(k) for k in keep}, "commands": commands}


def service_metrics(settings: Settings | None = None) -> dict[str, dict]:
    """Each service's ``/stats`` (JSON) and ``/metrics`` (Prometheus text), where they exist (404 -> skipped)."""
    from .auth import service_headers

    settings = settings or get_settings()
    found: dict[str, dict] = {}
    for service in ("gateway", "policy", "claims", "customer"):
        for endpoint in ("stats", "metrics"):
            try:
                response = httpx.get(f"{settings.url_of(service)}/{endpoint}",
                                     headers=service_headers(settings, service),
                                     timeout=2)
            except httpx.HTTPError:
                continue
            if response.status_code != 200:
                continue
            body = response.json() if endpoint == "stats" else _prometheus_samples(response.text)
            found.setdefault(service, {})[endpoint] = body
    return found


def _prometheus_samples(text: str) -> dict[str, float]:
    """``{'http_requests_total{route="/policies/{id}"}': 42.0, ...}`` from the Prometheus text format."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


@dataclass
class Analysis:
    results: list[LoadResult]
    summaries: dict[str, pd.DataFrame]
    timelines: dict[str, pd.DataFrame]
    concurrency: pd.DataFrame
    redis: dict = field(default_factory=dict)
    services: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)

    def report(self) -> str:
        from .tables import text_table

        parts = []
        for result in self.results:
            run = result.meta.get("run")
            summary = self.summaries[run]
            parts.append(result.report())
            if result.percentiles_refused:
                parts.append("  percentiles are left empty: this run fell behind its schedule")
            parts.append(text_table(table_rows(summary)))
        if self.redis:
            stats = self.redis["stats"]
            hits, misses = stats.get("keyspace_hits") or 0, stats.get("keyspace_misses") or 0
            parts.append(f"Redis {self.redis['server']['name']} {self.redis['server']['version']}: "
                         f"{stats['total_commands_processed']:,} commands since start, keyspace hit rate "
                         f"{hits / max(1, hits + misses):.1%}; busiest commands:")
            parts.append(text_table(table_rows(self.redis["commands"].head(8).set_index("command"))))
        for result in self.results:
            per_run = result.meta.get("redis_commands")
            if per_run and len(result.records):
                top = ", ".join(f"{name} {calls / len(result.records):.2f}" for name, calls in list(per_run.items())[:6])
                parts.append(f"Redis commands per HTTP request during run {result.meta['run']} "
                             f"(whole server, workers included): {top}")
        if self.services:
            parts.append("service metrics: " + ", ".join(f"{name} ({', '.join(sorted(found))})"
                                                        for name, found in self.services.items()))
        else:
            parts.append("service metrics: no service answers /stats or /metrics (skipped)")
        if self.written:
            parts.append("wrote: " + ", ".join(str(p) for p in self.written))
        return "\n\n".join(parts)


def table_rows(frame: pd.DataFrame) -> list[dict]:
    """A DataFrame as rows for ``text_table``: the index first, numbers rounded for reading, NaN as "-"."""
    def fmt(value):
        if isinstance(value, float):
            return "-" if np.isnan(value) else f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
        return value
    label = frame.index.name or ""
    return [{label: index, **{k: fmt(v) for k, v in row.items()}}
            for index, row in zip(frame.index, frame.to_dict(orient="records"))]


def analyze(*paths: str | Path, out_dir: str | Path | None = None, live: bool = True,
            settings: Settings | None = None, results: list[LoadResult] | None = None) -> Analysis:
    """Summaries, timelines and charts for one or more runs; PNGs, summary.csv and JSON written to ``out_dir``.

    ``results`` lets a notebook pass runs it holds in memory instead of file paths. ``live`` also reads
    Redis INFO and the services' /stats and /metrics from the running lab.
    """
    results = list(results or []) + read_results(*paths)
    if not results:
        raise LabkitError("nothing to analyze: give at least one results file")
    summaries = {r.meta["run"]: route_summary(r) for r in results}
    timelines = {r.meta["run"]: timeline(r.records) for r in results}
    concurrency = by_concurrency(results)
    analysis = Analysis(results, summaries, timelines, concurrency)
    if live:
        settings = settings or get_settings()
        try:
            analysis.redis = redis_overview(settings)
        except Exception:  # noqa: BLE001 - Redis down: the records alone still tell most of the story
            analysis.redis = {}
        analysis.services = service_metrics(settings)
    records = pd.concat([r.records for r in results], ignore_index=True)
    refused = {r.meta["run"] for r in results if r.percentiles_refused}
    measurable = records[~records["run"].isin(refused)]
    all_timeline = timeline(records)
    analysis.figures = {
        "latency_cdf": charts.latency_cdf(measurable[~is_error(measurable["status"])],
                                          title="Latency per route (all runs, from intended send time)"),
        "throughput": charts.throughput_over_time(all_timeline),
        "hit_rate": charts.hit_rate_over_time(all_timeline),
        "percentiles_vs_concurrency": charts.percentiles_vs_concurrency(concurrency),
    }
    for figure in analysis.figures.values():  # kept, not shown: a notebook displays the one it wants
        plt.close(figure)
    if out_dir is not None or paths:
        out = Path(out_dir) if out_dir else Path(paths[0]).with_name(Path(paths[0]).stem + "-analysis")
        analysis.written = _write(analysis, out)
    return analysis


def _write(analysis: Analysis, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in analysis.figures.items():
        path = out / f"{name}.png"
        figure.savefig(path, dpi=100)
        written.append(path)
    summary = pd.concat(analysis.summaries, names=["run", "route"])
    summary.to_csv(out / "summary.csv")
    written.append(out / "summary.csv")
    if analysis.redis or analysis.services:
        live = {"redis": {k: v for k, v in analysis.redis.items() if k != "commands"}, "services": analysis.services}
        if analysis.redis:
            live["redis"]["commands"] = analysis.redis["commands"].to_dict(orient="records")
        (out / "live.json").write_text(json.dumps(live, indent=1, default=str))
        written.append(out / "live.json")
    return written
