"""Lesson 01 on the running lab: cache-aside reads, invalidation across services, batch reads, counters,
and reads that still answer when Redis is unreachable."""

import json

import httpx
import pytest

from labkit import procs
from labkit.auth import ServiceAuth
from services.core import keys
from waiting import wait_for  # tests/waiting.py


def test_second_read_is_a_cache_hit_with_the_same_body(api, r, new_policy):
    policy = new_policy()
    first = api.get(f"/api/policies/{policy['id']}")
    second = api.get(f"/api/policies/{policy['id']}")
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.json() == second.json() == policy
    assert json.loads(r.get(keys.cache_entity("policy", policy["id"]))) == policy


@pytest.mark.parametrize("kind,path", [("customer", "customers"), ("claim", "claims")])
def test_customer_and_claim_reads_are_cached_too(api, r, new_customer, new_claim, kind, path):
    entity_id = new_claim()["id"] if kind == "claim" else new_customer()["id"]
    assert api.get(f"/api/{path}/{entity_id}").headers["x-cache"] == "MISS"
    assert api.get(f"/api/{path}/{entity_id}").headers["x-cache"] == "HIT"
    assert r.pttl(keys.cache_entity(kind, entity_id)) > 0  # every copy expires


def test_cached_copy_is_compact_json_with_a_jittered_ttl(api, r, settings, new_customer):
    customer = new_customer()
    api.get(f"/api/customers/{customer['id']}")
    raw = r.get(keys.cache_entity("customer", customer["id"]))
    assert ", " not in raw and ": " not in raw
    ttl = settings.cache_ttl_per_kind["customer"]
    assert ttl * (1 - settings.cache_jitter) * 1000 - 1000 <= r.pttl(keys.cache_entity("customer", customer["id"])) \
        <= ttl * (1 + settings.cache_jitter) * 1000


def test_an_update_deletes_the_copy_and_the_next_read_is_fresh(api, r, new_policy):
    policy = new_policy()
    api.get(f"/api/policies/{policy['id']}")
    changed = api.patch(f"/api/policies/{policy['id']}", json={"premium_cents": 123_456})
    assert changed.status_code == 200
    assert not r.exists(keys.cache_entity("policy", policy["id"]))
    after = api.get(f"/api/policies/{policy['id']}")
    assert after.headers["x-cache"] == "MISS" and after.json()["premium_cents"] == 123_456


def test_a_write_announces_the_invalidation_on_pub_sub(api, r, new_customer):
    customer = new_customer()
    pubsub = r.pubsub()
    pubsub.subscribe(keys.channel("invalidations"))
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    api.patch(f"/api/customers/{customer['id']}", json={"risk_tier": "high"})
    messages = []
    for _ in range(20):
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            messages.append(json.loads(message["data"]))
        if any(m["subject"] == customer["id"] for m in messages):
            break
    pubsub.close()
    event = next(m for m in messages if m["subject"] == customer["id"])
    assert event["type"] == "cache.invalidated" and event["source"].startswith("customer/")
    assert keys.cache_entity("customer", customer["id"]) in event["data"]["keys"]


def test_a_new_claim_drops_what_its_policy_and_customer_tagged_and_announces_it(api, r, new_policy):
    """The claims service's after-write, through the gateway: the customer's overview (built by the customer
    service, tagged with the customer and the policy) is deleted and unlisted from both tag sets, the claim's
    generation moved, and the announcement names the parents and the key deleted."""
    policy = new_policy()
    overview = keys.cache_entity("overview", policy["customer_id"])
    api.get(f"/api/customers/{policy['customer_id']}/overview", headers={"Cache-Control": "no-cache"})
    assert overview in r.smembers(keys.cache_tags(policy["id"])) and r.exists(overview)
    pubsub = r.pubsub()
    pubsub.subscribe(keys.channel("invalidations"))
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    response = api.post("/api/claims", json={"policy_id": policy["id"], "amount_cents": 1_000,
                                             "description": "after-write check"})
    assert response.status_code == 201, response.text
    claim = response.json()
    announced = None
    for _ in range(40):
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message" and json.loads(message["data"])["subject"] == claim["id"]:
            announced = json.loads(message["data"])
            break
    pubsub.close()
    assert not r.exists(overview)
    assert overview not in r.smembers(keys.cache_tags(policy["id"]))
    assert overview not in r.smembers(keys.cache_tags(policy["customer_id"]))
    assert r.get(keys.cache_generation("claim", claim["id"])) is not None  # delete_with_token: the token moved
    assert announced is not None and announced["type"] == "cache.invalidated"
    assert announced["data"]["parents"] == [policy["id"], policy["customer_id"]]
    assert overview in announced["data"]["keys"]


