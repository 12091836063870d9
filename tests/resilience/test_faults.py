"""Faults on purpose, on a private lab: Redis frozen, Redis restarted, an instance killed."""

from __future__ import annotations

import httpx
import pytest
import redis

import labkit
from labkit import faults
from labkit.auth import gateway_headers
from services.core import keys
from waiting import wait_for  # tests/waiting.py


def health_status(lab, service):
    try:
        return httpx.get(lab.settings.url_of(service) + "/health", timeout=5).json()["status"]
    except httpx.HTTPError:
        return "unreachable"


def test_frozen_redis_degrades_health_but_reads_still_answer(private_lab):
    api = private_lab.client  # the fuzzer may have deleted any seeded record: make our own
    customer = api.post("/api/customers", json={"name": "Frozen", "email": "f@example.com",
                                                "date_of_birth": "1990-01-01"}).json()
    policy = api.post("/api/policies", json={
        "customer_id": customer["id"], "product": "auto", "premium_cents": 100, "coverage_cents": 10_000,
        "start_date": "2026-01-01", "end_date": "2027-01-01"}).json()
    pid = faults.freeze_redis(private_lab.settings)
    try:
        assert wait_for(lambda: health_status(private_lab, "policy") == "degraded", "policy to report degraded",
                        every_s=0.2)
        read = httpx.get(f"{private_lab.gateway_url}/api/policies/{policy['id']}",
                         headers=gateway_headers(private_lab.settings), timeout=10)
        assert read.status_code == 200 and read.json()["id"] == policy["id"]
    finally:
        faults.thaw_redis(pid)
    assert wait_for(lambda: health_status(private_lab, "policy") == "ok", "policy to report ok again", every_s=0.2)


def test_logins_say_503_while_redis_is_frozen(private_lab):
    pid = faults.freeze_redis(private_lab.settings)
    try:
        response = httpx.post(private_lab.gateway_url + "/api/auth/login", timeout=10,
                              json={"username": "ada", "password": "ada-lab-pw"})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "redis_unavailable"
    finally:
        faults.thaw_redis(pid)


def test_sessions_survive_a_planned_redis_restart_and_services_reconnect(private_lab):
    gateway = private_lab.gateway_url
    with httpx.Client(base_url=gateway, timeout=10) as alice:
        assert alice.post("/api/auth/login", json={"username": "alice", "password": "alice-lab-pw"}).status_code == 200
        faults.restart_redis(private_lab.settings, down_for_s=0.5)
        assert wait_for(lambda: all(health_status(private_lab, s) == "ok" for s in ("gateway", "policy", "claims")),
                        "gateway, policy and claims to report ok after the restart", every_s=0.2)
        assert wait_for(lambda: alice.get("/api/auth/me").status_code == 200, "alice's session to answer again",
                        every_s=0.2)


def test_a_killed_service_is_reported_and_comes_back_on_restart(private_lab):
    faults.kill_instance("customer", private_lab.settings)
    assert wait_for(lambda: health_status(private_lab, "customer") == "unreachable", "customer to be unreachable",
                    every_s=0.2)
    gateway_health = httpx.get(private_lab.gateway_url + "/health", timeout=10).json()
    assert gateway_health["status"] == "degraded" and gateway_health["services"]["customer"]["status"] == "down"
    labkit.restart("customer", private_lab.settings)
    assert health_status(private_lab, "customer") == "ok"


def test_knobs_need_the_system_user(private_lab):
    url = private_lab.settings.url_of("policy") + "/admin/knobs"
    assert httpx.put(url, json={"error_rate": 1}).status_code == 401
    before = faults.set_knobs("policy", private_lab.settings, delay_ms=1)
    try:
        assert httpx.get(url).json()["delay_ms"] == 1
    finally:
        faults.set_knobs("policy", private_lab.settings, delay_ms=before["delay_ms"])


