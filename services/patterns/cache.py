"""Cache-aside: read Redis first, fall back to the system of record, keep a copy for next time.

    value, hit = await cache_aside_get(r, key, load, ttl=Ttl.jittered(300))

Why each piece is here:

* **Cache-aside**, not write-through: the service asks Redis, and only on a miss asks its SQLite system of
  record and stores what it got (compact JSON). A write goes to the system of record first and then
  *deletes* the cached copy (never updates it): the next read loads the truth.
* **TTL strategies** (``Ttl``) — every copy expires, so a missed invalidation heals by itself:
  ``fixed`` (every copy lives the same time), ``jittered`` (±10 % at random, so a batch loaded together does
  not expire — and reload — together), ``sliding`` (each hit resets the TTL: hot entries stay, cold ones go).
  Per-entity TTLs are a ``Ttl`` per kind (a claim changes more often than a customer).
* **Negative caching**: "no such id" is cached too (as JSON ``null``) for a few seconds, so a flood of
  unknown ids does not reach the system of record.
* **Tags** — "a set of dependent keys per entity": a value built from several entities (a customer's
  overview) is added to each entity's tag set; invalidating an entity deletes its key and every key in its
  tag set. Any service can do that, so the claims service can drop an overview the customer service built.
  Never ``KEYS``: the dependents are listed, not searched for.
* **Fail open**: Redis down or slow (past ``timeout_s``) is a miss, not an error. The read goes to the
  system of record and the answer is still right, only slower.
* **One round trip for many ids**: ``cache_aside_get_many`` sends its GETs as one pipeline and the copies
  it stores as another. (One MGET would do on a single server; on Redis Cluster MGET needs all its keys in
  one slot, and these are one entity each, while a pipeline is split per node by a cluster client.)

Every multi-key command here touches keys of one entity only (same hash tag) or is a pipeline of
single-key commands, so the same code runs on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable

from redis.asyncio import Redis

from services.core import keys
from services.core.redis_client import REDIS_DOWN_OR_REFUSING
from services.core.vocabulary import TTL_STRATEGIES

log = logging.getLogger("lab.cache")

assert TTL_STRATEGIES == ("fixed", "jittered", "sliding"), "Ttl.seconds_for implements exactly these"


@dataclass(frozen=True)
class Ttl:
    """How long a cached copy lives. ``seconds`` for values, ``negative_s`` for "does not exist"."""

    seconds: float
    strategy: str = "fixed"  # fixed | jittered | sliding
    jitter: float = 0.1  # jittered: the TTL is seconds * (1 ± jitter)
    negative_s: float = 5.0  # negative caching; 0 = do not cache misses of the system of record

    def __post_init__(self):
        if self.strategy not in TTL_STRATEGIES:
            raise ValueError(f"unknown TTL strategy {self.strategy!r}; choose one of {', '.join(TTL_STRATEGIES)}")

    @classmethod
    def fixed(cls, seconds: float, negative_s: float = 5.0) -> "Ttl":
        return cls(seconds, "fixed", negative_s=negative_s)

    @classmethod
    def jittered(cls, seconds: float, jitter: float = 0.1, negative_s: float = 5.0) -> "Ttl":
        return cls(seconds, "jittered", jitter, negative_s)

    @classmethod
    def sliding(cls, seconds: float, negative_s: float = 5.0) -> "Ttl":
        return cls(seconds, "sliding", negative_s=negative_s)

    def for_value(self, value: Any) -> int:
        """The TTL in ms for this value (None = a negative entry)."""
        if value is None:
            return max(1, round(self.negative_s * 1000))
        seconds = self.seconds
        if self.strategy == "jittered":
            seconds *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(1, round(seconds * 1000))


@dataclass
class CacheStats:
    """Counters of one process, per kind (``policy``, ``overview``...): what ``/stats`` and ``/metrics`` show."""

    hits: Counter = field(default_factory=Counter)
    negative_hits: Counter = field(default_factory=Counter)  # hits on a cached "does not exist"
    misses: Counter = field(default_factory=Counter)
    sor_loads: Counter = field(default_factory=Counter)  # reads that reached the system of record
    redis_failures: Counter = field(default_factory=Counter)  # Redis down/slow: served from the SoR anyway
    invalidations: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        hits, misses = sum(self.hits.values()), sum(self.misses.values())
        return {"hits": hits, "misses": misses,
                "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
                "negative_hits": sum(self.negative_hits.values()), "sor_loads": sum(self.sor_loads.values()),
                "redis_failures": sum(self.redis_failures.values()),
                "invalidations": sum(self.invalidations.values())}

    def by_kind(self) -> dict[str, dict]:
        kinds = set(self.hits) | set(self.misses) | set(self.invalidations)
        return {kind: {"hits": self.hits[kind], "misses": self.misses[kind], "sor_loads": self.sor_loads[kind],
                       "negative_hits": self.negative_hits[kind], "redis_failures": self.redis_failures[kind],
                       "invalidations": self.invalidations[kind]} for kind in sorted(kinds)}


def to_json(value: Any) -> str:
    """Compact JSON: no spaces, so the copy costs Redis memory and network only for the data."""
    return json.dumps(value, separators=(",", ":"))


async def bounded(awaitable, timeout_s: float | None):
    """Await a Redis call for at most ``timeout_s`` (None = as long as it takes): slower counts as down."""
    if timeout_s is None:
        return await awaitable
    async with asyncio.timeout(timeout_s):
        return await awaitable


Tags = Iterable[str] | Callable[[Any], Iterable[str]]


async def cache_aside_get(r: Redis, key: str, load: Callable[[], Awaitable[Any]], ttl: Ttl, *,
                          tags: Tags = (), stats: CacheStats | None = None, kind: str = "value",
                          timeout_s: float | None = 0.25) -> tuple[Any, bool]:
    """``(value, hit)``: the cached copy, or ``load()``'s result stored for next time.

    ``tags`` are the entity ids the value was built from (or a function of the loaded value giving them);
    the key joins each one's tag set. ``load()`` returning None means "does not exist" and is cached for
    ``ttl.negative_s``. ``timeout_s`` bounds each Redis call: slower, or Redis down, counts as a miss.
    """
    stats = stats or CacheStats()
    found = await lookup(r, key, ttl, stats=stats, kind=kind, timeout_s=timeout_s)
    if found.found:
        return found.value, True
    value = await load_from_record(load, stats, kind)
    if value is not None or ttl.negative_s > 0:  # "does not exist" is cached too, unless switched off
        tag_ids = (tags(value) if value is not None else ()) if callable(tags) else tags
        await store(r, key, value, ttl, tags=tag_ids, stats=stats, kind=kind, timeout_s=timeout_s)
    return value, False


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a reader found in Redis: a copy (``found``; ``value`` None is a cached "does not exist"), or
    not — ``unreachable`` when Redis did not answer in time (fail open: read the system of record)."""

    found: bool
    value: Any = None
    unreachable: bool = False


