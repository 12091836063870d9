"""Input the services must refuse or normalise: one spelling per id, and money that is really an integer.

An id that loaded the same row under many spellings gave each spelling its own cached copy and its own
claims: alice got a claim accepted on a cancelled policy through an alias. Every way an id comes in —
path, query, body, batch — is tried here with the spellings ``int()`` would read as the same number.
"""

from urllib.parse import quote

import httpx
import pytest

ALICE = {"username": "alice", "password": "alice-lab-pw"}


def aliases(entity_id: str) -> list[str]:
    """Spellings of ``entity_id`` that name the same number to ``int()`` but are not the id."""
    prefix, digits = entity_id.split("-")
    number = int(digits)
    arabic_indic = "".join(chr(0x660 + int(d)) for d in digits)
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in digits)
    return [f"{prefix}-0{digits}", f"{prefix}-{number:012d}", f"{prefix.lower()}-{digits}", f"{prefix}-+{digits[1:]}",
            f"{prefix}-{digits[:3]}_{digits[3:]}", f"{prefix}-{arabic_indic}", f"{prefix}-{fullwidth}",
            f"{prefix}-{digits} ", f"{prefix}-{digits}\n", f"\t{prefix}-{digits}"]


@pytest.fixture
def alice(settings):
    with httpx.Client(base_url=settings.url_of("gateway"), timeout=10) as client:
        assert client.post("/api/auth/login", json=ALICE).status_code == 200
        yield client


def error_of(response) -> dict:
    return response.json()["error"]


@pytest.mark.parametrize("kind, path, field", [("policy", "/policies", "policy_id"),
                                               ("claim", "/claims", "claim_id"),
                                               ("customer", "/customers", "customer_id")])
def test_every_other_spelling_of_an_id_in_the_path_is_refused_naming_it(direct, new_claim, kind, path, field):
    claim = new_claim()
    entity_id = {"policy": claim["policy_id"], "claim": claim["id"], "customer": claim["customer_id"]}[kind]
    service = direct["claims" if kind == "claim" else kind]
    assert service.get(f"{path}/{entity_id}").status_code == 200
    for alias in aliases(entity_id):
        response = service.get(f"{path}/{quote(alias, safe='')}")
        assert response.status_code == 422, (alias, response.status_code)
        assert error_of(response)["field"] == field, alias


def test_aliases_never_reach_an_answer_through_the_gateway(api, new_policy):
    policy = new_policy()
    for alias in aliases(policy["id"]):
        response = api.get(f"/api/policies/{quote(alias, safe='')}")
        if alias.strip() == policy["id"] and response.status_code == 200:
            # tabs and newlines are dropped from URLs by the HTTP stack on the way (WHATWG URL rules, urllib's
            # urlsplit): normalised to the one spelling before any service or key sees it
            assert response.json()["id"] == policy["id"]
            continue
        assert response.status_code in (400, 404, 422) and "error" in response.json(), (alias, response.status_code)


def test_aliases_in_query_filters_are_refused_naming_the_parameter(api, new_claim):
    claim = new_claim()
    for route, param, entity_id in (("/api/claims", "policy_id", claim["policy_id"]),
                                    ("/api/claims", "customer_id", claim["customer_id"]),
                                    ("/api/policies", "customer_id", claim["customer_id"])):
        assert api.get(route, params={param: entity_id}).json()["total"] >= 1
        for alias in aliases(entity_id):
            response = api.get(route, params={param: alias})
            assert response.status_code == 422, (route, alias, response.status_code)
            assert error_of(response)["field"] == param


