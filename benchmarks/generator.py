"""Load that is not the bottleneck: ``wrk`` when it is installed, the Python closed loop when it is not.

At a few thousand requests a second the Python generator in ``harness.py`` spends as much CPU as the
server it measures, so on 2 cores its ratios are capped by itself. ``wrk`` (C, one thread, epoll) spends a
small fraction of that. Every measurement here says which generator produced it and how much CPU the
generator itself used, so a reader can tell a slow server from a busy generator.

    run = measure(url, concurrency=16, seconds=4, headers={...})
    run.p50_ms, run.p99_ms, run.rps, run.generator, run.generator_cpu_share

``wrk`` prints its figures through a Lua ``done`` hook as one JSON line (no scraping of its text report);
its latency percentiles are exact over every request it timed.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .harness import closed_loop

WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
    .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""

WRK_BODY = """
wrk.method = "{method}"
wrk.body = {body}
"""


@dataclass
class Measured:
    """One closed-loop run of one path at one concurrency."""

    label: str
    concurrency: int
    requests: int
    seconds: float
    errors: int  # transport errors and answers >= 400 (wrk counts >= 400 as "status" errors)
    p50_ms: float
    p99_ms: float
    generator: str  # "wrk" or "python"
    generator_cpu_s: float  # CPU the generator itself used during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def generator_cpu_share(self) -> float:
        """Cores the generator kept busy: near 1.0 means it, not the server, may be the limit."""
        return self.generator_cpu_s / self.seconds if self.seconds else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


def name() -> str:
    return "wrk" if wrk_path() else "python (aiohttp closed loop: install wrk for figures not capped by it)"


def measure(url: str, concurrency: int, seconds: float, *, label: str = "", headers: dict | None = None,
            method: str = "GET", body: str | None = None) -> Measured:
    """Closed loop: ``concurrency`` connections, each sending its next request when the answer arrives."""
    if wrk_path():
        return _with_wrk(url, concurrency, seconds, label or url, headers or {}, method, body)
    if method != "GET":
        raise RuntimeError(f"{method} needs wrk: the Python fallback sends GETs only (apt-get install wrk)")
    return _with_python(url, concurrency, seconds, label or url, headers)


def _with_wrk(url, concurrency, seconds, label, headers, method, body) -> Measured:
    script = WRK_REPORT + (WRK_BODY.format(method=method, body=json.dumps(body or "")) if method != "GET" else "")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        whole = max(1, round(seconds))  # wrk takes whole seconds only ("-d1.5s" is a usage error)
        argv = [wrk_path(), "-t1", f"-c{concurrency}", f"-d{whole}s", "--timeout", "5s", "-s", f.name]
        for key, value in headers.items():
            argv += ["-H", f"{key}: {value}"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([*argv, url], capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        usage = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    finally:
        Path(f.name).unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    errors = sum(report[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Measured(label, concurrency, report["requests"], report["duration_us"] / 1e6, errors,
                    report["p50_us"] / 1000, report["p99_us"] / 1000, "wrk", usage)


def _with_python(url, concurrency, seconds, label, headers) -> Measured:
    cpu_before = time.process_time()
    run = asyncio.run(closed_loop(url, concurrency, seconds, label, headers))
    cpu = time.process_time() - cpu_before
    return Measured(label, concurrency, len(run.latencies_ms), run.seconds, run.errors, run.pct(0.5),
                    run.pct(0.99), "python", cpu)
