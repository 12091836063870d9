"""Which Redis user may touch which key: every key the schema can build, asked of the real server.

``ACL DRYRUN <user> <command> <key>`` is the server's own answer to "would this be allowed?", so the table
below is checked against the rules Valkey actually enforces, not against our reading of glob patterns.
Each builder in ``services/core/keys.py`` is called with ordinary arguments and with crafted ones (braces,
``*``, ``:``, another key's name) — an attacker chooses names, so a rule must hold for every name.
"""

from __future__ import annotations

import inspect

import pytest
import redis
from hypothesis import HealthCheck, given, settings, strategies as st

from services.core import acl, keys
from services.core.settings import SERVICE_NAMES

USERS = tuple(acl.username(s) for s in SERVICE_NAMES)
EVERYONE = frozenset(SERVICE_NAMES)
NOBODY = frozenset()
TOPIC_WRITERS = {"customers": {"customer"}, "policies": {"policy"}, "claims": {"claims", "worker"}}
CRAFTED = ["POL-000001", "x{lab:stream:policies}", "{lab:stream:claims}", "*", "a:b", "}{", "lab:session:x",
           "x}*{", "[a-z]?"]

# builder -> (function of its arguments -> (who may read, who may write)), with the arguments to try.
SERVICES = ("customer", "policy", "claims", "gateway", "worker")
TOPICS = tuple(TOPIC_WRITERS)
gateway_only = (lambda *_: ({"gateway"}, {"gateway"}))
everyone = (lambda *_: (EVERYONE, EVERYONE))
nobody = (lambda *_: (NOBODY, NOBODY))


def by_topic(topic, *_):
    return TOPIC_WRITERS[topic], TOPIC_WRITERS[topic]


TABLE = {
    "cache_entity": (everyone, [("policy", c) for c in CRAFTED]),
    "cache_list": (everyone, [("policies", c) for c in CRAFTED]),
    "cache_list_page": (everyone, [("policies", c, 20, 0) for c in CRAFTED]),
    "cache_tags": (everyone, [(c,) for c in CRAFTED]),
    "cache_generation": (everyone, [("policy", c) for c in CRAFTED]),
    "cache_versioned": (everyone, [("policy", c, 7) for c in CRAFTED]),
    "cache_lock": (everyone, [("policy", c) for c in CRAFTED]),
    "registry_instance": (lambda service, *_: (EVERYONE, {service}), [(s, c) for s in SERVICES for c in CRAFTED]),
    "registry_index": (lambda service: (EVERYONE, {service}), [(s,) for s in SERVICES]),
    "rate_limit": (gateway_only, [(c,) for c in CRAFTED]),
    "session": (gateway_only, [(c,) for c in CRAFTED]),
    "user_sessions": (gateway_only, [(c,) for c in CRAFTED]),
    "login_attempts": (gateway_only, [(scope, c) for scope in ("account", "client") for c in CRAFTED]),
    "stream": (by_topic, [(t,) for t in TOPICS]),
    "stats": (lambda service, *_: ({service}, {service}), [(s, c) for s in SERVICES for c in CRAFTED]),
    "warmup": (nobody, [(c,) for c in CRAFTED]),
    "exercise": (nobody, [("04", c) for c in CRAFTED]),
    "subject_history": (by_topic, [(t, c) for t in TOPICS for c in CRAFTED]),
    "published": (by_topic, [(t, c) for t in TOPICS for c in CRAFTED]),
    "dead_letter": (by_topic, [(t,) for t in TOPICS]),
    "processed": (lambda *_: ({"worker"}, {"worker"}), [("claims-worker", c) for c in CRAFTED]),
    "risk_scores": (lambda: ({"worker"}, {"worker"}), [()]),
}
#: Not keys: channels and prefixes (checked through the keys built on them above).
NOT_KEYS = {"cache_prefix", "registry_prefix", "registry_channel", "channel", "_topic_tag"}


@pytest.fixture(scope="module")
def admin(lab):
    if not lab.redis.managed:
        pytest.skip("ACL users are created only on the server labkit starts")
    client = redis.Redis.from_url(lab.redis.url, decode_responses=True)
    yield client
    client.close()


def may(admin, service: str, *command) -> bool:
    """The server's verdict: may ``lab-<service>`` run this command (``ACL DRYRUN``)?"""
    try:
        return admin.execute_command("ACL", "DRYRUN", acl.username(service), *command) == "OK"
    except redis.ResponseError:
        return False


def who_may(admin, key: str) -> tuple[set, set]:
    readers = {s for s in SERVICE_NAMES if may(admin, s, "GET", key)}
    writers = {s for s in SERVICE_NAMES if may(admin, s, "SET", key, "v")}
    return readers, writers


def test_the_table_covers_every_key_the_schema_can_build():
    builders = {name for name, f in inspect.getmembers(keys, inspect.isfunction) if f.__module__ == keys.__name__}
    assert builders - NOT_KEYS == set(TABLE), "a new key builder needs its row in TABLE (who may touch it)"


@pytest.mark.parametrize("builder", sorted(TABLE))
def test_each_key_is_reachable_only_by_its_owners(admin, builder):
    expect, arguments = TABLE[builder]
    wrong = []
    for args in arguments:
        key = getattr(keys, builder)(*args)
        readers, writers = expect(*args)
        found = who_may(admin, key)
        if found != (set(readers), set(writers)):
            wrong.append((key, "read", sorted(found[0]), "write", sorted(found[1])))
    assert not wrong, wrong


def test_the_attack_from_the_issue_is_refused(admin):
    """``lab:*{lab:stream:policies}*`` used to match this: lab-policy could write a session with system roles."""
    crafted = keys.session("x{lab:stream:policies}")
    assert not may(admin, "policy", "HSET", crafted, "roles", "system")
    assert not may(admin, "policy", "SCAN", "0", "MATCH", keys.session("*"))
    assert may(admin, "gateway", "HSET", crafted, "roles", "system")  # the gateway's own kind of key


SESSION_LIKE = [keys.session, keys.user_sessions, keys.rate_limit, lambda who: keys.login_attempts("account", who)]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(name=st.text(alphabet=st.sampled_from("{}*?[]:ab-lab:stream:policiesclaimscustomers\\"), max_size=40),
       which=st.integers(0, len(SESSION_LIKE) - 1))
def test_no_crafted_name_lets_another_service_touch_a_session_like_key(admin, name, which):
    key = SESSION_LIKE[which](name)
    for service in SERVICE_NAMES:
        if service != "gateway":
            assert not may(admin, service, "GET", key), (service, key)
            assert not may(admin, service, "SET", key, "v"), (service, key)
