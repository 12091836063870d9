"""OpenTelemetry tracing for one service process, built from the ecosystem's own parts (lesson 10).

What each process gets (``start_tracing``, called once by the app factory):

* a ``TracerProvider`` whose resource names the process: ``service.name`` (``claims``) and
  ``service.instance.id`` (``claims-3002-ab12``), so every span says where it ran;
* the maintained instrumentations, not hand-made spans: the ASGI middleware (a server span for every
  request, the gateway's raw proxy included, since it wraps the whole app), redis-py (a client span per
  command or pipeline), aiohttp's client (the gateway's upstream hop) and httpx (peer calls, the worker's
  status change) — the two clients put ``traceparent`` on every request they send, the middleware reads
  it, so one trace crosses every hop. Events carry it too (``services/patterns/trace_context.py``);
* the lab's names on the server span, read from headers the lab writes anyway: ``X-Request-ID``,
  ``X-Cache`` (HIT/MISS), ``X-Gateway-Cache``, ``X-Served-By`` — and the path names the entity;
* ``X-Trace-Id`` on every answer, through the instrumentation's response-propagator hook, so a learner
  can copy the id from ``curl -i`` into ``labkit trace``.

Where spans go: a ``BatchSpanProcessor`` hands them, in batches, to an exporter on its own thread — the
request path only appends to a queue. The exporter is ``OtlpJsonFile`` (``<run_dir>/traces/<instance>.jsonl``,
one OTLP/JSON ``ExportTraceServiceRequest`` per line: any OTLP tool reads it later) unless
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) names a collector, then OTLP/HTTP to it.
The SDK itself reads the other standard variables: ``OTEL_SDK_DISABLED=true`` turns tracing off (then
nothing here is installed at all, not even the middleware), ``OTEL_TRACES_SAMPLER``/``_ARG`` sample,
``OTEL_BSP_*`` tune the batches (the lab's one default: batches every 500 ms, not 5 s, so
``labkit trace --last`` right after a request finds it whole).

Which requests are traced (the lab's sampler, on by default): **every write, 1 read in 100**
(``LAB_TRACE_READ_RATIO``). Decided once, at the edge: ``SampleAtTheEdge`` looks at a request before any
instrumentation does. A request that carries a ``traceparent`` follows its caller's flag; any other request
is sampled if it is a write (not GET/HEAD: a claim takes milliseconds, its spans tens of microseconds) or,
for a read, by the ratio. A sampled request goes through the ASGI instrumentation; an unsampled one goes
to the bare app with only a non-recording context around it (a trace id and the flag "not sampled", passed
on in ``traceparent``: the gateway forwards it, a peer call injects it), so the next hop sees the decision
and does not trace either, and the client instrumentations are suppressed for it. Why skip the
instrumentation instead of letting the SDK's sampler drop the span: its own work per request is paid
either way — with OpenTelemetry's ratio sampler at 1 %, a cached read through the gateway still lost about
half its throughput (4,979 vs 9,142 req/s, wrk, 2026-12-02); skipped, an unsampled request is nearly free
(README "Tracing"). Behind the edge, the SDK's sampler is
``ParentBased(ServerRootsOnly)``: a child follows its parent, and a span with no parent is sampled only if it
is a server span (one the edge chose to trace), so a background loop's Redis or HTTP call never starts a
trace of its own. An explicit ``OTEL_TRACES_SAMPLER`` replaces all of this: every request then goes
through the instrumentation and that sampler decides, as OpenTelemetry documents.

Background loops (heartbeats, the worker's blocking XREADGROUP, health polls) would fill the files with
one-span traces of a single Redis call: the sampler above starts no trace for them, ``QuietBackground``
drops a Redis span that has no parent under any other sampler, and ``/health``, ``/metrics`` and ``/stats``
get no server span.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
import os
import random
import re
import threading
from pathlib import Path
from typing import Sequence

from fastapi import FastAPI
from opentelemetry import context, trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.propagators import ResponsePropagator, set_global_response_propagator
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult

from services.core.settings import Settings

from .middleware import header

log = logging.getLogger("lab.tracing")

TRACE_ID_HEADER = "X-Trace-Id"
# Response headers the lab writes anyway; the server span keeps them as http.response.header.<name>
# (X-Request-ID is on every answer, so the request's copy is not captured too).
LAB_RESPONSE_HEADERS = ["x-request-id", "x-cache", "x-gateway-cache", "x-served-by"]
UNTRACED_PATHS = "/health$,/metrics$,/stats$"  # polled all the time; OTEL_PYTHON_ASGI_EXCLUDED_URLS overrides

_provider: TracerProvider | None = None


def tracing_disabled() -> bool:
    """``OTEL_SDK_DISABLED=true``, read the way the SDK reads it."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def start_tracing(service: str, instance_id: str, settings: Settings) -> TracerProvider | None:
    """Set up this process's tracer provider and instrument its clients (once per process); None when off."""
    global _provider
    if tracing_disabled() or not settings.tracing:  # off by default: LAB_TRACING=1 turns it on
        return None
    if _provider is not None:
        return _provider
    resource = Resource.create({"service.name": service, "service.instance.id": instance_id})
    # OTEL_TRACES_SAMPLER(_ARG), when set, chooses the sampler (the SDK reads it when given none)
    provider = TracerProvider(resource=resource, sampler=None if explicit_sampler() else ParentBased(ServerRootsOnly()))
    delay = None if os.environ.get("OTEL_BSP_SCHEDULE_DELAY") else 500
    provider.add_span_processor(QuietBackground(BatchSpanProcessor(span_exporter(instance_id, settings),
                                                                   schedule_delay_millis=delay)))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider, async_request_hook=_name_httpx_span)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider, request_hook=_name_aiohttp_span)
    set_global_response_propagator(TraceIdHeader())
    _provider = provider
    return provider


