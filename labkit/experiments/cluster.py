"""Lesson 09's experiments: the whole lab on a Valkey cluster of its own, broken and reshaped under traffic.

Each function does one thing a lesson shows and returns what it measured (a DataFrame or a dict); the
verdict functions say in words what the numbers show — including "this run did NOT show it, and why".
The failover experiment is also what ``tests/cluster/test_failover.py`` runs: one implementation.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
import threading
from pathlib import Path

import aiohttp

import pandas as pd
import redis
from redis.cluster import key_slot

from services.core import acl, keys
from services.patterns.outbox import outbox_backlog

from .. import cluster, procs, redis_server
from ..cluster import Node
from ..errors import PortBusyError
from ..auth import gateway_headers
from ..coroutines import run_async
from ..lab import Lab, restart, start_all, status, stop_all
from ..traffic import Request, open_loop
from .resilience import OUTCOME_MEANING, outcome, private_settings, wait_for_audit


# --- a lab of its own ---------------------------------------------------------------------------------------

def cluster_settings(run_dir: Path, primaries: int = 3):
    return private_settings(run_dir).model_copy(
        update={"redis_cluster": True, "redis_primaries": primaries, "redis_port": cluster.free_base_port(2 * primaries)})


def start_cluster_lab(run_dir: Path, primaries: int = 3, attempts: int = 3, timeout: float = 120) -> Lab:
    """A whole lab on a fresh cluster (``primaries`` primaries, each with a replica), on ports picked now.
    Whatever an earlier run left in ``run_dir`` is stopped first; a port taken between pick and bind: pick again."""
    stop_all(private_settings(run_dir))
    for attempt in range(attempts):
        try:
            return start_all(cluster_settings(run_dir, primaries), timeout=timeout)
        except PortBusyError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _admin(lab: Lab) -> str:
    return acl.password(lab.settings, "default")


def nodes(lab: Lab) -> list[Node]:
    """The cluster's nodes as labkit recorded them (read again: a restart or a new node changes the record)."""
    return redis_server.current(lab.settings).node_list()


def owner_of(lab: Lab, key: str) -> Node:
    """The node serving ``key``'s slot now, as the cluster's slot map says."""
    port = lab.redis_client().get_node_from_key(key).port
    return next(n for n in nodes(lab) if n.port == port)


def replica_of(lab: Lab, primary: Node) -> Node:
    described = {row["port"]: row for row in cluster.describe(nodes(lab), _admin(lab))}
    return next(n for n in nodes(lab) if described[n.port]["follows"] == f"{cluster.HOST}:{primary.port}")


def primaries(lab: Lab) -> list[Node]:
    described = {row["port"]: row for row in cluster.describe(nodes(lab), _admin(lab))}
    return [n for n in nodes(lab) if described[n.port]["role"] == "primary"]


# --- a. the slot map and where the keys landed ---------------------------------------------------------------

#: What the lab keeps in Redis, by the start of its key (``services/core/keys.py``), for the per-node count.
KEY_KINDS = {"lab:cache:": "cached copies", "lab:history:": "audit trails", "lab:stream:": "streams",
             "lab:published:": "dedupe markers", "lab:registry": "registry", "lab:session": "sessions"}


def _kind(key: str) -> str:
    return next((kind for prefix, kind in KEY_KINDS.items() if key.startswith(prefix)), "other")


def use_the_lab(lab: Lab, policies: int = 40, customers: int = 20, claims: int = 10) -> None:
    """Some ordinary traffic, so Redis holds what it holds in use: cached policies and customers, sessions,
    claims with their events and audit trails (the seed writes only the systems of record)."""
    for i in range(1, policies + 1):
        lab.client.get(f"/api/policies/POL-{i:06d}")
    for i in range(1, customers + 1):
        lab.client.get(f"/api/customers/CUS-{i:06d}")
    for user in ("alice", "bob"):
        lab.client.post("/api/auth/login", json={"username": user, "password": f"{user}-lab-pw"})
    method, path, body = claim_request(lab, "an ordinary claim")
    for _ in range(claims):
        lab.client.post(path, json=body)


