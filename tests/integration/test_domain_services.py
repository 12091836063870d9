"""The three domain services through the gateway: CRUD, queries, lifecycle, bad input."""

import pytest


def test_customer_policy_claim_workflow_reads_back_through_the_gateway(api, new_customer, new_policy, new_claim):
    customer = new_customer(name="Grace Hopper")
    policy = new_policy(customer["id"])
    claim = new_claim(policy["id"], amount_cents=12_345)
    assert api.get(f"/api/customers/{customer['id']}").json()["name"] == "Grace Hopper"
    assert api.get(f"/api/policies/{policy['id']}").json()["customer_id"] == customer["id"]
    back = api.get(f"/api/claims/{claim['id']}").json()
    assert (back["policy_id"], back["customer_id"], back["amount_cents"], back["status"]) == \
        (policy["id"], customer["id"], 12_345, "submitted")


def test_ids_follow_the_domain_pattern(new_claim):
    claim = new_claim()
    assert claim["id"].startswith("CLM-") and len(claim["id"]) >= 10
    assert claim["policy_id"].startswith("POL-") and claim["customer_id"].startswith("CUS-")


def test_a_customers_policies_are_listed_with_pagination(api, new_customer, new_policy):
    customer = new_customer()
    made = [new_policy(customer["id"], product=p)["id"] for p in ("auto", "home", "life")]
    page = api.get("/api/policies", params={"customer_id": customer["id"], "limit": 2}).json()
    assert page["total"] == 3 and page["limit"] == 2 and [p["id"] for p in page["items"]] == made[:2]
    rest = api.get("/api/policies", params={"customer_id": customer["id"], "limit": 2, "offset": 2}).json()
    assert [p["id"] for p in rest["items"]] == made[2:]


def test_claims_are_listed_by_policy_and_status(api, new_policy, new_claim):
    policy = new_policy()
    first, second = new_claim(policy["id"]), new_claim(policy["id"])
    api.post(f"/api/claims/{second['id']}/status", json={"status": "under_review"})
    by_policy = api.get("/api/claims", params={"policy_id": policy["id"]}).json()
    assert {c["id"] for c in by_policy["items"]} == {first["id"], second["id"]}
    reviewing = api.get("/api/claims", params={"policy_id": policy["id"], "status": "under_review"}).json()
    assert [c["id"] for c in reviewing["items"]] == [second["id"]]


def test_claim_moves_through_its_lifecycle_and_refuses_skipping_steps(api, new_claim):
    claim = new_claim()
    skip = api.post(f"/api/claims/{claim['id']}/status", json={"status": "paid"})
    assert skip.status_code == 409 and skip.json()["error"]["field"] == "status"
    for step in ("under_review", "approved", "paid"):
        response = api.post(f"/api/claims/{claim['id']}/status", json={"status": step, "note": f"to {step}"})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == step
    assert api.post(f"/api/claims/{claim['id']}/status", json={"status": "rejected"}).status_code == 409


def test_customer_update_and_delete(api, new_customer):
    customer = new_customer()
    changed = api.patch(f"/api/customers/{customer['id']}", json={"risk_tier": "high"})
    assert changed.status_code == 200 and changed.json()["risk_tier"] == "high"
    assert api.delete(f"/api/customers/{customer['id']}").status_code == 204
    assert api.get(f"/api/customers/{customer['id']}").status_code == 404


def test_cancelled_policy_takes_no_new_claims(api, new_policy):
    policy = new_policy()
    assert api.post(f"/api/policies/{policy['id']}/cancel").json()["status"] == "cancelled"
    refused = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 100, "description": "x"})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "policy_id"


