"""Access is denied by default: an identity that is neither staff nor linked to a customer sees nothing.

No demo user is such an identity today; one refactor (a customer whose record id is lost, a new role)
would make one. The test signs it itself, as a compromised or buggy caller could, and asks the services
straight away.
"""

import httpx
import pytest

from services.patterns.identity import HEADER, sign_identity


def signed(settings, identity: dict, service: str, path: str) -> dict:
    """The header the gateway would sign for this one GET (bound to the service, the method and the path)."""
    return {HEADER: sign_identity(identity, settings.identity_key("gateway", service), issuer="gateway",
                                  audience=service, method="GET", path=path.split("?", 1)[0])}


@pytest.mark.parametrize("identity", [
    {"sub": "u-orphan", "roles": ["customer"]},
    {"sub": "u-orphan", "roles": ["customer"], "customer_id": None},
    {"sub": "u-orphan", "roles": ["customer"], "customer_id": ""},
    {"sub": "u-orphan", "roles": ["customer"], "customer_id": "CUS-0000001"},  # not the one spelling of a record
    {"sub": "u-orphan", "roles": []},
    {"sub": "u-orphan", "roles": ["auditor"]},  # a role the services do not know
])
@pytest.mark.parametrize("service, path", [("policy", "/policies"), ("claims", "/claims")])
def test_a_non_staff_identity_without_a_customer_lists_nothing(settings, new_claim, identity, service, path):
    new_claim()  # there is something to leak
    with httpx.Client(base_url=settings.url_of(service), timeout=10) as client:
        for params in ({}, {"customer_id": "CUS-000002"}, {"limit": 100}):
            response = client.get(path, params=params, headers=signed(settings, identity, service, path))
            assert response.status_code == 403, (params, response.status_code, response.text[:200])
            assert response.json()["error"]["code"] == "forbidden"


def test_a_non_staff_identity_without_a_customer_reads_no_entity(settings, new_claim):
    claim = new_claim()
    orphan = {"sub": "u-orphan", "roles": ["customer"]}
    reads = {"policy": [f"/policies/{claim['policy_id']}", f"/policies/batch?ids={claim['policy_id']}"],
             "claims": [f"/claims/{claim['id']}", f"/claims/batch?ids={claim['id']}", f"/claims/{claim['id']}/history"],
             "customer": [f"/customers/{claim['customer_id']}", f"/customers/{claim['customer_id']}/overview"]}
    for service, paths in reads.items():
        with httpx.Client(base_url=settings.url_of(service), timeout=10) as client:
            for path in paths:
                response = client.get(path, headers=signed(settings, orphan, service, path))
                if "/batch" in path:
                    assert response.status_code == 200 and response.json()["items"] == {}, path
                else:
                    assert response.status_code == 404, (path, response.status_code)


def test_staff_and_a_linked_customer_still_list(settings, new_claim):
    claim = new_claim()
    customer = {"sub": "u-someone", "roles": ["customer"], "customer_id": claim["customer_id"]}
    adjuster = {"sub": "u-adjuster", "roles": ["adjuster"]}
    with httpx.Client(base_url=settings.url_of("claims"), timeout=10) as client:
        own = client.get("/claims", headers=signed(settings, customer, "claims", "/claims")).json()
        assert [c["id"] for c in own["items"]] == [claim["id"]]
        everyone = client.get("/claims", params={"limit": 100},
                              headers=signed(settings, adjuster, "claims", "/claims")).json()
        assert everyone["total"] > 1
