"""Cache coherence: how a cached copy follows the system of record, and how the reload stays cheap.

Lesson 01 caches with cache-aside and deletes on write. Lesson 06 compares the ways a copy can follow a
write, then fixes the two classic failures. ``read`` and ``after_write`` are what the services run for one
entity (``services/platform/service_cache.py`` passes the lab's ``LAB_CACHE_COHERENCE``); everything lesson
01 added — fail-open, TTL strategies, negative caching, tags — comes with them from ``cache.py``.

* **Strategies** (what a write does to the copy; what a read does on a miss) — ``COHERENCE_STRATEGIES``:
  ``ttl_only`` (nothing: the copy is wrong until it expires), ``delete_on_write`` (lesson 01),
  ``delete_with_token`` (the same, with the stale-set race closed, below), ``write_through`` (the writer
  SETs the new value), ``versioned_keys`` (the writer bumps a version; readers read ``key:v<version>``, old
  copies are simply never read again) and ``event_driven`` (the writer only announces the change on
  ``lab:events:invalidations``; every instance holding a copy deletes it when the event arrives). Every
  strategy but ``ttl_only`` also deletes what was built from the entity and its parents (lists, overviews)
  and announces the change on that same channel.
* **The stale-set race** of delete-on-write: a read misses and loads the *old* row; a write commits and
  deletes the copy; the slow reader then SETs the old value back — wrong until the TTL. Closed with a
  *generation token*: the writer bumps ``lab:cache-gen:…`` and deletes the copy in one Lua script
  (``BUMP_GENERATION``); the reader reads the generation before it loads and fills only if it is unchanged,
  checked and set in ONE Lua script (``FILL_IF_GENERATION``), so no write can slip between the check and
  the SET. (Memcache's "leases", Nishtala et al., NSDI 2013, are the same idea.)
* **Stampede**: when a hot copy expires, every reader misses at once and all of them load the same row.
  ``single_flight_read`` lets one reader (the holder of a ``SET NX PX`` lock) reload while the others wait
  for its copy; ``xfetch_read`` (Vattani et al., VLDB 2015) lets a reader recompute *before* the expiry with
  a probability that grows as it nears: recompute when ``now - delta * beta * ln(rand()) >= expiry``, where
  ``delta`` is how long the last recomputation took. No lock, no waiting; usually one early reload.

Every multi-key step (a script) touches the keys of one entity only, which share a hash tag: Redis Cluster
ready. A write's pipeline may reach several entities; a cluster client splits a pipeline per node.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

from redis.asyncio import Redis

from services.core import keys
from services.core.redis_client import REDIS_DOWN_OR_REFUSING
from services.core.vocabulary import COHERENCE_STRATEGIES

from .cache import (UNREACHABLE, CacheStats, Lookup, Tags, Ttl, add_tag_commands, bounded, cache_aside_get,
                    count_failure, delete_tagged, invalidate, load_from_record, lookup, to_json)
from .envelope import Event, EventType
from .subscriber import subscribe_forever

log = logging.getLogger("lab.coherence")

Loader = Callable[[], Awaitable[Any]]

#: The one channel a change is announced on (``cache.invalidated``): every holder of a copy listens here —
#: the services' ``event_driven`` subscribers, the gateway's answer cache, the dashboard.
INVALIDATIONS_CHANNEL = keys.channel("invalidations")

#: A generation counter must outlive every copy filled under it (a day is far longer than any TTL here).
GENERATION_TTL_MS = 24 * 3600 * 1000

# KEYS[1] generation, KEYS[2] (if given) copy; ARGV[1] the generation's TTL ms. The writer's half of the token:
# after this, a fill by a reader that saw the old generation is refused, and the copy is gone.
BUMP_GENERATION = """
local generation = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if KEYS[2] then redis.call('DEL', KEYS[2]) end
return generation
"""

# KEYS[1] copy, KEYS[2] generation; ARGV[1] the generation the reader saw ("" = none), ARGV[2] value,
# ARGV[3] TTL ms. SET only if no write bumped the generation since the reader looked. 1 = filled.
FILL_IF_GENERATION = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


@dataclass(frozen=True)
class CachedEntity:
    """The keys of one cached entity: its copy, its generation counter, its reload lock (one hash tag)."""

    kind: str
    entity_id: str

    @property
    def key(self) -> str:
        return keys.cache_entity(self.kind, self.entity_id)

    @property
    def generation(self) -> str:
        return keys.cache_generation(self.kind, self.entity_id)

    @property
    def lock(self) -> str:
        return keys.cache_lock(self.kind, self.entity_id)

    def version(self, number: int | str) -> str:
        return keys.cache_versioned(self.kind, self.entity_id, number)


# KEYS[1] lock; ARGV[1] the holder's token. Delete the lock only if it is still ours (it may have expired
# and been taken by another reader meanwhile).
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def check_strategy(strategy: str) -> None:
    if strategy not in COHERENCE_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(COHERENCE_STRATEGIES)}")


# ---------------------------------------------------------------------------------------------- reads

async def read(r: Redis, entity: CachedEntity, load: Loader, ttl: Ttl, strategy: str, *, tags: Tags = (),
               stats: CacheStats | None = None, timeout_s: float | None = 0.25) -> tuple[Any, bool]:
    """``(value, hit)`` under one strategy. Every strategy but two reads like lesson 01's cache-aside.

    What the services run for one entity by id (``ServiceCache.read_entity``): fail-open, TTL strategy, negative
    caching and tags come from lesson 01; the strategy decides only how the fill is guarded.
    """
    check_strategy(strategy)
    if strategy == "delete_with_token":
        return await read_with_token(r, entity, load, ttl, tags=tags, stats=stats, timeout_s=timeout_s)
    if strategy == "versioned_keys":
        return await read_versioned(r, entity, load, ttl, tags=tags, stats=stats, timeout_s=timeout_s)
    # unguarded: cache_aside_get's SET after a miss is the stale-set race
    return await cache_aside_get(r, entity.key, load, ttl, tags=tags, stats=stats, kind=entity.kind,
                                 timeout_s=timeout_s)


async def peek(r: Redis, entity: CachedEntity, ttl: Ttl, strategy: str, *, stats: CacheStats,
               timeout_s: float | None = 0.25) -> Lookup:
    """What ``read`` finds in Redis for ``entity`` under ``strategy``, without loading or filling anything.

    A hit is counted exactly as ``read`` counts it. The services' fast path (``services/platform/
    cached_read.py``) answers what this finds and hands everything else to the route, which calls ``read``.
    """
    check_strategy(strategy)
    key = entity.key
    if strategy == "versioned_keys":  # the copy of the current version
        try:
            key = entity.version(await bounded(r.get(entity.generation), timeout_s) or "0")
        except REDIS_DOWN_OR_REFUSING as exc:
            count_failure(stats, entity.kind, f"read of {entity.generation}", exc)
            return UNREACHABLE
    return await lookup(r, key, ttl, stats=stats, kind=entity.kind, timeout_s=timeout_s)


async def read_with_token(r: Redis, entity: CachedEntity, load: Loader, ttl: Ttl, *, tags: Tags = (),
                          stats: CacheStats | None = None, timeout_s: float | None = 0.25) -> tuple[Any, bool]:
    """Cache-aside whose fill is refused if a write happened while this reader was loading."""
    stats = stats or CacheStats()
    found = await lookup(r, entity.key, ttl, stats=stats, kind=entity.kind, timeout_s=timeout_s)
    if found.found:  # a hit costs one GET: the generation matters only to a reader about to fill
        return found.value, True
    generation = None
    if not found.unreachable:
        try:  # read *before* loading: a write that commits during the load bumps it, and the fill is refused
            generation = await bounded(r.get(entity.generation), timeout_s)
        except REDIS_DOWN_OR_REFUSING as exc:
            count_failure(stats, entity.kind, f"read of {entity.generation}", exc)
            found = UNREACHABLE
    if found.unreachable:  # fail open: read the system of record, and do not fill
        return await load_from_record(load, stats, entity.kind), False
    value = await load_from_record(load, stats, entity.kind)
    if value is not None or ttl.negative_s > 0:
        tag_ids = (tags(value) if value is not None else ()) if callable(tags) else tags
        await fill_if_generation(r, entity, value, generation, ttl, tags=tag_ids, stats=stats,
                                 timeout_s=timeout_s)
    return value, False


async def fill_if_generation(r: Redis, entity: CachedEntity, value: Any, generation: str | None, ttl: Ttl, *,
                             tags: Iterable[str] = (), stats: CacheStats | None = None,
                             timeout_s: float | None = 0.25) -> bool:
    """Store ``value`` only if the entity's generation is still ``generation``, then tag it. True = stored."""
    ttl_ms = ttl.for_value(value)
    try:
        stored = await bounded(r.eval(FILL_IF_GENERATION, 2, entity.key, entity.generation,
                                      generation or "", to_json(value), ttl_ms), timeout_s)
        if stored and tags:
            pipe = r.pipeline(transaction=False)
            add_tag_commands(pipe, entity.key, ttl_ms, tags)
            await bounded(pipe.execute(), timeout_s)
    except REDIS_DOWN_OR_REFUSING as exc:  # the next read loads it again
        count_failure(stats, entity.kind, f"write of {entity.key}", exc)
        return False
    return bool(stored)


