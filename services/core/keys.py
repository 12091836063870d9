"""The key schema: every Redis key and channel the lab uses is built here and nowhere else.

Why one module: a learner can read the whole keyspace on one screen, an ACL rule can be written from it,
and a typo cannot create a second, silently different key. Everything starts with ``lab:``.

Keys that are used together in one multi-key command, transaction or Lua script share a hash tag
(the part in ``{...}``) so the same code runs unchanged on Redis Cluster.
"""

from __future__ import annotations

PREFIX = "lab"


def cache_entity(kind: str, entity_id: str) -> str:
    """A cached copy of one entity: ``lab:cache:policy:{POL-000042}``."""
    return f"{PREFIX}:cache:{kind}:{{{entity_id}}}"


def cache_prefix(kind: str | None = None) -> str:
    """The prefix of every cached copy (of one kind), for SCAN and CLIENT TRACKING BCAST."""
    return f"{PREFIX}:cache:{kind}:" if kind else f"{PREFIX}:cache:"


def cache_list(kind: str, owner_id: str) -> str:
    """A cached list that belongs to one entity, e.g. a customer's policies."""
    return f"{PREFIX}:cache:{kind}:{{{owner_id}}}:list"


def registry_instance(service: str, instance_id: str) -> str:
    """One live instance of a service; expires unless its heartbeat renews it."""
    return f"{PREFIX}:registry:{service}:{instance_id}"


def registry_prefix(service: str | None = None) -> str:
    return f"{PREFIX}:registry:{service}:" if service else f"{PREFIX}:registry:"


def session(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}"


def stream(name: str) -> str:
    """A durable event log, e.g. ``lab:stream:claims``."""
    return f"{PREFIX}:stream:{name}"


def channel(name: str) -> str:
    """A pub/sub channel, e.g. ``lab:events:claims``."""
    return f"{PREFIX}:events:{name}"


def stats(service: str, instance_id: str) -> str:
    return f"{PREFIX}:stats:{service}:{instance_id}"


def warmup(name: str) -> str:
    """Keys the warm-up exercise writes: ``lab:warmup:<name>``."""
    return f"{PREFIX}:warmup:{name}"


def user_sessions(user_id: str) -> str:
    """The ids of one user's live sessions (a set), for "list my sessions" and "log out everywhere"."""
    return f"{PREFIX}:user-sessions:{user_id}"


def login_attempts(scope: str, who: str) -> str:
    """Failed-login counter per account (``scope="account"``) or per client address (``"client"``)."""
    return f"{PREFIX}:login-attempts:{scope}:{who}"


def exercise(lesson: str, name: str) -> str:
    """Keys an exercise notebook writes, kept apart from the services' keys: ``lab:exercise:04:<name>``."""
    return f"{PREFIX}:exercise:{lesson}:{name}"
