"""What the gateway hop costs: one read straight to a service vs the same read through the gateway.

Targets (issue 2): the gateway adds <= 0.5 ms at p50 with one client, and keeps >= 50% of the direct
throughput with 16 concurrent clients. Run: ``python -m benchmarks.gateway_hop [--seconds 6]``.
"""

from __future__ import annotations

import argparse

from labkit.seed import seed

from .harness import alternate, hop_headers, print_table, running_lab


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per path and concurrency")
    args = parser.parse_args(argv)

    with running_lab() as lab:
        seed()
        contenders = {"direct": (f"{lab.settings.url_of('policy')}/policies/POL-000001",
                                 lambda: lab.service_headers("policy")),
                      "gateway": (f"{lab.gateway_url}/api/policies/POL-000001", hop_headers(lab))}
        c1 = alternate(contenders, 1, args.seconds)
        c16 = alternate(contenders, 16, args.seconds)

    print_table("GET /policies/POL-000001 (the service's Redis cache; past the gateway's own), loopback",
                [*c1.values(), *c16.values()])
    added_p50 = c1["gateway"].pct(0.5) - c1["direct"].pct(0.5)
    kept = c16["gateway"].rps / c16["direct"].rps
    print(f"\ngateway adds at p50, c=1:           {added_p50:6.3f} ms   (target <= 0.5 ms)")
    print(f"gateway keeps of direct req/s, c=16: {kept:6.1%}      (target >= 50%)")
    return {"added_p50_ms": added_p50, "throughput_kept": kept}


if __name__ == "__main__":
    main()
