"""``labkit load`` and ``labkit analyze`` on the session's lab: short, low-rate real runs over HTTP.

Structure and correctness only (one record per request, the schedule kept, the refusal, counts that add
up, the files written); never how fast anything was: the machine is shared.
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from labkit.analyze import ALL_ROUTES, analyze, read_results, route_summary
from labkit.load import COLUMNS, ON_SCHEDULE_REQUIRED, run_load

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def open_run(tmp_path_factory):
    """20 requests/s for 1.5 s on 4 connections: 30 requests, due every 50 ms."""
    return run_load(mode="open", rate=20, concurrency=4, duration=1.5, progress=False,
                    out=tmp_path_factory.mktemp("load") / "open.csv")


def test_open_loop_sends_every_scheduled_request_at_its_intended_time(open_run):
    records = pd.read_csv(open_run.path, keep_default_na=False)
    assert list(records.columns) == COLUMNS
    # All 30 are scheduled; one that could not start before the run's end (a crowded machine) is not sent.
    assert 0 < len(records) <= open_run.meta["scheduled"] == 30
    assert np.allclose(np.diff(records["intended_s"]), 1 / 20)
    assert (records["start_s"] >= records["intended_s"] - 1e-6).all()  # never sent before it was due
    assert (records["latency_ms"] >= records["service_ms"]).all()  # measured from the intended time
    assert records["status"].between(200, 299).all(), records[["route", "status"]].value_counts()
    # How many started on time depends on the machine's load; that the run says so honestly does not.
    on_schedule = open_run.meta["on_schedule"]
    assert 0 < on_schedule <= 1 and open_run.percentiles_refused == (on_schedule < ON_SCHEDULE_REQUIRED)


def test_gateway_answers_name_the_instance_that_served_them(open_run):
    records = open_run.records
    assert (records["served_by"].str.len() > 0).all()
    reads = records[records["route"] == "GET /api/policies/{id}"]
    assert reads["served_by"].str.startswith("policy").all()


def test_run_reports_its_own_cpu_and_rates(open_run):
    meta = open_run.meta
    assert meta["requested_rate"] == 20 and meta["achieved_rate"] == pytest.approx(20 * meta["on_schedule"])
    assert meta["generator_cpu_s"] > 0 and meta["generator_cpu_pct"] > 0
    assert open_run.path.with_suffix(".json").exists()


def test_closed_loop_workers_send_back_to_back_until_the_end():
    result = run_load(mode="closed", concurrency=2, duration=1, mix="reads", progress=False, save=False)
    records = result.records
    assert len(records) > 2
    assert (records["intended_s"] == records["start_s"]).all()  # no schedule: sent when a worker is free
    assert (records["start_s"] < 1).all()
    failed = records[~records["status"].between(200, 299)]
    assert failed.empty, f"non-2xx answers:\n{failed.to_string()}"
    assert set(records["op"]) <= {"read_policy", "read_customer", "read_claim"}
    assert result.meta["requested_rate"] is None and not result.percentiles_refused


def test_an_open_loop_run_that_falls_behind_refuses_percentiles():
    # One connection cannot carry 100,000 requests a second: the run falls far behind on purpose.
    result = run_load(mode="open", rate=100_000, concurrency=1, duration=0.5, mix="reads", progress=False,
                      save=False)
    assert result.percentiles_refused
    assert result.meta["on_schedule"] < 0.95 and len(result.records) < result.meta["scheduled"]
    assert "REFUSED" in result.report()
    summary = route_summary(result)
    assert summary[["p50_ms", "p90_ms", "p99_ms", "p99.9_ms"]].isna().all().all()
    assert summary.loc[ALL_ROUTES, "requests"] == len(result.records)  # counts are still reported


def count_claims(api, **filters) -> int:
    return api.get("/api/claims", params={"limit": 1, **filters}).json()["total"]


def test_claim_submissions_and_status_changes_are_real_writes(api):
    before, reviewing_before = count_claims(api), count_claims(api, status="under_review")
    # 3 s: enough requests for the seeded mix to reach a status change even on a crowded machine
    result = run_load(mode="closed", concurrency=1, duration=3, mix="submit_claim=1,change_claim_status=1",
                      progress=False, save=False)
    records = result.records
    submitted = records[records["route"] == "POST /api/claims"]
    changed = records[records["route"] == "POST /api/claims/{id}/status"]
    assert len(submitted) and len(changed)
    assert (submitted["status"] == 201).all() and (changed["status"] == 200).all()
    assert count_claims(api) - before == len(submitted)
    # each status change moved one claim this run submitted from submitted to under_review
    assert count_claims(api, status="under_review") - reviewing_before == len(changed)


def test_direct_target_keeps_only_the_operations_that_service_owns():
    result = run_load(mode="closed", concurrency=1, duration=0.5, target="customer", progress=False, save=False)
    assert "read_policy" in result.meta["left_out"] and "login" in result.meta["left_out"]
    assert set(result.records["op"]) <= {"read_customer", "customer_overview"}
    assert result.records["route"].str.startswith("GET /customers/").all()  # no /api prefix: no gateway
    assert result.records["status"].between(200, 299).all()


def test_routes_that_do_not_exist_are_probed_and_left_out(open_run):
    kept = set(open_run.meta["mix"])
    assert kept.isdisjoint(open_run.meta["left_out"])
    assert set(open_run.records["op"]) <= kept
    assert (open_run.records["status"] != 404).all()
    assert {"read_policy", "read_customer", "read_claim"} <= kept


def test_analyze_writes_charts_and_a_summary_whose_counts_match_the_records(open_run, tmp_path):
    closed = run_load(mode="closed", concurrency=2, duration=0.6, mix="reads", progress=False,
                      out=tmp_path / "closed.csv")
    result = analyze(open_run.path, closed.path, out_dir=tmp_path / "analysis")
    for name in ("latency_cdf", "throughput", "hit_rate", "percentiles_vs_concurrency"):
        assert (tmp_path / "analysis" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    summary = pd.read_csv(tmp_path / "analysis" / "summary.csv")
    for run in (open_run, closed):
        rows = summary[summary["run"] == run.meta["run"]].set_index("route")
        assert rows.loc[ALL_ROUTES, "requests"] == len(run.records)
        per_route = run.records.groupby("route").size()
        assert rows.drop(ALL_ROUTES)["requests"].to_dict() == per_route.to_dict()
    assert list(result.concurrency["concurrency"].sort_values()) == [2, 4]
    assert result.redis["stats"]["total_commands_processed"] > 0
    assert "commands" in result.redis and not result.redis["commands"].empty


def test_read_results_rejects_a_file_that_is_not_a_results_file(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    from labkit.errors import LabkitError

    with pytest.raises(LabkitError, match="not a `labkit load` results file"):
        read_results(path)


def labkit_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=timeout)


def test_cli_load_then_analyze(tmp_path):
    results = tmp_path / "cli.csv"
    loaded = labkit_cli("load", "--mode", "closed", "-c", "2", "-d", "1", "--no-progress", "--out", str(results))
    assert loaded.returncode == 0, loaded.stderr
    assert ALL_ROUTES in loaded.stdout and results.exists()
    analyzed = labkit_cli("analyze", str(results), "--out", str(tmp_path / "an"))
    assert analyzed.returncode == 0, analyzed.stderr
    assert (tmp_path / "an" / "latency_cdf.png").exists() and "p99" in analyzed.stdout.lower()


def test_cli_exit_codes_for_a_refused_run_and_a_missing_file(tmp_path):
    refused = labkit_cli("load", "--rate", "100000", "-c", "1", "-d", "0.5", "--mix", "reads", "--no-progress",
                         "--out", str(tmp_path / "r.csv"))
    assert refused.returncode == 1 and "REFUSED" in refused.stdout
    missing = labkit_cli("analyze", str(tmp_path / "nothing.csv"))
    assert missing.returncode == 2 and "no results file" in missing.stderr
    bad_mix = labkit_cli("load", "--mix", "read_everything=1", "-d", "0.5")
    assert bad_mix.returncode == 2 and "unknown operation" in bad_mix.stderr


def test_cli_bench_prints_one_table_of_figures_and_targets():
    bench = labkit_cli("bench", "--seconds", "0.4", "--only", "gateway_hop", "load_targets", timeout=300)
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    table = bench.stdout.split("All benchmarks, measured side by side")[1]
    for figure in ("added_p50_ms", "throughput_kept", "cached_read_p50_ms_c1", "read_mix_vs_slowest_service_c16",
                   "cached_read_vs_bare_uvicorn_c16"):
        assert figure in table

