"""The performance targets of issue 8, each a ratio against a reference measured in the same run.

1. A cached read through the gateway at c=1: p50 < 1 ms.
2. The lab's read mix through the gateway at c=16 reaches >= 50% of the req/s of the slowest single
   service hit directly (each service's own reads, random seeded ids, c=16).
3. Stretch: a cached read through the gateway at c=16 reaches >= 80% of the req/s of a bare uvicorn
   endpoint returning constant JSON (the ceiling for a Python HTTP hop here; started as a subprocess).
4. Only if nginx is on PATH: the same read through nginx proxying the policy service, against our gateway
   proxying it too (``Cache-Control: no-cache``, past the gateway's own cache, as nginx has none here).

The hot read of 1 and 3 is answered by the gateway's response cache (on by default, see
``services/gateway/response_cache.py``): that is the lab's cached read path, end to end.

Every contender runs in alternating rounds, so noise on the shared machine hits all alike.
Run: ``python -m benchmarks.load_targets [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import httpx

from labkit import procs
from labkit.load import run_load
from labkit.seed import seed
from labkit.tables import text_table
from services.core.settings import PROJECT_ROOT

from .harness import alternate, hop_headers, nginx_proxy, print_figures, print_table, running_lab

TARGETS = {"cached_read_p50_ms_c1": ("<", 1.0), "read_mix_vs_slowest_service_c16": (">=", 0.5),
           "cached_read_vs_bare_uvicorn_c16": (">=", 0.8)}
HOT_POLICY = "/api/policies/POL-000001"
DIRECT_READS = {"policy": "read_policy", "customer": "read_customer", "claims": "read_claim"}


def read_mix_vs_services(seconds: float, rounds: int = 2) -> tuple[float, dict[str, float]]:
    """Closed loop, c=16: the read mix through the gateway, and each service's reads straight to it."""
    rps: dict[str, list[float]] = {}
    for _ in range(rounds):
        for target in ("gateway", *DIRECT_READS):
            mix = "reads" if target == "gateway" else {DIRECT_READS[target]: 1}
            result = run_load(mode="closed", concurrency=16, duration=seconds / rounds, mix=mix, target=target,
                              progress=False, save=False)
            errors = int((~result.records["status"].between(200, 399)).sum())
            if errors:
                print(f"  warning: {errors} errors hitting {target}")
            rps.setdefault(target, []).append(result.meta["achieved_rate"])
    mean = {target: sum(v) / len(v) for target, v in rps.items()}
    return mean.pop("gateway"), mean


def start_bare_endpoint() -> tuple[subprocess.Popen, str]:
    port = procs.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "benchmarks.bare_endpoint:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning", "--no-access-log"],
                            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    _wait_answers(url, proc)
    return proc, url


def _wait_answers(url: str, proc: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with code {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _must_answer_200(url: str, headers: dict | None = None) -> None:
    """A contender that answers 404 or 401 would be measured as very fast: check it really serves the read."""
    response = httpx.get(url, headers=headers, timeout=5)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}, not 200: {response.text[:200]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per contender")
    args = parser.parse_args(argv)
    figures: dict[str, float] = {}

    with running_lab() as lab:
        seed()
        hot = lab.gateway_url + HOT_POLICY
        lab.client.get(HOT_POLICY)  # the first read fills the cache (if there is one)
        x_cache = lab.client.get(HOT_POLICY).headers.get("x-cache")
        print("cached read:", f"X-Cache: {x_cache}" if x_cache else
              "no X-Cache header, so this read is NOT cached yet: it measures an uncached read")

        c1 = alternate({"gateway, cached read": (hot, lab.gateway_headers)}, 1, args.seconds)
        figures["cached_read_p50_ms_c1"] = c1["gateway, cached read"].pct(0.5)

        mix_rps, direct = read_mix_vs_services(args.seconds)
        slowest = min(direct, key=direct.get)
        print("\nread mix at c=16 (closed loop, random seeded ids)")
        print(text_table([{"path": "gateway, read mix", "req_s": f"{mix_rps:,.0f}"}]
                         + [{"path": f"{s} directly, its reads", "req_s": f"{r:,.0f}"} for s, r in direct.items()]))
        figures["read_mix_req_s_c16"] = mix_rps
        figures[f"slowest_service_req_s_c16 ({slowest})"] = direct[slowest]
        figures["read_mix_vs_slowest_service_c16"] = mix_rps / direct[slowest]

        _must_answer_200(hot, lab.gateway_headers())
        bare, bare_url = start_bare_endpoint()
        try:
            c16 = alternate({"bare uvicorn, constant JSON": (bare_url, None),
                             "gateway, cached read": (hot, lab.gateway_headers)}, 16, args.seconds)
        finally:
            _stop(bare)
        figures["cached_read_vs_bare_uvicorn_c16"] = (c16["gateway, cached read"].rps
                                                      / c16["bare uvicorn, constant JSON"].rps)
        runs = [*c1.values(), *c16.values()]

        with nginx_proxy(lab.settings.url_of("policy")) as nginx_url:
            if nginx_url:
                _must_answer_200(nginx_url + HOT_POLICY, lab.service_headers("policy"))  # nginx strips /api like ours
                proxied = alternate({"nginx -> policy": (nginx_url + HOT_POLICY, lambda: lab.service_headers("policy")),
                                     "our gateway -> policy": (hot, hop_headers(lab))}, 16, args.seconds)
                figures["gateway_vs_nginx_c16"] = (proxied["our gateway -> policy"].rps
                                                   / proxied["nginx -> policy"].rps)
                runs += list(proxied.values())
            else:
                print("\nnginx comparison skipped: nginx is not on PATH")

    print_table("cached read of POL-000001 (closed loop)", runs)
    print_figures(figures, TARGETS)
    return figures


if __name__ == "__main__":
    main()
