"""Lesson 01's targets, side by side in one run: what a cached read costs, and what a cache buys.

* a cached read (``X-Cache: HIT``) of one policy straight to the policy service and through the gateway,
  one client (c=1): p50 of each (target: both under 1 ms on loopback). Through the gateway a hot read is
  answered from the gateway's own response cache; the same read with ``Cache-Control: no-cache`` (past it,
  to the service's Redis cache) is printed beside it;
* the same reads with the cache empty (MISS) vs cached (HIT), the system of record at 5 ms: ratio of p50s;
* 100 cached values read with 100 GETs vs one MGET vs one pipeline: ratios (expect >= 10x).

Run: ``python -m benchmarks.caching [--seconds 4]``. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse

from labkit.experiments import caching
from labkit.seed import seed
from labkit.tables import text_table

from .harness import alternate, hop_headers, print_figures, print_table, running_lab

TARGETS = {"cached_direct_p50_ms": ("<", 1.0), "cached_gateway_p50_ms": ("<", 1.0),
           "get_vs_mget_ratio": (">=", 10.0)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per path (c=1)")
    parser.add_argument("--reads", type=int, default=200, help="distinct policies read cold, then warm")
    args = parser.parse_args(argv)

    with running_lab() as lab:
        seed()
        policy = "/policies/POL-000001"
        lab.service_client("policy").get(policy)  # make sure the copy is there: every measured read is a HIT
        contenders = {"cached, direct": (f"{lab.settings.url_of('policy')}{policy}",
                                         lambda: lab.service_headers("policy")),
                      "cached, via gateway": (f"{lab.gateway_url}/api{policy}", lab.gateway_headers),
                      "service's cache, via gateway (no-cache)": (f"{lab.gateway_url}/api{policy}",
                                                                   hop_headers(lab))}
        c1 = alternate(contenders, 1, args.seconds)
        cold_warm = caching.cold_vs_warm(lab.settings, n=args.reads, sor_latency_ms=5.0)
        trips = caching.round_trips(lab.settings, sizes=(100,), repeats=40)

    print_table("GET /policies/POL-000001 from the cache, one client, loopback", list(c1.values()))
    p50 = cold_warm.groupby("path")["latency_ms"].median()
    miss_p50, hit_p50 = p50["cold (cache empty)"], p50["warm (cached)"]
    per_method = trips.groupby("method")["latency_ms"].median()
    print(f"\n{args.reads} policies read with the cache empty, then cached (system of record at 5 ms, straight "
          "to the policy service, httpx):")
    print(text_table([{"read": "MISS (cache empty)", "p50_ms": f"{miss_p50:.3f}"},
                      {"read": "HIT (cached)", "p50_ms": f"{hit_p50:.3f}"}]))
    print("\n100 cached values from Redis:")
    print(text_table([{"method": m, "p50_ms": f"{per_method[m]:.3f}",
                       "vs 100 GETs": f"{per_method['N GETs'] / per_method[m]:.1f}x"}
                      for m in ("N GETs", "MGET", "pipeline")]))
    figures = {"cached_direct_p50_ms": c1["cached, direct"].pct(0.5),
               "cached_gateway_p50_ms": c1["cached, via gateway"].pct(0.5),
               "service_cache_via_gateway_p50_ms": c1["service's cache, via gateway (no-cache)"].pct(0.5),
               "miss_vs_hit_p50_ratio": miss_p50 / hit_p50,
               "get_vs_mget_ratio": per_method["N GETs"] / per_method["MGET"],
               "get_vs_pipeline_ratio": per_method["N GETs"] / per_method["pipeline"]}
    print_figures(figures, TARGETS)
    return figures


if __name__ == "__main__":
    main()
