"""SIGKILL of a primary while claims are submitted through the gateway (lesson 09), on a cluster of its own.

What must hold, whatever the timing: every claim that got a 201 exists and has exactly one
``claim.submitted`` event in its history (the outbox is the truth; the relay retries until the promoted
replica answers, and its dedupe key makes a retry harmless), and once the replica is promoted no request
fails. Requests that fail *during* the promotion are counted and reported, not forbidden.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import httpx
import pytest

import labkit
from labkit import cluster
from labkit.auth import gateway_client
from services.core import acl, keys
from waiting import wait_for

from .conftest import start_cluster_lab


@pytest.fixture(scope="module")
def failover_lab(tmp_path_factory):
    settings = start_cluster_lab(tmp_path_factory.mktemp("failover-lab"))
    try:
        yield settings
    finally:
        labkit.stop_all(settings)


def _submit_claims(settings, stop: threading.Event, rows: list, policy_id: str) -> None:
    with gateway_client(settings, timeout=5) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = client.post("/api/claims", json={"policy_id": policy_id, "amount_cents": 1_000,
                                                            "description": "submitted during a failover"})
                status, claim_id = response.status_code, (response.json().get("id") if response.status_code == 201
                                                          else None)
            except httpx.HTTPError:
                status, claim_id = 599, None
            rows.append({"t": started, "status": status, "id": claim_id})
            time.sleep(0.01)


def test_a_primary_killed_under_claim_traffic_loses_and_doubles_no_event(failover_lab):
    settings = failover_lab
    lab = labkit.status(settings)
    admin = acl.password(settings, "default")
    nodes = lab.redis.node_list()
    owner_port = lab.redis.client().get_node_from_key(keys.stream("claims")).port
    victim = next(n for n in nodes if n.port == owner_port)
    api = gateway_client(settings)
    policy_id = api.get("/api/policies", params={"status": "active", "limit": 1}).json()["items"][0]["id"]

    rows: list[dict] = []
    stop = threading.Event()
    sender = threading.Thread(target=_submit_claims, args=(settings, stop, rows, policy_id))
    sender.start()
    try:
        time.sleep(1.5)
        killed_at = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)

        def promoted():
            described = cluster.describe([n for n in nodes if n.port != victim.port], admin)
            return sum(1 for n in described if n["role"] == "primary") == 3
        wait_for(promoted, "the killed primary's replica to be promoted", deadline_s=30, every_s=0.05)
        promoted_at = time.monotonic()
        time.sleep(3)  # traffic on the promoted cluster
    finally:
        stop.set()
        sender.join()

    after = [r for r in rows if r["t"] > promoted_at + 1.0]  # the clients' slot maps refresh within a second
    failed_during = [r for r in rows if killed_at <= r["t"] <= promoted_at + 1.0 and r["status"] != 201]
    print(f"promotion took {promoted_at - killed_at:.2f} s; {len(rows)} claims sent, "
          f"{len(failed_during)} failed during the failover ({Counter(r['status'] for r in failed_during)}), "
          f"{sum(r['status'] != 201 for r in after)} after it")
    assert after, "no traffic after the promotion"
    assert [r["status"] for r in after if r["status"] != 201] == []
    accepted = [r["id"] for r in rows if r["status"] == 201]
    assert len(accepted) > 20

    def submitted_events(claim_id):
        """From the Redis stream only: the outbox's copy (used when Redis is down) would always say 1."""
        history = api.get(f"/api/claims/{claim_id}/history").json()
        return history["source"] == "redis stream" and [e for e in history["events"] if e["type"] == "claim.submitted"]
    for claim_id in accepted:
        assert api.get(f"/api/claims/{claim_id}").status_code == 200
        events = wait_for(lambda: submitted_events(claim_id), f"{claim_id}'s claim.submitted event",
                          deadline_s=20, every_s=0.1)
        assert len(events) == 1, (claim_id, events)
