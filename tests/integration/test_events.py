"""Lesson 02 on the running lab: every write's event, the claims audit trail, the worker, the subscribers,
and the outbox holding events while Redis is down."""

import time

import httpx

from labkit import procs, redis_server
from labkit.auth import ServiceAuth
from services.core import keys
from services.core.settings import Settings
from services.patterns.envelope import Event
from waiting import wait_for  # tests/waiting.py


def eventually(probe, what: str, deadline_s: float = 10.0):
    """Events are asynchronous: poll ``probe`` every 50 ms until it is truthy (returned), or fail naming
    ``what``."""
    return wait_for(probe, what, deadline_s=deadline_s, every_s=0.05)


def subject_events(r, topic, subject):
    return [Event.from_json(f["event"]) for _, f in r.xrange(keys.subject_history(topic, subject))]


def log_events_of(r, topic, subject, last=2000):
    return [Event.from_json(f["event"]) for _, f in r.xrevrange(keys.stream(topic), count=last)
            if f.get("subject") == subject][::-1]


def test_every_committed_claim_write_has_exactly_its_events_in_the_log(api, r, new_claim):
    claim = new_claim()
    for step in ("under_review", "approved"):
        assert api.post(f"/api/claims/{claim['id']}/status", json={"status": step}).status_code == 200
    assert api.post(f"/api/claims/{claim['id']}/status", json={"status": "paid", "note": "x"}).status_code == 200
    events = eventually(lambda: len(log_events_of(r, "claims", claim["id"])) == 4 and
                        log_events_of(r, "claims", claim["id"]), "the claim's 4 events in the log")
    assert [e.type for e in events] == ["claim.submitted"] + ["claim.status_changed"] * 3
    assert [e.data.get("to") for e in events[1:]] == ["under_review", "approved", "paid"]
    assert len({e.id for e in events}) == 4
    assert [e.id for e in subject_events(r, "claims", claim["id"])] == [e.id for e in events]


def test_a_refused_write_emits_nothing(api, r, new_claim):
    claim = new_claim()
    assert api.post(f"/api/claims/{claim['id']}/status", json={"status": "paid"}).status_code == 409
    eventually(lambda: subject_events(r, "claims", claim["id"]), "the claim's first event in its history")
    time.sleep(0.2)
    assert [e.type for e in subject_events(r, "claims", claim["id"])] == ["claim.submitted"]


def test_customer_and_policy_writes_emit_their_events(api, r, new_customer, new_policy):
    customer = new_customer()
    api.patch(f"/api/customers/{customer['id']}", json={"risk_tier": "high"})
    policy = new_policy(customer["id"])
    api.patch(f"/api/policies/{policy['id']}", json={"premium_cents": 99_999})
    api.post(f"/api/policies/{policy['id']}/cancel")
    api.delete(f"/api/policies/{policy['id']}")
    api.delete(f"/api/customers/{customer['id']}")
    customer_events = eventually(lambda: len(log_events_of(r, "customers", customer["id"])) == 3 and
                                 log_events_of(r, "customers", customer["id"]), "the customer's 3 events")
    assert [e.type for e in customer_events] == ["customer.created", "customer.updated", "customer.deleted"]
    assert customer_events[1].data["changes"] == {"risk_tier": "high"}
    policy_events = eventually(lambda: len(log_events_of(r, "policies", policy["id"])) == 4 and
                               log_events_of(r, "policies", policy["id"]), "the policy's 4 events")
    assert [e.type for e in policy_events] == ["policy.created", "policy.updated", "policy.cancelled",
                                               "policy.deleted"]


def test_history_endpoint_tells_who_did_what_when_in_order(api, new_policy, new_claim):
    claim = new_claim(new_policy()["id"], amount_cents=1_000)
    api.post(f"/api/claims/{claim['id']}/status", json={"status": "under_review", "note": "looking"})
    api.post(f"/api/claims/{claim['id']}/status", json={"status": "rejected", "note": "not covered"})
    history = eventually(lambda: (h := api.get(f"/api/claims/{claim['id']}/history").json())
                         and len(h["events"]) == 3 and h, "3 events in the claim's history")
    assert history["source"] == "redis stream"
    rows = history["events"]
    assert [(e["from"], e["to"]) for e in rows] == [(None, "submitted"), ("submitted", "under_review"),
                                                    ("under_review", "rejected")]
    assert [e["note"] for e in rows] == [None, "looking", "not covered"]
    assert all(e["actor"] for e in rows) and [e["time"] for e in rows] == sorted(e["time"] for e in rows)


def test_replay_of_a_claims_events_equals_the_system_of_record(api, new_claim):
    claims = [new_claim(amount_cents=2_000) for _ in range(3)]
    paths = [[], ["under_review", "approved", "paid"], ["under_review", "rejected"]]
    for claim, path in zip(claims, paths):
        for step in path:
            api.post(f"/api/claims/{claim['id']}/status", json={"status": step, "note": f"to {step}"})
    for claim, path in zip(claims, paths):
        record = api.get(f"/api/claims/{claim['id']}").json()
        history = eventually(lambda: (h := api.get(f"/api/claims/{claim['id']}/history").json())
                             and len(h["events"]) == len(path) + 1 and h, f"{len(path) + 1} events in the history")
        assert history["replayed"] == record


