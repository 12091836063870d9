"""What watching the lab costs the lab: the live dashboard with one page open vs none.

Two questions (issue "The lab, live"):

1. The page's own cost: Redis commands per second and the dashboard process's CPU while one page listens
   (an SSE reader here, which is what a browser tab is to the lab: the drawing happens in the browser).
   Redis commands are the server's ``total_commands_processed`` per second with the page open minus with it
   closed, on an otherwise idle lab (the services' heartbeats are the same in both windows).
2. The gateway hop with the dashboard open vs closed: one cached read through the gateway (past its response
   cache), c=1 and c=16, in alternating rounds. Targets: no measurable change at p50 (here: within 0.1 ms),
   and at least 95% of the req/s at c=16.

Run: ``python -m benchmarks.dashboard [--seconds 6]``. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

import httpx
import psutil

from labkit import procs
from labkit.seed import seed

from .harness import closed_loop, hop_headers, print_table, running_lab

TARGETS = {"hop_p50_change_ms": ("<=", 0.1), "hop_rps_kept_c16": (">=", 0.95)}


class OpenPage:
    """One page open on the dashboard: a thread reading ``GET /events`` until closed."""

    def __init__(self, url: str):
        self.url, self.stop, self.snapshots = url, threading.Event(), 0
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        with httpx.stream("GET", self.url + "/events", timeout=httpx.Timeout(10, read=10)) as response:
            for line in response.iter_lines():
                if line.startswith("event: snapshot"):
                    self.snapshots += 1
                if self.stop.is_set():
                    return

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.snapshots == 0 and time.monotonic() < deadline:  # the collector is running
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)


def commands_processed(redis_client) -> int:
    return int(redis_client.info("stats")["total_commands_processed"])


def idle_window(lab, dashboard: psutil.Process, seconds: float) -> dict:
    """Redis commands/s and the dashboard's CPU (% of one core) over ``seconds`` of an idle lab."""
    r = lab.redis_client()
    cpu_before, commands_before, started = sum(dashboard.cpu_times()[:2]), commands_processed(r), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    commands = commands_processed(r) - commands_before - 2  # less our own two INFO calls
    return {"redis_cmd_s": commands / elapsed, "cpu_pct": 100 * (sum(dashboard.cpu_times()[:2]) - cpu_before) / elapsed}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per window and contender")
    args = parser.parse_args(argv)

    with running_lab() as lab:
        seed()
        url = lab.settings.url_of("dashboard")
        dashboard = psutil.Process(procs.read_pidfiles(lab.settings.run_dir)["dashboard"].pid)
        closed = idle_window(lab, dashboard, args.seconds)
        with OpenPage(url):
            opened = idle_window(lab, dashboard, args.seconds)

        read = f"{lab.gateway_url}/api/policies/POL-000001"
        runs: dict[str, object] = {}
        for _ in range(3):  # alternating rounds: the shared machine's noise falls on both alike
            for label in ("closed", "open"):
                for concurrency in (1, 16):
                    page = OpenPage(url) if label == "open" else None
                    if page:
                        page.__enter__()
                    try:
                        run = asyncio.run(closed_loop(read, concurrency, args.seconds / 3,
                                                      f"gateway, dashboard {label}", hop_headers(lab)()))
                    finally:
                        if page:
                            page.__exit__(None, None, None)
                    key = (label, concurrency)
                    if key in runs:
                        runs[key].latencies_ms += run.latencies_ms
                        runs[key].seconds += run.seconds
                        runs[key].errors += run.errors
                    else:
                        runs[key] = run

    print("\nThe dashboard's own cost on an idle lab (one page open vs none)")
    print(f"  Redis commands/s: closed {closed['redis_cmd_s']:.1f}, open {opened['redis_cmd_s']:.1f} "
          f"-> the page costs {opened['redis_cmd_s'] - closed['redis_cmd_s']:.1f}/s")
    print(f"  dashboard CPU:    closed {closed['cpu_pct']:.1f} %, open {opened['cpu_pct']:.1f} % of one core")
    print_table("GET /api/policies/POL-000001 through the gateway (past its response cache), dashboard closed vs open",
                [runs[(label, c)] for c in (1, 16) for label in ("closed", "open")])
    p50_change = runs[("open", 1)].pct(0.5) - runs[("closed", 1)].pct(0.5)
    kept = runs[("open", 16)].rps / runs[("closed", 16)].rps
    print(f"\np50 change at c=1 with the page open:  {p50_change:+.3f} ms  (target: within 0.1 ms)")
    print(f"req/s kept at c=16 with the page open: {kept:6.1%}     (target >= 95%)")
    return {"page_redis_cmd_s": opened["redis_cmd_s"] - closed["redis_cmd_s"],
            "dashboard_cpu_pct_open": opened["cpu_pct"], "dashboard_cpu_pct_closed": closed["cpu_pct"],
            "hop_p50_change_ms": p50_change, "hop_rps_kept_c16": kept}


if __name__ == "__main__":
    main()
