"""Lesson 07, "where does a cached read's time go?": the policy service's cache HIT before and after its fast path.

Two instances of the policy service on the lab's Redis answer the same ``GET /policies/{id}``:

* **route**: started beside the lab with ``LAB_FAST_READS=0`` — every request goes through FastAPI and the
  route (routing, the request object, dependencies, the response model), as it did before;
* **fast path**: the lab's own instance, where ``services/platform/cached_read.py`` answers a HIT in front of
  FastAPI with the same pattern functions (identity, ``coherence.peek``, ownership, the response model).

Each gets the same closed-loop traffic from labkit's generator, in alternating rounds (A B B A ...), so a
machine that gets busier during the run hurts both alike. Meanwhile py-spy samples it (``labkit.profile``)
and the process's own CPU time is read before and after: **CPU per request** is the figure that a busy
machine disturbs least (req/s and latency also count the time spent waiting for a core).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pandas as pd
import psutil

from .. import profile as profiler
from ..coroutines import run_async
from ..traffic import Request, closed_loop

ROUTE, FAST = "route (FastAPI)", "fast path"


@dataclass
class BeforeAfter:
    rounds: pd.DataFrame  # one row per round: run, round, requests, req_s, p50_ms, p99_ms, cpu_us_per_request
    # run, layer, share (of py-spy's samples), us_per_request (the share times the run's CPU per request)
    shares: pd.DataFrame = field(default_factory=pd.DataFrame)
    flame_graphs: dict[str, Path] = field(default_factory=dict)
    profiler_problem: str = ""  # why there are no shares (py-spy missing or not allowed), said in the lesson

    def summary(self) -> pd.DataFrame:
        """Per run: requests, req/s, p50, p99 and CPU per request, pooled over its rounds (medians)."""
        return self.rounds.groupby("run", sort=False)[["req_s", "p50_ms", "p99_ms", "cpu_us_per_request"]].median()

    def verdict(self) -> str:
        """Did the fast path cost less CPU per request in every round pair? Said from the numbers."""
        by_run = self.rounds.groupby("run")["cpu_us_per_request"]
        route, fast = by_run.get_group(ROUTE), by_run.get_group(FAST)
        if fast.max() < route.min():
            return (f"The fast path cost less CPU per request in every round: {fast.median():.0f} µs vs "
                    f"{route.median():.0f} µs through FastAPI ({route.median() / fast.median():.1f}x less).")
        return (f"This run did NOT show the fast path cheaper in every round (fast path {sorted(fast.round())} µs, "
                f"route {sorted(route.round())} µs per request): the machine was too busy for the rounds to "
                "agree. Run the cell again.")


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def _load(url: str, headers: dict, concurrency: int, seconds: float) -> pd.DataFrame:
    async with aiohttp.ClientSession() as session:
        traffic = await closed_loop(session, url, lambda _: Request("GET", "", headers=headers, label="read"),
                                    concurrency, duration_s=seconds, timeout_s=5)
    return traffic.frame()


def _measure(run: str, round_no: int, pid: int, url: str, headers: dict, concurrency: int, seconds: float) -> dict:
    before = _cpu_s(pid)
    frame = run_async(_load(url, headers, concurrency, seconds))
    used = _cpu_s(pid) - before
    ok = frame[frame["ok"] & (frame["status"] == 200)]
    if ok.empty or (ok["x_cache"] != "HIT").any():
        raise RuntimeError(f"{run}: expected cache HITs only, got statuses {frame['status'].value_counts().to_dict()}"
                           f" and X-Cache {ok['x_cache'].value_counts().to_dict()}")
    return {"run": run, "round": round_no, "requests": len(frame), "errors": int((~frame["ok"]).sum()),
            "req_s": len(ok) / seconds, "p50_ms": ok["latency_ms"].quantile(0.5),
            "p99_ms": ok["latency_ms"].quantile(0.99), "cpu_us_per_request": used / len(frame) * 1e6}


def cached_read_before_and_after(lab, policy_id: str = "POL-000001", seconds: float = 2.0, rounds: int = 2,
                                 concurrency: int = 8, profile_seconds: float = 3.0) -> BeforeAfter:
    """Measure (alternating rounds) and then profile both instances; the second instance is stopped after."""
    route, route_port = lab.start_beside("policy", name="policy-route-only", LAB_FAST_READS="0")
    try:
        headers = lab.service_headers("policy")
        path = f"/policies/{policy_id}"
        instances = {ROUTE: (route.pid, f"http://127.0.0.1:{route_port}{path}"),
                     FAST: (profiler.service_pid("policy", lab.settings), lab.settings.url_of("policy") + path)}
        for _, url in instances.values():  # fill the copy and warm both up (the first requests pay for imports)
            run_async(_load(url, headers, 2, 0.3))
        rows = []
        for round_no in range(rounds):
            order = list(instances) if round_no % 2 == 0 else list(instances)[::-1]
            for run in order:
                rows.append(_measure(run, round_no, *instances[run], headers, concurrency, seconds))
        result = BeforeAfter(pd.DataFrame(rows))
        _profile_both(result, instances, headers, concurrency, profile_seconds, lab.settings)
        return result
    finally:
        route.terminate()
        route.wait(15)


def _profile_both(result: BeforeAfter, instances: dict, headers: dict, concurrency: int, seconds: float,
                  settings) -> None:
    """py-spy on each instance while it serves the same traffic; a missing or refused py-spy is reported."""
    import threading

    shares = []
    for run, (pid, url) in instances.items():
        load = threading.Thread(target=lambda: run_async(_load(url, headers, concurrency, seconds + 1.5)))
        load.start()
        try:
            time.sleep(0.5)
            sampled = profiler.profile_process(pid, f"policy-{'route' if run == ROUTE else 'fast'}", seconds,
                                               settings=settings)
        except Exception as exc:  # noqa: BLE001 - the lesson says why and goes on with the other numbers
            result.profiler_problem = str(exc)
            return
        finally:
            load.join()
        result.flame_graphs[run] = sampled.flame_graph
        cpu_us = result.summary().loc[run, "cpu_us_per_request"]
        shares += [{"run": run, "layer": layer, "share": share, "us_per_request": share * cpu_us}
                   for layer, share in sampled.shares().items()]
    result.shares = pd.DataFrame(shares)
