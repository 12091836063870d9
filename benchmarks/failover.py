"""Failover under load: how many requests fail when one of three instances is SIGKILLed mid-run?

Three policy instances behind the gateway, 8 clients reading back to back through it; after a third of
the run one instance is killed with SIGKILL (no goodbye, no deregistration). Requests that were on their
way to it are retried once on another instance by the gateway; the registry forgets it within its TTL.
Target (issue 5): no failed request (report the count). Run: ``python -m benchmarks.failover [--seconds 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import labkit
from labkit.seed import seed

from .harness import closed_loop, running_lab

TARGETS = {"failed_requests": ("<=", 0)}
SERVICE = "policy"


async def load_with_a_kill(url: str, headers: dict, seconds: float, concurrency: int, victim: str):
    loop = asyncio.get_running_loop()

    async def kill_later():
        await asyncio.sleep(seconds / 3)
        started = time.perf_counter()
        await loop.run_in_executor(None, labkit.kill_instance, victim)
        return started

    run, _ = await asyncio.gather(closed_loop(url, concurrency, seconds, "gateway", headers), kill_later())
    return run


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the loaded run")
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    args = parser.parse_args(argv)

    with running_lab() as lab:
        seed()
        labkit.scale(SERVICE, 3)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:  # wait until the gateway routes to all three
                view = lab.client.get("/services").json()["services"][SERVICE]["instances"]
                if sum(i["healthy"] for i in view) == 3:
                    break
                time.sleep(0.1)
            run = asyncio.run(load_with_a_kill(f"{lab.gateway_url}/api/policies/POL-000001",
                                               lab.gateway_headers(ask_the_service=True), args.seconds,
                                               args.concurrency, f"{SERVICE}#3"))
        finally:
            labkit.scale(SERVICE, 1)

    total = len(run.latencies_ms) + run.errors
    print(f"\n{total} requests through the gateway at c={args.concurrency} over {run.seconds:.1f} s; "
          f"one of three {SERVICE} instances SIGKILLed after {args.seconds / 3:.1f} s")
    print(f"failed requests: {run.errors}   (target: 0 — each one would have reached the dead instance "
          f"and found no other to retry on)")
    print(f"p99 latency around the kill: {run.pct(0.99):.2f} ms, max {max(run.latencies_ms):.2f} ms")
    return {"failed_requests": run.errors, "requests": total, "p99_ms": run.pct(0.99)}


if __name__ == "__main__":
    main()
