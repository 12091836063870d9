"""The lab split across "hosts" on one machine (lesson 09, ``labkit start-all --cluster --spread``).

Every cluster node and every service listens on a loopback address of its own (127.0.0.2 ..., 127.0.0.11 ...),
as if each ran on a machine of its own. What proves it is spread, not merely labelled so: the cluster's own
view lists its nodes at several addresses with no replica beside its primary; each service is registered at
its own address, answers there and is not reachable at 127.0.0.1; and a claim still goes through the gateway,
which found every instance through the registry. One lab for the module (about 15 s to start on a quiet
machine); it does not use the package's cluster lab.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import labkit
from labkit import cluster
from labkit.auth import gateway_client
from labkit.errors import PortBusyError
from labkit.experiments.resilience import private_settings
from services.core import acl, keys
from services.core.settings import SERVICE_NAMES, SPREAD_SERVICE_HOSTS


def spread_settings(run_dir: Path):
    """A private cluster lab on ports picked now, spread over hosts (the nodes' ports checked on every
    Redis address, the services' on theirs when start_all checks them)."""
    return private_settings(run_dir).model_copy(update={
        "redis_cluster": True, "redis_primaries": 3, "spread_hosts": True,
        "redis_port": cluster.free_base_port(6, cluster.redis_hosts(3))})


@pytest.fixture(scope="module")
def spread_lab(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("spread-lab")
    for attempt in range(3):  # a port taken between pick and bind: pick again (start_all stopped what it started)
        try:
            lab = labkit.start_all(spread_settings(run_dir), timeout=120)
            break
        except PortBusyError:
            if attempt == 2:
                raise
    try:
        yield lab
    finally:
        labkit.stop_all(lab.settings)


def cluster_nodes(lab) -> list[dict]:
    """``CLUSTER NODES`` as one node sees it: address, role and the id of the primary a replica follows."""
    node = lab.redis.node_list()[0]
    text = cluster.node_client(node, acl.password(lab.settings, "default")).execute_command("CLUSTER", "NODES")
    rows = []
    for line in text.splitlines():
        node_id, address, flags, primary_id = line.split()[:4]
        rows.append({"id": node_id, "host": address.split("@")[0].rsplit(":", 1)[0],
                     "role": "primary" if "master" in flags else "replica", "follows": primary_id})
    return rows


def answers_as(url: str) -> str | None:
    """The instance id that answers ``/health`` at ``url``, or None if nothing of the lab answers there."""
    try:
        return httpx.get(url + "/health", timeout=2).json().get("instance")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None


def test_cluster_nodes_sit_on_several_hosts_and_no_replica_beside_its_primary(spread_lab):
    nodes = cluster_nodes(spread_lab)
    assert len(nodes) == 6
    assert len({n["host"] for n in nodes}) > 1, nodes
    assert all(n["host"] != "127.0.0.1" for n in nodes), nodes
    host_of = {n["id"]: n["host"] for n in nodes}
    replicas = [n for n in nodes if n["role"] == "replica"]
    assert len(replicas) == 3
    assert all(r["host"] != host_of[r["follows"]] for r in replicas), nodes
    # each node listens only on its own address: nothing of ours answers at 127.0.0.1 on its port
    admin = acl.password(spread_lab.settings, "default")
    for node in spread_lab.redis.node_list():
        try:
            elsewhere = redis.Redis(host="127.0.0.1", port=node.port, username="default", password=admin,
                                    socket_timeout=1, socket_connect_timeout=1,
                                    retry=Retry(NoBackoff(), 0)).execute_command("CLUSTER", "MYID")
        except (redis.RedisError, OSError):
            elsewhere = None
        assert elsewhere != cluster.node_id(node, admin), f"node {node.address} also answers on 127.0.0.1"


def test_each_service_is_registered_at_its_own_address_and_answers_only_there(spread_lab):
    r = spread_lab.redis_client()
    seen_hosts = set()
    for name in SERVICE_NAMES:
        entries = [json.loads(value) for instance_id in r.zrange(keys.registry_index(name), 0, -1)
                   if (value := r.get(keys.registry_instance(name, instance_id)))]
        assert len(entries) == 1, (name, entries)
        entry = entries[0]
        assert entry["host"] == SPREAD_SERVICE_HOSTS[name] == spread_lab.settings.host_of(name)
        seen_hosts.add(entry["host"])
        assert answers_as(f"http://{entry['host']}:{entry['port']}") == entry["instance_id"]
        assert answers_as(f"http://127.0.0.1:{entry['port']}") != entry["instance_id"], \
            f"{name} also answers on 127.0.0.1: it is not bound to its own host"
    assert len(seen_hosts) == len(SERVICE_NAMES)


def test_a_claim_goes_through_the_gateway_to_services_on_other_hosts(spread_lab):
    settings = spread_lab.settings
    assert settings.url_of("gateway").startswith(f"http://{SPREAD_SERVICE_HOSTS['gateway']}:")
    with gateway_client(settings, timeout=10) as api:
        customer = api.post("/api/customers", json={"name": "Spread Test", "email": "spread@example.com",
                                                    "date_of_birth": "1980-05-05", "risk_tier": "low"})
        assert customer.status_code == 201, customer.text
        policy = api.post("/api/policies", json={
            "customer_id": customer.json()["id"], "product": "home", "premium_cents": 50_000,
            "coverage_cents": 10_000_000, "start_date": "2026-01-01", "end_date": "2027-01-01"})
        assert policy.status_code == 201, policy.text
        claim = api.post("/api/claims", json={"policy_id": policy.json()["id"], "amount_cents": 25_000,
                                              "description": "hail, on another host"})
        assert claim.status_code == 201, claim.text
        back = api.get(f"/api/claims/{claim.json()['id']}")
        assert back.status_code == 200, back.text
        assert back.json()["policy_id"] == policy.json()["id"]
        claims_instance = answers_as(settings.url_of("claims"))
        assert back.headers["x-served-by"] == claims_instance, "the gateway reached claims at its own address"