def test_policy_for_unknown_customer_is_refused_naming_the_field(api):
    response = api.post("/api/policies", json={
        "customer_id": "CUS-999999", "product": "home", "premium_cents": 1, "coverage_cents": 1,
        "start_date": "2026-01-01", "end_date": "2027-01-01"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "customer_id"


def test_claim_above_coverage_is_refused(api, new_policy):
    policy = new_policy(coverage_cents=1_000)
    response = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 1_001, "description": "x"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "amount_cents"


@pytest.mark.parametrize("path", ["/api/customers/CUS-999999", "/api/policies/POL-999999",
                                  "/api/claims/CLM-999999"])
def test_unknown_id_is_a_json_404(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/claims/CLM-1", "/api/claims/lab:session:x", "/api/policies/POL-00000%2F1",
                                  "/api/customers/CUS-000001%20OR%201=1"])
def test_malformed_ids_are_refused_at_the_edge(api, path):
    response = api.get(path)
    assert response.status_code in (404, 422)
    assert "error" in response.json()


@pytest.mark.parametrize("body, field", [
    ({"name": "", "email": "a@example.com", "date_of_birth": "1990-01-01"}, "name"),
    ({"name": "A", "email": "not-an-email", "date_of_birth": "1990-01-01"}, "email"),
    ({"name": "A", "email": "a@example.com", "date_of_birth": "1990-01-01", "risk_tier": "extreme"}, "risk_tier"),
    ({"name": "A", "email": "a@example.com", "date_of_birth": "1990-01-01", "admin": True}, "admin"),
    ({"name": "A", "email": "a@example.com"}, "date_of_birth"),
])
def test_invalid_customer_bodies_name_the_field(api, body, field):
    response = api.post("/api/customers", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_money_must_be_integer_cents(api, new_customer):
    response = api.post("/api/policies", json={
        "customer_id": new_customer()["id"], "product": "auto", "premium_cents": 10.5, "coverage_cents": 100,
        "start_date": "2026-01-01", "end_date": "2027-01-01"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "premium_cents"


def test_end_date_before_start_is_refused(api, new_customer):
    response = api.post("/api/policies", json={
        "customer_id": new_customer()["id"], "product": "auto", "premium_cents": 1, "coverage_cents": 1,
        "start_date": "2026-01-01", "end_date": "2025-01-01"})
    assert response.status_code == 422


def test_malformed_json_is_a_422_not_a_500(api):
    response = api.post("/api/customers", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "error" in response.json()


def test_oversized_body_is_refused_with_413(api, settings):
    huge = {"name": "A", "email": "a@example.com", "date_of_birth": "1990-01-01",
            "padding": "x" * (settings.max_body_bytes + 1)}
    response = api.post("/api/customers", json=huge)
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "many"}])
def test_page_bounds_are_enforced(api, params):
    response = api.get("/api/claims", params=params)
    assert response.status_code == 422 and response.json()["error"]["field"] in params


@pytest.mark.parametrize("body, field", [
    ({"name": "A", "email": "a@example.com", "date_of_birth": "0062-07-23"}, "date_of_birth"),
    ({"name": "A", "email": "a@example.com", "date_of_birth": "2999-01-01"}, "date_of_birth"),
])
def test_implausible_birth_dates_name_the_field(api, body, field):
    response = api.post("/api/customers", json=body)
    assert response.status_code == 422 and response.json()["error"]["field"] == field


def test_end_date_error_names_the_field(api, new_customer):
    response = api.post("/api/policies", json={
        "customer_id": new_customer()["id"], "product": "auto", "premium_cents": 1, "coverage_cents": 1,
        "start_date": "2026-01-01", "end_date": "2026-01-01"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "end_date"


@pytest.mark.parametrize("path", ["/api/customers/CUS-000001%20x", "/api/customers/caf%C3%A9",
                                  "/api/policies/POL-000001;x", "/api/claims/CLM-000001%3Fx=1"])
def test_an_odd_but_harmless_path_reaches_the_service_with_a_valid_identity(api, path):
    """The gateway signs the path as the service will decode it: an escaped character is judged by the
    service (404/422), never refused as a forged identity (401)."""
    response = api.get(path, headers={"Cache-Control": "no-cache"})
    assert response.status_code in (404, 422), (path, response.status_code, response.text[:200])
