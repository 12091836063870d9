"""The gateway routes with path and query intact, reports each service's health, and names a dead one."""

import http.client
import time

import httpx
import pytest

from labkit import procs
from labkit.auth import gateway_headers
from services.core.settings import SERVICE_NAMES


def test_gateway_passes_path_query_status_and_body_untouched(api, direct, new_policy):
    policy = new_policy()
    via_gateway = api.get("/api/policies", params={"customer_id": policy["customer_id"], "limit": 5})
    straight = direct["policy"].get("/policies", params={"customer_id": policy["customer_id"], "limit": 5})
    assert via_gateway.status_code == straight.status_code == 200
    assert via_gateway.json() == straight.json()
    missing = api.get("/api/policies/POL-999999")
    assert missing.status_code == 404 and missing.json() == direct["policy"].get("/policies/POL-999999").json()


def test_unknown_resource_is_a_json_404_naming_the_choices(api):
    response = api.get("/api/payments/1")
    assert response.status_code == 404 and "/api/policies" in response.json()["error"]["message"]


def test_request_id_is_propagated_end_to_end_and_logged(api, settings):
    response = api.get("/api/customers", params={"limit": 1}, headers={"X-Request-ID": "trace-me-42"})
    assert response.headers.get_list("x-request-id") == ["trace-me-42"]
    logs = settings.run_dir / "logs"
    for service in ("gateway", "customer"):
        # the access line is written as the response goes out: give the file a moment to catch up
        deadline = time.monotonic() + 5
        while "rid=trace-me-42" not in (logs / f"{service}.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "rid=trace-me-42" in (logs / f"{service}.log").read_text(), f"{service} did not log the id"


def test_a_request_without_an_id_gets_one(api):
    assert len(api.get("/api/customers", params={"limit": 1}).headers["x-request-id"]) >= 16


def test_gateway_marks_who_served_the_request(api):
    assert api.get("/api/claims", params={"limit": 1}).headers["x-served-by"].startswith("claims")


def test_services_keep_an_idle_connection_longer_than_the_gateway_pool_does(settings):
    """Otherwise the gateway can send on a connection the service is just closing, and answer 502. uvicorn's
    default keeps an idle connection 5 s; we wait past that on one raw keep-alive connection."""
    assert settings.server_keep_alive_s > settings.gateway_pool_idle_s
    conn = http.client.HTTPConnection(settings.host, settings.port_of("policy"), timeout=5)
    try:
        conn.request("GET", "/health")
        first = conn.getresponse()
        first.read()
        assert first.status == 200 and not first.will_close
        kept = conn.sock
        time.sleep(6)
        conn.request("GET", "/health")  # on the same socket: http.client only reconnects a closed one
        assert conn.sock is kept
        assert conn.getresponse().status == 200  # a closed connection raises RemoteDisconnected here
    finally:
        conn.close()


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_service_reports_health_with_redis_latency(direct, name):
    health = direct[name].get("/health").json()
    assert health["status"] == "ok" and health["service"] == name
    assert health["redis"]["ok"] and health["redis"]["latency_ms"] >= 0
    assert health["uptime_s"] >= 0 and health["version"] and health["instance"].startswith(name)


def test_gateway_health_aggregates_every_service(api):
    health = api.get("/health").json()
    assert set(health["services"]) == {"customer", "policy", "claims"}
    assert all(s["status"] == "ok" for s in health["services"].values())


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_openapi_docs_are_served(direct, name):
    assert direct[name].get("/docs").status_code == 200
    assert direct[name].get("/openapi.json").json()["info"]["title"] == f"{name} service"


def test_a_down_service_gives_502_naming_it(settings, lab, tmp_path):
    """A second gateway (static upstreams: the settings ports, not the registry) whose policy port has
    nothing behind it: the error must name the policy service."""
    overrides = dict(REDIS_URL=lab.redis.url, LAB_POLICY_PORT=str(procs.free_port()), LAB_GATEWAY_DISCOVERY="static",
                     LAB_RUN_DIR=str(tmp_path), LAB_INTERNAL_SECRET=settings.shared_secret())
    proc, port = procs.start_service("gateway", tmp_path / "gw.log", overrides)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/api/policies/POL-000001", timeout=5,
                             headers=gateway_headers(settings))
        assert response.status_code == 502
        assert response.json()["error"]["service"] == "policy"
        assert "policy" in response.json()["error"]["message"]
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert health["status"] == "degraded" and health["services"]["policy"]["status"] == "down"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
