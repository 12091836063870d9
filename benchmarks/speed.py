"""Faster than the original, on its own terms (issue #20): every read path of the lab against bare uvicorn.

One run, alternating rounds, the same closed-loop generator for every row (``wrk`` when installed; see
``generator.py``), in the lab's default configuration:

* **bare uvicorn** answering constant JSON: the ceiling for one Python HTTP hop on this machine;
* **FastAPI + one GET**: one route that returns the policy's cached bytes (``minimal_route.py``);
* **policy service, direct**: ``GET /policies/{id}``, a Redis HIT, with a signed identity, answered by the fast
  path in front of FastAPI (``services/platform/cached_read.py``); then **the same, through the route**: an
  instance started with ``LAB_FAST_READS=0``, where every request goes through FastAPI (the "before");
* **gateway, no-cache**: the same read through the gateway (``Cache-Control: no-cache``: the proxy hop);
* **nginx -> policy** (only when nginx is on PATH): the yardstick for a proxy hop;
* **gateway, its cache**: the gateway answering from its own response cache;
* **claim submission** through the gateway, ``POST /api/claims``, then the time until the claims worker has
  every event (lag and pending back to 0, the stream grown by every claim accepted).

Each row: p50 at c=1, p50/p99/req/s at c=16, req/s as a ratio of bare; then the targets, met or not.
Run: ``python -m benchmarks.speed [--seconds 4] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

import httpx

from labkit import procs
from labkit.seed import seed
from labkit.tables import text_table
from services.core import keys
from services.core.settings import PROJECT_ROOT

from . import generator
from .generator import Measured
from .harness import nginx_proxy, print_figures, running_lab

POLICY = "POL-000001"
TARGETS = {
    "service_read_vs_bare_c16": (">=", 0.20),
    "service_read_p50_over_bare_ms_c1": ("<=", 0.30),
    "service_read_p99_over_p50_c16": ("<=", 3.0),
    "gateway_hop_added_p50_ms_c1": ("<=", 0.30),
    "gateway_hop_kept_of_direct_c16": (">=", 0.9),
    "gateway_cache_vs_bare_c16": (">=", 0.6),
    "claim_p50_ms_c1": ("<=", 2.0),
    "claims_per_s_c16": (">=", 1000),
    "worker_caught_up_s": ("<=", 1.0),
}


@contextlib.contextmanager
def uvicorn_app(target: str, env: dict | None = None):
    """``python -m uvicorn <target>`` on a free port, with the lab services' flags; yields its base URL."""
    port = procs.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning", "--no-access-log"], cwd=PROJECT_ROOT,
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not procs.port_in_use("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not start (exit code {proc.poll()})")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def must_answer(url: str, headers: dict | None, status: int = 200, **kwargs) -> httpx.Response:
    """A contender answering 401 or 404 would look very fast: check it really does the work first."""
    response = httpx.request(kwargs.pop("method", "GET"), url, headers=headers, timeout=10, **kwargs)
    if response.status_code != status:
        raise RuntimeError(f"{url} answered {response.status_code}, not {status}: {response.text[:200]}")
    return response