def test_a_customers_policy_list_is_cached_and_a_new_policy_invalidates_it(api, new_customer, new_policy):
    customer = new_customer()
    new_policy(customer["id"])
    params = {"customer_id": customer["id"], "limit": 10}
    assert api.get("/api/policies", params=params).headers["x-cache"] == "MISS"
    cached = api.get("/api/policies", params=params)
    assert cached.headers["x-cache"] == "HIT" and cached.json()["total"] == 1
    new_policy(customer["id"])
    fresh = api.get("/api/policies", params=params)
    assert fresh.headers["x-cache"] == "MISS" and fresh.json()["total"] == 2


def test_overview_composes_three_services_and_is_cached_as_a_whole(api, new_claim):
    claim = new_claim()
    path = f"/api/customers/{claim['customer_id']}/overview"
    first, second = api.get(path), api.get(path)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    overview = second.json()
    assert overview["customer"]["id"] == claim["customer_id"]
    assert [p["id"] for p in overview["policies"]] == [claim["policy_id"]]
    assert [c["id"] for c in overview["open_claims"]] == [claim["id"]]


def test_overview_is_invalidated_when_a_claim_changes_in_another_service(api, r, new_claim):
    claim = new_claim()
    path = f"/api/customers/{claim['customer_id']}/overview"
    api.get(path)
    assert keys.cache_entity("overview", claim["customer_id"]) in r.smembers(keys.cache_tags(claim["id"]))
    for step in ("under_review", "rejected"):
        assert api.post(f"/api/claims/{claim['id']}/status", json={"status": step}).status_code == 200
    after = api.get(path)
    assert after.headers["x-cache"] == "MISS" and after.json()["open_claims"] == []


def test_overview_is_invalidated_by_a_policy_change_and_a_new_claim(api, new_policy, new_claim):
    policy = new_policy()
    path = f"/api/customers/{policy['customer_id']}/overview"
    api.get(path)
    api.post(f"/api/policies/{policy['id']}/cancel")
    after_cancel = api.get(path)
    assert after_cancel.headers["x-cache"] == "MISS" and after_cancel.json()["policies"][0]["status"] == "cancelled"
    other = new_policy(policy["customer_id"])
    assert api.get(path).headers["x-cache"] == "MISS"
    api.get(path)
    claim = new_claim(other["id"])
    after_claim = api.get(path)
    assert after_claim.headers["x-cache"] == "MISS" and [c["id"] for c in after_claim.json()["open_claims"]] == \
        [claim["id"]]


def test_unknown_id_is_cached_briefly_so_the_flood_stops_at_redis(api, direct, r, settings):
    missing = "CLM-987654"
    before = direct["claims"].get("/stats").json()["sor_loads"]
    answers = [api.get(f"/api/claims/{missing}") for _ in range(5)]
    assert [a.status_code for a in answers] == [404] * 5
    assert [a.json()["error"]["code"] for a in answers] == ["not_found"] * 5
    assert r.get(keys.cache_entity("claim", missing)) == "null"
    assert 0 < r.pttl(keys.cache_entity("claim", missing)) <= settings.cache_negative_ttl_s * 1000
    assert direct["claims"].get("/stats").json()["sor_loads"] - before == 1


def test_creating_an_entity_clears_a_cached_does_not_exist(api, r, new_customer):
    probe = new_customer()["id"]
    next_id = f"CUS-{int(probe.split('-')[1]) + 1:06d}"
    assert api.get(f"/api/customers/{next_id}").status_code == 404  # now cached as "does not exist"
    assert r.get(keys.cache_entity("customer", next_id)) == "null"
    created = new_customer()
    assert created["id"] == next_id
    assert api.get(f"/api/customers/{next_id}").status_code == 200


def test_batch_read_reports_each_bad_id_on_its_own(api, new_policy):
    good = new_policy()["id"]
    response = api.get("/api/policies/batch", params={"ids": f"{good},POL-999998,nonsense,CUS-000001"})
    assert response.status_code == 200
    body = response.json()
    assert list(body["items"]) == [good] and body["items"][good]["id"] == good
    assert body["errors"]["POL-999998"]["code"] == "not_found"
    assert body["errors"]["nonsense"]["code"] == "invalid_id"
    assert body["errors"]["CUS-000001"]["code"] == "invalid_id"
    again = api.get("/api/policies/batch", params={"ids": f"{good},POL-999998"}).json()
    assert again["cache"] == {"hits": 2, "misses": 0}


