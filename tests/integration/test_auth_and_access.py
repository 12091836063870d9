"""Lesson 04 at the HTTP level: logins, sessions in Redis, and who may see and do what."""


import httpx
import pytest

from services.core import keys
from services.patterns.identity import sign_identity
from services.patterns.sessions import session_key

PASSWORDS = {"alice": "alice-lab-pw", "bob": "bob-lab-pw", "ada": "ada-lab-pw", "joe": "joe-lab-pw"}


@pytest.fixture
def login(settings):
    clients = []

    def make(username: str, base_url: str | None = None) -> httpx.Client:
        client = httpx.Client(base_url=base_url or settings.url_of("gateway"), timeout=10)
        response = client.post("/api/auth/login", json={"username": username, "password": PASSWORDS[username]})
        assert response.status_code == 200, response.text
        clients.append(client)
        return client
    yield make
    for client in clients:
        client.close()


def first_policy_of(api, customer_id):
    return api.get("/api/policies", params={"customer_id": customer_id, "limit": 1}).json()["items"][0]


def test_no_credentials_is_401_with_a_json_error(anonymous):
    response = anonymous.get("/api/policies/POL-000001")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"


def test_wrong_password_is_401_and_names_no_detail(anonymous):
    response = anonymous.post("/api/auth/login", json={"username": "ada", "password": "nope"})
    assert response.status_code == 401
    unknown = anonymous.post("/api/auth/login", json={"username": "nobody", "password": "nope"})
    assert unknown.status_code == 401 and unknown.json()["error"]["message"] == response.json()["error"]["message"]


def test_login_sets_a_hardened_cookie_and_me_answers(settings):
    with httpx.Client(base_url=settings.url_of("gateway")) as client:
        response = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORDS["alice"]})
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        me = client.get("/api/auth/me").json()["user"]
        assert me["username"] == "alice" and me["roles"] == ["customer"] and me["customer_id"] == "CUS-000001"


def test_the_session_lives_in_redis_with_an_idle_ttl(login, r, settings):
    client = login("alice")
    session_id = client.cookies["lab_session"]
    assert len(session_id) >= 43
    stored = r.hgetall(session_key(session_id))
    assert stored["user_id"] == "u-alice" and stored["roles"] == "customer"
    assert 0 < r.ttl(session_key(session_id)) <= settings.session_idle_s
    assert not r.exists(keys.session(session_id))  # the key is a digest of the cookie, never the cookie


def test_customer_sees_only_her_own_records(login, api):
    alice = login("alice")
    assert alice.get("/api/customers/CUS-000001").status_code == 200
    bobs_policy = first_policy_of(api, "CUS-000002")
    for path in ("/api/customers/CUS-000002", f"/api/policies/{bobs_policy['id']}"):
        response = alice.get(path)
        assert response.status_code == 404, path  # exactly like an id that does not exist
    listed = alice.get("/api/policies", params={"customer_id": "CUS-000002"}).json()["items"]
    assert listed and all(p["customer_id"] == "CUS-000001" for p in listed)
    assert all(c["customer_id"] == "CUS-000001" for c in alice.get("/api/claims").json()["items"])
    assert alice.get("/api/customers").status_code == 403


def test_customer_submits_claims_on_her_policy_only(login, api):
    alice = login("alice")
    own = first_policy_of(api, "CUS-000001")
    assert alice.post("/api/claims", json={"policy_id": own["id"], "amount_cents": 100,
                                           "description": "bike stolen"}).status_code == 201
    bobs = first_policy_of(api, "CUS-000002")
    refused = alice.post("/api/claims", json={"policy_id": bobs["id"], "amount_cents": 100, "description": "x"})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "policy_id"


def test_roles_decide_who_changes_what(login, api):
    alice, ada, joe = login("alice"), login("ada"), login("joe")
    policy = {"customer_id": "CUS-000001", "product": "life", "premium_cents": 1, "coverage_cents": 100_000,
              "start_date": "2026-01-01", "end_date": "2030-01-01"}
    assert alice.post("/api/policies", json=policy).status_code == 403
    assert joe.post("/api/policies", json=policy).status_code == 403
    created = ada.post("/api/policies", json=policy)
    assert created.status_code == 201
    claim = alice.post("/api/claims", json={"policy_id": created.json()["id"], "amount_cents": 500,
                                            "description": "x"}).json()
    review = {"status": "under_review"}
    assert alice.post(f"/api/claims/{claim['id']}/status", json=review).status_code == 403
    assert ada.post(f"/api/claims/{claim['id']}/status", json=review).status_code == 403
    assert joe.post(f"/api/claims/{claim['id']}/status", json=review).status_code == 200