def slot_map(lab: Lab) -> pd.DataFrame:
    """One row per node: port, role, the primary it follows, its slot ranges and how many slots, keys held,
    memory used (MB), and its keys by kind (a SCAN of that node alone)."""
    admin = _admin(lab)
    rows = []
    for row in cluster.describe(nodes(lab), admin):
        node = next(n for n in nodes(lab) if n.port == row["port"])
        kinds: dict[str, int] = {}
        memory_mb = float("nan")
        if row["role"] != "down":
            client = cluster.node_client(node, admin)
            for key in client.scan_iter(count=1000):
                kinds[_kind(key)] = kinds.get(_kind(key), 0) + 1
            memory_mb = client.info("memory")["used_memory"] / 1e6
        slots = sum(int(r.split("-")[1]) - int(r.split("-")[0]) + 1 if "-" in r else 1
                    for r in row["slots"].split() if r[0].isdigit()) if row["slots"] != "-" else 0
        rows.append({"node": f"{cluster.HOST}:{row['port']}", "role": row["role"], "follows": row["follows"],
                     "slot ranges": row["slots"], "slots": slots, "keys": row["keys"], "memory_mb": round(memory_mb, 2),
                     **{kind: kinds.get(kind, 0) for kind in [*KEY_KINDS.values(), "other"]}})
    return pd.DataFrame(rows).set_index("node")


# --- b. CROSSSLOT, then a hash tag ------------------------------------------------------------------------------

#: Both keys in one step: move an amount from a customer's balance to their pending claims total.
MOVE_AMOUNT = """
redis.call('DECRBY', KEYS[1], ARGV[1])
return redis.call('INCRBY', KEYS[2], ARGV[1])
"""


def crossslot_demo(lab: Lab, customer_id: str) -> pd.DataFrame:
    """The same two-key script run twice, straight at the node that owns the first key: keys without a hash
    tag (two slots: the server answers ``CROSSSLOT``), then with the customer id as their hash tag (one slot)."""
    admin = _admin(lab)
    attempts = {
        "no hash tag": [keys.exercise("09", f"balance:{customer_id}"), keys.exercise("09", f"pending:{customer_id}")],
        "hash tag {customer}": [keys.exercise("09", f"balance:{{{customer_id}}}"),
                                keys.exercise("09", f"pending:{{{customer_id}}}")],
    }
    rows = []
    for name, pair in attempts.items():
        node = owner_of(lab, pair[0])
        try:
            answer = cluster.node_client(node, admin).eval(MOVE_AMOUNT, 2, *pair, 500)
            outcome = f"ran: pending total is now {answer}"
        except redis.ResponseError as exc:
            outcome = f"refused: {exc}"
        rows.append({"keys": name, "first key": pair[0], "its slot": key_slot(pair[0].encode()),
                     "second key": pair[1], "its slot ": key_slot(pair[1].encode()),
                     "sent to": f"{cluster.HOST}:{node.port}", "outcome": outcome})
        for key in pair:
            lab.redis_client().delete(key)
    return pd.DataFrame(rows).set_index("keys")


# --- c. a primary SIGKILLed under claim traffic ---------------------------------------------------------------

def wait_for_promotion(lab: Lab, replica: Node, timeout_s: float = 60) -> float:
    """Poll the dead primary's replica until it says it is a primary (``ROLE``); returns when
    (``time.perf_counter()``). Raises TimeoutError if it was not promoted in time."""
    deadline = time.monotonic() + timeout_s
    client = cluster.node_client(replica, _admin(lab))
    while True:
        try:
            if client.execute_command("ROLE")[0] == "master":
                return time.perf_counter()
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replica on port {replica.port} was not promoted within {timeout_s:.0f} s")
        time.sleep(0.02)


def claim_request(lab: Lab, note: str) -> tuple[str, str, dict]:
    policy = lab.client.get("/api/policies", params={"status": "active", "limit": 1}).json()["items"][0]
    return ("POST", "/api/claims", {"policy_id": policy["id"], "amount_cents": 1_000, "description": note})


