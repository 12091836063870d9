"""Lesson 04's read-out of what Redis lets a compromised service do (``what_redis_answers``), on the session
lab's server as the policy service's own Redis user."""

from __future__ import annotations

import pytest
import redis

from labkit.experiments.sessions import what_redis_answers
from services.core import keys


def test_what_redis_answers_tells_refused_from_allowed(lab):
    as_policy = lab.redis_client_as("policy")
    table = what_redis_answers({
        "write its own cached copy": lambda: as_policy.set(keys.cache_entity("policy", "POL-000001") + ":l04", "ok",
                                                           ex=5),
        "read a session": lambda: as_policy.hgetall(keys.session("0" * 64)),
    }).set_index("attempt")["Redis answers"]
    assert table["write its own cached copy"] == "allowed"
    assert table["read a session"].startswith("refused: ") and "permission" in table["read a session"].lower()


def test_an_error_that_is_not_about_permissions_is_raised(lab):
    nobody = redis.Redis(port=1, socket_connect_timeout=0.5)  # nothing listens on port 1: no answer at all
    with pytest.raises(redis.exceptions.ConnectionError):
        what_redis_answers({"ping a server that is not there": nobody.ping})