async def read_versioned(r: Redis, entity: CachedEntity, load: Loader, ttl: Ttl, *, tags: Tags = (),
                         stats: CacheStats | None = None, timeout_s: float | None = 0.25) -> tuple[Any, bool]:
    """Read the current version number, then that version's copy: two round trips, no race to close.

    A slow reader that fills an old version's key fills a key nobody reads any more. If the version cannot
    be read (Redis down), the read goes to the system of record rather than guess one.
    """
    stats = stats or CacheStats()
    try:
        version = await bounded(r.get(entity.generation), timeout_s) or "0"
    except REDIS_DOWN_OR_REFUSING as exc:
        count_failure(stats, entity.kind, f"read of {entity.generation}", exc)
        return await load_from_record(load, stats, entity.kind), False
    return await cache_aside_get(r, entity.version(version), load, ttl, tags=tags, stats=stats,
                                 kind=entity.kind, timeout_s=timeout_s)


# --------------------------------------------------------------------------------------------- writes

async def after_write(r: Redis, entity: CachedEntity, strategy: str, *, new_value: Any = None,
                      ttl: Ttl = Ttl.fixed(60), parents: Iterable[str] = (), source: str = "lab",
                      reason: str = "", stats: CacheStats | None = None, timeout_s: float | None = 0.25) -> None:
    """What a writer does to the cache once the system of record has committed, then announces it.

    ``parents`` are the entities the written one belongs to (a claim's policy and customer): their lists and
    overviews (tag sets) are deleted too. ``new_value`` is the committed row (None once deleted), for
    ``write_through``. Best effort: Redis down means the copies expire with their TTL.
    """
    check_strategy(strategy)
    if strategy == "ttl_only":  # the comparison baseline: copies live until their TTL
        return
    deleted: list[str] = []  # event_driven: the writer only announces; every holder deletes on arrival
    if strategy != "event_driven":
        deleted = await make_copies_follow(r, entity, strategy, new_value, ttl, parents, stats, timeout_s)
        if deleted is None:
            return
    await announce_change(r, entity, source, strategy=strategy, parents=parents, deleted=deleted, reason=reason)


