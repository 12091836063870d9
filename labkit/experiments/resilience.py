"""Lesson 08's experiment: steady traffic through the gateway while a fault comes and goes.

Requests are sent on a fixed schedule (open loop: a slow or failing answer does not delay the next
request), each with its own timeout, so the record shows exactly when errors started, how long they
lasted and what latency looked like around the fault.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import aiohttp
import pandas as pd

from pathlib import Path

from services.core import keys
from services.core.settings import SERVICE_NAMES, Settings
from services.patterns.envelope import Event, EventType

from .. import procs
from ..errors import PortBusyError
from ..auth import gateway_headers
from ..coroutines import run_async
from ..lab import Lab, start_all, stop_all
from ..traffic import Request, Traffic, open_loop


def private_settings(run_dir: Path) -> Settings:
    """Settings for a second, throw-away lab on free ports: a lesson that breaks things breaks this one."""
    ports = {f"{name}_port": procs.free_port() for name in (*SERVICE_NAMES, "dashboard")}
    return Settings(_env_file=None, run_dir=run_dir, redis_port=procs.free_port(), **ports)


def start_private_lab(run_dir: Path, attempts: int = 3, timeout: float | None = None) -> Lab:
    """A whole second lab, started fresh on ports picked now. Whatever an interrupted earlier run left in
    ``run_dir`` is stopped first (reusing it would mix its ports with the new ones); if a port is taken before
    its server binds it, fresh ports are tried (``start_all`` has already stopped what it started)."""
    stop_all(private_settings(run_dir))
    for _ in range(attempts - 1):
        try:
            return start_all(private_settings(run_dir), timeout=timeout)
        except PortBusyError:
            pass
    return start_all(private_settings(run_dir), timeout=timeout)


async def _traffic(settings: Settings, requests: list[tuple[str, str, dict | None]], rate: float,
                   duration_s: float, events: list[tuple[float, str, Callable[[], object]]],
                   timeout_s: float, settle_s: float | None = None, max_duration_s: float | None = None) -> Traffic:
    plan = [Request(method, path, body, "write" if method != "GET" else "read") for method, path, body in requests]
    finished: list[float] = []  # when each action returned (perf_counter)

    def noting_the_end(action: Callable[[], object]) -> Callable[[], object]:
        def run():
            try:
                return action()
            finally:
                finished.append(time.perf_counter())
        return run

    def settled(_records) -> bool:  # every action has returned, and settle_s more have passed
        return len(finished) == len(events) and time.perf_counter() >= max(finished) + settle_s

    def created_id(_request: Request, status: int, body: bytes) -> dict:
        return {"created": json.loads(body).get("id") if status == 201 else None}

    async with aiohttp.ClientSession(headers=gateway_headers(settings, ask_the_service=True)) as session:
        return await open_loop(session, settings.url_of("gateway"), lambda i: plan[i % len(plan)], rate, duration_s,
                               timeout_s=timeout_s, on_answer=created_id,
                               actions=[(at, label, noting_the_end(action)) for at, label, action in events],
                               until=settled if settle_s is not None else None,
                               max_duration_s=max_duration_s or (duration_s if settle_s is None else 4 * duration_s))


def traffic_around_fault(settings: Settings, requests: list[tuple[str, str, dict | None]],
                         events: list[tuple[float, str, Callable[[], object]]], rate: float = 40,
                         duration_s: float = 8, timeout_s: float = 3, settle_s: float | None = None,
                         max_duration_s: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Send ``requests`` (method, path, json) round-robin at ``rate``/s for ``duration_s`` (the open loop of
    ``labkit.traffic``); run each ``(at_s, label, action)`` event on schedule. With ``settle_s``, the traffic
    goes on past ``duration_s`` until every action has returned and ``settle_s`` more seconds have passed (up
    to ``max_duration_s``): a restart that takes longer than planned (a busy machine) is still seen to end,
    and what follows it. Returns (one row per request:
    ``t_s`` its intended send time, ``kind`` read or write, ``path`` as "METHOD /path", ``status`` and
    ``error`` as ``labkit.traffic`` names them, ``ok``, ``latency_ms`` from the intended time, ``created``: the
    id a 201 answered; one row per event: ``t_s`` when the action began, ``end_s`` when it returned — a
    restart takes a while)."""
    traffic = run_async(_traffic(settings, requests, rate, duration_s, events, timeout_s, settle_s, max_duration_s))
    rows = traffic.frame().rename(columns={"intended_s": "t_s", "label": "kind"})
    rows["path"] = rows["method"] + " " + rows["path"]
    return rows.sort_values("t_s").reset_index(drop=True), pd.DataFrame(traffic.marks)


