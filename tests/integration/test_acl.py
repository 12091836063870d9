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
        policy.get(keys.session("any-session-id"))
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.xrange(keys.stream("claims"), count=1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.keys("*")  # -@dangerous


def test_the_gateway_reads_sessions_and_the_worker_reads_the_claims_stream(lab):
    assert as_user(lab, "gateway").exists(keys.session("no-such-session")) == 0
    assert as_user(lab, "worker").xlen(keys.stream("claims")) >= 0


def test_running_services_connect_as_their_own_user(lab):
    names = {c.get("user") for c in lab.redis_client().client_list()}
    assert {"lab-policy", "lab-claims", "lab-customer", "lab-gateway", "lab-worker"} <= names


def test_the_default_user_needs_the_admin_password(lab):
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=lab.settings.redis_port).ping()