# A client span is named by its method alone ("GET"); the lab names it by the path it asks for too.
def _name_aiohttp_span(span, params) -> None:
    if span.is_recording():
        span.update_name(f"{params.method} {params.url.path}")


async def _name_httpx_span(span, request) -> None:
    if span.is_recording():
        url = request.url
        path = url.path if hasattr(url, "path") else url[3].decode("latin-1").split("?")[0]
        span.update_name(f"{request.method.decode()} {path}")


def traced_asgi(app, provider: TracerProvider | None, settings: Settings):
    """``app`` inside the ASGI instrumentation's middleware (outermost: every hop gets its server span),
    behind the lab's edge sampler unless ``OTEL_TRACES_SAMPLER`` names another."""
    if provider is None:
        return app
    traced = OpenTelemetryMiddleware(
        app, tracer_provider=provider, exclude_spans=["receive", "send"],  # no span per ASGI message
        excluded_urls=os.environ.get("OTEL_PYTHON_ASGI_EXCLUDED_URLS")
        or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS") or UNTRACED_PATHS,
        http_capture_headers_server_response=LAB_RESPONSE_HEADERS)
    if explicit_sampler():
        return traced
    return SampleAtTheEdge(app, traced, settings.trace_read_ratio)


def explicit_sampler() -> bool:
    """``OTEL_TRACES_SAMPLER`` is set: that sampler decides, for every request (the lab's rule steps aside)."""
    return bool(os.environ.get("OTEL_TRACES_SAMPLER", "").strip())


READS = ("GET", "HEAD")


