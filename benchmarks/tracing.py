"""What tracing costs: the same reads through a lab that traces everything vs one started with tracing off.

Two private labs side by side (own Redis, own ports, own run directory): one with the default (every
request sampled, spans to the OTLP/JSON files), one started with ``OTEL_SDK_DISABLED=true`` (the
instrumentations are not even installed). The contenders run in alternating rounds, so noise from the
shared machine falls on both alike:

* a cached read through the gateway (``GET /api/policies/POL-000001``: the gateway's response cache);
* the gateway hop (the same read with ``Cache-Control: no-cache``: gateway -> policy -> its Redis cache).

Targets (issue #16): tracing everything adds <= 0.15 ms at p50 to a read through the gateway, and keeps
>= 85% of the untraced req/s at c=16. Run: ``python -m benchmarks.tracing [--seconds 6]``. The load
generator is the harness's closed loop (aiohttp, in this process). Figures are printed, never asserted.

Measured 2026-12-02 on the shared 2-core machine (load average 2-5, so noisy): a cached read 0.23-0.26 ms
at p50 untraced vs 0.52-0.76 ms traced; the gateway hop 1.8-2.1 ms vs 3.0-3.5 ms; req/s at c=16 kept 20-25%
(cached read) and 44-49% (hop). The targets are not met at 100% sampling. Most of it is the ASGI
instrumentation's own work per server span (about 150 us on that machine, against ~1.4 us for a bare ASGI
app) plus each span's export (~20-50 us, on the batch thread but under the same GIL).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile

import labkit
from labkit import procs
from labkit.seed import seed
from services.core.settings import SERVICE_NAMES, Settings

from .harness import alternate, print_figures, print_table

TARGETS = {"cached_read_p50_added_ms": ("<=", 0.15), "cached_read_rps_kept_c16": (">=", 0.85),
           "hop_p50_added_ms": ("<=", 0.15), "hop_rps_kept_c16": (">=", 0.85)}


@contextlib.contextmanager
def private_lab(tracing: bool):
    """A lab of its own on free ports; the services inherit ``OTEL_SDK_DISABLED`` from this environment."""
    run_dir = tempfile.mkdtemp(prefix="lab-bench-tracing-")
    ports = {f"{name}_port": procs.free_port() for name in (*SERVICE_NAMES, "redis", "dashboard")}
    settings = Settings(run_dir=run_dir, sor_latency_ms=0, **ports)
    before = os.environ.get("OTEL_SDK_DISABLED")
    os.environ["OTEL_SDK_DISABLED"] = "false" if tracing else "true"
    try:
        lab = labkit.start_all(settings)
    finally:
        if before is None:
            os.environ.pop("OTEL_SDK_DISABLED")
        else:
            os.environ["OTEL_SDK_DISABLED"] = before
    try:
        seed(settings, customers=20, policies=20, claims=0)
        yield lab
    finally:
        labkit.stop_all(settings)
        shutil.rmtree(run_dir, ignore_errors=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per path and concurrency")
    args = parser.parse_args(argv)

    with private_lab(tracing=True) as traced, private_lab(tracing=False) as untraced:
        path = "/api/policies/POL-000001"
        contenders = {}
        for label, lab in (("traced", traced), ("untraced", untraced)):
            contenders[f"cached read, {label}"] = (lab.gateway_url + path, lab.gateway_headers)
            contenders[f"gateway hop, {label}"] = (lab.gateway_url + path,
                                                   lambda lab=lab: lab.gateway_headers(ask_the_service=True))
        c1 = alternate(contenders, 1, args.seconds)
        c16 = alternate(contenders, 16, args.seconds)

    print_table(f"GET {path}: every request traced vs OTEL_SDK_DISABLED=true (closed loop, aiohttp, loopback)",
                [*c1.values(), *c16.values()])
    figures = {}
    for what, key in (("cached read", "cached_read"), ("gateway hop", "hop")):
        figures[f"{key}_p50_added_ms"] = c1[f"{what}, traced"].pct(0.5) - c1[f"{what}, untraced"].pct(0.5)
        figures[f"{key}_rps_kept_c16"] = c16[f"{what}, traced"].rps / c16[f"{what}, untraced"].rps
    print_figures(figures, TARGETS)
    return figures


if __name__ == "__main__":
    main()
