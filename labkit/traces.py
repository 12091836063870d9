"""Reading the lab's traces back (lesson 10): ``load`` for a DataFrame, ``labkit trace`` for the terminal.

Every service writes its spans to ``<run_dir>/traces/<instance>.jsonl`` (``services/platform/tracing.py``):
one OTLP/JSON ``ExportTraceServiceRequest`` per line, the newest lines last, one rotated generation in
``<instance>.jsonl.1``. Each line is parsed with OpenTelemetry's own protobuf model, so what labkit reads is
exactly what Jaeger, Tempo or any OTLP tool would read. OTLP/JSON writes ids as hex where protobuf's JSON
expects base64: ``parse_request`` converts them back before parsing.

A trace is found by its id (32 hex digits) or by a request id (``X-Request-ID``, which the server spans keep
as ``http.response.header.x_request_id``); ``--last`` is the newest trace that started at the gateway.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Iterator

import pandas as pd
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from services.core.settings import get_settings

from .errors import LabkitError

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
ID_FIELDS = ("traceId", "spanId", "parentSpanId")
REQUEST_ID_ATTRIBUTES = ("http.response.header.x_request_id", "http.request.header.x_request_id")
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
COLUMNS = ["trace_id", "span_id", "parent_id", "name", "kind", "service", "instance", "start_ms",
           "duration_ms", "depth", "status", "start_time", "attributes"]


def traces_dir(run_dir: str | Path | None = None) -> Path:
    return Path(run_dir) / "traces" if run_dir else get_settings().run_dir / "traces"


def parse_request(line: str | bytes) -> ExportTraceServiceRequest:
    """One line of a span file as the protobuf message (hex ids turned back into protobuf JSON's base64)."""
    message = json.loads(line)
    for resource_spans in message.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                _ids_to_base64(span)
                for link in span.get("links", []):
                    _ids_to_base64(link)
    return json_format.ParseDict(message, ExportTraceServiceRequest())


def _ids_to_base64(record: dict) -> None:
    for name in ID_FIELDS:
        if record.get(name):
            record[name] = base64.b64encode(bytes.fromhex(record[name])).decode()


def _value(any_value):
    """An OTLP ``AnyValue`` as a Python value."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in any_value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


def span_files(run_dir: str | Path | None = None, service: str | None = None) -> list[Path]:
    """Every span file, the rotated generation first (older lines first)."""
    folder = traces_dir(run_dir)
    prefix = f"{service}-" if service else ""
    return sorted(folder.glob(f"{prefix}*.jsonl.1")) + sorted(folder.glob(f"{prefix}*.jsonl"))


def _lines(files: list[Path], needle: str | None) -> Iterator[str]:
    for path in files:
        try:
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    # a cheap pre-filter before the real parse: a line without the id holds none of its spans
                    if line.strip() and (needle is None or needle in line):
                        yield line
        except FileNotFoundError:  # rotated away while we read
            continue


def _rows(request: ExportTraceServiceRequest) -> Iterator[dict]:
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {"trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                       "parent_id": span.parent_span_id.hex() or None, "name": span.name,
                       "kind": KINDS.get(span.kind, str(span.kind)), "service": resource.get("service.name"),
                       "instance": resource.get("service.instance.id"),
                       "start_ns": span.start_time_unix_nano, "end_ns": span.end_time_unix_nano,
                       "status": {0: "unset", 1: "ok", 2: "error"}.get(span.status.code, ""),
                       "attributes": {kv.key: _value(kv.value) for kv in span.attributes}}


def _spans(run_dir, needle: str | None, service: str | None = None) -> list[dict]:
    return [row for line in _lines(span_files(run_dir, service), needle) for row in _rows(parse_request(line))]


def resolve(id_or_request_id: str, run_dir: str | Path | None = None) -> str:
    """The trace id itself, or the trace of the request whose ``X-Request-ID`` is ``id_or_request_id``."""
    if TRACE_ID.match(id_or_request_id):
        return id_or_request_id
    for row in _spans(run_dir, id_or_request_id):
        for name in REQUEST_ID_ATTRIBUTES:
            if id_or_request_id in (row["attributes"].get(name) or ()):
                return row["trace_id"]
    raise LabkitError(f"no span in {traces_dir(run_dir)} carries the request id {id_or_request_id!r}")


def last_trace_id(run_dir: str | Path | None = None) -> str:
    """The newest trace whose root is a server span of the gateway (a request from outside)."""
    newest = []
    for current in traces_dir(run_dir).glob("gateway-*.jsonl"):  # each gateway instance (gateway#2 ...)
        lines = list(_lines([current.with_name(current.name + ".1"), current], None))
        for line in reversed(lines):  # its newest batch that holds a root: no need to parse the whole file
            roots = [row for row in _rows(parse_request(line)) if row["parent_id"] is None and row["kind"] == "server"]
            if roots:
                newest.append(max(roots, key=lambda row: row["start_ns"]))
                break
    if not newest:
        raise LabkitError(f"no request through the gateway has been traced yet in {traces_dir(run_dir)}")
    return max(newest, key=lambda row: row["start_ns"])["trace_id"]


def load(trace_id: str | None = None, run_dir: str | Path | None = None) -> pd.DataFrame:
    """The spans of one trace (an id, or a request id), parents before children in start order — or, with
    no id, every span on file. ``start_ms`` is the offset from the start of the span's trace."""
    trace_id = resolve(trace_id, run_dir) if trace_id else None
    rows = [row for row in _spans(run_dir, trace_id) if trace_id is None or row["trace_id"] == trace_id]
    if not rows and trace_id:
        raise LabkitError(f"no spans of trace {trace_id} in {traces_dir(run_dir)} (yet: spans are written "
                          "in batches, every half second)")
    return _frame(rows)


RECORDED = Path(__file__).parent / "data" / "traces"


def recorded(name: str = "claim_with_slow_policy") -> pd.DataFrame:
    """A trace recorded on a real lab and shipped with labkit (``labkit/data/traces/<name>.jsonl``, the span
    files' own OTLP/JSON lines, only that trace's spans kept): the DataFrame ``load`` gives, with no lab
    running. ``claim_with_slow_policy``: one claim through the gateway while policy answered 150 ms late."""
    return _frame([row for line in _lines([RECORDED / f"{name}.jsonl"], None) for row in _rows(parse_request(line))])


def _frame(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    rows = list({row["span_id"]: row for row in rows}.values())  # a span is written once; be safe anyway
    ordered = _tree_order(rows)
    df = pd.DataFrame(ordered)
    first = df.groupby("trace_id")["start_ns"].transform("min")
    df["start_ms"] = (df["start_ns"] - first) / 1e6
    df["duration_ms"] = (df["end_ns"] - df["start_ns"]) / 1e6
    df["start_time"] = pd.to_datetime(df["start_ns"], unit="ns", utc=True)
    return df[COLUMNS].reset_index(drop=True)


def _tree_order(rows: list[dict]) -> list[dict]:
    """Depth-first from each root (a span whose parent is not on file counts as a root), children by start."""
    known = {row["span_id"] for row in rows}
    children: dict[str | None, list[dict]] = {}
    for row in rows:
        parent = row["parent_id"] if row["parent_id"] in known else None
        children.setdefault(parent, []).append(row)
    ordered: list[dict] = []
    stack = [(row, 0) for row in sorted(children.get(None, []), key=lambda r: r["start_ns"], reverse=True)]
    while stack:
        row, depth = stack.pop()
        ordered.append({**row, "depth": depth})
        for child in sorted(children.get(row["span_id"], []), key=lambda r: r["start_ns"], reverse=True):
            stack.append((child, depth + 1))
    return ordered


def self_ms(df: pd.DataFrame) -> pd.Series:
    """Each span's self time: its duration minus the time its direct children cover, each child clipped to
    the span's own interval and overlapping children counted once (two peer calls awaited together cover
    their union, not their sum; the worker's span, which starts after the request that made the event has
    answered, covers none of it). What is left is time spent in that span's own code and waits."""
    end = df["start_ms"] + df["duration_ms"]
    spans = pd.DataFrame({"start": df["start_ms"], "end": end, "parent": df["parent_id"]}).set_index(df["span_id"])
    covered = dict.fromkeys(spans.index, 0.0)
    for parent, children in spans[spans["parent"].isin(spans.index)].groupby("parent"):
        low, high = spans.at[parent, "start"], spans.at[parent, "end"]
        reach, total = low, 0.0
        for start, stop in sorted(zip(children["start"].clip(low, high), children["end"].clip(low, high))):
            if stop > reach:
                total += stop - max(start, reach)
                reach = stop
        covered[parent] = total
    return pd.Series([d - covered[i] for i, d in zip(df["span_id"], df["duration_ms"])], index=df.index,
                     name="self_ms")


def self_time_by_service(df: pd.DataFrame) -> pd.DataFrame:
    """Self time summed per service, largest first, with how many spans each had (the bottleneck is the top
    row: where the trace's time was spent, not where it was merely waited for)."""
    table = df.assign(self_ms=self_ms(df)).groupby("service").agg(self_ms=("self_ms", "sum"),
                                                                  spans=("span_id", "size"))
    table["share"] = table["self_ms"] / table["self_ms"].sum()
    return table.sort_values("self_ms", ascending=False)


def log_lines(trace_id: str, run_dir: str | Path | None = None) -> pd.DataFrame:
    """Every log line of every process that ends with ``trace=<trace_id>``, in time order: the logs of all
    services joined on the trace id (columns ``time``, ``process``, ``line``)."""
    logs = Path(run_dir) / "logs" if run_dir else get_settings().run_dir / "logs"
    needle, rows = f"trace={trace_id}", []
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if needle in line:
                rest = line[24:].split(" ", 1)[-1]  # after the time stamp and the level
                rows.append({"time": pd.to_datetime(line[:23], format="%Y-%m-%d %H:%M:%S,%f", errors="coerce"),
                             "process": path.stem, "line": rest.replace(f" {needle}", "")})
    return pd.DataFrame(rows, columns=["time", "process", "line"]).sort_values("time", kind="stable") \
        .reset_index(drop=True)


def _detail(attributes: dict) -> str:
    """The lab's names a line shows after the span's name: cache outcome, status code, risk score."""
    parts = []
    for label, name in (("cache", "http.response.header.x_cache"), ("gateway cache", "http.response.header.x_gateway_cache")):
        if attributes.get(name):
            parts.append(f"{label} {attributes[name][0]}")
    status = attributes.get("http.response.status_code") or attributes.get("http.status_code")
    if status:
        parts.append(str(status))
    if "lab.risk_score" in attributes:
        parts.append(f"risk {attributes['lab.risk_score']:.2f}")
    return f"  [{', '.join(parts)}]" if parts else ""


def waterfall_text(df: pd.DataFrame) -> str:
    """One line per span: offset and duration in ms, service, the name indented under its parent."""
    if df.empty:
        return "(no spans)"
    total = (df["start_ms"] + df["duration_ms"]).max()
    lines = [f"trace {df['trace_id'].iloc[0]}: {len(df)} spans, {total:.2f} ms, "
             f"services {', '.join(dict.fromkeys(df['service']))}",
             f"{'offset ms':>10} {'took ms':>9}  {'service':<9} span"]
    for span in df.itertuples():
        lines.append(f"{span.start_ms:10.2f} {span.duration_ms:9.2f}  {span.service:<9} "
                     f"{'  ' * span.depth}{span.name}{_detail(span.attributes)}")
    return "\n".join(lines)


def load_settled(trace_id: str, run_dir: str | Path | None = None, quiet_s: float = 1.0,
                 deadline_s: float = 10.0) -> pd.DataFrame:
    """``load``, but for a trace that is still arriving (each process writes its spans every half second,
    and the worker's come after the event hop): wait until no new span has come for ``quiet_s``. A trace
    whose newest span ended longer ago than that is returned at once."""
    df = load(trace_id, run_dir)
    started = changed = time.monotonic()
    while time.monotonic() - started < deadline_s:
        newest_end_ns = int((df["start_time"].astype("int64") + df["duration_ms"] * 1e6).max())
        if time.time_ns() - newest_end_ns > (quiet_s + 1.0) * 1e9 or time.monotonic() - changed >= quiet_s:
            break
        time.sleep(0.25)
        again = load(trace_id, run_dir)
        if len(again) != len(df):
            df, changed = again, time.monotonic()
    return df


def cmd_trace(args) -> int:
    if not args.last and not args.id:
        raise LabkitError("name a trace id or a request id, or use --last")
    trace_id = last_trace_id() if args.last else resolve(args.id)
    print(waterfall_text(load_settled(trace_id)))
    return 0


def add_trace_command(add) -> None:
    """``labkit trace ID`` / ``labkit trace --last`` (``add`` is the CLI's own way to add a command)."""
    p = add("trace", cmd_trace, "print one trace as a waterfall: a trace id or X-Request-ID, or --last "
                                "(the newest request through the gateway)")
    p.add_argument("id", nargs="?", help="a trace id (X-Trace-Id, 32 hex digits) or a request id (X-Request-ID)")
    p.add_argument("--last", action="store_true", help="the newest trace that started at the gateway")
