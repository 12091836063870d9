"""The gateway's response cache (lesson 05, item 7) on the session's lab: on by default, per caller,
dropped by writes and by events, and skipped when a client asks with ``Cache-Control``.

Tests that need an answer to outlive the default TTL (2 s) raise it through ``/admin/gateway-cache`` and
put the default back, so an event — not the clock — is what they see dropping an answer.
"""

from __future__ import annotations

import contextlib

import httpx
import pytest

from labkit.auth import ASK_THE_SERVICE, ServiceAuth
from waiting import wait_for  # tests/waiting.py

PASSWORDS = {"alice": "alice-lab-pw", "bob": "bob-lab-pw"}


@pytest.fixture
def long_lived_answers(settings):
    """Answers kept for 60 s during the test; the configured TTL again afterwards."""
    with httpx.Client(base_url=settings.url_of("gateway"), auth=ServiceAuth(settings), timeout=10) as admin:
        admin.put("/admin/gateway-cache", json={"ttl_s": 60}).raise_for_status()
        try:
            yield admin
        finally:
            admin.put("/admin/gateway-cache", json={"ttl_s": settings.gateway_cache_ttl_s}).raise_for_status()


@contextlib.contextmanager
def logged_in(settings, username: str):
    with httpx.Client(base_url=settings.url_of("gateway"), timeout=10) as client:
        response = client.post("/api/auth/login", json={"username": username, "password": PASSWORDS[username]})
        assert response.status_code == 200, response.text
        yield client


def test_on_by_default_a_repeated_read_is_answered_by_the_gateway_and_says_so(settings, api, new_policy):
    assert settings.gateway_cache_ttl_s > 0, "the lab's default keeps answers at the gateway"
    path = f"/api/policies/{new_policy()['id']}"
    first, second = api.get(path), api.get(path)
    assert first.headers["x-gateway-cache"] == "MISS" and first.headers["x-served-by"].startswith("policy")
    assert second.headers["x-gateway-cache"] == "HIT" and second.headers["x-cache"] == "HIT"
    assert second.headers["x-served-by"] == "gateway-cache", "no instance served it, and the header says so"
    assert int(second.headers["age"]) >= 0 and second.json() == first.json()
    assert second.headers["x-request-id"] != first.headers["x-request-id"], "each request keeps its own id"


def test_collections_are_forwarded_every_time(api):
    response = api.get("/api/claims", params={"limit": 1})
    assert response.status_code == 200 and "x-gateway-cache" not in response.headers
    assert response.headers["x-served-by"].startswith("claims")


def test_a_write_through_the_gateway_is_read_back_at_once(api, long_lived_answers, new_policy):
    path = f"/api/policies/{new_policy()['id']}"
    api.get(path)
    assert api.get(path).headers["x-gateway-cache"] == "HIT"
    patched = api.patch(path, json={"premium_cents": 123_456})
    assert patched.status_code == 200, patched.text
    after = api.get(path)
    assert after.headers["x-gateway-cache"] == "MISS" and after.json()["premium_cents"] == 123_456


def test_a_new_claim_drops_the_cached_overview_of_its_customer(api, long_lived_answers, new_policy):
    policy = new_policy()
    overview = f"/api/customers/{policy['customer_id']}/overview"
    assert api.get(overview).status_code == 200
    assert api.get(overview).headers["x-gateway-cache"] == "HIT"
    claim = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 700, "description": "x"})
    assert claim.status_code == 201, claim.text
    after = api.get(overview)
    assert after.headers["x-gateway-cache"] == "MISS", "the claim's answer named the customer: dropped at once"
    assert claim.json()["id"] in after.text


def test_a_write_straight_to_the_service_reaches_the_gateway_by_its_event(api, direct, long_lived_answers,
                                                                          new_policy):
    path = f"/policies/{new_policy()['id']}"
    api.get("/api" + path)
    assert api.get("/api" + path).headers["x-gateway-cache"] == "HIT"
    assert direct["policy"].patch(path, json={"premium_cents": 77_700}).status_code == 200
    # The gateway never saw this write; the policy service's event tells it (TTL is 60 s here, so only
    # the event can explain a fresh answer).
    wait_for(lambda: api.get("/api" + path).json()["premium_cents"] == 77_700, "the event to drop the answer", 5, 0.02)


def test_cache_control_no_cache_asks_the_service_and_no_store_keeps_nothing(api, long_lived_answers, new_policy):
    path = f"/api/policies/{new_policy()['id']}"
    refreshed = api.get(path, headers=ASK_THE_SERVICE)
    assert refreshed.headers["x-gateway-cache"] == "REFRESH" and refreshed.headers["x-served-by"] != "gateway-cache"
    assert api.get(path).headers["x-gateway-cache"] == "HIT", "a no-cache answer is kept for the next reader"
    other = f"/api/customers/{refreshed.json()['customer_id']}"
    assert api.get(other, headers={"Cache-Control": "no-store"}).headers["x-gateway-cache"] == "BYPASS"
    assert api.get(other).headers["x-gateway-cache"] == "MISS", "no-store left nothing behind"


def test_one_callers_answer_is_never_served_to_another(settings, long_lived_answers):
    with logged_in(settings, "alice") as alice, logged_in(settings, "bob") as bob:
        path = "/api/customers/CUS-000001"  # alice's own record
        assert alice.get(path).status_code == 200
        assert alice.get(path).headers["x-gateway-cache"] == "HIT"
        assert bob.get(path).status_code == 404, "bob gets his own answer, not alice's cached one"


def test_the_gateway_reports_its_cache(settings):
    with httpx.Client(base_url=settings.url_of("gateway"), auth=ServiceAuth(settings), timeout=10) as admin:
        described = admin.get("/services").json()
    cache = described["response_cache"]
    assert cache["ttl_s"] == settings.gateway_cache_ttl_s and cache["hits"] >= 0 and "bypassed" in cache
