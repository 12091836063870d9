"""Cache coherence: how a cached copy follows the system of record, and how the reload stays cheap.

Lesson 01 caches with cache-aside and deletes on write. Lesson 06 compares the ways a copy can follow a
write, then fixes the two classic failures:

* **Strategies** (what a write does to the copy; what a read does on a miss) — ``COHERENCE_STRATEGIES``:
  ``ttl_only`` (nothing: the copy is wrong until it expires), ``delete_on_write`` (lesson 01),
  ``delete_with_token`` (the same, with the stale-set race closed, below), ``write_through`` (the writer
  SETs the new value), ``versioned_keys`` (the writer bumps a version; readers read ``key:v<version>``, old
  copies are simply never read again) and ``event_driven`` (the writer only announces the change on the
  lesson-02 channel ``lab:events:<topic>``; every service holding a copy deletes it when the event arrives).
* **The stale-set race** of delete-on-write: a read misses and loads the *old* row; a write commits and
  deletes the copy; the slow reader then SETs the old value back — wrong until the TTL. Closed with a
  *generation token*: the writer bumps ``lab:cache-gen:…`` and deletes the copy in one transaction; the
  reader reads the generation before it loads and fills only if it is unchanged, checked and set in ONE Lua
  script (``FILL_IF_GENERATION``), so no write can slip between the check and the SET. (Memcache's
  "leases", Nishtala et al., NSDI 2013, are the same idea.)
* **Stampede**: when a hot copy expires, every reader misses at once and all of them load the same row.
  ``single_flight_read`` lets one reader (the holder of a ``SET NX PX`` lock) reload while the others wait
  for its copy; ``xfetch_read`` (Vattani et al., VLDB 2015) lets a reader recompute *before* the expiry with
  a probability that grows as it nears: recompute when ``now - delta * beta * ln(rand()) >= expiry``, where
  ``delta`` is how long the last recomputation took. No lock, no waiting; usually one early reload.

Every multi-key step touches the keys of one entity only, which share a hash tag: Redis Cluster ready.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from redis.asyncio import Redis

from services.core import keys
from services.core.vocabulary import COHERENCE_STRATEGIES

from .cache import FILL_IF_GENERATION, GENERATION_TTL_MS, to_json
from .envelope import Event, EventType
from .subscriber import subscribe_forever


Loader = Callable[[], Awaitable[Any]]


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


# ---------------------------------------------------------------------------------------------- reads

async def read(r: Redis, entity: CachedEntity, load: Loader, ttl_ms: int, strategy: str) -> tuple[Any, bool]:
    """``(value, hit)`` under one strategy. Every strategy but two reads like lesson 01's cache-aside."""
    if strategy == "delete_with_token":
        return await read_with_token(r, entity, load, ttl_ms)
    if strategy == "versioned_keys":
        return await read_versioned(r, entity, load, ttl_ms)
    if strategy not in COHERENCE_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(COHERENCE_STRATEGIES)}")
    cached = await r.get(entity.key)
    if cached is not None:
        return json.loads(cached), True
    value = await load()
    await r.set(entity.key, to_json(value), px=ttl_ms)  # unguarded: this SET is the stale-set race
    return value, False


async def read_with_token(r: Redis, entity: CachedEntity, load: Loader, ttl_ms: int) -> tuple[Any, bool]:
    """Cache-aside whose fill is refused if a write happened while this reader was loading."""
    async with r.pipeline(transaction=False) as pipe:  # one round trip: the copy and the generation
        cached, generation = await pipe.get(entity.key).get(entity.generation).execute()
    if cached is not None:
        return json.loads(cached), True
    value = await load()
    await fill_if_generation(r, entity, value, generation, ttl_ms)
    return value, False


async def fill_if_generation(r: Redis, entity: CachedEntity, value: Any, generation: str | None,
                             ttl_ms: int) -> bool:
    """Store ``value`` only if the entity's generation is still ``generation``. True = stored."""
    stored = await r.eval(FILL_IF_GENERATION, 2, entity.key, entity.generation,
                          generation or "", to_json(value), ttl_ms)
    return bool(stored)


async def read_versioned(r: Redis, entity: CachedEntity, load: Loader, ttl_ms: int) -> tuple[Any, bool]:
    """Read the current version number, then that version's copy: two round trips, no race to close.

    A slow reader that fills an old version's key fills a key nobody reads any more.
    """
    version = await r.get(entity.generation) or "0"
    cached = await r.get(entity.version(version))
    if cached is not None:
        return json.loads(cached), True
    value = await load()
    await r.set(entity.version(version), to_json(value), px=ttl_ms)
    return value, False


# --------------------------------------------------------------------------------------------- writes

async def after_write(r: Redis, entity: CachedEntity, strategy: str, *, new_value: Any = None,
                      ttl_ms: int = 60_000, topic: str | None = None, source: str = "lab") -> None:
    """What a writer does to the cache once the system of record has committed."""
    if strategy == "ttl_only":
        return
    if strategy == "delete_on_write":
        await r.delete(entity.key)
    elif strategy in ("delete_with_token", "versioned_keys"):
        await bump_generation(r, entity, delete_copy=strategy == "delete_with_token")
    elif strategy == "write_through":
        await r.set(entity.key, to_json(new_value), px=ttl_ms)
    elif strategy == "event_driven":
        await announce_change(r, topic or entity.kind, entity, source)
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(COHERENCE_STRATEGIES)}")


async def bump_generation(r: Redis, entity: CachedEntity, delete_copy: bool = True) -> int:
    """INCR the generation (and delete the copy) in one MULTI: a fill that saw the old one is refused."""
    async with r.pipeline(transaction=True) as pipe:
        pipe.incr(entity.generation).pexpire(entity.generation, GENERATION_TTL_MS)
        if delete_copy:
            pipe.delete(entity.key)
        generation, *_ = await pipe.execute()
    return generation


async def announce_change(r: Redis, topic: str, entity: CachedEntity, source: str = "lab") -> None:
    """Publish ``cache.invalidated`` for the entity on ``lab:events:<topic>`` (the lesson-02 channel).

    In a service the outbox relay publishes the domain event itself; this is the same message, sent
    directly, for experiments.
    """
    event = Event(type=EventType.CACHE_INVALIDATED, source=source, subject=entity.entity_id,
                  data={"kind": entity.kind, "keys": [entity.key]})
    await r.publish(keys.channel(topic), event.to_json())


async def invalidate_on_events(r: Redis, topics: list[str], keys_of: Callable[[Event], list[str]], *,
                               on_subscribed: Callable[[], None] | None = None) -> None:
    """Forever: delete ``keys_of(event)`` for every event on the topics' channels (resubscribes on restart).

    Each service that holds copies of another service's data runs one; a copy is then wrong only for the
    time the event takes to arrive (and forever, until its TTL, if the event is lost: pub/sub keeps nothing).
    """
    async def on_event(event: Event) -> None:
        doomed = keys_of(event)
        if doomed:
            await r.delete(*doomed)
    await subscribe_forever(r, [keys.channel(t) for t in topics], on_event, on_subscribed=on_subscribed)


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
