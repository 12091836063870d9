"""The resilience report (issue 9): faults on a throw-away lab, what clients saw, whether anything was lost.

In one run, on a private lab on free ports (the lab you may have running is not touched):

* traffic through the gateway (reads and claim submissions, open loop) while Redis is restarted: requests
  sent, failed, and how long after Redis came back the first claim was accepted again;
* the same while Redis is frozen (SIGSTOP) for 2 s;
* claims committed during each run vs ``claim.submitted`` events in their audit trails (must be equal,
  each exactly once);
* schemathesis against every domain service's OpenAPI schema: cases run and failures.

Run: ``python -m benchmarks.resilience [--seconds 6] [--examples 10]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from labkit import faults
from labkit.experiments.resilience import start_private_lab, traffic_around_fault, wait_for_audit
from labkit.fuzz import MODES, fuzz_operation, operations
from labkit.seed import seed
from labkit.tables import text_table

from .harness import print_figures

TARGETS = {"failed_reads": ("<=", 0), "events_missing": ("<=", 0), "events_doubled": ("<=", 0),
           "fuzz_failures": ("<=", 0)}


def _traffic(lab):
    policy = lab.client.get("/api/policies", params={"status": "active", "limit": 1}).json()["items"][0]
    return [("GET", f"/api/policies/{policy['id']}", None), ("GET", f"/api/customers/{policy['customer_id']}", None),
            ("POST", "/api/claims", {"policy_id": policy["id"], "amount_cents": 100, "description": "bench"})]


def _fault_run(lab, name: str, events, seconds: float, rate: float) -> dict:
    requests, marks = traffic_around_fault(lab.settings, _traffic(lab), events, rate=rate, duration_s=seconds)
    committed = requests["created"].dropna().tolist()
    audit, drained_s = wait_for_audit(lab.redis_client(), committed, timeout_s=30)
    back_at = marks["t_s"].max() if not marks.empty else 0.0
    writes_ok_after = requests[(requests["kind"] == "write") & requests["ok"] & (requests["t_s"] >= back_at)]
    return {"fault": name, "sent": len(requests), "failed": int((~requests["ok"]).sum()),
            "failed_reads": int((~requests.loc[requests["kind"] == "read", "ok"]).sum()),
            "recovered_s": round(float(writes_ok_after["t_s"].min() - back_at), 3) if len(writes_ok_after) else None,
            "claims_committed": len(committed), "events_in_audit": int(audit["submitted_events"].sum()),
            "missing": int((audit["submitted_events"] == 0).sum()), "doubled": int((audit["submitted_events"] > 1).sum()),
            "drained_s": round(drained_s, 2)}


def _fuzz(lab, examples: int) -> tuple[int, int]:
    cases = failures = 0
    for service in ("customer", "policy", "claims"):
        for operation in operations(lab.settings, service):
            for mode in MODES:
                try:
                    cases += fuzz_operation(operation, mode, lab.settings, examples)
                except Exception as exc:  # noqa: BLE001 - a finding, counted and shown
                    failures += 1
                    print(f"  fuzz finding in {service} {operation.label}: {str(exc).splitlines()[0][:120]}")
    return cases, failures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0, help="traffic per fault")
    parser.add_argument("--rate", type=float, default=30.0, help="requests per second")
    parser.add_argument("--examples", type=int, default=10, help="schemathesis examples per operation and mode")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="resilience-bench-") as tmp:
        lab = start_private_lab(Path(tmp))
        try:
            seed(lab.settings, customers=20, policies=40, claims=10)
            state = {}
            third = args.seconds / 3
            runs = [
                _fault_run(lab, "Redis restarted (down 1 s)",
                           [(third, "restart", lambda: faults.restart_redis(lab.settings, down_for_s=1.0))],
                           args.seconds, args.rate),
                _fault_run(lab, "Redis frozen 2 s",
                           [(third, "freeze", lambda: state.setdefault("pid", faults.freeze_redis(lab.settings))),
                            (third + 2, "thaw", lambda: faults.thaw_redis(state["pid"]))],
                           args.seconds, args.rate),
            ]
            started = time.perf_counter()
            cases, fuzz_failures = _fuzz(lab, args.examples)
            fuzz_s = time.perf_counter() - started
        finally:
            lab.stop()

    print("\nTraffic through the gateway while Redis fails (open loop, reads + claim submissions)")
    print(text_table(runs))
    print(f"\nschemathesis: {cases} generated requests against 3 services in {fuzz_s:.0f} s, "
          f"{fuzz_failures} operation(s) with findings")
    figures = {"failed_reads": sum(r["failed_reads"] for r in runs),
               "failed_requests": sum(r["failed"] for r in runs),
               "events_missing": sum(r["missing"] for r in runs), "events_doubled": sum(r["doubled"] for r in runs),
               "claims_committed": sum(r["claims_committed"] for r in runs),
               "recovered_after_restart_s": runs[0]["recovered_s"],
               "fuzz_cases": cases, "fuzz_failures": fuzz_failures}
    print_figures(figures, TARGETS)
    return figures


if __name__ == "__main__":
    main()
