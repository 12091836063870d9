"""Fixtures over the session's lab (see the root conftest.py): settings, Redis and HTTP clients."""

from __future__ import annotations

import httpx
import pytest
import redis

import labkit
from labkit.auth import gateway_client, service_client
from services.core.settings import SERVICE_NAMES, get_settings


@pytest.fixture(scope="session")
def settings():
    return get_settings()


@pytest.fixture(scope="session")
def lab(settings):
    return labkit.status(settings)


@pytest.fixture(scope="session")
def redis_url(lab):
    return lab.redis.url


@pytest.fixture
def r(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def api(settings):
    """An HTTP client on the gateway, as the lab's system user (Bearer API key)."""
    with gateway_client(settings) as client:
        yield client


@pytest.fixture
def anonymous(settings):
    """An HTTP client on the gateway with no credentials (fresh each test: its cookie jar starts empty)."""
    with httpx.Client(base_url=settings.url_of("gateway"), timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def direct(settings):
    """HTTP clients straight to each service, by name, each request signed as the lab's system user."""
    clients = {name: service_client(settings, name) for name in SERVICE_NAMES}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture
def new_customer(api):
    def make(**overrides):
        body = {"name": "Test Person", "email": "test@example.com", "date_of_birth": "1980-05-05",
                "risk_tier": "medium"} | overrides
        response = api.post("/api/customers", json=body)
        assert response.status_code == 201, response.text
        return response.json()
    return make


@pytest.fixture
def new_policy(api, new_customer):
    def make(customer_id: str | None = None, **overrides):
        body = {"customer_id": customer_id or new_customer()["id"], "product": "auto", "premium_cents": 90_000,
                "coverage_cents": 2_000_000, "start_date": "2026-01-01", "end_date": "2027-01-01"} | overrides
        response = api.post("/api/policies", json=body)
        assert response.status_code == 201, response.text
        return response.json()
    return make


@pytest.fixture
def new_claim(api, new_policy):
    def make(policy_id: str | None = None, **overrides):
        body = {"policy_id": policy_id or new_policy()["id"], "amount_cents": 50_000,
                "description": "test claim"} | overrides
        response = api.post("/api/claims", json=body)
        assert response.status_code == 201, response.text
        return response.json()
    return make