def test_history_of_an_unknown_claim_is_a_json_404(api):
    response = api.get("/api/claims/CLM-999999/history")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_worker_moves_a_risky_claim_to_review_with_its_score_and_leaves_a_small_one(api, r, new_policy, new_claim):
    policy = new_policy(coverage_cents=1_000_000)
    risky, small = new_claim(policy["id"], amount_cents=800_000), new_claim(policy["id"], amount_cents=10_000)
    reviewed = eventually(lambda: api.get(f"/api/claims/{risky['id']}").json()["status"] == "under_review",
                          "the worker to move the risky claim to under_review")
    assert reviewed, "the worker did not move the risky claim to under_review"
    assert api.get(f"/api/claims/{risky['id']}").json()["note"] == "auto-triage: risk score 0.80"
    assert eventually(lambda: r.hget(keys.risk_scores(), small["id"]), "the small claim's risk score") == "0.01"
    assert api.get(f"/api/claims/{small['id']}").json()["status"] == "submitted"
    actors = [e["actor"] for e in api.get(f"/api/claims/{risky['id']}/history").json()["events"]]
    assert actors[-1] == "service:worker"


def test_malformed_event_is_dead_lettered_and_the_worker_keeps_going(api, r, direct, new_policy, new_claim):
    dead_before = r.xlen(keys.dead_letter("claims"))
    r.xadd(keys.stream("claims"), {"event": "this is not an event"})
    claim = new_claim(new_policy(coverage_cents=100_000)["id"], amount_cents=90_000)
    assert eventually(lambda: r.xlen(keys.dead_letter("claims")) > dead_before, "a new dead-letter entry")
    entry = r.xrevrange(keys.dead_letter("claims"), count=1)[0][1]
    assert entry["event"] == "this is not an event" and entry["reason"].startswith("malformed event: not JSON")
    assert eventually(lambda: api.get(f"/api/claims/{claim['id']}").json()["status"] == "under_review",
                      "the good claim to reach under_review")
    # the worker acknowledges an entry after its API call returns: wait for the ack, do not race it
    consumer = eventually(lambda: (c := direct["worker"].get("/health").json()["consumer"])["pending"] == 0 and c,
                          "the worker to have no pending entries")
    assert consumer and consumer["dead_lettered"] >= 1


def test_worker_health_reports_lag_and_pending(direct):
    consumer = direct["worker"].get("/health").json()["consumer"]
    assert consumer["stream"] == keys.stream("claims") and consumer["group"] == "claims-worker"
    assert consumer["lag"] is not None and consumer["pending"] is not None


def test_policy_service_counts_claims_it_hears_about(api, new_policy, new_claim):
    policy = new_policy()
    for _ in range(3):
        new_claim(policy["id"], amount_cents=1_000)
    count = eventually(lambda: api.get(f"/api/policies/{policy['id']}/claims-count").json()["claims_count"] == 3,
                       "the policy's claims count to reach 3")
    assert count, api.get(f"/api/policies/{policy['id']}/claims-count").json()


def test_customer_is_notified_about_their_claims(api, new_customer, new_policy, new_claim):
    customer = new_customer()
    claim = new_claim(new_policy(customer["id"])["id"], amount_cents=1_000)
    api.post(f"/api/claims/{claim['id']}/status", json={"status": "under_review"})
    api.post(f"/api/claims/{claim['id']}/status", json={"status": "approved"})
    url = f"/api/customers/{customer['id']}/notifications"
    items = eventually(lambda: len(api.get(url).json()["items"]) == 3 and api.get(url).json()["items"],
                       "3 notifications for the customer")
    assert items and items[0]["message"] == f"claim {claim['id']} for your policy {claim['policy_id']} was approved"


def test_writes_commit_while_redis_is_down_and_their_events_arrive_after(settings, tmp_path):
    """A private Redis and a private customer service: stop Redis, write, start Redis, see the outbox drain."""
    private = Settings(_env_file=None, run_dir=tmp_path, redis_port=procs.free_port())
    server = redis_server.start(private, detached=False)
    overrides = dict(REDIS_URL=server.url, LAB_RUN_DIR=str(tmp_path),
                     LAB_INTERNAL_SECRET=settings.shared_secret(), LAB_REDIS_PORT=str(private.redis_port))
    proc = client = None
    body = {"name": "Offline Olga", "email": "olga@example.com", "date_of_birth": "1970-01-01"}
    try:
        proc, port = procs.start_service("customer", tmp_path / "customer.log", overrides)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=ServiceAuth(settings, "customer"),
                              timeout=10)
        redis_server.stop(private)
        made = [client.post("/customers", json=body) for _ in range(3)]
        assert [m.status_code for m in made] == [201, 201, 201]  # committed without Redis
        assert client.get(f"/customers/{made[0].json()['id']}").status_code == 200
        server = redis_server.start(private, detached=False)
        r = server.client()
        drained = eventually(lambda: r.xlen(keys.stream("customers")) == 3,
                             "the outbox to drain after Redis came back", deadline_s=15)
        assert drained, "the outbox did not drain after Redis came back"
        subjects = [f["subject"] for _, f in r.xrange(keys.stream("customers"))]
        assert subjects == [m.json()["id"] for m in made]
        assert client.get("/health").json()["status"] == "ok"
        resubscribed = eventually(lambda: (tmp_path / "customer.log").read_text().count("subscribed to") >= 2,
                                  "the claims subscriber to resubscribe after Redis came back")
        assert resubscribed, "the claims subscriber did not resubscribe after Redis came back"
    finally:
        if client is not None:
            client.close()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        redis_server.stop(private)