def test_aliases_in_a_body_are_refused_and_surrounding_blanks_normalised(api, new_policy):
    policy = new_policy()
    for policy_alias, customer_alias in zip(aliases(policy["id"]), aliases(policy["customer_id"])):
        blanks_only = policy_alias.strip() == policy["id"]  # stripped, so it names the one spelling
        claimed = api.post("/api/claims", json={"policy_id": policy_alias, "amount_cents": 100, "description": "x"})
        if blanks_only:
            assert claimed.status_code == 201 and claimed.json()["policy_id"] == policy["id"]
        else:
            assert claimed.status_code == 422 and error_of(claimed)["field"] == "policy_id", policy_alias
        insured = api.post("/api/policies", json={
            "customer_id": customer_alias, "product": "auto", "premium_cents": 1, "coverage_cents": 1,
            "start_date": "2026-01-01", "end_date": "2027-01-01"})
        if blanks_only:
            assert insured.status_code == 201 and insured.json()["customer_id"] == policy["customer_id"]
        else:
            assert insured.status_code == 422 and error_of(insured)["field"] == "customer_id", customer_alias
    # what got through is stored, listed and counted under the one spelling only
    listed = api.get("/api/claims", params={"policy_id": policy["id"]}).json()
    assert listed["total"] == 3 and all(c["policy_id"] == policy["id"] for c in listed["items"])
    owned = api.get("/api/policies", params={"customer_id": policy["customer_id"]}).json()
    assert owned["total"] == 4


def test_a_batch_answers_only_the_one_spelling(api, new_policy):
    policy = new_policy()
    spellings = aliases(policy["id"])[:7]  # the ones a comma-separated list can carry unchanged
    body = api.get("/api/policies/batch", params={"ids": ",".join([policy["id"], *spellings])}).json()
    assert list(body["items"]) == [policy["id"]]
    assert all(body["errors"][alias]["code"] == "invalid_id" for alias in spellings)


def test_no_alias_lets_alice_claim_on_a_cancelled_or_shrunk_policy(alice, api, new_policy):
    """The attack of the issue: read the policy under an alias (its own cached copy), then let an agent
    cancel it (or lower its cover) under its real id, then claim through the alias."""
    policy = new_policy("CUS-000001", coverage_cents=1_000_000)
    spellings = aliases(policy["id"])
    for alias in spellings:
        alice.get(f"/api/policies/{quote(alias, safe='')}")  # would warm a copy per spelling
    assert api.patch(f"/api/policies/{policy['id']}", json={"coverage_cents": 1_000}).status_code == 200
    for alias in spellings:
        over = alice.post("/api/claims", json={"policy_id": alias, "amount_cents": 50_000, "description": "big"})
        assert over.status_code == 422, (alias, over.status_code, over.text)
    assert api.post(f"/api/policies/{policy['id']}/cancel").status_code == 200
    for alias in [policy["id"], *spellings]:
        claimed = alice.post("/api/claims", json={"policy_id": alias, "amount_cents": 500, "description": "x"})
        assert claimed.status_code == 422, (alias, claimed.status_code, claimed.text)
        assert error_of(claimed)["field"] == "policy_id"
    assert api.get("/api/claims", params={"policy_id": policy["id"]}).json()["total"] == 0
    assert api.get(f"/api/policies/{policy['id']}/claims-count").json()["claims_count"] == 0


@pytest.mark.parametrize("value", [True, False, "100", "1e2", 100.0, 1e2, 99.5, None, [100], {"cents": 100}])
def test_amount_cents_is_a_strict_integer(api, new_policy, value):
    policy = new_policy()
    response = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": value, "description": "x"})
    assert response.status_code == 422, (value, response.text)
    assert error_of(response)["field"] == "amount_cents"
    assert api.get("/api/claims", params={"policy_id": policy["id"]}).json()["total"] == 0


@pytest.mark.parametrize("field", ["premium_cents", "coverage_cents"])
@pytest.mark.parametrize("value", [True, "100", 100.0])
def test_policy_money_is_a_strict_integer_on_create_and_patch(api, new_customer, new_policy, field, value):
    body = {"customer_id": new_customer()["id"], "product": "auto", "premium_cents": 100, "coverage_cents": 100,
            "start_date": "2026-01-01", "end_date": "2027-01-01", field: value}
    created = api.post("/api/policies", json=body)
    assert created.status_code == 422 and error_of(created)["field"] == field, created.text
    policy = new_policy()
    patched = api.patch(f"/api/policies/{policy['id']}", json={field: value})
    assert patched.status_code == 422 and error_of(patched)["field"] == field, patched.text
    assert api.get(f"/api/policies/{policy['id']}").json()[field] == policy[field]


def test_integer_cents_are_still_accepted(api, new_policy):
    policy = new_policy()
    response = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 100, "description": "x"})
    assert response.status_code == 201 and response.json()["amount_cents"] == 100