class SampleAtTheEdge:
    """Decides once per request whether it is traced, before any instrumentation runs: a sampled request
    goes to ``traced`` (the app inside the ASGI instrumentation), an unsampled one to the bare ``app``.

    The rule: a ``traceparent`` from the caller decides (its sampled flag); otherwise every write, and a
    read with probability ``read_ratio``. An unsampled request still gets a trace context — a random trace
    id, flag "not sampled", recording nothing — so the clients' instrumentations tell the next hop "not
    sampled" and the log lines carry a trace id to join on."""

    def __init__(self, app, traced, read_ratio: float):
        self.app, self.traced, self.read_ratio = app, traced, read_ratio

    def sampled(self, scope) -> tuple[bool, trace.SpanContext | None]:
        """(traced?, the caller's span context when it sent a valid ``traceparent``)."""
        incoming = header(scope, b"traceparent")
        caller = parse_traceparent(incoming) if incoming is not None else None
        if caller is not None:
            return caller.trace_flags.sampled, caller
        return scope["method"] not in READS or random.random() < self.read_ratio, None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        sampled, caller = self.sampled(scope)
        if sampled:  # the instrumentation reads the caller's traceparent itself
            return await self.traced(scope, receive, send)
        if caller is None:  # a root that is not traced: its own trace id, not sampled
            caller = trace.SpanContext(random.getrandbits(128) or 1, random.getrandbits(64) or 1,
                                       is_remote=False, trace_flags=NOT_SAMPLED)
            # the gateway's proxy forwards the request's headers: the next hop learns "not sampled" from this
            scope["headers"] = [*scope["headers"],
                                (b"traceparent", b"00-%032x-%016x-00" % (caller.trace_id, caller.span_id))]
        # Instrumentation suppressed: the Redis and HTTP clients' wrappers step aside at once, instead of
        # building a span that records nothing (the services' peer calls pass "not sampled" on themselves).
        token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(caller), SUPPRESSED))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)


NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.DEFAULT)
# The context every unsampled request starts from (contexts are immutable: one, made once, for all of them).
SUPPRESSED = context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True, context.Context())
# W3C Trace Context: version-traceid-parentid-flags, lowercase hex; a later version may append fields.
_TRACEPARENT = re.compile(rb"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?[ \t]*")


def parse_traceparent(value: bytes) -> trace.SpanContext | None:
    """The caller's span context from its ``traceparent`` header; None when the header is not a valid one.

    The rules of OpenTelemetry's own ``TraceContextTextMapPropagator.extract`` (version ``ff`` is invalid,
    version ``00`` has exactly four fields, an all-zero id is invalid), without the rest of its work: every
    unsampled request between two services pays for this, and ``extract`` cost about 19 us a call here,
    this about 3 (``tests/unit/test_edge_sampler.py`` checks both agree, header by header). The
    ``tracestate`` of an unsampled caller is not carried on: nobody records that request.
    """
    match = _TRACEPARENT.fullmatch(value)
    if match is None or match[1] == b"ff" or (match[1] == b"00" and match[5]):
        return None
    trace_id, span_id = int(match[2], 16), int(match[3], 16)
    if not trace_id or not span_id:
        return None
    return trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(int(match[4], 16)))


