"""Faults on purpose, on a private lab: Redis frozen, Redis restarted, an instance killed."""

from __future__ import annotations

import time

import httpx

import labkit
from labkit import faults
from labkit.auth import gateway_headers


def poll(predicate, seconds: float = 20.0, every: float = 0.2):
    """The first truthy value of predicate() within ``seconds`` (a deadline, not a speed requirement)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()


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
        assert poll(lambda: health_status(private_lab, "policy") == "degraded")
        read = httpx.get(f"{private_lab.gateway_url}/api/policies/{policy['id']}",
                         headers=gateway_headers(private_lab.settings), timeout=10)
        assert read.status_code == 200 and read.json()["id"] == policy["id"]
    finally:
        faults.thaw_redis(pid)
    assert poll(lambda: health_status(private_lab, "policy") == "ok")


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
        assert poll(lambda: all(health_status(private_lab, s) == "ok" for s in ("gateway", "policy", "claims")))
        assert poll(lambda: alice.get("/api/auth/me").status_code == 200)


def test_a_killed_service_is_reported_and_comes_back_on_restart(private_lab):
    faults.kill_service("customer", private_lab.settings)
    assert poll(lambda: health_status(private_lab, "customer") == "unreachable")
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
