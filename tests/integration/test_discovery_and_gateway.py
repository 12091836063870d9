"""Lessons 03 and 05 on the session's lab: registry, scaling, SIGKILL, failover, balancing, breaker, limits.

Extra instances come from ``labkit.scale`` on the session lab and are scaled back in ``finally``; every
gateway setting a test changes at run time is put back. Deadlines are generous: these tests say *that*
something happens, never how fast (the notebooks and benchmarks measure that).
"""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx
import pytest

import labkit
from labkit import procs
from labkit.auth import ASK_THE_SERVICE, ServiceAuth
from services.core import keys
from services.core.settings import SERVICE_NAMES
from waiting import wait_for  # tests/waiting.py


def registered(r, service: str) -> dict[str, dict]:
    ids = r.zrange(keys.registry_index(service), 0, -1)
    found = {}
    for instance_id in ids:
        value = r.get(keys.registry_instance(service, instance_id))
        if value:
            found[instance_id] = json.loads(value)
    return found


def gateway_view(api, service: str) -> dict[str, dict]:
    return {i["instance"]: i for i in api.get("/services").json()["services"][service]["instances"]}


def routable(api, service: str) -> set[str]:
    return {i for i, d in gateway_view(api, service).items() if d["healthy"] and d["breaker"] == "closed"}