class ServerRootsOnly(Sampler):
    """The root sampler behind ``ParentBased``: a span with no parent is sampled only if it is a server span
    (``SampleAtTheEdge`` let only sampled requests reach the instrumentation); a client span with no parent
    (a heartbeat's Redis call, a health probe) or an event with no trace context starts no trace."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                      trace_state=None) -> SamplingResult:
        decision = Decision.RECORD_AND_SAMPLE if kind == trace.SpanKind.SERVER else Decision.DROP
        return SamplingResult(decision, attributes if decision is Decision.RECORD_AND_SAMPLE else None, trace_state)

    def get_description(self) -> str:
        return "ServerRootsOnly"


def fastapi_options() -> dict:
    """FastAPI's own (native) tracing off: the ASGI middleware around the whole app makes this hop's server
    span already, and FastAPI's would be a second server span beside it (it takes its parent from the
    headers too). Empty for a FastAPI without native telemetry."""
    if "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    return {"telemetry": {"tracing": False}}


def stop_tracing() -> None:
    """Export what is still queued and close the exporter (the end of the app's lifespan)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()


def span_exporter(instance_id: str, settings: Settings) -> SpanExporter:
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout: all from the OTEL_EXPORTER_OTLP_* variables
    return OtlpJsonFile(settings.run_dir / "traces" / f"{instance_id}.jsonl", settings.trace_file_max_bytes)


class TraceIdHeader(ResponsePropagator):
    """Puts ``X-Trace-Id: <32 hex>`` on the response (the instrumentation calls it at response start)."""

    def inject(self, carrier, context=None, setter=None) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid and setter is not None:
            setter.set(carrier, TRACE_ID_HEADER, trace.format_trace_id(span_context.trace_id))


class QuietBackground(SpanProcessor):
    """Passes spans on to ``inner``, except a Redis span with no parent: a background loop's lone command
    (a heartbeat, a blocking read that timed out), not part of any request or event."""

    def __init__(self, inner: SpanProcessor):
        self.inner = inner

    def on_start(self, span, parent_context=None) -> None:
        self.inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if span.parent is None and span.instrumentation_scope and \
                span.instrumentation_scope.name.startswith("opentelemetry.instrumentation.redis"):
            return
        self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def otlp_json(spans: Sequence[ReadableSpan]) -> dict:
    """Spans as one OTLP/JSON ``ExportTraceServiceRequest`` (the OTLP spec's JSON encoding: protobuf's JSON
    mapping with lowerCamelCase names, trace and span ids as lowercase hex, enums as integers, 64-bit
    integers as strings).

    Written here from the spans directly rather than through the OTLP exporter's protobuf encoder and
    ``json_format.MessageToDict``: that route cost about 100 us per span here (512 server spans encoded
    both ways), on the batch thread but holding the GIL the requests need; this one about a fifth of it. ``tests/unit/test_trace_files.py`` checks that both routes give the same message.
    """
    by_resource: dict[int, tuple] = {}
    for span in spans:
        resource, scopes = by_resource.setdefault(id(span.resource), (span.resource, {}))
        scope = span.instrumentation_scope
        key = (scope.name, scope.version) if scope else ("", None)
        scopes.setdefault(key, []).append(_span_json(span))
    return {"resourceSpans": [
        {"resource": {"attributes": _attributes(resource.attributes)},
         "scopeSpans": [{"scope": {"name": name, **({"version": version} if version else {})}, "spans": encoded}
                        for (name, version), encoded in scopes.items()],
         **({"schemaUrl": resource.schema_url} if resource.schema_url else {})}
        for resource, scopes in by_resource.values()]}


def _span_json(span: ReadableSpan) -> dict:
    context = span.context
    encoded = {"traceId": f"{context.trace_id:032x}", "spanId": f"{context.span_id:016x}", "name": span.name,
               "kind": span.kind.value + 1,  # the SDK counts from INTERNAL = 0, OTLP from UNSPECIFIED = 0
               "startTimeUnixNano": str(span.start_time), "endTimeUnixNano": str(span.end_time)}
    if span.parent is not None:
        encoded["parentSpanId"] = f"{span.parent.span_id:016x}"
    if context.trace_state:
        encoded["traceState"] = context.trace_state.to_header()
    if span.attributes:
        encoded["attributes"] = _attributes(span.attributes)
    if span.events:
        encoded["events"] = [{"timeUnixNano": str(event.timestamp), "name": event.name,
                              **({"attributes": _attributes(event.attributes)} if event.attributes else {})}
                             for event in span.events]
    if span.links:
        encoded["links"] = [{"traceId": f"{link.context.trace_id:032x}", "spanId": f"{link.context.span_id:016x}",
                             **({"attributes": _attributes(link.attributes)} if link.attributes else {})}
                            for link in span.links]
    status = span.status
    encoded["status"] = {**({"code": status.status_code.value} if status.status_code.value else {}),
                         **({"message": status.description} if status.description else {})}
    return encoded


def _attributes(attributes) -> list[dict]:
    return [{"key": key, "value": _any_value(value)} for key, value in attributes.items()]


def _any_value(value) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_any_value(item) for item in value]}}
    return {"stringValue": str(value)}


class OtlpJsonFile(SpanExporter):
    """One line per batch to ``path``; past ``max_bytes`` the file becomes ``<path>.1`` (replacing the older
    one) and a new file starts: rotation, so the newest traces are always there and a process never holds
    more than about twice ``max_bytes``. Runs on the batch processor's thread, never on a request."""

    def __init__(self, path: Path, max_bytes: int):
        self.path, self.max_bytes = Path(path), max_bytes
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        line = json.dumps(otlp_json(spans), separators=(",", ":")) + "\n"
        try:
            with self._lock:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(line)
                    size = out.tell()
                if size >= self.max_bytes:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except OSError as exc:  # a full disk must not take the service down: the spans are dropped
            log.warning("could not write spans to %s: %s", self.path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
