"""Lesson 09's hardest case: the primary dies holding events its replica never got.

The replica of the claims stream's primary is frozen (SIGSTOP) and its replication link cut (the primary keeps
taking writes that reach no replica), claims are submitted, the primary is killed, the replica thawed: it is promoted *without* the
events written meanwhile. Without the WAIT safeguard the relay had already marked them sent, so they are
gone for good; with it (the lab's default on a cluster) the relay never got the replica's acknowledgement,
kept the rows unsent, and publishes them again on the promoted primary. Every claim then has exactly one
``claim.submitted`` event.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

import labkit
from labkit import cluster
from labkit.auth import gateway_client
from services.core import acl, keys
from waiting import wait_for

from .conftest import start_cluster_lab


@pytest.fixture(scope="module")
def lagging_lab(tmp_path_factory):
    settings = start_cluster_lab(tmp_path_factory.mktemp("lag-lab"))
    try:
        yield settings
    finally:
        labkit.stop_all(settings)


def _roles(nodes, admin):
    return {row["port"]: row for row in cluster.describe(nodes, admin)}


def test_events_written_while_the_replica_lags_survive_the_primary_dying(lagging_lab):
    settings = lagging_lab
    lab = labkit.status(settings)
    admin = acl.password(settings, "default")
    nodes = lab.redis.node_list()
    primary_port = lab.redis.client().get_node_from_key(keys.stream("claims")).port
    primary = next(n for n in nodes if n.port == primary_port)
    replica = next(n for n in nodes if _roles([n], admin)[n.port]["follows"] == f"127.0.0.1:{primary_port}")
    api = gateway_client(settings)
    policy_id = api.get("/api/policies", params={"status": "active", "limit": 1}).json()["items"][0]["id"]

    os.kill(replica.pid, signal.SIGSTOP)
    # Cut the replication link too: what the primary already put in the socket would otherwise still reach
    # the replica when it wakes. (A frozen replica cannot reconnect, so the writes below reach only the primary.)
    redis.Redis(host="127.0.0.1", port=primary.port, username="default", password=admin).client_kill_filter(
        _type="replica")
    try:
        accepted = []
        for _ in range(10):
            response = api.post("/api/claims", json={"policy_id": policy_id, "amount_cents": 1_000,
                                                     "description": "written while the replica lags"})
            assert response.status_code == 201, response.text
            accepted.append(response.json()["id"])
        time.sleep(1.0)  # the relay published them on the primary (and, without WAIT, marked them sent)
        os.kill(primary.pid, signal.SIGKILL)
    finally:
        os.kill(replica.pid, signal.SIGCONT)
    wait_for(lambda: _roles([replica], admin)[replica.port]["role"] == "primary",
             "the lagging replica to be promoted", deadline_s=60, every_s=0.1)

    def submitted(claim_id):
        history = api.get(f"/api/claims/{claim_id}/history").json()
        return history["source"] == "redis stream" and \
            [e for e in history["events"] if e["type"] == "claim.submitted"]
    for claim_id in accepted:
        events = wait_for(lambda: submitted(claim_id), f"{claim_id}'s claim.submitted event on the promoted primary",
                          deadline_s=30, every_s=0.2)
        assert len(events) == 1, (claim_id, events)
