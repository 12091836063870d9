"""Trace context across events: the ``traceparent`` an event carries, and the span that continues it.

An HTTP hop carries its trace in the ``traceparent`` header (the instrumentations put it there and read it
back). A stream entry or a pub/sub message has no headers, so nothing crosses by itself: the event
envelope carries the W3C ``traceparent`` of the span that was current when the event was made — for a
domain event, the request that wrote the outbox row (``envelope.Event`` fills it in).

Whoever handles the event later continues that trace with ``continue_trace``. **A child span, not a
link**: one event is handled as one unit of work that exists only because of that request, and the
lesson wants one picture — gateway, claims, the relay, the worker's scoring and the status change it
makes, on one time axis, under one trace id. A span link is the right tool when one piece of work serves
many triggers (a batch of unrelated events), or when the producer's trace must stay short; neither is
the case for the one-event handlers here. A redelivered entry (reclaimed after a crash) becomes a second
child in the same trace, which is what happened.

Only the OpenTelemetry *API* is used here (no SDK, no web framework): without a configured tracer
provider every call below is a no-op, so a notebook or a test can use the patterns unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol

from opentelemetry import context, propagate, trace

tracer = trace.get_tracer("lab.events")


class CarriesTrace(Protocol):
    type: str
    subject: str
    traceparent: str | None


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None when no span is recording (tracing off)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> context.Context | None:
    """The context an event's ``traceparent`` names (a malformed one gives an empty context: a new trace)."""
    return propagate.extract({"traceparent": traceparent}) if traceparent else None


@contextmanager
def continue_trace(event: CarriesTrace, operation: str,
                   kind: trace.SpanKind = trace.SpanKind.CONSUMER) -> Iterator[trace.Span]:
    """A span ``<event type> <operation>`` (``claim.submitted process``), child of the span that made the
    event; everything awaited inside (Redis calls, HTTP calls) nests under it."""
    with tracer.start_as_current_span(f"{event.type} {operation}", context=context_of(event.traceparent),
                                      kind=kind, attributes={"lab.event.type": event.type,
                                                             "lab.entity.id": event.subject}) as span:
        yield span


@contextmanager
def publishing(events: list[CarriesTrace]) -> Iterator[None]:
    """Around the relay's round trip that publishes ``events``: one ``<type> publish`` span per event, each
    a child of its own event's trace (one round trip carries events of many requests). With exactly one
    event its span is also the current one, so the Redis call itself shows in that trace."""
    spans = [tracer.start_span(f"{event.type} publish", context=context_of(event.traceparent),
                               kind=trace.SpanKind.PRODUCER,
                               attributes={"lab.event.type": event.type, "lab.entity.id": event.subject})
             for event in events if event.traceparent]
    try:
        if len(events) == 1 and spans:
            with trace.use_span(spans[0], end_on_exit=False):
                yield
        else:
            yield
    finally:
        for span in spans:
            span.end()