def merge(runs: list[Measured]) -> Measured:
    """Rounds of one contender as one row: requests and seconds add up; percentiles are the rounds' median
    (wrk reports percentiles, not samples, so they cannot be pooled exactly)."""
    first = runs[0]
    mid = sorted(runs, key=lambda r: r.p50_ms)[len(runs) // 2]
    worst_p99 = sorted(r.p99_ms for r in runs)[len(runs) // 2]
    return Measured(first.label, first.concurrency, sum(r.requests for r in runs), sum(r.seconds for r in runs),
                    sum(r.errors for r in runs), mid.p50_ms, worst_p99, first.generator,
                    sum(r.generator_cpu_s for r in runs))


def reads(lab, seconds: float, rounds: int) -> dict[str, dict[int, Measured]]:
    """Every read contender at c=1 and c=16, in alternating rounds."""
    policy = lab.settings.url_of("policy")
    contenders = {
        "bare uvicorn, constant JSON": lambda urls: (urls["bare"] + "/", None),
        "FastAPI + one redis GET": lambda urls: (f"{urls['minimal']}/policies/{POLICY}", None),
        "policy service, direct (HIT)": lambda urls: (f"{policy}/policies/{POLICY}", lab.service_headers("policy")),
        "  the same, through the route": lambda urls: (f"{urls['route']}/policies/{POLICY}",
                                                      lab.service_headers("policy")),
        "gateway, no-cache (the hop)": lambda urls: (f"{lab.gateway_url}/api/policies/{POLICY}",
                                                    lab.gateway_headers(ask_the_service=True)),
        "gateway, its own cache": lambda urls: (f"{lab.gateway_url}/api/policies/{POLICY}", lab.gateway_headers()),
    }
    with contextlib.ExitStack() as stack:
        urls = {"bare": stack.enter_context(uvicorn_app("benchmarks.bare_endpoint:app")),
                "minimal": stack.enter_context(uvicorn_app("benchmarks.minimal_route:app",
                                                           {"BENCH_REDIS_URL": lab.redis.url}))}
        # The same service with its fast path off (LAB_FAST_READS=0): every HIT through FastAPI and the route,
        # as before services/platform/cached_read.py — the "before" of lesson 07's before and after.
        route, route_port = lab.start_beside("policy", name="policy-route-only", LAB_FAST_READS="0")
        stack.callback(route.wait, 15)
        stack.callback(route.terminate)
        urls["route"] = f"http://127.0.0.1:{route_port}"
        nginx = stack.enter_context(nginx_proxy(policy))
        if nginx:
            contenders["nginx -> policy service"] = lambda urls: (f"{nginx}/api/policies/{POLICY}",
                                                                 lab.service_headers("policy"))
        # The service's read first: it fills the Redis copy the minimal route returns.
        for label in sorted(contenders, key=lambda label: not label.startswith("policy service")):
            must_answer(*contenders[label](urls))
        results: dict[str, dict[int, list[Measured]]] = {label: {1: [], 16: []} for label in contenders}
        for _ in range(rounds):
            for concurrency in (1, 16):
                for label, make in contenders.items():
                    url, headers = make(urls)
                    if label != "FastAPI + one redis GET":  # keep the copies warm (a TTL may have passed)
                        must_answer(url, headers)
                    results[label][concurrency].append(
                        generator.measure(url, concurrency, seconds / rounds, label=label, headers=headers))
    return {label: {c: merge(runs) for c, runs in by_c.items()} for label, by_c in results.items()}


def worker_caught_up(lab, stream_before: int, accepted: int, timeout_s: float = 30) -> float:
    """Seconds from now until the worker has every claim's event: the stream holds them all (the outbox
    relayed each) and the group has no lag and nothing pending. NaN if that did not happen in time."""
    admin = lab.redis_client()
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        consumer = httpx.get(f"{lab.settings.url_of('worker')}/health", timeout=5).json().get("consumer", {})
        if (admin.xlen(keys.stream("claims")) - stream_before >= accepted
                and consumer.get("lag") == 0 and consumer.get("pending") == 0):
            return time.perf_counter() - started
        time.sleep(0.01)
    return float("nan")


def claims(lab, seconds: float) -> tuple[Measured, Measured, float]:
    """``POST /api/claims`` through the gateway at c=1 and c=16, then how long the worker took to catch up."""
    url = f"{lab.gateway_url}/api/claims"
    body = json.dumps({"policy_id": POLICY, "amount_cents": 12_000, "description": "speed benchmark"})
    headers = {**lab.gateway_headers(), "Content-Type": "application/json"}
    must_answer(url, headers, 201, method="POST", content=body)
    admin = lab.redis_client()
    c1 = generator.measure(url, 1, seconds, label="claim submission", headers=headers, method="POST", body=body)
    before = admin.xlen(keys.stream("claims"))
    c16 = generator.measure(url, 16, seconds, label="claim submission", headers=headers, method="POST", body=body)
    return c1, c16, worker_caught_up(lab, before, c16.requests - c16.errors)


def table(rows: dict[str, dict[int, Measured]], bare_rps: float) -> str:
    return text_table([{"path": label, "p50 c=1 ms": f"{by_c[1].p50_ms:.3f}", "p50 c=16 ms": f"{by_c[16].p50_ms:.2f}",
                        "p99 c=16 ms": f"{by_c[16].p99_ms:.2f}", "req/s c=16": f"{by_c[16].rps:,.0f}",
                        "x bare": f"{by_c[16].rps / bare_rps:.2f}", "errors": by_c[1].errors + by_c[16].errors,
                        "generator CPU": f"{by_c[16].generator_cpu_share:.0%} of a core"}
                       for label, by_c in rows.items()])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per contender and concurrency")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds the time is split into")
    args = parser.parse_args(argv)
    print(f"generator: {generator.name()}")

    with running_lab() as lab:
        seed()
        rows = reads(lab, args.seconds, args.rounds)
        claim_c1, claim_c16, caught_up = claims(lab, args.seconds / 2)

    bare, service = rows["bare uvicorn, constant JSON"], rows["policy service, direct (HIT)"]
    hop, cached = rows["gateway, no-cache (the hop)"], rows["gateway, its own cache"]
    print(f"\nGET /policies/{POLICY}, loopback, closed loop; req/s ratios are to bare uvicorn at c=16")
    print(table(rows, bare[16].rps))
    print("\nPOST /api/claims through the gateway")
    print(text_table([{"c": r.concurrency, "claims": r.requests, "errors": r.errors, "p50 ms": f"{r.p50_ms:.2f}",
                       "p99 ms": f"{r.p99_ms:.2f}", "claims/s": f"{r.rps:,.0f}"} for r in (claim_c1, claim_c16)]))
    print(f"worker caught up {caught_up:.2f} s after the c=16 burst")
    figures = {
        "bare_req_s_c16": bare[16].rps,
        "service_read_vs_bare_c16": service[16].rps / bare[16].rps,
        "service_read_p50_over_bare_ms_c1": service[1].p50_ms - bare[1].p50_ms,
        "service_read_p99_over_p50_c16": service[16].p99_ms / service[16].p50_ms,
        "gateway_hop_added_p50_ms_c1": hop[1].p50_ms - service[1].p50_ms,
        "gateway_hop_kept_of_direct_c16": hop[16].rps / service[16].rps,
        "gateway_cache_vs_bare_c16": cached[16].rps / bare[16].rps,
        "claim_p50_ms_c1": claim_c1.p50_ms,
        "claims_per_s_c16": claim_c16.rps,
        "worker_caught_up_s": caught_up,
    }
    print_figures(figures, TARGETS)
    return figures


if __name__ == "__main__":
    main()