@pytest.mark.parametrize("ids", ["", ",".join(f"CLM-{i:06d}" for i in range(1, 102))])
def test_batch_read_needs_one_to_a_hundred_ids(api, ids):
    response = api.get("/api/claims/batch", params={"ids": ids})
    assert response.status_code == 422 and response.json()["error"]["field"] == "ids"


def test_a_customer_sees_only_their_own_records_in_a_batch(anonymous):
    assert anonymous.post("/api/auth/login", json={"username": "alice", "password": "alice-lab-pw"}).status_code == 200
    body = anonymous.get("/api/customers/batch", params={"ids": "CUS-000001,CUS-000002"}).json()
    assert list(body["items"]) == ["CUS-000001"] and body["errors"]["CUS-000002"]["code"] == "not_found"


def test_stats_count_hits_misses_and_sor_loads(direct, new_customer):
    customer = new_customer()
    client = direct["customer"]
    before = client.get("/stats").json()
    for _ in range(3):
        client.get(f"/customers/{customer['id']}")
    after = client.get("/stats").json()
    assert after["misses"] - before["misses"] == 1 and after["hits"] - before["hits"] == 2
    assert after["sor_loads"] - before["sor_loads"] == 1
    assert 0 <= after["hit_rate"] <= 1 and after["cache_enabled"] is True
    assert after["by_kind"]["customer"]["hits"] >= 2


def test_metrics_are_prometheus_text(direct, new_policy):
    policy = new_policy()
    direct["policy"].get(f"/policies/{policy['id']}")
    response = direct["policy"].get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert "# TYPE lab_cache_hits_total counter" in lines
    assert any(line.startswith('lab_cache_misses_total{kind="policy",service="policy"}') for line in lines)
    assert any(line.startswith('lab_sor_queries_total{service="policy"}') for line in lines)


def _spawn_customer(tmp_path, settings, **env_overrides):
    overrides = dict(LAB_RUN_DIR=str(settings.run_dir), LAB_INTERNAL_SECRET=settings.shared_secret(), **env_overrides)
    proc, port = procs.start_service("customer", tmp_path / "customer.log", overrides)
    return proc, httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=ServiceAuth(settings, "customer"), timeout=10)


def test_reads_fail_open_to_the_system_of_record_when_redis_is_unreachable(settings, tmp_path):
    """A second customer instance on the same SQLite file, pointed at a Redis port nobody listens on."""
    proc, client = _spawn_customer(tmp_path, settings, REDIS_URL=f"redis://127.0.0.1:{procs.free_port()}/0")
    try:
        assert client.get("/health").json()["status"] == "degraded"
        for _ in range(2):
            response = client.get("/customers/CUS-000001")
            assert response.status_code == 200 and response.headers["x-cache"] == "MISS"
            assert response.json()["id"] == "CUS-000001"
        assert client.get("/customers/CUS-999999").status_code == 404
        batch = client.get("/customers/batch", params={"ids": "CUS-000001,CUS-999999"}).json()
        assert list(batch["items"]) == ["CUS-000001"] and batch["errors"]["CUS-999999"]["code"] == "not_found"
        write = client.patch("/customers/CUS-000003", json={"name": "Still Committed"})
        assert write.status_code == 200 and write.json()["name"] == "Still Committed"
        stats = client.get("/stats").json()
        assert stats["redis_failures"] >= 3 and stats["hits"] == 0
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_caching_can_be_switched_off(settings, tmp_path, lab):
    proc, client = _spawn_customer(tmp_path, settings, REDIS_URL=lab.redis.url, LAB_CACHE_ENABLED="false")
    try:
        answers = [client.get("/customers/CUS-000002") for _ in range(3)]
        assert [a.headers["x-cache"] for a in answers] == ["MISS"] * 3
        stats = client.get("/stats").json()
        assert stats["cache_enabled"] is False and stats["sor_loads"] == 3 and stats["hits"] == 0
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_a_write_bumps_the_entitys_generation_so_slow_fills_are_refused(api, r, new_policy):
    """Lesson 06's token is the services' default coherence: every write INCRs the entity's generation."""
    policy = new_policy()
    generation = keys.cache_generation("policy", policy["id"])
    api.get(f"/api/policies/{policy['id']}")
    before = int(r.get(generation) or 0)
    assert api.patch(f"/api/policies/{policy['id']}", json={"premium_cents": 12_345}).status_code == 200
    assert int(r.get(generation)) == before + 1
    assert api.get(f"/api/policies/{policy['id']}").json()["premium_cents"] == 12_345


