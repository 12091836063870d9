"""Lost updates: every read says which version it saw (``ETag``), a write with ``If-Match`` applies only on
top of that version (else 412), and two identical claim decisions cannot both win.

Races are started together (a barrier) and the tests assert the property — exactly one winner per
version, nothing lost — never which request wins.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from labkit.auth import gateway_headers

FRESH = {"Cache-Control": "no-cache"}  # ask the service, not the gateway's short-lived copy


def version_of(response) -> int:
    tag = response.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"'), tag  # a strong tag
    return int(tag.strip('"'))


def run_together(count: int, call):
    """``call(i)`` in ``count`` threads released at the same moment; the results in order."""
    barrier = threading.Barrier(count)

    def one(i):
        barrier.wait()
        return call(i)
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture
def clients(settings):
    """One gateway client per concurrent caller (an httpx client is not shared between threads here)."""
    made = []

    def make(count: int) -> list[httpx.Client]:
        made.extend(httpx.Client(base_url=settings.url_of("gateway"), headers=gateway_headers(settings), timeout=30)
                    for _ in range(count))
        return made[-count:]
    yield make
    for client in made:
        client.close()


@pytest.mark.parametrize("kind, make", [("customers", "new_customer"), ("policies", "new_policy"),
                                        ("claims", "new_claim")])
def test_reads_and_writes_answer_the_rows_version_as_etag(api, direct, request, kind, make):
    entity = request.getfixturevalue(make)()
    first = api.get(f"/api/{kind}/{entity['id']}")
    assert first.status_code == 200 and version_of(first) == first.json()["version"] == entity["version"] == 1
    service = direct[{"customers": "customer", "policies": "policy", "claims": "claims"}[kind]]
    once, again = service.get(f"/{kind}/{entity['id']}"), service.get(f"/{kind}/{entity['id']}")
    assert again.headers["x-cache"] == "HIT" and version_of(again) == version_of(once) == 1  # the copy has it too


def test_every_write_bumps_the_version_and_answers_it(api, new_policy):
    policy = new_policy()
    patched = api.patch(f"/api/policies/{policy['id']}", json={"premium_cents": 91_000})
    assert version_of(patched) == patched.json()["version"] == 2
    cancelled = api.post(f"/api/policies/{policy['id']}/cancel")
    assert version_of(cancelled) == 3
    read = api.get(f"/api/policies/{policy['id']}", headers=FRESH)
    assert version_of(read) == 3 and read.json()["status"] == "cancelled"


def test_a_write_on_a_version_that_moved_on_is_a_412_and_changes_nothing(api, new_policy, new_customer):
    policy = new_policy()
    seen = version_of(api.get(f"/api/policies/{policy['id']}"))
    assert api.patch(f"/api/policies/{policy['id']}", json={"premium_cents": 1_111},
                     headers={"If-Match": f'"{seen}"'}).status_code == 200
    stale = api.patch(f"/api/policies/{policy['id']}", json={"premium_cents": 2_222},
                      headers={"If-Match": f'"{seen}"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "version_mismatch" and stale.json()["error"]["field"] == "If-Match"
    assert api.get(f"/api/policies/{policy['id']}", headers=FRESH).json()["premium_cents"] == 1_111
    for write in (lambda h: api.post(f"/api/policies/{policy['id']}/cancel", headers=h),
                  lambda h: api.delete(f"/api/policies/{policy['id']}", headers=h)):
        assert write({"If-Match": f'"{seen}"'}).status_code == 412
    assert api.get(f"/api/policies/{policy['id']}", headers=FRESH).json()["status"] == "active"
    customer = new_customer()
    assert api.patch(f"/api/customers/{customer['id']}", json={"name": "B"},
                     headers={"If-Match": '"7"'}).status_code == 412
    assert api.delete(f"/api/customers/{customer['id']}", headers={"If-Match": '"7"'}).status_code == 412
    assert api.get(f"/api/customers/{customer['id']}", headers=FRESH).json()["name"] == customer["name"]


def test_if_match_star_and_a_current_tag_are_honoured(api, new_policy):
    policy = new_policy()
    assert api.patch(f"/api/policies/{policy['id']}", json={"premium_cents": 5},
                     headers={"If-Match": "*"}).status_code == 200
    assert api.patch(f"/api/policies/{policy['id']}", json={"premium_cents": 6},
                     headers={"If-Match": '"2"'}).status_code == 200


@pytest.mark.parametrize("value", ["2", 'W/"1"', '"1", "2"', '"x"', "", '"99999999999999999999"'])
def test_a_malformed_if_match_is_refused_naming_the_header(api, new_policy, value):
    policy = new_policy()
    response = api.patch(f"/api/policies/{policy['id']}", json={"premium_cents": 5}, headers={"If-Match": value})
    assert response.status_code == 422 and response.json()["error"]["field"] == "If-Match", response.text
    assert api.get(f"/api/policies/{policy['id']}", headers=FRESH).json()["version"] == 1


def test_twenty_parallel_patches_on_one_version_have_exactly_one_winner(api, clients, new_policy):
    policy = new_policy()
    seen = version_of(api.get(f"/api/policies/{policy['id']}", headers=FRESH))
    callers = clients(20)
    answers = run_together(20, lambda i: callers[i].patch(
        f"/api/policies/{policy['id']}", json={"premium_cents": 10_000 + i}, headers={"If-Match": f'"{seen}"'}))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [412] * 19, statuses
    winner = next(i for i, a in enumerate(answers) if a.status_code == 200)
    final = api.get(f"/api/policies/{policy['id']}", headers=FRESH).json()
    assert final["premium_cents"] == 10_000 + winner and final["version"] == seen + 1


def test_read_modify_write_with_if_match_loses_no_update(api, clients, new_policy):
    """20 clients each add 1 to the premium; a 412 means "read again and reapply". All 20 additions land."""
    policy = new_policy(premium_cents=1_000)
    callers = clients(20)

    def add_one(i: int) -> int:
        for attempt in range(1, 200):
            read = callers[i].get(f"/api/policies/{policy['id']}", headers=FRESH)
            current = read.json()
            written = callers[i].patch(f"/api/policies/{policy['id']}",
                                       json={"premium_cents": current["premium_cents"] + 1},
                                       headers={"If-Match": read.headers["etag"]})
            if written.status_code == 200:
                return attempt
            assert written.status_code == 412, written.text
        raise AssertionError("no turn in 200 attempts")
    attempts = run_together(20, add_one)
    final = api.get(f"/api/policies/{policy['id']}", headers=FRESH).json()
    assert final["premium_cents"] == 1_000 + 20 and final["version"] == 1 + 20
    assert sum(attempts) >= 20


def test_two_identical_claim_decisions_have_exactly_one_winner_and_lose_no_note(api, clients, new_claim):
    callers = clients(2)
    for _round in range(5):  # the overlap differs from round to round; the property must hold in every one
        claim = new_claim()
        answers = run_together(2, lambda i: callers[i].post(
            f"/api/claims/{claim['id']}/status", json={"status": "under_review", "note": f"adjuster {i}"}))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 409], [a.text for a in answers]
        loser = next(a for a in answers if a.status_code == 409).json()["error"]
        assert loser["code"] in ("already_in_status", "concurrent_change") and loser["field"] == "status"
        winner = next(a for a in answers if a.status_code == 200).json()
        stored = api.get(f"/api/claims/{claim['id']}", headers=FRESH).json()
        assert stored["note"] == winner["note"] and stored["version"] == 2
        history = api.get(f"/api/claims/{claim['id']}/history").json()
        changes = [e for e in history["events"] if e["type"] == "claim.status_changed"]
        assert len(changes) <= 1 and all(e["note"] == winner["note"] for e in changes)


def test_asking_for_the_status_a_claim_already_has_says_so(api, new_claim):
    claim = new_claim()
    first = api.post(f"/api/claims/{claim['id']}/status", json={"status": "under_review", "note": "first"})
    assert first.status_code == 200
    again = api.post(f"/api/claims/{claim['id']}/status", json={"status": "under_review", "note": "second"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_in_status"
    assert api.get(f"/api/claims/{claim['id']}", headers=FRESH).json()["note"] == "first"


def test_a_claim_decision_on_a_version_that_moved_on_is_a_412(api, new_claim):
    claim = new_claim()
    assert api.post(f"/api/claims/{claim['id']}/status", json={"status": "under_review"},
                    headers={"If-Match": '"1"'}).status_code == 200
    late = api.post(f"/api/claims/{claim['id']}/status", json={"status": "rejected"}, headers={"If-Match": '"1"'})
    assert late.status_code == 412 and late.json()["error"]["code"] == "version_mismatch"
    current = api.get(f"/api/claims/{claim['id']}", headers=FRESH)
    assert current.json()["status"] == "under_review" and version_of(current) == 2