@pytest.fixture
def admin(settings):
    """The gateway's /admin routes, as the lab's system user."""
    with httpx.Client(base_url=settings.url_of("gateway"), auth=ServiceAuth(settings), timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def three_claims(settings):
    """claims, claims#2, claims#3 (weight 2) running and routable; back to one instance afterwards."""
    r = labkit.status(settings).redis_client()
    try:
        labkit.scale("claims", 3, settings, weights={3: 2})
        with httpx.Client(base_url=settings.url_of("gateway"),
                          headers={"Authorization": f"Bearer {settings.api_key()}"}, timeout=10) as api:
            ids = wait_for(lambda: len(routable(api, "claims")) == 3 and routable(api, "claims"),
                           "three routable claims instances at the gateway")
        yield ids
    finally:
        labkit.scale("claims", 1, settings)
        r.close()


def served_by(api, n: int, path: str = "/api/claims/CLM-000001") -> Counter:
    """Which instance answered each of ``n`` reads (past the gateway's response cache, to an instance)."""
    counts = Counter()
    for _ in range(n):
        response = api.get(path, headers=ASK_THE_SERVICE)
        assert response.status_code == 200, response.text
        counts[response.headers["x-served-by"]] += 1
    return counts


def test_every_running_instance_is_registered_with_its_address(r, direct, settings):
    for name in SERVICE_NAMES:
        health = direct[name].get("/health").json()
        found = registered(r, name)
        assert health["instance"] in found, f"{name} is not in the registry"
        entry = found[health["instance"]]
        assert entry["port"] == settings.port_of(name) and entry["host"] == settings.advertised_host
        assert entry["version"] == settings.version and entry["started_at"] > 0
        ttl_ms = r.pttl(keys.registry_instance(name, health["instance"]))
        assert 0 < ttl_ms <= settings.registry_ttl_s * 1000


def test_scaled_instances_register_and_each_serves_under_round_robin(r, api, admin, three_claims):
    assert set(registered(r, "claims")) == three_claims, "the gateway routes to exactly the registry's instances"
    admin.put("/admin/balancer", json={"service": "claims", "strategy": "round_robin"}).raise_for_status()
    counts = served_by(api, 30)
    assert set(counts) == three_claims, "X-Served-By names the real instance ids from the registry"
    assert sorted(counts.values()) == [10, 10, 10]


def test_weighted_and_least_outstanding_and_random_distribute_as_designed(r, api, admin, three_claims):
    heavy = next(i for i, d in registered(r, "claims").items() if d["weight"] == 2)
    try:
        admin.put("/admin/balancer", json={"service": "claims", "strategy": "weighted"}).raise_for_status()
        counts = served_by(api, 40)
        assert counts[heavy] == 20 and sorted(counts.values()) == [10, 10, 20]
        admin.put("/admin/balancer", json={"service": "claims", "strategy": "least_outstanding"}).raise_for_status()
        assert sorted(served_by(api, 30).values()) == [10, 10, 10], "one at a time: ties rotate evenly"
        admin.put("/admin/balancer", json={"service": "claims", "strategy": "random"}).raise_for_status()
        assert set(served_by(api, 60)) == three_claims
    finally:
        admin.put("/admin/balancer", json={"service": "claims", "strategy": "round_robin"}).raise_for_status()


def test_unknown_strategy_is_a_422_naming_the_field(admin):
    response = admin.put("/admin/balancer", json={"service": "claims", "strategy": "fastest"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "strategy"


def test_admin_routes_need_the_system_user(settings):
    response = httpx.put(settings.url_of("gateway") + "/admin/ratelimit", json={"requests": 1}, timeout=5)
    assert response.status_code == 401


def test_sigkilled_instance_leaves_registry_and_traffic_then_rejoins(r, api, settings, three_claims):
    victim_id = procs.get_health(procs.read_pidfiles(settings.run_dir)["claims#2"].url)["instance"]
    labkit.kill_instance("claims#2", settings)
    # Until the gateway notices, requests to the dead instance fail over: none of these may fail.
    counts = served_by(api, 30)
    assert victim_id not in counts
    wait_for(lambda: victim_id not in registered(r, "claims"), "the killed instance's registration to expire")
    wait_for(lambda: victim_id not in gateway_view(api, "claims"), "the gateway to drop the killed instance")
    labkit.restart_instance("claims#2", settings)
    wait_for(lambda: len(routable(api, "claims")) == 3, "the restarted instance to rejoin")
    assert len(served_by(api, 30)) == 3


def test_graceful_stop_deregisters_at_once(r, api, settings, three_claims):
    try:
        labkit.scale("claims", 2, settings)  # SIGTERM claims#3: it deregisters on the way out
        assert len(registered(r, "claims")) == 2, "deregistered before the process exited, no TTL wait"
        wait_for(lambda: len(gateway_view(api, "claims")) == 2, "the gateway to drop the stopped instance", 5)
    finally:
        labkit.scale("claims", 3, settings, weights={3: 2})
        wait_for(lambda: len(routable(api, "claims")) == 3, "three routable instances again")


def test_breaker_opens_on_a_failing_instance_and_closes_when_it_recovers(api, settings, three_claims):
    record = procs.read_pidfiles(settings.run_dir)["claims#3"]
    with httpx.Client(base_url=record.url, auth=ServiceAuth(settings, "claims"), timeout=5) as sick:
        sick_id = sick.get("/health").json()["instance"]
        sick.put("/admin/knobs", json={"error_rate": 1.0}).raise_for_status()
        try:
            wait_for(lambda: api.get("/api/claims/CLM-000001", headers=ASK_THE_SERVICE) and
                     gateway_view(api, "claims")[sick_id]["breaker"] == "open", "the breaker to open", 10, 0)
            assert sick_id not in served_by(api, 12), "an open breaker sends nothing to the instance"
        finally:
            sick.put("/admin/knobs", json={"error_rate": 0.0}).raise_for_status()
    # After breaker_open_s one trial request goes through (half-open); it succeeds, the breaker closes.
    wait_for(lambda: api.get("/api/claims/CLM-000001", headers=ASK_THE_SERVICE) and
             gateway_view(api, "claims")[sick_id]["breaker"] == "closed", "the breaker to close", 15, 0.05)


def test_rate_limit_answers_429_with_retry_after_and_the_json_error(api, admin):
    admin.put("/admin/ratelimit", json={"requests": 5, "window_s": 3}).raise_for_status()
    try:
        statuses = [api.get("/api/customers/CUS-000001") for _ in range(8)]
    finally:
        admin.put("/admin/ratelimit", json={"requests": 0}).raise_for_status()
    assert [s.status_code for s in statuses] == [200] * 5 + [429] * 3
    refused = statuses[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 3
    assert refused.json()["error"]["code"] == "rate_limited" and "field" in refused.json()["error"]
    assert api.get("/api/customers/CUS-000001").status_code == 200, "limiter off again"


def test_invalid_rate_limit_is_a_422_naming_the_field(admin):
    response = admin.put("/admin/ratelimit", json={"requests": -1})
    assert response.status_code == 422 and response.json()["error"]["field"].endswith("requests")


def test_request_id_reaches_every_service_log_line(api, settings, new_policy):
    """Through the gateway to claims, which asks policy: one id in all three logs."""
    policy = new_policy()
    response = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 1000, "description": "x"},
                        headers={"X-Request-ID": "trace-lesson-05"})
    assert response.status_code == 201 and response.headers["x-request-id"] == "trace-lesson-05"
    logs = settings.run_dir / "logs"

    def logged_everywhere():
        return all("rid=trace-lesson-05" in (logs / f"{s}.log").read_text() for s in ("gateway", "claims", "policy"))
    wait_for(logged_everywhere, "the request id in the gateway, claims and policy logs", 5)


def test_services_find_each_other_in_the_registry_too(api, settings, new_policy):
    """claims asks policy "is this policy active?" at the instances the registry lists, in turn."""
    policy = new_policy()
    logs = settings.run_dir / "logs"
    try:
        labkit.scale("policy", 2, settings)
        time.sleep(settings.peer_refresh_s + 0.2)  # claims re-reads the registry at most this often
        rids = [f"peer-{i}-{time.monotonic_ns()}" for i in range(6)]
        for rid in rids:
            response = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 100,
                                                     "description": "x"}, headers={"X-Request-ID": rid})
            assert response.status_code == 201, response.text

        def asked(name: str) -> set[str]:
            text = (logs / f"{name}.log").read_text()
            return {rid for rid in rids if f"rid={rid}" in text}
        wait_for(lambda: asked("policy") and asked("policy#2"), "both policy instances to be asked by claims", 5)
        assert asked("policy") | asked("policy#2") == set(rids)
        labkit.kill_instance("policy#2", settings)  # still registered for up to the TTL: refused, then retried
        for _ in range(4):
            response = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 100,
                                                     "description": "x"})
            assert response.status_code == 201, "a refused peer call is retried on the next instance"
    finally:
        labkit.scale("policy", 1, settings)


def test_service_starts_and_answers_while_redis_is_unreachable(tmp_path, settings):
    overrides = dict(REDIS_URL=f"redis://127.0.0.1:{procs.free_port()}", LAB_RUN_DIR=str(tmp_path),
                     LAB_INTERNAL_SECRET=settings.shared_secret())
    proc, port = procs.start_service("customer", tmp_path / "c.log", overrides)
    try:
        health = procs.get_health(f"http://127.0.0.1:{port}")
        assert health["status"] == "degraded" and health["redis"]["ok"] is False
        wait_for(lambda: "heartbeat of" in (tmp_path / "c.log").read_text(), "a failed heartbeat in the log", 10)
        assert proc.poll() is None, "a failing heartbeat must not stop the service"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