@pytest.fixture
def customer_under(settings, tmp_path, lab, direct):
    """A second customer instance (same SQLite file, same Redis) running one coherence strategy, and a fresh
    customer read through it once, so a copy exists. The customer is created at the lab's own instance (the
    lab's strategy): created through the gateway, it could reach the new instance, whose ``event_driven``
    announcement of the create may arrive after the read below and delete the copy it just made."""
    started = []

    def start(strategy: str):
        proc, client = _spawn_customer(tmp_path, settings, REDIS_URL=lab.redis.url, LAB_CACHE_COHERENCE=strategy)
        started.append((proc, client))
        created = direct["customer"].post("/customers", json={
            "name": "Test Person", "email": "test@example.com", "date_of_birth": "1980-05-05", "risk_tier": "medium"})
        assert created.status_code == 201, created.text
        customer = created.json()
        assert client.get(f"/customers/{customer['id']}").status_code == 200  # now there is a copy
        return client, customer["id"]
    yield start
    for proc, client in started:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_write_through_sets_the_committed_row_as_the_copy(customer_under, r):
    client, customer_id = customer_under("write_through")
    assert client.patch(f"/customers/{customer_id}", json={"name": "Written Through"}).status_code == 200
    assert json.loads(r.get(keys.cache_entity("customer", customer_id)))["name"] == "Written Through"
    after = client.get(f"/customers/{customer_id}")
    assert after.headers["x-cache"] == "HIT" and after.json()["name"] == "Written Through"


def test_versioned_keys_read_the_current_versions_copy_and_a_write_moves_the_version(customer_under, r):
    client, customer_id = customer_under("versioned_keys")
    version = r.get(keys.cache_generation("customer", customer_id)) or 0
    old_copy = keys.cache_versioned("customer", customer_id, version)
    assert r.exists(old_copy) and not r.exists(keys.cache_entity("customer", customer_id))
    assert client.patch(f"/customers/{customer_id}", json={"name": "Version Two"}).status_code == 200
    new_version = int(r.get(keys.cache_generation("customer", customer_id)))
    assert new_version == int(version) + 1 and r.exists(old_copy), "the old copy is left to expire, never read"
    after = client.get(f"/customers/{customer_id}")
    assert after.headers["x-cache"] == "MISS" and after.json()["name"] == "Version Two"
    assert r.exists(keys.cache_versioned("customer", customer_id, new_version))


def test_event_driven_writer_only_announces_and_the_copy_goes_when_the_event_arrives(customer_under, r):
    client, customer_id = customer_under("event_driven")
    copy = keys.cache_entity("customer", customer_id)
    assert r.exists(copy)
    pubsub = r.pubsub()
    pubsub.subscribe(keys.channel("invalidations"))
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    assert client.patch(f"/customers/{customer_id}", json={"name": "Announced"}).status_code == 200
    announced = None
    for _ in range(50):
        message = pubsub.get_message(timeout=0.1)
        if message and json.loads(message["data"])["subject"] == customer_id:
            announced = json.loads(message["data"])
            break
    pubsub.close()
    assert announced and announced["data"]["strategy"] == "event_driven" and announced["data"]["keys"] == []
    wait_for(lambda: not r.exists(copy), "the instance's subscriber to delete the copy", 5, 0.02)
    assert client.get(f"/customers/{customer_id}").json()["name"] == "Announced"


def test_event_driven_every_instance_deletes_on_the_announcement(customer_under, r):
    """Under ``event_driven`` the writer deletes nothing; each instance's subscriber (lesson 06's
    ``coherence.invalidate_on_events``) deletes on the event — both instances count an invalidation."""
    writer, customer_id = customer_under("event_driven")
    other, _ = customer_under("event_driven")

    def invalidations(client) -> int:
        return client.get("/stats").json()["by_kind"].get("customer", {}).get("invalidations", 0)

    before = {"writer": invalidations(writer), "other": invalidations(other)}
    names = iter(range(1000))

    def both_counted() -> bool:  # an instance that had not subscribed yet hears the next write
        assert writer.patch(f"/customers/{customer_id}", json={"name": f"Heard {next(names)}"}).status_code == 200
        return all(invalidations(c) > before[n] for n, c in (("writer", writer), ("other", other)))
    wait_for(both_counted, "both instances to delete on the announcement", 20, 0.2)
    wait_for(lambda: not r.exists(keys.cache_entity("customer", customer_id)), "the copy to be gone", 5, 0.02)
