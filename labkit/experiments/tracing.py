"""Lesson 10's experiments: send a request, read its trace back from the span files, and ask it questions.

Spans reach the files in batches (each process writes every half second, the worker's after the event
hop), so every helper here waits until the trace it asked for is whole — a condition on the spans, with a
deadline — before it answers. A read is traced only if someone asks (the lab's sampler takes every write
and 1 read in 100): ``ask_for_a_trace`` is how a client asks, with a W3C ``traceparent`` whose sampled flag
is set, exactly as a caller that traces would send it.
"""

from __future__ import annotations

import secrets
import statistics
import time
from typing import Callable

import pandas as pd

from services.core.settings import Settings

from .. import traces
from ..errors import LabkitError


def ask_for_a_trace(sampled: bool = True) -> tuple[dict[str, str], str]:
    """A ``traceparent`` header for a new trace (sampled flag set or not) and that trace's id."""
    trace_id = secrets.token_hex(16)
    flag = "01" if sampled else "00"
    return {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-{flag}"}, trace_id


def wait_for_trace(trace_id: str, settings: Settings, whole: Callable[[pd.DataFrame], bool],
                   deadline_s: float = 30.0) -> pd.DataFrame:
    """The trace once ``whole(spans)`` holds and no new span has arrived for a second."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            df = traces.load(trace_id, run_dir=settings.run_dir)
            if whole(df):
                return traces.load_settled(trace_id, run_dir=settings.run_dir)
        except LabkitError:
            df = None
        if time.monotonic() > deadline:
            seen = sorted(set(df["service"])) if df is not None else []
            raise LabkitError(f"trace {trace_id} was not whole after {deadline_s:g} s (services seen: {seen})")
        time.sleep(0.2)


def _has(df: pd.DataFrame, service: str, name: str) -> bool:
    return bool(((df["service"] == service) & (df["name"] == name)).any())


def traced_claim(lab, policy_id: str, amount_cents: int = 50_000) -> tuple[dict, pd.DataFrame]:
    """Submit a claim through the gateway (a write: traced by the default sampler) and return the claim and
    its whole trace — down to the worker's scoring, and its status change when the score sent it to review."""
    response = lab.client.post("/api/claims", json={"policy_id": policy_id, "amount_cents": amount_cents,
                                                    "description": "lesson 10: a traced claim"})
    response.raise_for_status()
    claim, trace_id = response.json(), response.headers["x-trace-id"]
    status_change = f"POST /claims/{claim['id']}/status"

    def whole(df):
        if not _has(df, "worker", "claim.submitted process"):
            return False
        process = df[(df["service"] == "worker") & (df["name"] == "claim.submitted process")].iloc[0]
        to_review = process["attributes"].get("lab.risk_score", 0) >= lab.settings.worker_review_threshold
        return not to_review or _has(df, "claims", status_change)
    return claim, wait_for_trace(trace_id, lab.settings, whole)


def traced_read(lab, path: str, skip_gateway_cache: bool = True):
    """GET ``path`` through the gateway asking for a trace; returns the response and the trace. With
    ``skip_gateway_cache`` (``Cache-Control: no-cache``) the read reaches the service and its Redis cache."""
    header, trace_id = ask_for_a_trace()
    headers = {**header, **({"Cache-Control": "no-cache"} if skip_gateway_cache else {})}
    response = lab.client.get(path, headers=headers)
    response.raise_for_status()
    service = {"policies": "policy", "customers": "customer", "claims": "claims"}[path.split("/")[2]]
    return response, wait_for_trace(trace_id, lab.settings,
                                    lambda df: {"gateway", service} <= set(df["service"]))


def slowest_span(df: pd.DataFrame) -> pd.Series:
    """The span with the most self time: where the trace spent its time, not where it merely waited."""
    spans = df.assign(self_ms=traces.self_ms(df))
    return spans.loc[spans["self_ms"].idxmax()]


def claim_latencies(lab, policy_id: str, n: int = 5) -> list[float]:
    """Client-side milliseconds of ``n`` claims through the gateway (the numbers that confirm a trace)."""
    took = []
    for _ in range(n):
        started = time.perf_counter()
        lab.client.post("/api/claims", json={"policy_id": policy_id, "amount_cents": 10_000,
                                             "description": "lesson 10: timing"}).raise_for_status()
        took.append((time.perf_counter() - started) * 1000)
    return took


def slow_hop_verdict(slowest: pd.Series, delay_ms: float, before_ms: list[float], after_ms: list[float]) -> str:
    """What the trace alone said, and whether the client's own clock agrees."""
    added = statistics.median(after_ms) - statistics.median(before_ms)
    found = slowest["service"]
    return (f"the trace alone: the most self time is {slowest['self_ms']:.1f} ms in {found}'s span "
            f"{slowest['name']!r}\n"
            f"the numbers: claims took {statistics.median(before_ms):.1f} ms at the median before and "
            f"{statistics.median(after_ms):.1f} ms after (+{added:.1f} ms; the delay set on policy: {delay_ms:g} ms)\n"
            + ("confirmed: the slow hop is policy" if found == "policy" and added > delay_ms / 2
               else "NOT confirmed: look again (a busy machine can hide a small delay; make it larger)"))


def read_cost(lab, path: str, n: int = 150) -> pd.DataFrame:
    """``n`` reads of ``path`` through the gateway's hop asking to be traced and ``n`` asking not to be,
    alternating (one record per read: ``tracing``, ``latency_ms``). Client-side, so it includes everything a
    caller pays."""
    rows = []
    for i in range(2 * n):
        sampled = i % 2 == 0
        header, _ = ask_for_a_trace(sampled)
        started = time.perf_counter()
        lab.client.get(path, headers={**header, "Cache-Control": "no-cache"}).raise_for_status()
        rows.append({"tracing": "traced (sampled)" if sampled else "not sampled",
                     "latency_ms": (time.perf_counter() - started) * 1000})
    return pd.DataFrame(rows)


def _redis_calls(df: pd.DataFrame) -> int:
    return int(df["attributes"].map(lambda a: a.get("db.system", a.get("db.system.name")) == "redis").sum())


def claim_trace_verdict(claim: dict, df: pd.DataFrame, review_threshold: float) -> str:
    """What one claim's trace holds, read from its spans."""
    process = df[(df["service"] == "worker") & (df["name"] == "claim.submitted process")].iloc[0]
    root = df.iloc[0]
    answered_ms = root["start_ms"] + root["duration_ms"]
    when = "after" if process["start_ms"] > answered_ms else "this time even before"
    score = process["attributes"].get("lab.risk_score")
    change = df[(df["service"] == "claims") & (df["name"] == f"POST /claims/{claim['id']}/status")
                & (df["kind"] == "server")]
    return (f"{len(set(df['trace_id']))} trace, {len(df)} spans from {', '.join(dict.fromkeys(df['service']))}; "
            f"{_redis_calls(df)} of them Redis calls\n"
            f"the gateway answered at {answered_ms:.1f} ms; the worker started scoring at "
            f"{process['start_ms']:.1f} ms ({process['start_ms'] - answered_ms:+.1f} ms from the answer: the "
            f"event hop through the outbox and the stream runs on its own, {when} the answer)\n"
            f"risk score {score:.2f} (review from {review_threshold:g}): "
            + (f"the worker's status change is in the same trace, at {change['start_ms'].iloc[0]:.1f} ms"
               if len(change) else "no status change (score below the threshold)"))


def cache_verdict(miss_response, miss: pd.DataFrame, hit_response, hit: pd.DataFrame) -> str:
    """The MISS and the HIT, side by side, from their answers and their spans."""
    def total(df):
        return float((df["start_ms"] + df["duration_ms"]).max())

    def service_span(df):
        return df[(df["service"] != "gateway") & (df["kind"] == "server")].iloc[0]
    lines = []
    for label, response, df in (("first read", miss_response, miss), ("second read", hit_response, hit)):
        span = service_span(df)
        calls = df[df["parent_id"] == span["span_id"]]["name"].tolist()
        lines.append(f"{label}: X-Cache {response.headers.get('x-cache')}, {len(df)} spans, {total(df):.1f} ms "
                     f"end to end; inside {span['service']}: {span['duration_ms']:.1f} ms, calls {calls}")
    return "\n".join(lines)


def cost_verdict(cost: pd.DataFrame) -> str:
    p50 = cost.groupby("tracing")["latency_ms"].median()
    return (f"p50 of {len(cost) // 2} reads each (client side, through the gateway's hop): "
            f"not sampled {p50['not sampled']:.2f} ms, traced {p50['traced (sampled)']:.2f} ms "
            f"({p50['traced (sampled)'] - p50['not sampled']:+.2f} ms per traced read)")


def misleading_measures(df: pd.DataFrame) -> str:
    """The longest span and the service with the most spans, beside the one with the most self time."""
    longest = df.loc[df["duration_ms"].idxmax()]
    most_spans = df["service"].value_counts()
    by_self = traces.self_time_by_service(df)
    return (f"longest span: {longest['service']}'s {longest['name']!r}, {longest['duration_ms']:.1f} ms "
            f"(its self time: {float(traces.self_ms(df)[longest.name]):.1f} ms)\n"
            f"most spans: {most_spans.index[0]} ({most_spans.iloc[0]} spans, "
            f"{by_self.loc[most_spans.index[0], 'self_ms']:.1f} ms of self time)\n"
            f"most self time: {by_self.index[0]} ({by_self['self_ms'].iloc[0]:.1f} ms)")