def audit_claims(redis_client, claim_ids: list[str]) -> pd.DataFrame:
    """For each claim the system of record committed: how many ``claim.submitted`` events its audit trail
    (its own stream) holds. Exactly one each = nothing lost, nothing doubled."""
    rows = []
    for claim_id in claim_ids:
        entries = redis_client.xrange(keys.subject_history("claims", claim_id))
        types = [Event.from_json(fields["event"]).type for _, fields in entries]
        rows.append({"claim": claim_id, "submitted_events": types.count(EventType.CLAIM_SUBMITTED)})
    return pd.DataFrame(rows, columns=["claim", "submitted_events"])


def wait_for_audit(redis_client, claim_ids: list[str], timeout_s: float = 20) -> tuple[pd.DataFrame, float]:
    """Poll until every claim has its event (the outboxes drain once Redis is back); (audit, seconds waited)."""
    started = time.monotonic()
    while True:
        audit = audit_claims(redis_client, claim_ids)
        if (audit["submitted_events"] >= 1).all() or time.monotonic() - started > timeout_s:
            return audit, time.monotonic() - started
        time.sleep(0.2)


#: What a squeeze counts in Redis, by key pattern.
def squeeze_kinds() -> dict[str, str]:
    return {"cached copies": keys.cache_prefix() + "*", "audit trails": keys.subject_history("claims", "*"),
            "sessions": keys.session("*"), "service registrations": keys.registry_instance("*", "*")}


def squeeze_memory(lab: Lab, eviction_policy: str, policy_id: str, claims: int = 10, ballast: int = 60,
                   headroom_bytes: int = 256 * 1024, audit_timeout_s: float = 10) -> dict:
    """Redis short of memory: set ``maxmemory`` to what it uses now plus ``headroom_bytes`` under
    ``eviction_policy`` (``faults.shrink_redis_memory``: CONFIG SET maxmemory-policy, CONFIG SET maxmemory),
    write ``ballast`` values of 50 kB (other data arriving), count what is left in Redis, submit ``claims``
    claims through the gateway, then restore the memory settings and wait for the claims' events.

    Returns the key counts before and after, how many ballast writes Redis refused, each claim request's
    answer (status, error code), the claims the system of record holds (asked after memory was restored, so
    a claim written although its request failed would show), and how many of those got their event."""
    from .. import faults
    import httpx
    import redis

    client = lab.redis_client()
    kinds = squeeze_kinds()

    def count(pattern):
        return sum(1 for _ in client.scan_iter(pattern, count=500))

    for user in ("alice", "bob", "ada", "joe"):  # some sessions worth keeping (one fresh client each)
        httpx.post(f"{lab.gateway_url}/api/auth/login", json={"username": user, "password": f"{user}-lab-pw"})
    for i in range(120):  # some cached copies
        lab.client.get(f"/api/policies/POL-{(i % 40) + 1:06d}")
    before = {kind: count(pattern) for kind, pattern in kinds.items()}
    marker = f"squeezed under {eviction_policy} {time.monotonic_ns()}"
    limit = client.info("memory")["used_memory"] + headroom_bytes
    old = faults.shrink_redis_memory(str(limit), eviction_policy, lab.settings)
    refused, answers = 0, []
    try:
        for i in range(ballast):
            try:
                client.set(keys.exercise("08", f"ballast:{i}"), "x" * 50_000)
            except redis.exceptions.OutOfMemoryError:
                refused += 1
        after = {kind: count(pattern) for kind, pattern in kinds.items()}  # what the squeeze left
        for _ in range(claims):
            response = lab.client.post("/api/claims", json={"policy_id": policy_id, "amount_cents": 500,
                                                            "description": marker})
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            answers.append({"status": response.status_code, "id": body.get("id"),
                            "error": (body.get("error") or {}).get("code") if isinstance(body, dict) else None})
    finally:
        client.delete(*[keys.exercise("08", f"ballast:{i}") for i in range(ballast)])
        faults.restore_redis_memory(old, lab.settings)
    stored = [c["id"] for c in _claims_of(lab, policy_id) if c.get("description") == marker]
    audit, _ = wait_for_audit(client, stored, timeout_s=audit_timeout_s) if stored else (
        pd.DataFrame(columns=["claim", "submitted_events"]), 0.0)
    return {"policy": eviction_policy, "before": before, "after": after, "ballast": ballast, "ballast_refused": refused,
            "answers": pd.DataFrame(answers, columns=["status", "id", "error"]), "stored": stored,
            "with_event": int((audit["submitted_events"] == 1).sum())}