def test_a_forged_identity_straight_to_a_service_is_refused(settings):
    url = settings.url_of("claims") + "/claims"
    assert httpx.get(url).status_code == 401
    forged = sign_identity({"sub": "mallory", "roles": ["system"]}, "not-the-lab-secret", issuer="gateway",
                           audience="claims", method="GET", path="/claims")
    assert httpx.get(url, headers={"x-lab-identity": forged}).status_code == 401


def test_an_identity_header_sent_to_the_gateway_is_ignored(anonymous, settings):
    forged = sign_identity({"sub": "mallory", "roles": ["system"]}, "not-the-lab-secret", issuer="gateway",
                           audience="claims", method="GET", path="/claims")
    assert anonymous.get("/api/claims", headers={"x-lab-identity": forged}).status_code == 401


def test_login_rotates_a_planted_session_id(anonymous, r):
    """Session fixation: an id chosen before login must not be the id after it."""
    body = {"username": "alice", "password": PASSWORDS["alice"]}
    planted = anonymous.post("/api/auth/login", json=body, headers={"cookie": "lab_session=attacker-chose-this"})
    first = planted.cookies["lab_session"]
    assert first != "attacker-chose-this" and not r.exists(session_key("attacker-chose-this"))
    again = anonymous.post("/api/auth/login", json=body, headers={"cookie": f"lab_session={first}"})
    second = again.cookies["lab_session"]
    assert second != first and not r.exists(session_key(first)) and r.exists(session_key(second))


def test_logout_and_log_out_everywhere(login):
    one, two = login("bob"), login("bob")
    listed = one.get("/api/auth/sessions").json()["sessions"]
    assert len(listed) >= 2 and sum(s["current"] for s in listed) == 1
    assert one.post("/api/auth/logout").status_code == 204
    assert one.get("/api/auth/me").status_code == 401
    three = login("bob")
    assert three.delete("/api/auth/sessions").json()["ended"] >= 2
    assert two.get("/api/auth/me").status_code == 401 and three.get("/api/auth/me").status_code == 401


def test_brute_force_is_locked_out_and_a_correct_password_does_not_unlock(anonymous, r, settings):
    victim = "joe"
    try:
        for _ in range(settings.login_max_failures_account):
            assert anonymous.post("/api/auth/login", json={"username": victim, "password": "guess"}).status_code == 401
        locked = anonymous.post("/api/auth/login", json={"username": victim, "password": PASSWORDS[victim]})
        assert locked.status_code == 429
        assert 0 < int(locked.headers["retry-after"]) <= settings.login_window_s
        assert locked.json()["error"]["code"] == "too_many_attempts"
        assert int(r.get(keys.login_attempts("account", victim))) == settings.login_max_failures_account
    finally:
        r.delete(keys.login_attempts("account", victim), keys.login_attempts("client", "127.0.0.1"))


def test_a_forged_x_forwarded_for_does_not_split_the_client_counter(anonymous, r):
    """The gateway is the edge: the login guard counts the address it sees, not one the client claims."""
    counter = keys.login_attempts("client", "127.0.0.1")
    forged = [f"203.0.113.{i}" for i in range(3)]
    before = int(r.get(counter) or 0)
    try:
        for address in forged:
            response = anonymous.post("/api/auth/login", json={"username": "nobody-here", "password": "x"},
                                      headers={"X-Forwarded-For": address})
            assert response.status_code == 401
        assert int(r.get(counter)) == before + len(forged)
        assert not any(r.exists(keys.login_attempts("client", address)) for address in forged)
    finally:
        r.delete(counter, keys.login_attempts("account", "nobody-here"))


def test_a_session_works_through_another_gateway_instance(login, lab):
    """Log in through the lab's gateway, use the session through a second gateway process."""
    alice = login("alice")
    proc, port = lab.start_beside("gateway", name="gateway-2")
    try:
        other = httpx.get(f"http://127.0.0.1:{port}/api/customers/CUS-000001",
                          cookies={"lab_session": alice.cookies["lab_session"]}, timeout=5)
        assert other.status_code == 200 and other.json()["id"] == "CUS-000001"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_session_survives_restarting_the_gateway_and_every_service(login, settings):
    import labkit

    alice = login("alice")
    for name in ("gateway", "customer", "policy", "claims"):
        labkit.restart(name, settings)
    me = alice.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["user"]["username"] == "alice"
    assert alice.get("/api/customers/CUS-000001").status_code == 200
