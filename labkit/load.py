"""``labkit load``: an insurance day's traffic on the running lab, one record per request.

Two ways to load a system, and they answer different questions:

* **open loop** (``mode="open"``): requests arrive at a fixed rate whatever the system does, like
  customers who do not wait for each other. Request *i* is due at ``i / rate`` seconds; its latency is
  measured from that **intended** time, not from when a free connection finally sent it. A generator that
  waits for answers before sending more (closed loop) quietly sends fewer requests exactly when the system
  is slow, so its percentiles hide the slowness: "coordinated omission". Open loop does not.
* **closed loop** (``mode="closed"``): ``concurrency`` workers, each sending its next request as soon as
  the previous answer arrives. It finds the throughput ceiling; its latencies are the service's only.

If the generator cannot keep up with the schedule (too few connections for the latency, or not enough
CPU), the offered load was not what was asked for and the percentiles describe a different experiment:
a run that started fewer than 95% of its requests on schedule refuses to report them.

Both loops are ``labkit.traffic``'s, the generator every experiment uses: one clock, one vocabulary for
failures (a status, or a named transport error in ``error``). The client is aiohttp (much cheaper per
request than httpx), the records are a pandas DataFrame, saved
as CSV (plus a ``.json`` sidecar with the run's own numbers) that ``labkit analyze`` reads back.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pandas as pd

from services.core.settings import Settings, get_settings

from .auth import gateway_headers, service_headers
from .coroutines import run_async
from .errors import LabkitError
from .traffic import Request, closed_loop, open_loop

#: Below this share of requests started on schedule, an open-loop run refuses to report percentiles.
ON_SCHEDULE_REQUIRED = 0.95

#: The columns of every results file, in order (``labkit analyze`` relies on them).
COLUMNS = ["run", "mode", "concurrency", "target", "op", "route", "method", "intended_s", "start_s",
           "latency_ms", "service_ms", "status", "x_cache", "served_by", "error"]


@dataclass(frozen=True)
class Operation:
    """One kind of request in the mix. ``path`` has no ``/api`` prefix: the gateway adds it, a service not."""

    name: str
    method: str
    path: str  # template: "/policies/{id}"
    service: str  # who owns it (which service to call in direct mode)

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


OPERATIONS = {op.name: op for op in [
    Operation("read_policy", "GET", "/policies/{id}", "policy"),
    Operation("read_customer", "GET", "/customers/{id}", "customer"),
    Operation("read_claim", "GET", "/claims/{id}", "claims"),
    Operation("customer_overview", "GET", "/customers/{id}/overview", "customer"),
    Operation("submit_claim", "POST", "/claims", "claims"),
    Operation("change_claim_status", "POST", "/claims/{id}/status", "claims"),
    Operation("login", "POST", "/auth/login", "gateway"),
]}

#: Named mixes (relative weights). "insurance": mostly reads, some writes, an occasional login.
MIXES = {
    "insurance": {"read_policy": 40, "read_customer": 20, "read_claim": 20, "customer_overview": 8,
                  "submit_claim": 6, "change_claim_status": 5, "login": 1},
    "reads": {"read_policy": 50, "read_customer": 25, "read_claim": 25},
}

#: The seeded id ranges (``labkit seed``): reads pick uniformly from these.
SEEDED = {"customer": 300, "policy": 1000, "claims": 400}
DEMO_LOGINS = [("alice", "alice-lab-pw"), ("bob", "bob-lab-pw"), ("ada", "ada-lab-pw"), ("joe", "joe-lab-pw")]


def parse_mix(text: str | dict | None) -> dict[str, float]:
    """``"reads"`` (a named mix), ``"read_policy=3,read_claim=1"``, or a dict -> weights by operation."""
    if text is None:
        return dict(MIXES["insurance"])
    if isinstance(text, dict):
        mix = {k: float(v) for k, v in text.items()}
    elif text in MIXES:
        mix = dict(MIXES[text])
    else:
        mix = {}
        for part in text.split(","):
            name, _, weight = part.partition("=")
            try:
                mix[name.strip()] = float(weight or 1)
            except ValueError:
                raise LabkitError(f"mix entry {part!r}: the weight must be a number (name=weight)") from None
    unknown = sorted(set(mix) - set(OPERATIONS))
    if unknown:
        raise LabkitError(f"unknown operation(s) in the mix: {', '.join(unknown)}; "
                          f"known: {', '.join(OPERATIONS)}; named mixes: {', '.join(MIXES)}")
    if not any(w > 0 for w in mix.values()):
        raise LabkitError("the mix has no operation with a positive weight")
    return {k: v for k, v in mix.items() if v > 0}


class Scenario:
    """Turns an operation into a concrete request: a seeded id, a claim body, the next claim to review.

    Claims submitted during the run are remembered, so a status change moves one of *them* from
    submitted to under_review (a valid transition, made once per claim). Until one exists, a
    status change becomes a submission.
    """

    def __init__(self, rng: random.Random, active_policies: list[str]):
        self.rng = rng
        self.active_policies = active_policies or ["POL-000001"]
        self.submitted: list[str] = []

    def seeded_id(self, service: str) -> str:
        prefix = {"customer": "CUS", "policy": "POL", "claims": "CLM"}[service]
        return f"{prefix}-{self.rng.randint(1, SEEDED[service]):06d}"

    def request(self, op: Operation) -> tuple[Operation, str, dict | None]:
        if op.name == "change_claim_status":
            if not self.submitted:
                op = OPERATIONS["submit_claim"]
            else:
                claim_id = self.submitted.pop(0)
                return op, op.path.format(id=claim_id), {"status": "under_review", "note": "labkit load"}
        if op.name == "submit_claim":
            return op, op.path, {"policy_id": self.rng.choice(self.active_policies), "amount_cents": 10_000,
                                 "description": "Load test: a scratched bumper"}
        if op.name == "login":
            username, password = self.rng.choice(DEMO_LOGINS)
            return op, op.path, {"username": username, "password": password}
        owner = "customer" if op.name == "customer_overview" else op.service
        return op, op.path.format(id=self.seeded_id(owner)), None

    def remember(self, op: Operation, status: int, body: bytes) -> None:
        if op.name == "submit_claim" and status == 201:
            try:
                self.submitted.append(json.loads(body)["id"])
            except (ValueError, KeyError):
                pass


@dataclass
class LoadResult:
    """The records (one row per request) and the run's own numbers (rates, generator CPU, verdict)."""

    records: pd.DataFrame
    meta: dict
    path: Path | None = None

    @property
    def percentiles_refused(self) -> bool:
        return bool(self.meta.get("percentiles_refused"))

    def report(self) -> str:
        m = self.meta
        lines = [f"{m['mode']}-loop run {m['run']}: {m['requests']} requests in {m['duration_s']:.1f} s, "
                 f"concurrency {m['concurrency']}, target {m['target']}"]
        if m["mode"] == "open":
            lines.append(f"  rate: requested {m['requested_rate']:,.0f}/s, achieved {m['achieved_rate']:,.0f}/s; "
                         f"{m['on_schedule']:.1%} of {m['scheduled']:,} scheduled requests started within the schedule's "
                         f"{m['duration_s']:g} s")
        else:
            lines.append(f"  rate: achieved {m['achieved_rate']:,.0f}/s (closed loop: as fast as answers come)")
        lines.append(f"  generator CPU: {m['generator_cpu_s']:.2f} s = {m['generator_cpu_pct']:.0f}% of one core"
                     + ("  <- the generator itself may be the bottleneck" if m["generator_cpu_pct"] > 80 else ""))
        if m.get("left_out"):
            lines.append(f"  left out of the mix (the route answered 404): {', '.join(m['left_out'])}")
        if self.percentiles_refused:
            lines.append(f"  REFUSED: the run fell behind its schedule ({m['on_schedule']:.1%} on time, "
                         f"{ON_SCHEDULE_REQUIRED:.0%} required), so its latency percentiles describe a smaller "
                         "load than the one asked for. Raise --concurrency (rate x latency connections are "
                         "needed) or lower --rate.")
        if self.path:
            lines.append(f"  records: {self.path}")
        return "\n".join(lines)


