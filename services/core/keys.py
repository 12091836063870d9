"""The key schema: every Redis key and channel the lab uses is built here and nowhere else.

Why one module: a learner can read the whole keyspace on one screen, an ACL rule can be written from it,
and a typo cannot create a second, silently different key. Everything starts with ``lab:``.

Keys that are used together in one multi-key command, transaction or Lua script share a hash tag
(the part in ``{...}``) so the same code runs unchanged on Redis Cluster.

Events (lesson 02). Each domain service publishes on one *topic*: ``customers``, ``policies``, ``claims``.

* ``lab:stream:<topic>`` — the durable log of the topic (a Stream; consumer groups read it);
* ``lab:events:<topic>`` — the pub/sub channel of the topic (real-time fan-out; the gateway's cache
  invalidation, the customer and policy subscribers listen here). Message = the event envelope as JSON;
* ``lab:history:{lab:stream:<topic>}:<subject>`` — one entity's own stream (a claim's audit trail);
* ``lab:published:{lab:stream:<topic>}:<event id>`` — "this event is already in the log" (dedupe);
* ``lab:dead-letter:{lab:stream:<topic>}`` — entries a consumer gave up on, with the reason.

The last three carry the topic stream's whole name as their hash tag: a key without braces hashes by its
full name, so they land in the same Cluster slot as ``lab:stream:<topic>`` and one Lua script may touch
them all.
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


def cache_list_page(kind: str, owner_id: str, limit: int, offset: int) -> str:
    """One cached page of an entity's list: ``lab:cache:policies:{CUS-000001}:list:20:0`` (lesson 01)."""
    return f"{cache_list(kind, owner_id)}:{limit}:{offset}"


def cache_tags(entity_id: str) -> str:
    """The tag set of one entity: every cached key built from it (``lab:cache-tags:{CUS-000001}``).

    Invalidating the entity deletes these keys too. Same hash tag as the entity's own cached copy; outside
    the ``lab:cache:`` prefix so a near cache tracking that prefix does not track the bookkeeping.
    """
    return f"{PREFIX}:cache-tags:{{{entity_id}}}"


def cache_generation(kind: str, entity_id: str) -> str:
    """The write counter of one cached entity (lesson 06): a writer bumps it, a fill checks it first.

    Also the current version for the versioned-keys strategy. Same hash tag as the cached copy (one Lua
    script touches both); outside ``lab:cache:`` so a near cache tracking that prefix ignores it.
    """
    return f"{PREFIX}:cache-gen:{kind}:{{{entity_id}}}"


def cache_versioned(kind: str, entity_id: str, version: int | str) -> str:
    """One version of a cached entity (versioned keys): ``lab:cache:policy:{POL-000042}:v7``."""
    return f"{cache_entity(kind, entity_id)}:v{version}"


def cache_lock(kind: str, entity_id: str) -> str:
    """Single-flight lock: whoever holds it is the one reader reloading this entity (lesson 06)."""
    return f"{PREFIX}:cache-lock:{kind}:{{{entity_id}}}"


def registry_instance(service: str, instance_id: str) -> str:
    """One live instance of a service; expires unless its heartbeat renews it."""
    return f"{PREFIX}:registry:{service}:{instance_id}"


def registry_prefix(service: str | None = None) -> str:
    return f"{PREFIX}:registry:{service}:" if service else f"{PREFIX}:registry:"


def registry_index(service: str) -> str:
    """Sorted set of one service's instance ids (score = when the registration expires, epoch s).

    Listing instances reads this set instead of scanning the keyspace (never KEYS); the instance keys
    themselves stay the truth — an id whose key has expired is a dead instance.
    """
    return f"{PREFIX}:registry-index:{service}"


def registry_channel() -> str:
    """The pub/sub channel of ``instance.registered`` / ``instance.deregistered`` events."""
    return channel("registry")


def rate_limit(client: str) -> str:
    """Sliding-window log of one client's recent requests at the gateway (a sorted set)."""
    return f"{PREFIX}:ratelimit:{{{client}}}"


def session(digest: str) -> str:
    """One session's hash, named by the SHA-256 of the cookie value, never by the cookie itself
    (``services.patterns.sessions.session_key``): whoever can list or track keys learns nothing to log in with."""
    return f"{PREFIX}:session:{digest}"


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
    """The digests of one user's live sessions (a set), for "list my sessions" and "log out everywhere"."""
    return f"{PREFIX}:user-sessions:{user_id}"


def login_attempts(scope: str, who: str) -> str:
    """Failed-login counter per account (``scope="account"``) or per client address (``"client"``)."""
    return f"{PREFIX}:login-attempts:{scope}:{who}"


def exercise(lesson: str, name: str) -> str:
    """Keys an exercise notebook writes, kept apart from the services' keys: ``lab:exercise:04:<name>``."""
    return f"{PREFIX}:exercise:{lesson}:{name}"


def _topic_tag(topic: str) -> str:
    """The hash tag that puts a key in the slot of ``lab:stream:<topic>``."""
    return "{" + stream(topic) + "}"


def subject_history(topic: str, subject: str) -> str:
    """One entity's own event stream (its audit trail): ``lab:history:{lab:stream:claims}:CLM-000042``."""
    return f"{PREFIX}:history:{_topic_tag(topic)}:{subject}"


def published(topic: str, event_id: str) -> str:
    """Marker that an event id is already in the topic's log, so publishing twice adds nothing."""
    return f"{PREFIX}:published:{_topic_tag(topic)}:{event_id}"


def dead_letter(topic: str) -> str:
    """Where a consumer group parks entries it could not handle (malformed, or failed N times)."""
    return f"{PREFIX}:dead-letter:{_topic_tag(topic)}"


def processed(group: str, event_id: str) -> str:
    """Marker that a consumer group already handled an event id (idempotent consumer)."""
    return f"{PREFIX}:processed:{group}:{event_id}"


def risk_scores() -> str:
    """Hash claim id -> risk score the claims worker computed."""
    return f"{PREFIX}:worker:risk-scores"