async def make_copies_follow(r: Redis, entity: CachedEntity, strategy: str, new_value: Any, ttl: Ttl,
                             parents: Iterable[str], stats: CacheStats | None,
                             timeout_s: float | None) -> list[str] | None:
    """The writer's own share (the entity's copy and generation), then its dependents. The keys deleted.

    One round trip carries the writer's own step and the reads of the tag sets (neither depends on the
    other); a second deletes what the tag sets listed, only when they listed something.
    """
    tag_keys = [keys.cache_tags(e) for e in (entity.entity_id, *parents)]
    pipe = r.pipeline(transaction=False)  # a cluster client splits it per node; each step is one slot
    own: list[str] = []  # the entity's copy, when the writer's step deletes it
    # (EVAL with the script's text: a cluster pipeline refuses EVALSHA)
    if strategy == "delete_with_token":  # the token moves and the copy goes, in one atomic step
        own = [entity.key]
        pipe.eval(BUMP_GENERATION, 2, entity.generation, entity.key, GENERATION_TTL_MS)
    elif strategy == "versioned_keys":  # the version moves: old versions' copies are never read again
        pipe.eval(BUMP_GENERATION, 1, entity.generation, GENERATION_TTL_MS)
    elif strategy == "write_through" and new_value is not None:  # the committed row replaces the copy
        pipe.set(entity.key, to_json(new_value), px=ttl.for_value(new_value))
    else:  # delete_on_write (or write_through of a deleted row): the copy goes
        own = [entity.key]
        pipe.execute_command("UNLINK", entity.key)  # (a cluster pipeline's unlink() is a coroutine: never queued)
    for tag_key in tag_keys:
        pipe.smembers(tag_key)
    try:
        members = (await bounded(pipe.execute(), timeout_s))[-len(tag_keys):]
    except REDIS_DOWN_OR_REFUSING as exc:
        count_failure(stats, entity.kind, f"invalidation of {entity.key}", exc)
        return None
    dependents = await delete_tagged(r, [], tag_keys, members, stats=stats, kind=entity.kind, timeout_s=timeout_s)
    if dependents is None:
        return None
    return [*own, *dependents]