def test_eviction_under_a_tiny_maxmemory_is_restored(private_lab):
    before = faults.shrink_redis_memory("8mb", "allkeys-lru", private_lab.settings)
    try:
        client = private_lab.redis_client()
        assert client.config_get("maxmemory")["maxmemory"] == str(8 * 1024 * 1024)
    finally:
        faults.restore_redis_memory(before, private_lab.settings)
    assert private_lab.redis_client().config_get("maxmemory-policy") == {"maxmemory-policy": before["maxmemory-policy"]}


def _claim_traffic(lab):
    policy = lab.client.get("/api/policies", params={"status": "active", "limit": 1}).json()["items"][0]
    return [("GET", f"/api/policies/{policy['id']}", None),
            ("POST", "/api/claims", {"policy_id": policy["id"], "amount_cents": 100, "description": "fault"})]


@pytest.mark.parametrize("fault", ["restart", "freeze"])
def test_claims_committed_across_a_redis_outage_have_exactly_one_submitted_event(private_lab, fault):
    from labkit.experiments.resilience import traffic_around_fault, wait_for_audit

    settings, state = private_lab.settings, {}
    if fault == "restart":
        events = [(1.0, "restart", lambda: faults.restart_redis(settings, down_for_s=0.5))]
    else:
        events = [(1.0, "freeze", lambda: state.setdefault("pid", faults.freeze_redis(settings))),
                  (2.5, "thaw", lambda: faults.thaw_redis(state["pid"]))]
    requests, _ = traffic_around_fault(settings, _claim_traffic(private_lab), events, rate=20, duration_s=4)
    committed = requests["created"].dropna().tolist()
    assert len(committed) >= 10
    audit, _ = wait_for_audit(private_lab.redis_client(), committed, timeout_s=30)
    assert (audit["submitted_events"] == 1).all(), audit[audit["submitted_events"] != 1]
    assert not requests.loc[requests["kind"] == "read", "ok"].eq(False).any(), "a read failed during the outage"


def test_under_noeviction_a_full_redis_refuses_writes_but_loses_no_event(private_lab):
    from labkit.experiments.resilience import wait_for_audit

    client, api = private_lab.redis_client(), private_lab.client
    policy = api.get("/api/policies", params={"status": "active", "limit": 1}).json()["items"][0]
    limit = client.info("memory")["used_memory"] + 128 * 1024
    before = faults.shrink_redis_memory(str(limit), "noeviction", private_lab.settings)
    try:
        refused = 0
        for i in range(40):
            try:
                client.set(keys.exercise("08", f"test-ballast:{i}"), "x" * 50_000)
            except redis.exceptions.OutOfMemoryError:
                refused += 1
        made = [api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 10, "description": "full"})
                for _ in range(5)]
    finally:
        client.delete(*[keys.exercise("08", f"test-ballast:{i}") for i in range(40)])
        faults.restore_redis_memory(before, private_lab.settings)
    assert refused > 0, "Redis never got full: the test proves nothing"
    assert all(m.status_code == 201 for m in made), "writes must commit while Redis refuses writes"
    audit, _ = wait_for_audit(client, [m.json()["id"] for m in made], timeout_s=30)
    assert (audit["submitted_events"] == 1).all()


def test_the_fault_cli_turns_knobs_and_says_how_to_undo(private_lab):
    import os
    import subprocess
    import sys

    s = private_lab.settings
    env = dict(os.environ, LAB_RUN_DIR=str(s.run_dir), LAB_REDIS_PORT=str(s.redis_port),
               **{f"LAB_{name.upper()}_PORT": str(s.port_of(name)) for name in ("gateway", "policy", "claims",
                                                                                  "customer", "worker")})
    done = subprocess.run([sys.executable, "-m", "labkit", "fault", "slow", "policy", "--delay-ms", "3"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "undo: labkit fault slow policy" in done.stdout
    assert httpx.get(s.url_of("policy") + "/admin/knobs").json()["delay_ms"] == 3
    undo = done.stdout.split("undo: ")[1].split()
    assert subprocess.run([sys.executable, "-m", *undo], env=env, timeout=30).returncode == 0
    assert httpx.get(s.url_of("policy") + "/admin/knobs").json()["delay_ms"] == 0