def _claims_of(lab: Lab, policy_id: str, patience_s: float = 15) -> list[dict]:
    """Every claim the claims service holds for ``policy_id``. Asked right after a squeeze, when an evicted
    registration may still make the gateway answer 503 until the instance's next heartbeat: each page is asked
    again until it is a 200 (an error page read as "no claims" would report committed claims as lost)."""
    items, offset = [], 0
    deadline = time.monotonic() + patience_s
    while True:
        response = lab.client.get("/api/claims", params={"policy_id": policy_id, "limit": 100, "offset": offset})
        if response.status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the claims service did not answer the list of {policy_id}'s claims within "
                                   f"{patience_s:g} s (last answer: {response.status_code} {response.text[:200]})")
            time.sleep(0.2)
            continue
        page = response.json()
        items += page.get("items", [])
        if len(page.get("items", [])) < 100:
            return items
        offset += 100


#: How a failed request failed, in words: ``labkit.traffic``'s transport errors, then the 5xx answers.
OUTCOME_MEANING = {"timeout": "timed out", "connect_error": "connection failed", "disconnected": "connection dropped",
                   "client_error": "failed in the client", 502: "502 bad gateway", 503: "503 unavailable",
                   504: "504 gateway timeout", 500: "500 error"}


def outcome(requests: pd.DataFrame) -> pd.Series:
    """Each request's outcome as one value: its transport error's name if it got no answer, else its status."""
    return requests["error"].where(requests["error"] != "", requests["status"])


def outage_verdict(requests: pd.DataFrame, audit: pd.DataFrame, timeout_s: float = 3,
                   expect_ok: tuple[str, ...] = ("read", "write"), began_s: float | None = None) -> str:
    """The lesson's claims about one fault, checked on its own numbers and said in words: which requests
    failed and how, whether any hung past its timeout, whether every committed claim has exactly one event.
    ``expect_ok``: the kinds of request the lesson says keep working through this fault; ``began_s``: when
    the fault began (failures before it are counted apart)."""
    failed = requests[~requests["ok"]]
    worst = requests["latency_ms"].max() / 1000
    how = failed.groupby([failed["kind"], outcome(failed).rename("outcome")]).size()
    lines = [f"{len(failed)} of {len(requests)} requests failed"
             + (": " + ", ".join(f"{n} {kind}s {OUTCOME_MEANING.get(what, what)}" for (kind, what), n in how.items())
                if len(failed) else "")]
    # a request sent just before the fault and still in flight when it hit failed *because* of it: count as
    # "before" only the failures whose answer (or error) came before the fault began
    answered_s = failed["t_s"] + failed["latency_ms"].fillna(0) / 1000
    if began_s is not None and (early := int((answered_s < began_s).sum())):
        lines.append(f"{early} of these failed BEFORE the fault began at {began_s:.2f} s: the lab had not recovered "
                     "from the previous experiment, or the machine is too busy — they are not the fault's doing")
    for kind in expect_ok:
        n = int((failed["kind"] == kind).sum())
        if n:
            lines.append(f"NOT what the lesson expects: {n} {kind}s failed, where {kind}s should keep working through "
                         "this fault" + (f" — they waited past the {timeout_s:g} s timeout: the fallback was slower "
                                         "than the timeout in this run (on a machine busy with other work everything is slower: run it again)"
                                         if (failed.loc[failed['kind'] == kind, 'error'] == "timeout").all() else ""))
        elif (requests["kind"] == kind).any():
            lines.append(f"every {kind} succeeded, as the lesson expects")
    lines += [
             f"slowest answer {worst:.2f} s: " + ("no request hung past its timeout" if worst <= timeout_s + 0.5
                                                   else f"longer than the {timeout_s:g} s timeout (a busy machine?)")]
    if len(audit):
        counts = audit["submitted_events"].value_counts().to_dict()
        exact = counts.get(1, 0)
        lines.append(f"{exact} of {len(audit)} committed claims have exactly one claim.submitted event"
                     + ("" if exact == len(audit) else f" (events per claim: {counts})"))
    else:
        lines.append("no claim was committed during this run, so the audit check has nothing to check")
    return "\n".join(lines)