MISSING, UNREACHABLE = Lookup(False), Lookup(False, unreachable=True)


async def lookup(r: Redis, key: str, ttl: Ttl, *, stats: CacheStats, kind: str,
                 timeout_s: float | None = 0.25) -> Lookup:
    """The first half of every cached read: the copy at ``key``, a hit counted — nothing loaded, nothing
    stored. A miss is counted by whoever then loads (``load_from_record``); Redis failing is counted here."""
    try:
        cached = await bounded(read_command(r, key, ttl), timeout_s)
    except REDIS_DOWN_OR_REFUSING as exc:
        count_failure(stats, kind, f"read of {key}", exc)
        return UNREACHABLE
    if cached is None:
        return MISSING
    return Lookup(True, await served_from_copy(r, key, cached, ttl, stats, kind, timeout_s))


def read_command(client, key: str, ttl: Ttl):
    """GET the copy — or, under ``sliding``, GETEX it, which also resets its TTL (on a client or a pipeline)."""
    return client.getex(key, px=ttl.for_value(True)) if ttl.strategy == "sliding" else client.get(key)


async def served_from_copy(r: Redis, key: str, cached: str, ttl: Ttl, stats: CacheStats, kind: str,
                           timeout_s: float | None) -> Any:
    """A hit, counted. A cached "does not exist" that GETEX slid to a full TTL is put back to its short one."""
    value = json.loads(cached)
    stats.hits[kind] += 1
    if value is None:
        stats.negative_hits[kind] += 1
        if ttl.strategy == "sliding":
            await store(r, key, None, ttl, stats=stats, kind=kind, timeout_s=timeout_s)
    return value


async def load_from_record(load: Callable[[], Awaitable[Any]], stats: CacheStats, kind: str) -> Any:
    """A miss: ask the system of record, counted."""
    stats.misses[kind] += 1
    value = await load()
    stats.sor_loads[kind] += 1
    return value


def count_failure(stats: CacheStats | None, kind: str, what: str, exc: BaseException) -> None:
    """Fail open: Redis did not answer; log it, count it, and let the caller carry on without the cache."""
    log.warning("cache %s failed (%r): carrying on without the cache", what, exc)
    if stats is not None:
        stats.redis_failures[kind] += 1


async def store(r: Redis, key: str, value: Any, ttl: Ttl, *, tags: Iterable[str] = (),
                stats: CacheStats | None = None, kind: str = "value", timeout_s: float | None = 0.25) -> None:
    """SET the copy with its TTL and add the key to each tag's set, in one round trip (best effort)."""
    pipe = r.pipeline(transaction=False)
    add_store_commands(pipe, key, value, ttl, tags)
    try:
        await bounded(pipe.execute(), timeout_s)
    except REDIS_DOWN_OR_REFUSING as exc:
        count_failure(stats, kind, f"write of {key}", exc)


