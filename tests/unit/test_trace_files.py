"""The span files (lesson 10): OTLP/JSON as the spec writes it — ids in hex, not protobuf's base64 — read back
with OpenTelemetry's own protobuf model, and bounded in size by rotation."""

from __future__ import annotations

import base64
import json

from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from labkit import traces
from services.platform.tracing import OtlpJsonFile, otlp_json


def _provider(path, max_bytes=1_000_000):
    provider = TracerProvider(resource=Resource.create({"service.name": "claims",
                                                        "service.instance.id": "claims-3002-ab12"}))
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFile(path, max_bytes)))
    return provider


def test_ids_are_written_as_lowercase_hex_and_parse_back_into_the_protobuf_model(tmp_path):
    provider = _provider(tmp_path / "traces" / "claims-3002-ab12.jsonl")
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /claims", kind=trace.SpanKind.SERVER) as parent:
        with tracer.start_as_current_span("GET", kind=trace.SpanKind.CLIENT,
                                          links=[trace.Link(parent.get_span_context())]) as child:
            pass
    provider.shutdown()
    lines = (tmp_path / "traces" / "claims-3002-ab12.jsonl").read_text().splitlines()
    raw = [span for line in lines for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"]
           for span in ss["spans"]]
    written = {span["name"]: span for span in raw}
    trace_hex = trace.format_trace_id(parent.get_span_context().trace_id)
    assert written["GET"]["traceId"] == trace_hex and written["POST /claims"]["traceId"] == trace_hex
    assert written["GET"]["parentSpanId"] == trace.format_span_id(parent.get_span_context().span_id)
    assert written["GET"]["links"][0]["spanId"] == trace.format_span_id(parent.get_span_context().span_id)
    assert written["GET"]["kind"] == 3  # OTLP/JSON: enums as integers
    # protobuf's own JSON mapping would have read the hex as base64 and got other bytes (or failed)
    requests = [traces.parse_request(line) for line in lines]  # one line per export: here, one per span
    assert all(isinstance(request, ExportTraceServiceRequest) for request in requests)
    spans = {s.name: s for request in requests for rs in request.resource_spans for ss in rs.scope_spans
             for s in ss.spans}
    assert spans["GET"].trace_id == parent.get_span_context().trace_id.to_bytes(16, "big")
    assert spans["GET"].span_id == child.get_span_context().span_id.to_bytes(8, "big")
    assert spans["GET"].links[0].trace_id == spans["POST /claims"].trace_id
    # and the base64 form protobuf writes is what parse_request turned the hex into
    assert json_format.MessageToDict(requests[0])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == \
        base64.b64encode(bytes.fromhex(trace_hex)).decode()


def test_load_gives_one_row_per_span_parents_first(tmp_path):
    provider = _provider(tmp_path / "traces" / "claims-3002-ab12.jsonl")
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /claims", kind=trace.SpanKind.SERVER) as parent:
        with tracer.start_as_current_span("GET /policies/POL-000001", kind=trace.SpanKind.CLIENT):
            pass
    provider.shutdown()
    trace_hex = trace.format_trace_id(parent.get_span_context().trace_id)
    df = traces.load(trace_hex, run_dir=tmp_path)
    assert list(df["name"]) == ["POST /claims", "GET /policies/POL-000001"]
    assert list(df["depth"]) == [0, 1] and df["parent_id"].iloc[1] == df["span_id"].iloc[0]
    assert set(df["service"]) == {"claims"} and set(df["instance"]) == {"claims-3002-ab12"}
    assert df["start_ms"].iloc[0] == 0 and (df["duration_ms"] >= 0).all()
    assert "POST /claims" in traces.waterfall_text(df)


def test_a_span_file_is_rotated_at_its_size_cap(tmp_path):
    path = tmp_path / "traces" / "worker-3004-beef.jsonl"
    cap = 4_000
    provider = _provider(path, max_bytes=cap)
    tracer = provider.get_tracer("test")
    line_sizes = []
    for i in range(60):  # one export (one line) per span with the simple processor
        with tracer.start_as_current_span(f"claim.submitted process {i}"):
            pass
        line_sizes.append(len(path.read_text().splitlines()[-1]) + 1 if path.exists() else 0)
    provider.shutdown()
    rotated = path.with_name(path.name + ".1")
    assert rotated.exists(), "60 spans of ~700 bytes each never reached a 4 kB cap"
    biggest_line = max(line_sizes)
    # a file is rotated after the line that crossed the cap: never more than the cap plus one line
    assert path.stat().st_size < cap + biggest_line and rotated.stat().st_size < cap + biggest_line
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, rotated.name]
    newest = traces.load(run_dir=tmp_path)
    assert "claim.submitted process 59" in set(newest["name"]), "the newest spans were rotated away"
    assert "claim.submitted process 0" not in set(newest["name"]), "the oldest spans should be gone"


class Kept(SpanExporter):
    """Keeps the finished spans, to encode them both ways below."""

    def __init__(self):
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_the_lab_encoder_gives_the_same_message_as_the_otlp_exporters_protobuf_encoder():
    kept = Kept()
    provider = TracerProvider(resource=Resource.create({"service.name": "worker",
                                                        "service.instance.id": "worker-3004-beef"}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracer = provider.get_tracer("lab.events", "1.0")
    with tracer.start_as_current_span("claim.submitted process", kind=trace.SpanKind.CONSUMER,
                                      attributes={"lab.risk_score": 0.8, "lab.entity.id": "CLM-000001",
                                                  "http.status_code": 200, "ok": True,
                                                  "http.response.header.x_cache": ("HIT",)}) as parent:
        parent.add_event("retry", {"attempt": 2})
        with provider.get_tracer("other").start_as_current_span(
                "GET", kind=trace.SpanKind.CLIENT, links=[trace.Link(parent.get_span_context(), {"why": "test"})]) as child:
            child.set_status(trace.Status(trace.StatusCode.ERROR, "refused"))
    provider.shutdown()
    ours = traces.parse_request(json.dumps(otlp_json(kept.spans)))
    reference = encode_spans(kept.spans)  # opentelemetry-exporter-otlp-proto-common's own encoder
    for message in (ours, reference):  # the trace flags field is optional in OTLP; the lab does not write it
        for rs in message.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    span.ClearField("flags")
                    for link in span.links:
                        link.ClearField("flags")
    assert json_format.MessageToDict(ours) == json_format.MessageToDict(reference)


def test_otel_sdk_disabled_installs_nothing(monkeypatch, tmp_path):
    """``OTEL_SDK_DISABLED=true`` as OpenTelemetry documents it: no provider, no middleware, no files."""
    from services.core.settings import Settings
    from services.platform.tracing import start_tracing, traced_asgi

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert start_tracing("policy", "policy-3001-ab12", Settings(run_dir=tmp_path)) is None

    async def app(scope, receive, send):
        pass

    assert traced_asgi(app, None, Settings(run_dir=tmp_path)) is app
    assert not (tmp_path / "traces").exists()
