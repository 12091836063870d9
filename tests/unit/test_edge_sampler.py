"""The lab's sampler (lesson 10, ``services/platform/tracing.py``): decided once at the edge — every write, a
share of reads, a caller's ``traceparent`` followed — and nothing behind the edge starts a trace of its own."""

from __future__ import annotations

import asyncio
import random

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.core.settings import Settings
from services.platform.tracing import SampleAtTheEdge, ServerRootsOnly, parse_traceparent, traced_asgi

SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NOT_SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


def scope(method: str = "GET", traceparent: str | None = None) -> dict:
    headers = [(b"traceparent", traceparent.encode())] if traceparent else []
    return {"type": "http", "method": method, "path": "/policies/POL-000001", "headers": headers}


def run(edge: SampleAtTheEdge, request: dict) -> dict:
    """Which app the edge called, and the trace context that app ran in."""
    seen = {}

    def recorder(name):
        async def app(scope, receive, send):
            seen["app"] = name
            seen["context"] = trace.get_current_span().get_span_context()
            seen["suppressed"] = bool(context.get_value(context._SUPPRESS_INSTRUMENTATION_KEY))
        return app

    edge.app, edge.traced = recorder("bare"), recorder("traced")
    asyncio.run(edge(request, None, None))
    return seen


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_every_write_is_traced(method):
    assert run(SampleAtTheEdge(None, None, read_ratio=0.0), scope(method))["app"] == "traced"


def test_reads_are_traced_by_the_ratio():
    assert run(SampleAtTheEdge(None, None, read_ratio=1.0), scope("GET"))["app"] == "traced"
    untraced = run(SampleAtTheEdge(None, None, read_ratio=0.0), scope("GET"))
    assert untraced["app"] == "bare"
    # not traced, but in a trace context of its own: the next hop is told "not sampled", the logs get an id
    assert untraced["context"].is_valid and not untraced["context"].trace_flags.sampled
    assert untraced["suppressed"]  # the client instrumentations step aside for it
    assert not run(SampleAtTheEdge(None, None, read_ratio=1.0), scope("GET"))["suppressed"]
    share = sum(run(SampleAtTheEdge(None, None, read_ratio=0.5), scope("GET"))["app"] == "traced"
                for _ in range(400)) / 400
    assert 0.3 < share < 0.7  # (a binomial(400, 0.5) outside this happens about once in 10^15 runs)


def test_a_callers_traceparent_decides_for_reads_and_writes():
    assert run(SampleAtTheEdge(None, None, read_ratio=0.0), scope("GET", SAMPLED))["app"] == "traced"
    followed = run(SampleAtTheEdge(None, None, read_ratio=1.0), scope("POST", NOT_SAMPLED))
    assert followed["app"] == "bare"
    assert f"{followed['context'].trace_id:032x}" == NOT_SAMPLED.split("-")[1]  # the caller's trace goes on


def test_a_malformed_traceparent_is_ignored_not_followed():
    assert run(SampleAtTheEdge(None, None, read_ratio=0.0), scope("POST", "00-zz-yy-01"))["app"] == "traced"
    assert run(SampleAtTheEdge(None, None, read_ratio=0.0), scope("GET", "00-zz-yy-01"))["app"] == "bare"


def test_behind_the_edge_only_a_server_span_starts_a_trace():
    provider = TracerProvider(sampler=ParentBased(ServerRootsOnly()))
    tracer = provider.get_tracer("test")
    assert not tracer.start_span("GET", kind=trace.SpanKind.CLIENT).is_recording()  # a heartbeat's Redis call
    assert not tracer.start_span("claim.submitted process", kind=trace.SpanKind.CONSUMER).is_recording()
    server = tracer.start_span("GET /policies/{id}", kind=trace.SpanKind.SERVER)
    assert server.is_recording()
    with trace.use_span(server, end_on_exit=True):
        assert tracer.start_span("GET", kind=trace.SpanKind.CLIENT).is_recording()  # a child follows its parent
    unsampled = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
        1, 1, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT))))
    assert not tracer.start_span("GET /x", context=unsampled, kind=trace.SpanKind.SERVER).is_recording()


def test_an_explicit_otel_traces_sampler_replaces_the_lab_rule(monkeypatch, tmp_path):
    async def app(scope, receive, send):
        pass

    provider = TracerProvider()
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    assert isinstance(traced_asgi(app, provider, Settings(run_dir=tmp_path)), SampleAtTheEdge)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    assert not isinstance(traced_asgi(app, provider, Settings(run_dir=tmp_path)), SampleAtTheEdge)


def headers_to_try() -> list[bytes]:
    """Valid headers, the spec's invalid ones, and random mutations of both (seeded: the same every run)."""
    rng = random.Random(16)
    base = [SAMPLED, NOT_SAMPLED, "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-future",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00: exactly 4 fields
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",        # version ff: invalid
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",        # all-zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",        # all-zero span id
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",        # upper case: invalid
            " \t00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t ", "", "00", "00-zz-yy-01"]
    tried = [value.encode() for value in base]
    alphabet = "0123456789abcdefABx- \t"
    for _ in range(3000):  # one to three characters changed, dropped or added
        value = list(rng.choice(base[:4]))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(value) + 1)
            action = rng.choice(("change", "drop", "add"))
            if action == "add" or at == len(value):
                value.insert(at, rng.choice(alphabet))
            elif action == "drop":
                del value[at]
            else:
                value[at] = rng.choice(alphabet)
        tried.append("".join(value).encode())
    return tried


def test_the_edges_traceparent_parser_agrees_with_opentelemetrys():
    """``parse_traceparent`` is a faster copy of the propagator's rules: on every header, valid or not, it
    must say what ``TraceContextTextMapPropagator.extract`` says (a newline is left out: an HTTP header
    cannot carry one, and the propagator's ``$`` would accept one at the end)."""
    propagator = TraceContextTextMapPropagator()
    accepted = 0
    for value in headers_to_try():
        theirs = trace.get_current_span(propagator.extract({"traceparent": value.decode("latin-1")})).get_span_context()
        ours = parse_traceparent(value)
        if not theirs.is_valid:
            assert ours is None, value
            continue
        accepted += 1
        assert ours is not None, value
        assert (ours.trace_id, ours.span_id, ours.trace_flags, ours.is_remote) == \
               (theirs.trace_id, theirs.span_id, theirs.trace_flags, theirs.is_remote), value
    assert accepted > 100  # the mutations leave enough valid headers for the comparison to mean something
