"""What every benchmark shares: a closed-loop HTTP load generator and a side-by-side table.

The generator uses aiohttp (much cheaper per request than httpx) so that on a 2-core machine it is not
the thing being measured. Every comparison runs its contenders in alternating rounds in one run, so
noise from the shared machine falls on all of them alike. Numbers are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass

import aiohttp

import labkit
from labkit.tables import text_table


@dataclass
class Run:
    label: str
    concurrency: int
    latencies_ms: list[float]
    seconds: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")

    def row(self) -> dict:
        return {"path": self.label, "c": self.concurrency, "requests": len(self.latencies_ms),
                "errors": self.errors, "p50_ms": f"{self.pct(0.50):.3f}", "p99_ms": f"{self.pct(0.99):.3f}",
                "req_s": f"{self.rps:,.0f}"}


async def closed_loop(url: str, concurrency: int, seconds: float, label: str = "",
                      headers: dict | None = None) -> Run:
    """``concurrency`` workers, each sending its next GET as soon as the previous answer arrives."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async def worker(deadline: float):
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.get(url) as response:
                        await response.read()
                        ok = response.status < 500
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

        # warm up the connections, then measure
        warm = time.perf_counter() + 0.3
        await asyncio.gather(*(worker(warm) for _ in range(concurrency)))
        latencies.clear()
        errors = 0
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Run(label or url, concurrency, latencies, elapsed, errors)


def alternate(contenders: dict[str, tuple], concurrency: int, seconds: float, rounds: int = 3) -> dict[str, Run]:
    """Run each contender for ``seconds / rounds`` at a time, alternating, and merge the rounds per label.

    A contender is ``(url, headers_factory)``; the factory (or None) is called before every round, because
    a signed identity header is only valid for about a minute.
    """
    merged: dict[str, Run] = {}
    for _ in range(rounds):
        for label, (url, headers_factory) in contenders.items():
            headers = headers_factory() if headers_factory else None
            run = asyncio.run(closed_loop(url, concurrency, seconds / rounds, label, headers))
            if label in merged:
                m = merged[label]
                m.latencies_ms += run.latencies_ms
                m.seconds += run.seconds
                m.errors += run.errors
            else:
                merged[label] = run
    return merged


def hop_headers(lab):
    """Headers for measuring the proxy hop itself: past the gateway's response cache, to an instance."""
    return lambda: lab.gateway_headers(ask_the_service=True)


def print_table(title: str, runs: list[Run]) -> None:
    print(f"\n{title}")
    print(text_table([r.row() for r in runs]))


@contextlib.contextmanager
def running_lab():
    """The lab that is up (reused), or one started for the benchmark and stopped after it."""
    already = labkit.status().healthy
    lab = labkit.start_all()
    try:
        yield lab
    finally:
        if not already:
            lab.stop()


def median(values):
    return statistics.median(values) if values else float("nan")


def print_figures(figures: dict, targets: dict) -> None:
    """One line per headline figure, with its target beside it when the benchmark declares one."""
    width = max(len(name) for name in figures) + 2
    print()
    for name, value in figures.items():
        shown = f"{value:10.4g}" if isinstance(value, float) else f"{value!s:>10}"
        target = targets.get(name)
        verdict = ""
        if target:
            met = value >= target[1] if target[0] == ">=" else value <= target[1]  # NaN: not met
            verdict = f"   (target {target[0]} {target[1]:g}: {'met' if met else 'NOT met'})"
        print(f"{name:<{width}}{shown}{verdict}")


NGINX_CONF = """
user {user};
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
  upstream policy {{ server {upstream}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location /api/ {{
      proxy_pass http://policy/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


@contextlib.contextmanager
def nginx_proxy(upstream_url: str):
    """nginx as a plain reverse proxy (``/api/x`` -> ``upstream/x``, like our gateway) in front of one
    service: the yardstick for a proxy hop. Yields its URL, or None when nginx is not on PATH."""
    import getpass
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from labkit import procs

    binary = shutil.which("nginx")
    if binary is None:
        yield None
        return
    work, port = Path(tempfile.mkdtemp(prefix="lab-nginx-")), procs.free_port()
    (work / "nginx.conf").write_text(NGINX_CONF.format(user=getpass.getuser(), work=work, port=port,
                                                       upstream=upstream_url.removeprefix("http://")))
    proc = subprocess.Popen([binary, "-p", str(work), "-e", str(work / "error.log"), "-c", str(work / "nginx.conf"),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not procs.port_in_use("127.0.0.1", port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}" if proc.poll() is None else None
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
