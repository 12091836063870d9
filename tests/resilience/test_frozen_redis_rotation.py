"""A frozen Redis (SIGSTOP) must not take healthy services out of the gateway's rotation: each answers
``/health`` within its own Redis budget, says ``degraded``, and keeps serving from its system of record."""

from __future__ import annotations

import time

import httpx

from labkit import faults
from labkit.auth import gateway_headers

FROZEN_S = 3.0


def test_a_frozen_redis_leaves_every_service_in_rotation(private_lab):
    api, settings = private_lab.client, private_lab.settings
    customer = api.post("/api/customers", json={"name": "Frozen Rotation", "email": "fr@example.com",
                                                "date_of_birth": "1990-01-01"}).json()
    policy = api.post("/api/policies", json={
        "customer_id": customer["id"], "product": "auto", "premium_cents": 100, "coverage_cents": 10_000,
        "start_date": "2026-01-01", "end_date": "2027-01-01"}).json()
    claim = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 100,
                                          "description": "frozen"}).json()
    paths = [f"/api/customers/{customer['id']}", f"/api/policies/{policy['id']}", f"/api/claims/{claim['id']}"]
    answers, health = [], {"claims": set(), "customer": set(), "policy": set()}
    headers = gateway_headers(settings, ask_the_service=True)  # past the gateway's cache, to the services
    with httpx.Client(base_url=private_lab.gateway_url, headers=headers, timeout=20) as client:
        pid = faults.freeze_redis(settings)
        try:
            frozen_until = time.monotonic() + FROZEN_S
            while time.monotonic() < frozen_until:
                for path in paths:
                    response = client.get(path)
                    answers.append((path, response.status_code, response.json().get("error", {}).get("code")))
                for service, seen in health.items():
                    seen.add(httpx.get(settings.url_of(service) + "/health", timeout=20).json()["status"])
                time.sleep(0.05)
            view = client.get("/services").json()["services"]
        finally:
            faults.thaw_redis(pid)
    assert not [a for a in answers if a[2] == "no_instance"], answers
    assert all(status == 200 for _, status, _ in answers), answers
    assert all("degraded" in seen for seen in health.values()), health
    out_of_rotation = [i["instance"] for name in ("claims", "customer", "policy")
                       for i in view[name]["instances"] if not i["healthy"]]
    assert not out_of_rotation, view
