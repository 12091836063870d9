"""The same services, unchanged, on a Redis Cluster: the core workflow, caching, events and sessions.

Most tests here are the one-server lab's own, imported and run again with this package's fixtures (the
cluster lab); the ones written here check what only a cluster has.
"""

from __future__ import annotations

from labkit import cluster
from services.core import acl

# The one-server tests, run again on the cluster (pytest collects what a test module imports).
from integration.test_auth_and_access import (  # noqa: F401
    login, test_customer_sees_only_her_own_records, test_login_rotates_a_planted_session_id,
    test_the_session_lives_in_redis_with_an_idle_ttl)
from integration.test_caching import (  # noqa: F401
    test_a_new_claim_drops_what_its_policy_and_customer_tagged_and_announces_it,
    test_a_write_bumps_the_entitys_generation_so_slow_fills_are_refused,
    test_an_update_deletes_the_copy_and_the_next_read_is_fresh, test_creating_an_entity_clears_a_cached_does_not_exist,
    test_overview_is_invalidated_when_a_claim_changes_in_another_service, test_second_read_is_a_cache_hit_with_the_same_body)
from integration.test_domain_services import (  # noqa: F401
    test_claim_moves_through_its_lifecycle_and_refuses_skipping_steps,
    test_customer_policy_claim_workflow_reads_back_through_the_gateway)
from integration.test_events import (  # noqa: F401
    test_every_committed_claim_write_has_exactly_its_events_in_the_log,
    test_worker_moves_a_risky_claim_to_review_with_its_score_and_leaves_a_small_one)


def test_the_cluster_has_three_primaries_each_with_a_replica_and_all_slots_served(lab, settings):
    nodes = cluster.describe(lab.redis.node_list(), acl.password(settings, "default"))
    primaries = [n for n in nodes if n["role"] == "primary"]
    replicas = [n for n in nodes if n["role"] == "replica"]
    assert len(primaries) == 3 and len(replicas) == 3
    assert sorted(n["follows"] for n in replicas) == sorted(f"127.0.0.1:{p['port']}" for p in primaries)
    info = lab.redis.client().cluster_info()
    assert info["cluster_state"] == "ok" and int(info["cluster_slots_assigned"]) == cluster.SLOTS


def test_the_labs_keys_spread_over_the_primaries(lab, settings, api):
    """Not one hot node: the seeded data's cached copies, sessions and streams land on every primary."""
    for number in range(1, 21):
        api.get(f"/api/customers/CUS-{number:06d}")
    nodes = cluster.describe(lab.redis.node_list(), acl.password(settings, "default"))
    assert all(n["keys"] > 0 for n in nodes if n["role"] == "primary"), nodes
