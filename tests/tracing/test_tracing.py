"""Lesson 10 on the session's lab, configured as a fresh clone is (tracing on, the lab's sampler: every write,
1 read in 100): one claim through the gateway is ONE trace — the gateway, claims, the policy peer check, Redis,
the event hop and the worker's scoring and status change — written to OTLP/JSON files; a read that is not
sampled leaves no span, and the logs of every service join on the trace id."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pandas as pd
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from labkit import traces
from labkit.errors import LabkitError
from waiting import wait_for  # tests/waiting.py


def spans_of(trace_id: str, run_dir):
    try:
        return traces.load(trace_id, run_dir=run_dir)
    except LabkitError:  # not written yet: spans go to the files in batches
        return None


def traceparent(sampled: bool) -> tuple[str, str]:
    """A caller's W3C ``traceparent`` (as a client that traces would send it) and its trace id."""
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-{'01' if sampled else '00'}", trace_id


def test_the_default_lab_traces_a_claim_submitted_through_the_gateway(settings):
    assert settings.tracing and settings.trace_read_ratio < 1  # the session's lab runs the defaults


def test_a_claim_through_the_gateway_is_one_trace_down_to_the_workers_status_change(api, settings, new_policy):
    policy = new_policy(coverage_cents=1_000_000)
    response = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 800_000,
                                             "description": "traced claim"})
    assert response.status_code == 201, response.text
    claim_id, trace_id = response.json()["id"], response.headers["x-trace-id"]
    assert traces.TRACE_ID.match(trace_id), trace_id
    status_path = f"POST /claims/{claim_id}/status"

    def whole_trace():
        df = spans_of(trace_id, settings.run_dir)
        if df is None:
            return None
        # each process writes its spans in its own batches: wait until every hop's batch is on file
        # (a parent span ends, and is batched, after its children: wait for the worker's "process" span itself)
        done = ((df["service"] == "claims") & (df["name"] == status_path) & (df["kind"] == "server")).any() \
            and ((df["service"] == "worker") & (df["name"] == "claim.submitted process")).any() \
            and {"gateway", "claims", "policy", "worker"} <= set(df["service"])
        whole_trace.seen = sorted(set(df["service"]))
        return [df] if done else None  # (a DataFrame has no truth value)

    whole_trace.seen = []
    [df] = wait_for(whole_trace, "the gateway, claims, policy and the worker's status change in one trace "
                    f"(seen so far: {whole_trace.seen})", deadline_s=60)
    assert set(df["trace_id"]) == {trace_id}
    assert {"gateway", "claims", "policy", "worker"} <= set(df["service"])
    root = df.iloc[0]
    assert (root["service"], root["kind"]) == ("gateway", "server") and pd.isna(root["parent_id"])
    assert root["name"] == "POST /api/claims"
    # the gateway's choice: which instance, by which balancer, through a breaker in which state
    assert root["attributes"]["lab.upstream.instance"].startswith("claims-")
    assert root["attributes"]["lab.balancer"] == settings.gateway_balancer
    assert root["attributes"]["lab.breaker.state"] in ("closed", "half_open")
    assert (df["attributes"].map(lambda a: a.get("db.system") or a.get("db.system.name")) == "redis").any(), \
        "no Redis span in the trace"
    # the policy peer check: a server span of policy whose parent is a client span of claims
    by_id = df.set_index("span_id")
    policy_reads = df[(df["service"] == "policy") & (df["kind"] == "server")]
    assert any(by_id.loc[p, "service"] == "claims" for p in policy_reads["parent_id"] if p in by_id.index)
    # the event hop: the worker's "process" span continues the trace, and its status change is inside it
    process = df[(df["service"] == "worker") & (df["name"] == "claim.submitted process")]
    assert len(process) >= 1 and "lab.risk_score" in process["attributes"].iloc[0]
    change = df[(df["service"] == "claims") & (df["name"] == status_path) & (df["kind"] == "server")].iloc[0]
    ancestors, parent = set(), change["parent_id"]
    while parent in by_id.index:
        ancestors.add(by_id.loc[parent, "name"])
        parent = by_id.loc[parent, "parent_id"]
    assert {"claim.submitted process", "POST /api/claims"} <= ancestors
    # the request id the gateway answered with finds the same trace
    assert traces.resolve(response.headers["x-request-id"], run_dir=settings.run_dir) == trace_id


