"""How much the gateway costs, and what discovery added to it: direct vs gateway vs (if installed) nginx.

Contenders, one read (``GET /policies/POL-000001``) each, alternating rounds in one run:

* ``direct`` — straight to the policy service;
* ``gateway`` — the lab's gateway: registry view, balancer, breaker, health checks (lessons 03/05);
* ``gateway-static`` — a second gateway with ``LAB_GATEWAY_DISCOVERY=static``: the plain proxy of lesson 00,
  to show what discovery adds per request (it should be nothing you can measure);
* ``nginx`` — only if ``nginx`` is on PATH: the same hop through nginx, the yardstick for a proxy hop.

Targets (issue 5): gateway req/s >= 50% of direct at c=16; p50 added <= 0.5 ms at c=1.
Run: ``python -m benchmarks.gateway_efficiency [--seconds 6]``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from pathlib import Path

from labkit import procs
from labkit.seed import seed

from .harness import alternate, hop_headers, nginx_proxy, print_table, running_lab

TARGETS = {"throughput_kept": (">=", 0.5), "added_p50_ms": ("<=", 0.5)}


@contextlib.contextmanager
def static_gateway(lab):
    """A second gateway on a free port that routes by the settings ports (no registry)."""
    run_dir = Path(tempfile.mkdtemp(prefix="gw-static-"))
    overrides = dict(REDIS_URL=lab.redis.url, LAB_GATEWAY_DISCOVERY="static",
                     LAB_RUN_DIR=str(run_dir), LAB_INTERNAL_SECRET=lab.settings.shared_secret())
    try:
        proc, port = procs.start_service("gateway", run_dir / "gateway.log", overrides, name="gateway-static")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per path and concurrency")
    args = parser.parse_args(argv)

    path = "/policies/POL-000001"
    with running_lab() as lab:
        seed()
        with static_gateway(lab) as static_url, nginx_proxy(lab.settings.url_of("policy")) as nginx_url:
            contenders = {"direct": (lab.settings.url_of("policy") + path, lambda: lab.service_headers("policy")),
                          "gateway": (f"{lab.gateway_url}/api{path}", hop_headers(lab)),
                          "gateway-static": (f"{static_url}/api{path}", hop_headers(lab))}
            if nginx_url:
                contenders["nginx"] = (f"{nginx_url}/api{path}", lambda: lab.service_headers("policy"))
            c1 = alternate(contenders, 1, args.seconds)
            c16 = alternate(contenders, 16, args.seconds)

    print_table(f"GET {path} — direct vs through a proxy, loopback", [*c1.values(), *c16.values()])
    figures = {"added_p50_ms": c1["gateway"].pct(0.5) - c1["direct"].pct(0.5),
               "throughput_kept": c16["gateway"].rps / c16["direct"].rps,
               "static_added_p50_ms": c1["gateway-static"].pct(0.5) - c1["direct"].pct(0.5),
               "static_throughput_kept": c16["gateway-static"].rps / c16["direct"].rps}
    print(f"\ngateway adds at p50, c=1:                {figures['added_p50_ms']:6.3f} ms   (target <= 0.5 ms)")
    print(f"gateway keeps of direct req/s, c=16:      {figures['throughput_kept']:6.1%}      (target >= 50%)")
    print(f"static gateway (no discovery), same run:  +{figures['static_added_p50_ms']:.3f} ms, "
          f"{figures['static_throughput_kept']:.1%}")
    if "nginx" in c16:
        figures["ratio_to_nginx_c16"] = c16["gateway"].rps / c16["nginx"].rps
        figures["nginx_added_p50_ms"] = c1["nginx"].pct(0.5) - c1["direct"].pct(0.5)
        print(f"nginx adds at p50, c=1: {figures['nginx_added_p50_ms']:.3f} ms; "
              f"our gateway's req/s / nginx's at c=16: {figures['ratio_to_nginx_c16']:.1%}")
    else:
        print("nginx is not on PATH: the nginx comparison is skipped (apt-get install nginx to add it)")
    return figures


if __name__ == "__main__":
    main()