async def announce_change(r: Redis, entity: CachedEntity, source: str = "lab", *, strategy: str = "event_driven",
                          parents: Iterable[str] = (), deleted: Iterable[str] = (), reason: str = "") -> None:
    """Publish ``cache.invalidated`` for the entity on ``lab:events:invalidations`` (best effort).

    ``deleted`` lists what the writer deleted itself (nothing under ``event_driven``); ``parents`` lets a
    listener drop what was built from them too.
    """
    event = Event(type=EventType.CACHE_INVALIDATED, source=source, subject=entity.entity_id,
                  data={"kind": entity.kind, "strategy": strategy, "reason": reason, "parents": list(parents),
                        "keys": list(deleted)})
    try:
        await r.publish(INVALIDATIONS_CHANNEL, event.to_json())
    except REDIS_DOWN_OR_REFUSING as exc:
        log.warning("could not announce the change of %s (%r)", entity.entity_id, exc)


async def invalidate_on_events(r: Redis, *, from_source: str = "", stats: CacheStats | None = None,
                               timeout_s: float | None = 0.25,
                               on_subscribed: Callable[[], None] | None = None) -> None:
    """Forever: for every ``event_driven`` change announced (by a source starting with ``from_source``),
    delete the entity's copy and its dependents' (resubscribes after a restart of Redis).

    Every instance holding copies runs one; a copy is then wrong only for the time the event takes to arrive
    (and, if the event is lost, until its TTL: pub/sub keeps nothing).
    """
    async def on_event(event: Event) -> None:
        data = event.data
        if (event.type != EventType.CACHE_INVALIDATED or data.get("strategy") != "event_driven"
                or not event.source.startswith(from_source)):
            return
        entity = CachedEntity(data["kind"], event.subject)
        await invalidate(r, [entity.key], dependents_of=[event.subject, *data.get("parents", [])],
                         stats=stats, kind=entity.kind, timeout_s=timeout_s)
    await subscribe_forever(r, [INVALIDATIONS_CHANNEL], on_event, on_subscribed=on_subscribed)


# -------------------------------------------------------------------------------------------- stampede

async def single_flight_read(r: Redis, entity: CachedEntity, load: Loader, ttl_ms: int, *,
                             lock_ms: int = 5_000, poll_s: float = 0.005,
                             max_wait_s: float = 2.0) -> tuple[Any, bool]:
    """Cache-aside where, on a miss, only the holder of ``SET lock NX PX`` loads; the others wait for it.

    A waiter polls the copy every ``poll_s``. If the holder dies, its lock expires after ``lock_ms`` and the
    next waiter takes over; after ``max_wait_s`` a waiter loads for itself (slow beats stuck).
    """
    token = secrets.token_hex(8)
    deadline = time.monotonic() + max_wait_s
    while True:
        cached = await r.get(entity.key)
        if cached is not None:
            return json.loads(cached), True
        if await r.set(entity.lock, token, nx=True, px=lock_ms):
            try:
                cached = await r.get(entity.key)  # filled between our GET and our lock? then no load
                if cached is not None:
                    return json.loads(cached), True
                value = await load()
                await r.set(entity.key, to_json(value), px=ttl_ms)
                return value, False
            finally:
                await r.eval(RELEASE_LOCK, 1, entity.lock, token)
        if time.monotonic() >= deadline:
            return await load(), False
        await asyncio.sleep(poll_s)


def should_recompute_early(remaining_ms: float, delta_ms: float, beta: float = 1.0,
                           rand: Callable[[], float] = random.random) -> bool:
    """XFetch's test, ``now - delta * beta * ln(rand()) >= expiry``, written with ``expiry - now = PTTL``.

    ``-ln(rand())`` is exponentially distributed: mostly small, now and then large, so the closer the
    expiry and the slower the recomputation (``delta``), the likelier one reader goes early. ``beta > 1``
    favours earlier recomputation.
    """
    return -delta_ms * beta * math.log(1.0 - rand()) >= remaining_ms  # 1 - rand(): in (0, 1], log defined


async def xfetch_read(r: Redis, key: str, load: Loader, ttl_ms: int, *, beta: float = 1.0,
                      rand: Callable[[], float] = random.random) -> tuple[Any, bool]:
    """Cache-aside with probabilistic early recomputation. The copy stores its ``delta`` (ms to load) too.

    ``(value, hit)``; an early recomputation returns ``hit=False`` (it went to the system of record).
    """
    async with r.pipeline(transaction=False) as pipe:
        cached, remaining_ms = await pipe.get(key).pttl(key).execute()
    if cached is not None:
        entry = json.loads(cached)
        if not should_recompute_early(remaining_ms, entry["delta_ms"], beta, rand):
            return entry["value"], True
    started = time.perf_counter()
    value = await load()
    delta_ms = (time.perf_counter() - started) * 1000
    await r.set(key, to_json({"delta_ms": round(delta_ms, 3), "value": value}), px=ttl_ms)
    return value, False
