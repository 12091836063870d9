"""Least privilege in Redis: each service is its own ACL user and can touch only its own keys."""

import pytest
import redis

from services.core import acl, keys


@pytest.fixture(autouse=True)
def _only_with_the_labs_own_server(lab):
    if not lab.redis.managed:
        pytest.skip("ACL users are created only on the server labkit starts (see `labkit acl` for REDIS_URL)")


def as_user(lab, service):
    settings = lab.settings.model_copy(update={"redis_url": lab.redis.url})
    return redis.Redis.from_url(acl.service_url(settings, service), decode_responses=True)


def test_the_policy_service_cannot_read_sessions_or_the_claims_stream(lab):
    policy = as_user(lab, "policy")
    policy.set(keys.cache_entity("policy", "POL-000001") + ":acl-test", "ok", ex=5)  # its own kind of key: fine
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.get(keys.session("0" * 64))
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.xrange(keys.stream("claims"), count=1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.keys("*")  # -@dangerous


def test_the_gateway_reads_sessions_and_the_worker_reads_the_claims_stream(lab):
    assert as_user(lab, "gateway").exists(keys.session("0" * 64)) == 0
    assert as_user(lab, "worker").xlen(keys.stream("claims")) >= 0


def test_running_services_connect_as_their_own_user(lab):
    names = {c.get("user") for c in lab.redis_client().client_list()}
    assert {"lab-policy", "lab-claims", "lab-customer", "lab-gateway", "lab-worker"} <= names


def test_the_default_user_needs_the_admin_password(lab):
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=lab.settings.redis_port).ping()


def test_a_compromised_policy_service_can_neither_list_nor_read_nor_forge_a_session(lab, api):
    """The attack from the issue: as lab-policy, list the session keys, read one, write one with system roles."""
    policy = as_user(lab, "policy")
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.scan(0, match=keys.session("*"))
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.randomkey()
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.get(keys.session("0" * 64))
    for crafted in ("x{lab:stream:policies}", "{lab:stream:policies}", "a" * 43):
        with pytest.raises(redis.exceptions.NoPermissionError):
            policy.hset(keys.session(crafted), mapping={"user_id": "mallory", "roles": "system"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.sadd(keys.user_sessions("u-alice"), "0" * 64)


def test_a_service_may_register_only_under_its_own_name(lab):
    """A fake instance under another service's name would receive that service's traffic."""
    policy = as_user(lab, "policy")
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.set(keys.registry_instance("claims", "claims-6666-evil"), "{}", px=3000)
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.zadd(keys.registry_index("claims"), {"claims-6666-evil": 9e9})
    assert policy.zrange(keys.registry_index("claims"), 0, -1)  # reading the registry is fine: peers need it