def back_in_words(requests: pd.DataFrame, events: pd.DataFrame, event: str, kind: str = "write") -> str:
    """After ``event`` (a restart) returned: did the ``kind`` requests sent from then on succeed again?"""
    row = events[events["event"] == event]
    if row.empty:
        return f"{event}: not in this run's events"
    ended = float(row["end_s"].iloc[0])
    after = requests[(requests["kind"] == kind) & (requests["t_s"] >= ended)]
    took = ended - float(row["t_s"].iloc[0])
    if after.empty:
        return (f"{event} returned at {ended:.2f} s (it took {took:.1f} s), but no {kind} was sent after it: "
                "the run ended first (raise settle_s)")
    ok = int(after["ok"].sum())
    return (f"{event} returned at {ended:.2f} s (it took {took:.1f} s); of the {len(after)} {kind}s sent after "
            f"it, {ok} succeeded" + (": it is back." if ok == len(after) else
                                     " — NOT all: the instance was not yet routable (the gateway's health checks "
                                     "confirm it within a second)."))


def requests_by_kind(requests: pd.DataFrame) -> pd.DataFrame:
    """Per kind of request (read, write): how many were sent and failed, median and slowest latency (ms)."""
    by_kind = requests.groupby("kind").agg(sent=("status", "size"), failed=("ok", lambda s: int((~s).sum())),
                                           p50_ms=("latency_ms", "median"), worst_ms=("latency_ms", "max"))
    return by_kind.round(1)


def window_medians(requests: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Median latency per path, for requests due while a knob was on and outside that window. The window runs
    from the moment the first event's action *returned* (the knob took effect) to the moment the second
    event's action *began* (it was being turned back), as measured; ``df.attrs``: ``on_s``, ``off_s``."""
    on, off = events["end_s"].iloc[0], events["t_s"].iloc[1]
    window = requests["t_s"].between(on, off).map({True: "during", False: "outside"})
    medians = requests.groupby(["path", window])["latency_ms"].median().unstack().reindex(
        columns=["during", "outside"])
    during = requests[requests["t_s"].between(on, off)]
    cached = during["x_cache"].astype(str).str.upper() if "x_cache" in during else pd.Series(dtype=str)
    # how many answers during the window came from a cached copy: those never reached the slowed database
    hits = during[cached.isin(["HIT", "MISS"])].groupby("path")["x_cache"].agg(
        lambda s: f"{int((s.str.upper() == 'HIT').sum())} of {len(s)}")
    medians.attrs.update(on_s=on, off_s=off, hits_during=hits.to_dict())
    return medians


def slowdown_in_words(medians: pd.DataFrame, threshold_ms: float = 20) -> str:
    """Which paths were slower by more than ``threshold_ms`` (median) while the knob was on."""
    slowed = (medians["during"] - medians["outside"]).loc[lambda d: d > threshold_ms]
    hits = medians.attrs.get("hits_during", {})
    return (f"knob on from {medians.attrs['on_s']:.2f} s to {medians.attrs['off_s']:.2f} s; median slower by more "
            f"than {threshold_ms:g} ms during it: "
            + (", ".join(f"{p} (+{d:.0f} ms)" for p, d in slowed.items()) or "none")
            + ("" if medians["during"].notna().any() else " (no request was sent while it was on: a busy machine)")
            + ("".join(f"\nduring the window, {p}: {n} answered from the service's cached copy (X-Cache: HIT), "
                       "which never reaches the slowed database" for p, n in hits.items())))


def eviction_table(runs: dict[str, dict]) -> pd.DataFrame:
    """``squeeze_memory`` runs by eviction policy -> one row per (policy, kind of key): before, after."""
    return pd.DataFrame({(name, kind): {"before": run["before"][kind], "after": run["after"][kind]}
                         for name, run in runs.items() for kind in run["before"]}).T


def squeeze_in_words(run: dict) -> str:
    """What one ``squeeze_memory`` run did: ballast refused, keys gone, claims committed, failed (and how),
    held by the system of record, and how many of those got their event once memory was back."""
    answers = run["answers"]
    ok = int((answers["status"] == 201).sum())
    failed = answers[answers["status"] != 201]
    why = ", ".join(f"{n} x {status} {error}" for (status, error), n in
                    failed.fillna({"error": "-"}).groupby(["status", "error"]).size().items())
    lost = {kind: run["before"][kind] - run["after"][kind] for kind in run["before"]
            if run["after"][kind] < run["before"][kind]}
    stored = len(run["stored"])
    return (f"{run['policy']}: Redis refused {run['ballast_refused']} of {run['ballast']} ballast writes; keys gone: "
            f"{', '.join(f'{n} {kind}' for kind, n in lost.items()) or 'none'}.\n"
            f"  claims: {ok} of {len(answers)} committed (201)" + (f"; failed: {why}" if len(failed) else "")
            + f". The system of record holds {stored}"
            + (f" — {stored - ok} written although their request failed" if stored > ok else
               " — every failed request was refused cleanly, nothing half-written" if len(failed) else "")
            + f"; {run['with_event']} of {stored} got their claim.submitted event once memory was back.")