def kill_primary_under_claims(lab: Lab, victim: Node | None = None, rate: float = 20, kill_at_s: float = 2.0,
                              after_s: float = 3.0, concurrency: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claims submitted through the gateway at ``rate``/s, at most ``concurrency`` at a time (as a few
    clients would: a stalled service is not buried under a growing pile of requests); at ``kill_at_s`` the primary ``victim`` (default: the one holding the claims stream) is SIGKILLed,
    the promotion of its replica is watched for, and the traffic goes on ``after_s`` past it. Returns
    (requests, marks): one row per request (``traffic_while``), and the marks ``primary SIGKILLed``,
    ``replica promoted`` (as the nodes say) and ``first write to its slots`` (a client writing a key of the
    victim's slots again and again: the failover as a client sees it), each at its measured time in seconds
    since the traffic started."""
    victim = victim or owner_of(lab, keys.stream("claims"))
    replica = replica_of(lab, victim)
    times = {}

    probe_key = keys.exercise("09", f"probe:{{{keys.stream('claims')}}}")  # in the claims stream's slot
    probe = lab.redis_client(socket_timeout=0.5, socket_connect_timeout=0.5)
    if owner_of(lab, probe_key).port != victim.port:
        probe_key = None  # a victim chosen by the caller: no probe

    def first_write():
        """Keep writing to a key of the victim's slots until a write succeeds: the failover as a client sees it."""
        while probe_key:
            try:
                probe.set(probe_key, "written after the kill")
                times["first_write"] = time.perf_counter()
                return
            except (redis.RedisError, OSError):
                time.sleep(0.02)

    def fail_over():
        times["start"] = time.perf_counter()
        time.sleep(kill_at_s)
        writer = threading.Thread(target=first_write, daemon=True)
        times["killed"] = time.perf_counter()
        os.kill(victim.pid, signal.SIGKILL)
        writer.start()
        times["promoted"] = wait_for_promotion(lab, replica)
        writer.join(timeout=30)
        time.sleep(after_s)

    requests, began_s = traffic_while(lab.settings, [claim_request(lab, "submitted during a failover")], fail_over,
                                      rate=rate, concurrency=concurrency)
    at = {name: began_s + when - times["start"] for name, when in times.items()}
    marks = [("killed", f"primary :{victim.port} SIGKILLed"), ("promoted", "replica promoted"),
             ("first_write", "first write to its slots")]
    events = pd.DataFrame([{"t_s": at[name], "end_s": at[name], "event": label} for name, label in marks if name in at])
    if probe_key:
        probe.delete(probe_key)
    requests.attrs["victim"] = victim.port
    return requests, events


def failover_audit(lab: Lab, requests: pd.DataFrame, timeout_s: float = 30) -> pd.DataFrame:
    """For every claim that got a 201: how many ``claim.submitted`` events its audit trail holds, read from
    the promoted cluster once the outbox had the time to drain (waits until each has one, up to ``timeout_s``)."""
    committed = requests["created"].dropna().tolist()
    audit, _ = wait_for_audit(lab.redis_client(), committed, timeout_s=timeout_s)
    return audit


def failover_summary(requests: pd.DataFrame, events: pd.DataFrame, audit: pd.DataFrame,
                     settle_s: float = 1.0) -> dict:
    """The numbers the lesson and the test judge: promotion time, requests failed during the failover (kill
    to promotion + ``settle_s``, while clients re-read the slot map) and after it, claims committed, claims
    with no event (lost) and with more than one (doubled)."""
    killed, promoted = float(events["t_s"].iloc[0]), float(events["t_s"].iloc[1])
    during = requests[requests["t_s"].between(killed, promoted + settle_s)]
    after = requests[requests["t_s"] > promoted + settle_s]
    counts = audit["submitted_events"] if len(audit) else pd.Series(dtype=int)
    first_write = events.loc[events["event"] == "first write to its slots", "t_s"]
    failed = requests[~requests["ok"]]
    how = failed.groupby(outcome(failed).rename("outcome")).size()
    return {"how_failed": ", ".join(f"{n} x {OUTCOME_MEANING.get(what, what)}" for what, n in how.items()),
            "promotion_s": promoted - killed, "settle_s": settle_s,
            "first_write_s": float(first_write.iloc[0]) - killed if len(first_write) else float("nan"),
            "sent": len(requests), "failed_before": int((~requests.loc[
            requests["t_s"] < killed, "ok"]).sum()), "failed_during": int((~during["ok"]).sum()),
            "sent_during": len(during), "failed_after": int((~after["ok"]).sum()), "sent_after": len(after),
            "committed": int((requests["status"] == 201).sum()), "lost": int((counts == 0).sum()),
            "doubled": int((counts > 1).sum()), "exactly_one": int((counts == 1).sum())}


def failover_verdict(summary: dict) -> str:
    s = summary
    lines = [f"the replica was promoted {s['promotion_s']:.2f} s after the kill"
             + (f"; a client's first write to the dead primary's slots succeeded {s['first_write_s']:.2f} s after it"
                if s["first_write_s"] == s["first_write_s"] else ""),
             f"{s['sent']} claim submissions sent: {s['failed_during']} of {s['sent_during']} failed between the kill "
             f"and {s['settle_s']:g} s after the promotion (a bounded window, as the lesson expects), "
             f"{s['failed_after']} of {s['sent_after']} failed after it"
             + (f"; how they failed: {s['how_failed']}" if s["how_failed"] else "")
             + (" — NOT what the lesson expects: once promoted, nothing should fail (a busy machine? run it again)"
                if s["failed_after"] else "")]
    if s["failed_before"]:
        lines.append(f"{s['failed_before']} failed BEFORE the kill: not the failover's doing (a busy machine?)")
    lines.append(f"{s['committed']} claims committed (201); {s['exactly_one']} have exactly one claim.submitted "
                 f"event, {s['lost']} have none (lost), {s['doubled']} more than one (doubled)"
                 + (" — none lost, none doubled" if s["exactly_one"] == s["committed"] and s["committed"] else
                    " — this run did NOT show 'nothing lost': see the counts" if s["committed"] else
                    " — this run did NOT show it: no claim was committed"))
    return "\n".join(lines)


# --- after a kill: the dead node back, as a replica --------------------------------------------------------------

def bring_back(lab: Lab, killed: Node) -> Node:
    """Restart the killed node (same port, its ``nodes.conf``): it rejoins as the replica of the node promoted
    in its place. The lab's record is updated so ``stop_all`` stops it."""
    server = status(lab.settings).redis
    acl_file = str(lab.settings.run_dir / "redis" / "users.acl")
    again = cluster.restart_node(lab.settings, killed, server.binary, acl_file, nodes(lab), _admin(lab), detached=False)
    redis_server.record_nodes(lab.settings, [again if n.port == killed.port else n for n in nodes(lab)])
    lab.redis = status(lab.settings).redis
    return again


# --- d. events lost per failover, without and with the WAIT safeguard ---------------------------------------------

def _claims_with(lab: Lab, replica_acks: int) -> None:
    """The claims service (whose outbox relay publishes claim events) restarted with ``outbox_replica_acks``,
    unless it already runs with it; ``lab.settings`` says from then on what it runs with."""
    if lab.settings.outbox_replica_acks == replica_acks:
        return
    lab.settings = lab.settings.model_copy(update={"outbox_replica_acks": replica_acks})
    restart("claims", lab.settings)


def events_lost_in_a_failover(lab: Lab, safeguard: bool | None, claims: int = 8, relay_timeout_s: float = 60,
                              audit_timeout_s: float = 3) -> dict:
    """The worst case for asynchronous replication, made deterministic:

    1. the replica of the primary holding the claims' events is frozen (SIGSTOP) and its replication link cut
       (``CLIENT KILL TYPE replica``): from now on that primary's writes reach no replica;
    2. ``claims`` claims are submitted through the gateway; the relay publishes their events on the primary —
       and, without the safeguard, marks them sent; with it (``WAIT 1``) it gets no acknowledgement and keeps
       them unsent;
    3. the primary is SIGKILLed and the replica thawed: it is promoted without those events;
    4. once the relay owes nothing more (its outbox has no unsent row: ``unsent_events``, up to
       ``relay_timeout_s``), every committed claim's audit trail is read from the promoted primary. Waiting for
       the relay, not for a fixed time: with the safeguard it publishes again only after the promotion, its
       WAIT timeouts and its backoff — seconds on a busy machine — and an audit taken earlier would count
       events still on their way as lost.

    ``safeguard``: the claims service is restarted with ``outbox_replica_acks`` 1 (True) or 0 (False); None
    leaves it as it runs. Returns the counts: committed, with exactly one event, lost (none), doubled (more
    than one), and the killed node (bring it back with ``bring_back``)."""
    if safeguard is not None:
        _claims_with(lab, 1 if safeguard else 0)
    primary = owner_of(lab, keys.stream("claims"))
    replica = replica_of(lab, primary)
    method, path, body = claim_request(lab, f"written while the replica lags (safeguard {'on' if safeguard else 'off'})")
    admin = _admin(lab)
    os.kill(replica.pid, signal.SIGSTOP)
    try:
        cluster.node_client(primary, admin).client_kill_filter(_type="replica")
        committed = []
        for _ in range(claims):
            response = lab.client.post(path, json=body)
            if response.status_code == 201:
                committed.append(response.json()["id"])
        time.sleep(1.0)  # the relay publishes on the primary (and, without the safeguard, marks them sent)
        os.kill(primary.pid, signal.SIGKILL)
    finally:
        os.kill(replica.pid, signal.SIGCONT)
    killed_at = time.perf_counter()
    promoted_at = wait_for_promotion(lab, replica)
    unsent = wait_for_the_relay(lab.settings, relay_timeout_s)
    relay_done_at = time.perf_counter()
    audit, _ = wait_for_audit(lab.redis_client(), committed, timeout_s=audit_timeout_s)
    counts = audit["submitted_events"] if len(audit) else pd.Series(dtype=int)
    acks = lab.settings.outbox_replica_acks if safeguard is None else int(safeguard)
    return {"safeguard": f"WAIT {acks} (outbox_replica_acks={acks})" if acks else "none (outbox_replica_acks=0)",
            "committed": len(committed), "exactly_one": int((counts == 1).sum()), "lost": int((counts == 0).sum()),
            "doubled": int((counts > 1).sum()), "promotion_s": round(promoted_at - killed_at, 2),
            "relay_done_s": round(relay_done_at - killed_at, 2), "still_unsent": unsent, "killed": primary}


def unsent_events(settings, service: str = "claims") -> int:
    """The outbox rows ``service``'s relay has not published yet, read from its SQLite file (read-only): the
    relay's own account of what it still owes Redis."""
    path = settings.database_path(service)
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
        return outbox_backlog(conn)


def wait_for_the_relay(settings, timeout_s: float) -> int:
    """Until the claims relay owes nothing (or ``timeout_s``): how many rows it still had unsent."""
    deadline = time.monotonic() + timeout_s
    while (unsent := unsent_events(settings)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return unsent


def loss_table(runs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{k: v for k, v in run.items() if k != "killed"} for run in runs]).set_index("safeguard")


def loss_verdict(table: pd.DataFrame) -> str:
    lines = []
    for name, row in table.iterrows():
        lines.append(f"safeguard {name}: {int(row['committed'])} claims committed, {int(row['lost'])} lost their "
                     f"claim.submitted event, {int(row['doubled'])} doubled (promotion took {row['promotion_s']:.1f} s; "
                     f"the relay owed nothing {row['relay_done_s']:.1f} s after the kill)"
                     if not row["still_unsent"] else
                     f"safeguard {name}: {int(row['committed'])} claims committed; the relay still had "
                     f"{int(row['still_unsent'])} event(s) unsent {row['relay_done_s']:.0f} s after the kill, so "
                     f"{int(row['lost'])} without an event is not a loss yet: they are still on their way")
    without = table[table.index.str.startswith("none")]
    with_ = table[~table.index.str.startswith("none")]
    if len(without) and len(with_):
        w, s = without.iloc[0], with_.iloc[0]
        if w["lost"] > 0 and s["lost"] == 0 and s["doubled"] == 0:
            lines.append("as the lesson expects: without WAIT the events the dead primary held are gone for good; "
                         "with it the relay kept them unsent and published them again on the promoted replica")
        elif w["lost"] == 0:
            lines.append("this run did NOT show a loss without the safeguard: the relay had not marked the events "
                         "sent before the kill (a busy machine slows the relay) — run it again")
        elif s["still_unsent"]:
            lines.append("with the safeguard this run could not tell: the relay had not finished publishing when the "
                         "lesson stopped waiting (a busy machine slows its retries) — run it again")
        else:
            lines.append(f"NOT what the lesson expects: with the safeguard {int(s['lost'])} lost, {int(s['doubled'])} doubled")
    return "\n".join(lines)


# --- e. a live reshard: a fourth primary takes slots while traffic runs ------------------------------------------

def reshard_under_traffic(lab: Lab, slots_per_primary: int = 40, rate: float = 40, before_s: float = 1.5,
                          after_s: float = 2.0, claims_slot_too: bool = True, concurrency: int | None = None) -> dict:
    """Start a new node, ``CLUSTER MEET`` it, and move ``slots_per_primary`` slots from every primary to it
    (slots that hold keys, so the move is felt, and the claims stream's slot) while reads and claim submissions run
    through the gateway (``claims_slot_too=False``: leave the claims stream where it is, with its replica).
    Counts per node the commands processed in ``before_s`` of traffic before the move and
    ``after_s`` after it, and the ``MOVED``/``ASK`` redirects every node answered meanwhile."""
    admin = _admin(lab)
    server = status(lab.settings).redis
    acl_file = str(lab.settings.run_dir / "redis" / "users.acl")
    policy = lab.client.get("/api/policies", params={"status": "active", "limit": 1}).json()["items"][0]
    reads = [("GET", f"/api/policies/POL-{i:06d}", None) for i in range(1, 31)] + \
            [("GET", f"/api/customers/CUS-{i:06d}", None) for i in range(1, 16)]
    traffic = reads[:15] + [claim_request(lab, "submitted during a reshard")] + reads[15:]
    snapshots, times = {}, {}

    def reshape():
        everyone = nodes(lab)
        snapshots["start"], times["start"] = cluster.counters(everyone, admin), time.monotonic()
        time.sleep(before_s)
        snapshots["before"], times["before"] = cluster.counters(everyone, admin), time.monotonic()
        new = cluster.add_primary(lab.settings, server.binary, acl_file, everyone, admin, detached=False)
        redis_server.record_nodes(lab.settings, [*everyone, new])
        owners = primaries(lab)
        claims_slot = key_slot(keys.stream("claims").encode())
        moved = 0
        for source in [p for p in owners if p.port != new.port]:
            chosen = sorted({key_slot(k.encode()) for k in cluster.node_client(source, admin).scan_iter(count=1000)})
            chosen = [s for s in chosen if s != claims_slot][:slots_per_primary] + \
                ([claims_slot] if claims_slot_too and claims_slot in chosen else [])
            moved += cluster.move_slots(source, new, chosen, owners, admin)
        times["moved"] = time.monotonic()
        snapshots["moved"] = cluster.counters([*everyone, new], admin)
        time.sleep(after_s)
        snapshots["after"], times["after"] = cluster.counters([*everyone, new], admin), time.monotonic()
        snapshots["new"], snapshots["keys_moved"] = new.port, moved

    requests, _ = traffic_while(lab.settings, traffic, reshape, rate=rate, concurrency=concurrency)
    return {"requests": requests, "snapshots": snapshots, "times": times}


def traffic_while(settings, requests: list[tuple[str, str, dict | None]], action, rate: float = 40,
                  max_duration_s: float = 120, timeout_s: float = 5,
                  concurrency: int | None = None) -> tuple[pd.DataFrame, float]:
    """Send ``requests`` round-robin at ``rate``/s (the open loop of ``labkit.traffic``; at most
    ``concurrency`` in flight if given) from the moment
    ``action`` starts (in a thread) until it returns. Returns one row per request, as
    ``resilience.traffic_around_fault`` gives them (``created``: the id a 201 answered), and when the action
    began, in seconds on the traffic's clock. With ``concurrency``, ``t_s`` is when a request was sent and
    ``latency_ms`` its own time (a request waiting for a free slot falls behind the schedule)."""
    done = threading.Event()

    def act():
        try:
            action()
        finally:
            done.set()

    def created_id(_request: Request, status: int, body: bytes) -> dict:
        return {"created": json.loads(body).get("id") if status == 201 else None}

    async def run():
        plan = [Request(method, path, body, "write" if method != "GET" else "read") for method, path, body in requests]
        async with aiohttp.ClientSession(headers=gateway_headers(settings, ask_the_service=True)) as session:
            return await open_loop(session, settings.url_of("gateway"), lambda i: plan[i % len(plan)], rate, 0.5,
                                   timeout_s=timeout_s, concurrency=concurrency, on_answer=created_id, actions=[(0.0, "action", act)],
                                   until=lambda _records: done.is_set(), max_duration_s=max_duration_s)

    traffic = run_async(run())
    rows = traffic.frame().rename(columns={"intended_s": "t_s", "label": "kind"})
    rows["path"] = rows["method"] + " " + rows["path"]
    if "created" not in rows:
        rows["created"] = None
    if concurrency:  # the schedule is only an upper bound: a request waits for a free slot, so time it from its send
        rows["t_s"], rows["latency_ms"] = rows["sent_s"], rows["service_ms"]
    return rows, float(traffic.marks[0]["t_s"]) if traffic.marks else 0.0


def reshard_ops(result: dict) -> pd.DataFrame:
    """Commands per second each node processed in the window before the move and the one after it."""
    snap, times = result["snapshots"], result["times"]
    ports = sorted(snap["after"])
    rows = []
    for port in ports:
        before = (snap["before"].get(port, {}).get("commands", 0) - snap["start"].get(port, {}).get("commands", 0)) \
            / (times["before"] - times["start"])
        after = (snap["after"][port]["commands"] - snap["moved"].get(port, {}).get("commands", 0)) \
            / (times["after"] - times["moved"])
        role = "new primary" if port == snap["new"] else "primary" if snap["after"][port]["keys"] or before > 0 else "-"
        rows.append({"node": f"{cluster.HOST}:{port}" + (" (new)" if port == snap["new"] else ""),
                     "before (cmd/s)": round(before, 1), "after (cmd/s)": round(after, 1),
                     "keys after": snap["after"][port]["keys"]})
    return pd.DataFrame(rows).set_index("node")


def reshard_summary(result: dict) -> dict:
    """Redirects the nodes answered while the slots moved and just after, requests sent and failed, keys moved."""
    snap = result["snapshots"]
    requests = result["requests"]

    def delta(kind):
        return sum(snap["after"][p][kind] - snap["before"].get(p, {}).get(kind, 0) for p in snap["after"])
    return {"keys_moved": snap["keys_moved"], "moved_redirects": delta("moved"), "ask_redirects": delta("ask"),
            "sent": len(requests), "failed": int((~requests["ok"]).sum()),
            "reshard_s": round(result["times"]["moved"] - result["times"]["before"], 2)}


def reshard_verdict(summary: dict) -> str:
    s = summary
    return (f"{s['keys_moved']} keys moved to the new primary in {s['reshard_s']:.1f} s; the nodes answered "
            f"{s['moved_redirects']} MOVED and {s['ask_redirects']} ASK redirects, which the clients followed; "
            f"{s['failed']} of {s['sent']} requests failed"
            + (" — none, as the lesson expects" if not s["failed"] else
               " — NOT what the lesson expects (see the requests' errors)")
            + ("" if s["moved_redirects"] + s["ask_redirects"] else
               " (this run saw no redirect at all: no request touched a moved slot before the clients re-read the map)"))


# --- f. what a cluster costs on one machine ---------------------------------------------------------------------

def _read_mix(client, names: list[str], seconds: float, split_mget) -> dict[str, float]:
    """Each kind of read for ``seconds``, one client, one request at a time: operations per second."""
    kinds = {"GET one key": lambda i: client.get(names[i % len(names)]),
             "MGET of 10 keys": lambda i: split_mget([names[(i + j * 37) % len(names)] for j in range(10)]),
             "pipeline of 10 GETs": lambda i: _pipelined(client, [names[(i + j * 37) % len(names)] for j in range(10)])}
    rates = {}
    for kind, call in kinds.items():
        done, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            call(done)
            done += 1
        rates[kind] = done / elapsed
    return rates


def _pipelined(client, names: list[str]) -> list:
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.get(name)
        return pipe.execute()


def cost_of_a_cluster(lab: Lab, seconds: float = 1.0, rounds: int = 2, keys_count: int = 1000) -> pd.DataFrame:
    """The same read mix on one standalone server (started for this, then stopped) and on the lab's cluster,
    in alternating rounds (the machine's load drifts): operations per second, the best round of each. The
    cluster client sends each key to its node; an MGET or a pipeline over many slots is split per node
    (``mget_nonatomic``: the cluster cannot answer one MGET over many slots)."""
    single_settings = private_settings(lab.settings.run_dir / "single-node")
    server = redis_server.start(single_settings, detached=False)
    try:
        single = server.client()
        clustered = lab.redis_client()
        names = [keys.exercise("09", f"read:{i}") for i in range(keys_count)]
        value = "x" * 300
        single.mset({name: value for name in names})
        clustered.mset_nonatomic({name: value for name in names})  # one MSET per slot, sent node by node
        results: dict[str, dict[str, float]] = {"one server": {}, "cluster": {}}
        for _ in range(rounds):
            for setup, client, split in (("one server", single, single.mget),
                                         ("cluster", clustered, clustered.mget_nonatomic)):
                for kind, rate in _read_mix(client, names, seconds / 3, split).items():
                    results[setup][kind] = max(results[setup].get(kind, 0), rate)
        clustered.delete(*names)  # the cluster client splits a multi-key DEL per slot
    finally:
        redis_server.stop(single_settings)
    table = pd.DataFrame(results).round(0)
    table.attrs["cpus"] = os.cpu_count()
    return table


def cost_verdict(cost: pd.DataFrame) -> str:
    ratio = (cost["cluster"] / cost["one server"])
    lines = [f"{kind}: the cluster did {r:.0%} of one server's rate" for kind, r in ratio.items()]
    lines.append(f"on {cost.attrs.get('cpus', '?')} CPU cores shared by every node, the services and this notebook, "
                 "a cluster cannot be faster: it adds processes competing for the same cores and splits a "
                 "multi-key read into one request per node. Its gains — more memory, more cores, more machines, "
                 "a replica ready to take over — need more machines.")
    if (ratio > 1.05).any():
        lines.append("this run measured the cluster faster on some reads: noise on a busy machine (one client, "
                     "short rounds) — run it again")
    return "\n".join(lines)


# --- g. pub/sub on a cluster -------------------------------------------------------------------------------------

def pubsub_on_a_cluster(lab: Lab) -> pd.DataFrame:
    """What the lab's pub/sub does on a cluster, observed: the services' subscriptions per node (``PUBSUB
    NUMSUB`` counts only the node's own subscribers), one classic ``PUBLISH`` sent to a node other than the
    subscriber's and received all the same (the cluster bus carries it to every node), and one sharded
    ``SPUBLISH`` sent to a node that does not own the channel's slot (answered ``MOVED``)."""
    from services.patterns.coherence import INVALIDATIONS_CHANNEL

    admin = _admin(lab)
    owners = primaries(lab)
    rows = []
    for node in nodes(lab):
        if not procs.is_alive(node.pid):
            continue  # a primary killed earlier and not brought back
        client = cluster.node_client(node, admin)
        if client.ping():
            subscribed = dict(client.pubsub_numsub(INVALIDATIONS_CHANNEL, keys.channel("claims")))
            rows.append({"observed": f"subscribers on {cluster.HOST}:{node.port}",
                         "result": ", ".join(f"{channel}: {n}" for channel, n in subscribed.items())})
    channel = keys.channel("lesson-09-probe")
    listener = cluster.node_client(owners[0], admin).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel)
    time.sleep(0.1)
    local = cluster.node_client(owners[1], admin).publish(channel, "hello from another node")
    message = None
    deadline = time.monotonic() + 2
    while message is None and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.2)
    listener.close()
    rows.append({"observed": f"PUBLISH on :{owners[1].port}, subscriber on :{owners[0].port}",
                 "result": (f"received {message['data']!r}" if message else "NOT received within 2 s")
                 + f" (PUBLISH answered {local}: it counts only the receivers on its own node)"})
    slot_owner = owner_of(lab, channel)
    other = next(n for n in owners if n.port != slot_owner.port)
    try:
        cluster.node_client(other, admin).execute_command("SPUBLISH", channel, "sharded")
        outcome = "accepted"
    except redis.exceptions.MovedError as exc:
        outcome = f"answered MOVED {exc}: sharded pub/sub lives on the slot's owner"
    except redis.ResponseError as exc:
        outcome = f"refused: {exc}"
    rows.append({"observed": f"SPUBLISH on :{other.port} (the channel's slot {key_slot(channel.encode())} is "
                             f":{slot_owner.port}'s)", "result": outcome})
    return pd.DataFrame(rows).set_index("observed")