def test_span_files_are_otlp_json_that_the_protobuf_model_reads(api, settings, new_policy):
    # a read is traced when its caller's traceparent says so (the lab's default samples 1 read in 100)
    header, trace_id = traceparent(sampled=True)
    response = api.get(f"/api/policies/{new_policy()['id']}", headers={"traceparent": header})
    assert response.headers["x-trace-id"] == trace_id
    def both_hops_on_file():  # each process writes its own batches: wait for the gateway's and policy's
        df = spans_of(trace_id, settings.run_dir)
        return df is not None and {"gateway", "policy"} <= set(df["service"])
    wait_for(both_hops_on_file, "the read's spans from the gateway and policy in the files")
    files = traces.span_files(settings.run_dir)
    assert {f.name.split("-")[0] for f in files} >= {"gateway", "policy", "claims", "customer", "worker"}
    found = 0
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        # the newest lines of every file (the whole files would take long after a full test session), and
        # every line that holds the read's trace
        for line in lines[-20:] + [line for line in lines[:-20] if trace_id in line]:
            request = traces.parse_request(line)  # OTLP/JSON (hex ids) into the protobuf model
            assert isinstance(request, ExportTraceServiceRequest) and request.resource_spans
            for resource_spans in request.resource_spans:
                names = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
                assert path.name.startswith(names["service.instance.id"]) and names["service.name"]
                found += sum(span.trace_id == bytes.fromhex(trace_id)
                             for scope in resource_spans.scope_spans for span in scope.spans)
    assert found >= 3  # the gateway's server and client spans, policy's server span at least


def test_labkit_trace_last_prints_the_latest_request_through_the_gateway(api, settings, new_policy):
    policy = new_policy(coverage_cents=1_000_000)
    response = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 900_000,
                                             "description": "traced claim"})
    trace_id = response.headers["x-trace-id"]

    def worker_in_trace():
        df = spans_of(trace_id, settings.run_dir)
        return df is not None and (df["service"] == "worker").any()

    wait_for(worker_in_trace, "the worker's spans in the claim's trace", deadline_s=60)
    out = subprocess.run([sys.executable, "-m", "labkit", "trace", "--last"], capture_output=True, text=True,
                         env={**os.environ, "LAB_RUN_DIR": str(settings.run_dir)}, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"trace {trace_id}:"), out.stdout[:500]
    services_named = {line.split()[2] for line in lines[2:]}
    assert {"gateway", "claims", "policy", "worker"} <= services_named
    assert any("POST /api/claims" in line for line in lines)


def test_a_read_that_is_not_sampled_leaves_no_span_and_its_logs_join_on_one_trace_id(api, settings, new_policy):
    policy_id = new_policy()["id"]
    header, unsampled_trace = traceparent(sampled=False)
    told = api.get(f"/api/policies/{policy_id}", headers={"traceparent": header, "Cache-Control": "no-cache"})
    assert told.status_code == 200 and "x-trace-id" not in told.headers
    # and reads with no traceparent: the edge decides, and samples few (1 in 100): take ones it did not sample
    unsampled_rids = []
    for _ in range(5):
        response = api.get(f"/api/policies/{policy_id}", headers={"Cache-Control": "no-cache"})
        assert response.status_code == 200
        if "x-trace-id" not in response.headers:
            unsampled_rids.append(response.headers["x-request-id"])
    assert unsampled_rids
    # a sampled request after them: once its spans from both hops are on file, theirs would be too
    later_header, later_trace = traceparent(sampled=True)
    api.get(f"/api/policies/{policy_id}", headers={"traceparent": later_header, "Cache-Control": "no-cache"})
    wait_for(lambda: (df := spans_of(later_trace, settings.run_dir)) is not None
             and {"gateway", "policy"} <= set(df["service"]), "a later sampled read's spans on file")
    every_line = "".join(path.read_text(encoding="utf-8") for path in traces.span_files(settings.run_dir))
    assert unsampled_trace not in every_line
    assert not [rid for rid in unsampled_rids if rid in every_line]
    # not traced, yet its log lines at the gateway and at policy carry one trace id: the caller's
    logs = settings.run_dir / "logs"
    rid = told.headers["x-request-id"]
    for service in ("gateway", "policy"):
        wait_for(lambda: any(f"rid={rid}" in line and f"trace={unsampled_trace}" in line
                             for line in (logs / f"{service}.log").read_text().splitlines()),
                 f"{service}'s access log line of the unsampled read, with its trace id")


def test_every_service_logs_the_trace_id_of_a_claim(api, settings, new_policy):
    policy = new_policy(coverage_cents=1_000_000)
    response = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 700_000,
                                             "description": "logs by trace id"})
    assert response.status_code == 201, response.text
    trace_id = response.headers["x-trace-id"]
    logs = settings.run_dir / "logs"

    def services_logging_it():
        return {service for service in ("gateway", "claims", "policy", "worker")
                if f"trace={trace_id}" in (logs / f"{service}.log").read_text()}
    wait_for(lambda: services_logging_it() == {"gateway", "claims", "policy", "worker"},
             "a log line with the claim's trace id from the gateway, claims, policy and the worker", deadline_s=60)