class _Target:
    """Where requests go: the gateway (``/api`` prefix, the lab's API key) or one service directly."""

    def __init__(self, settings: Settings, target: str):
        self.name = target
        self.base_url = settings.url_of(target)
        self.prefix = "/api" if target == "gateway" else ""
        self._settings = settings
        self._static = gateway_headers(settings) if target == "gateway" else None
        self._signed_at, self._signed = 0.0, {}

    def headers(self) -> dict:
        if self._static is not None:
            return self._static
        now = time.monotonic()
        if now - self._signed_at > 20:  # a signed identity is valid for about a minute: re-sign often
            self._signed, self._signed_at = service_headers(self._settings, self.name, "labkit-load"), now
        return self._signed

    def serves(self, op: Operation) -> bool:
        return self.name == "gateway" or op.service == self.name


async def _probe(session: aiohttp.ClientSession, target: _Target, scenario: Scenario,
                 mix: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    """Keep the operations whose route exists: one request each; a 404/405 means "not built (yet)"."""
    kept, left_out = {}, []
    for name, weight in mix.items():
        op = OPERATIONS[name]
        if not target.serves(op):
            left_out.append(name)
            continue
        if op.name in ("submit_claim", "change_claim_status"):  # writes: POST /claims answers 422 to {}
            probe_method, probe_path, body = "POST", op.path.format(id="CLM-000001"), {}
        else:
            _, probe_path, body = scenario.request(op)
            probe_method = op.method
        async with session.request(probe_method, target.base_url + target.prefix + probe_path, json=body,
                                   headers=target.headers()) as response:
            await response.read()
            exists = response.status not in (404, 405)
        if exists:
            kept[name] = weight
        else:
            left_out.append(name)
    if not kept:
        raise LabkitError(f"no operation of the mix is served by {target.name}: {', '.join(left_out)}")
    return kept, left_out


async def _require_sample_data(session: aiohttp.ClientSession, target: _Target) -> None:
    """Reads pick seeded ids: without the sample data every read would be a 404, so say so first."""
    path = {"gateway": "/policies/POL-000001", "policy": "/policies/POL-000001",
            "customer": "/customers/CUS-000001", "claims": "/claims/CLM-000001"}[target.name]
    try:
        async with session.get(target.base_url + target.prefix + path, headers=target.headers()) as response:
            await response.read()
            status = response.status
    except aiohttp.ClientConnectionError:
        raise LabkitError(f"the {target.name} at {target.base_url} does not answer: start the lab first "
                          "(`labkit start-all`, or labkit.start_all() in a notebook)") from None
    if status == 404:
        raise LabkitError("the sample data is not loaded (reads pick seeded ids): run `labkit seed` first")
    if status != 200:
        raise LabkitError(f"GET {target.prefix}{path} answered {status}: is the lab healthy? (`labkit status`)")


async def _active_policies(session: aiohttp.ClientSession, target: _Target) -> list[str]:
    """Ids of active policies, so submitted claims are valid (a claim on a cancelled policy is a 422)."""
    base = (target.base_url + target.prefix) if target.name in ("gateway", "policy") else None
    if base is None:
        return []
    async with session.get(f"{base}/policies", params={"status": "active", "limit": "100"},
                           headers=target.headers()) as response:
        if response.status != 200:
            return []
        return [p["id"] for p in (await response.json())["items"]]


def _redis_commands(settings: Settings) -> dict[str, int] | None:
    """Total calls per Redis command so far (``INFO commandstats``), or None without a reachable Redis."""
    from . import redis_server

    server = redis_server.current(settings)
    if server is None:
        return None
    try:
        stats = server.client(socket_timeout=1).info("commandstats")
    except Exception:  # noqa: BLE001 - Redis numbers are a bonus, the run does not depend on them
        return None
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def _run(settings: Settings, target: _Target, mode: str, mix: dict[str, float], rate: float,
               concurrency: int, duration: float, seed: int, progress: bool, run_id: str) -> tuple[list, dict]:
    rng = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(),
                                     skip_auto_headers=("User-Agent",)) as session:
        await _require_sample_data(session, target)
        scenario = Scenario(rng, await _active_policies(session, target))
        mix, left_out = await _probe(session, target, scenario, mix)
        names, weights = list(mix), list(mix.values())
        await asyncio.gather(*(_warm(session, target) for _ in range(concurrency)))  # open the connections

        def next_request(_seq: int) -> Request:
            op, path, body = scenario.request(OPERATIONS[rng.choices(names, weights)[0]])
            return Request(op.method, target.prefix + path, body, op.name, target.headers())

        def remember(request: Request, status: int, body: bytes) -> None:
            scenario.remember(OPERATIONS[request.label], status, body)

        bar = _progress_bar(duration, f"{mode} loop, c={concurrency}") if progress else None
        watch = _ticker(bar) if bar else None
        cpu0 = time.process_time()
        if mode == "open":
            traffic = await open_loop(session, target.base_url, next_request, rate, duration, concurrency=concurrency,
                                      on_answer=remember, watch=watch, watch_every_s=0.25)
        else:
            traffic = await closed_loop(session, target.base_url, next_request, concurrency, duration_s=duration,
                                        on_answer=remember, watch=watch)
        cpu = time.process_time() - cpu0
        if bar:
            bar.n = bar.total
            bar.set_postfix_str(f"{len(traffic.records):,} requests", refresh=False)
            bar.close()

    records = [(r["label"], f"{r['method']} {target.prefix}{OPERATIONS[r['label']].path}", r["method"],
                r["intended_s"], r["sent_s"], r["latency_ms"], r["service_ms"], r["status"], r["x_cache"],
                r["served_by"], r["error"]) for r in traffic.records]
    on_time = sum(1 for r in traffic.records if r["sent_s"] <= duration)
    wall, scheduled = traffic.wall_s, traffic.scheduled
    meta = {"run": run_id, "mode": mode, "target": target.name, "concurrency": concurrency,
            "duration_s": duration, "wall_s": round(wall, 3), "mix": mix, "left_out": left_out,
            "requests": len(records), "requested_rate": rate if mode == "open" else None,
            "scheduled": scheduled, "achieved_rate": on_time / duration,
            "on_schedule": on_time / scheduled if scheduled else 1.0,
            "generator_cpu_s": round(cpu, 3), "generator_cpu_pct": round(100 * cpu / wall, 1),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    meta["percentiles_refused"] = mode == "open" and meta["on_schedule"] < ON_SCHEDULE_REQUIRED
    return records, meta


async def _warm(session: aiohttp.ClientSession, target: _Target) -> None:
    async with session.get(target.base_url + "/health") as response:
        await response.read()


def _progress_bar(total_s: float, label: str):
    """The text bar (no ipywidgets here). In a terminal it goes to stderr, as progress output should; in a
    notebook to stdout, because a notebook shows anything on stderr as a pink error box."""
    import sys

    from tqdm import tqdm

    in_notebook = "ipykernel" in sys.modules
    return tqdm(total=round(total_s, 1), desc=label, unit="s", bar_format="{desc}: {bar} {n:.1f}/{total:.1f} s{postfix}",
                leave=True, file=sys.stdout if in_notebook else sys.stderr)


def _ticker(bar):
    """A ``watch`` hook that moves the bar by time (cheap) rather than per request (costly at thousands a second)."""

    async def tick(now: float, records: list) -> None:
        bar.n = min(bar.total, round(now, 1))
        bar.set_postfix_str(f"{len(records):,} requests", refresh=False)
        bar.refresh()

    return tick


def default_results_path(settings: Settings, run_id: str) -> Path:
    return settings.run_dir / "results" / f"load-{run_id}.csv"


def run_load(mode: str = "open", rate: float = 200, concurrency: int = 16, duration: float = 5,
             mix: str | dict | None = None, target: str = "gateway", out: str | Path | None = None,
             seed: int = 7, progress: bool = True, save: bool = True, settings: Settings | None = None) -> LoadResult:
    """Load the lab, return the records and the run's numbers; save them (CSV + JSON sidecar) if ``save``.

    ``target`` is ``"gateway"`` (the default: the lab as a client sees it) or one service's name, to hit
    it directly with only the operations it owns.
    """
    settings = settings or get_settings()
    if mode not in ("open", "closed"):
        raise LabkitError(f"mode must be 'open' or 'closed', not {mode!r}")
    if concurrency < 1 or duration <= 0 or (mode == "open" and rate <= 0):
        raise LabkitError("concurrency must be >= 1, duration > 0 and (open loop) rate > 0")
    if target not in ("gateway", "policy", "claims", "customer"):
        raise LabkitError(f"target must be the gateway or a domain service, not {target!r}")
    run_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + f"{random.randrange(16**4):04x}"
    redis_before = _redis_commands(settings)
    rows, meta = run_async(_run(settings, _Target(settings, target), mode, parse_mix(mix), rate, concurrency,
                                     duration, seed, progress, run_id))
    redis_after = _redis_commands(settings)
    if redis_before is not None and redis_after is not None:
        delta = {k: v - redis_before.get(k, 0) for k, v in redis_after.items() if v - redis_before.get(k, 0) > 0}
        delta.pop("info", None)  # our own INFO calls
        meta["redis_commands"] = dict(sorted(delta.items(), key=lambda kv: -kv[1]))
    frame = pd.DataFrame(rows, columns=COLUMNS[4:])
    frame.insert(0, "target", target)
    frame.insert(0, "concurrency", concurrency)
    frame.insert(0, "mode", mode)
    frame.insert(0, "run", run_id)
    frame = frame.sort_values("intended_s", kind="stable").reset_index(drop=True)
    result = LoadResult(frame, meta)
    if save:
        result.path = save_results(result, Path(out) if out else default_results_path(settings, run_id))
    return result


def save_results(result: LoadResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    result.records.to_csv(path, index=False)
    path.with_suffix(".json").write_text(json.dumps(result.meta, indent=1))
    return path