def add_store_commands(pipe, key: str, value: Any, ttl: Ttl, tags: Iterable[str] = ()) -> None:
    ttl_ms = ttl.for_value(value)
    pipe.set(key, to_json(value), px=ttl_ms)
    add_tag_commands(pipe, key, ttl_ms, tags)


def add_tag_commands(pipe, key: str, ttl_ms: int, tags: Iterable[str]) -> None:
    for entity_id in tags:
        tag_key = keys.cache_tags(entity_id)
        pipe.sadd(tag_key, key)
        # The tag set lives as long as its longest-lived member: NX sets a first TTL, GT only ever extends it.
        pipe.pexpire(tag_key, ttl_ms, nx=True)
        pipe.pexpire(tag_key, ttl_ms, gt=True)


async def cache_aside_get_many(r: Redis, key_of: Callable[[str], str], ids: list[str],
                               load_one: Callable[[str], Awaitable[Any]], ttl: Ttl, *,
                               stats: CacheStats | None = None, kind: str = "value",
                               timeout_s: float | None = 0.25) -> dict[str, tuple[Any, bool]]:
    """``{id: (value, hit)}`` for many ids: one pipeline of GETs, misses loaded concurrently, one of SETs."""
    stats = stats or CacheStats()
    ids = list(dict.fromkeys(ids))  # each id once, in the order asked
    reads = r.pipeline(transaction=False)
    for entity_id in ids:
        reads.get(key_of(entity_id))
    try:
        cached = await bounded(reads.execute(), timeout_s)
    except REDIS_DOWN_OR_REFUSING as exc:
        count_failure(stats, kind, "batch read", exc)
        cached = [None] * len(ids)
    found = {i: (json.loads(text), True) for i, text in zip(ids, cached) if text is not None}
    stats.hits[kind] += len(found)
    stats.negative_hits[kind] += sum(1 for value, _ in found.values() if value is None)
    missing = [i for i in ids if i not in found]
    if missing:
        stats.misses[kind] += len(missing)
        loaded = await asyncio.gather(*(load_one(i) for i in missing))
        stats.sor_loads[kind] += len(missing)
        pipe = r.pipeline(transaction=False)
        for entity_id, value in zip(missing, loaded):
            found[entity_id] = (value, False)
            if value is None and ttl.negative_s <= 0:
                continue
            add_store_commands(pipe, key_of(entity_id), value, ttl)
        try:
            await bounded(pipe.execute(), timeout_s)
        except REDIS_DOWN_OR_REFUSING as exc:
            count_failure(stats, kind, "batch write", exc)
    return {i: found[i] for i in ids}


async def invalidate(r: Redis, cached_keys: Iterable[str] = (), dependents_of: Iterable[str] = (), *,
                     stats: CacheStats | None = None, kind: str = "value",
                     timeout_s: float | None = 0.25) -> list[str] | None:
    """Delete ``cached_keys`` and every key in the tag sets of ``dependents_of``. Returns the keys deleted.

    Two round trips: read the tag sets, then UNLINK each key and SREM exactly the members read (not DEL the
    set: a dependent added in between stays listed). Best effort — None when Redis did not answer; the
    copies then expire with their TTL. (What a write does to the entity's own copy under each coherence
    strategy is lesson 06's ``coherence.after_write``, which reads the tag sets in its own first round trip
    and then calls ``delete_tagged``.)
    """
    tag_keys = [keys.cache_tags(e) for e in dependents_of]
    members: list[set[str]] = []
    if tag_keys:
        pipe = r.pipeline(transaction=False)
        for tag_key in tag_keys:
            pipe.smembers(tag_key)
        try:
            members = await bounded(pipe.execute(), timeout_s)
        except REDIS_DOWN_OR_REFUSING as exc:
            count_failure(stats, kind, "invalidation", exc)  # the copies expire with their TTL
            return None
    return await delete_tagged(r, cached_keys, tag_keys, members, stats=stats, kind=kind, timeout_s=timeout_s)


async def delete_tagged(r: Redis, cached_keys: Iterable[str], tag_keys: list[str], members: list[set[str]], *,
                        stats: CacheStats | None = None, kind: str = "value",
                        timeout_s: float | None = 0.25) -> list[str] | None:
    """The second half of ``invalidate``: UNLINK ``cached_keys`` and the ``members`` read from ``tag_keys``,
    and SREM those members from their sets, in one round trip (none when there is nothing to delete)."""
    doomed = list(dict.fromkeys([*cached_keys, *(k for group in members for k in sorted(group))]))
    if doomed:
        pipe = r.pipeline(transaction=False)
        for key in doomed:
            pipe.execute_command("UNLINK", key)  # (a cluster pipeline's unlink() is a coroutine: never queued)
        for tag_key, group in zip(tag_keys, members):
            if group:
                pipe.srem(tag_key, *group)
        try:
            await bounded(pipe.execute(), timeout_s)
        except REDIS_DOWN_OR_REFUSING as exc:
            count_failure(stats, kind, "invalidation", exc)  # the copies expire with their TTL
            return None
    if stats:
        stats.invalidations[kind] += 1
    return doomed
