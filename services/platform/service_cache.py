"""Lesson 01 in a service: the cache-aside pattern bound to this app's Redis, settings and counters.

Routes take ``cache: CacheDep`` and call ``cache.read(...)`` for a cacheable GET (it sets ``X-Cache``) and
``cache.invalidate(...)`` after a committed write. The pattern itself — TTLs, tags, fail-open — lives in
``services/patterns/cache.py``; this module only decides *which* TTL and *which* key. Its neighbours:
``batch.py`` (batch reads answered per id), ``invalidation_subscriber.py`` (``event_driven`` coherence)
and ``cache_stats.py`` (the counters behind ``GET /stats`` and ``GET /metrics``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Annotated, Any, Awaitable, Callable, Iterable

from fastapi import Depends, Request, Response

from services.core import keys
from services.core.redis_client import REDIS_DOWN, REDIS_DOWN_OR_REFUSING
from services.core.settings import Settings
from services.patterns import cache as pattern
from services.patterns.envelope import Event, EventType

log = logging.getLogger("lab.caching")

#: Invalidations are announced here (``cache.invalidated``), for anyone holding a copy of their own.
INVALIDATIONS_CHANNEL = keys.channel("invalidations")


def ttl_for(settings: Settings, kind: str) -> pattern.Ttl:
    """Per-entity TTLs: the kind's own seconds (``cache_ttl_per_kind``), the strategy of the settings."""
    seconds = settings.cache_ttl_per_kind.get(kind, settings.cache_ttl_s)
    return pattern.Ttl(seconds, settings.cache_ttl_strategy, settings.cache_jitter, settings.cache_negative_ttl_s)


@dataclass
class ServiceCache:
    redis: Any
    settings: Settings
    stats: pattern.CacheStats
    source: str  # "policy/policy-3001-ab12": who invalidated, in the event

    async def read(self, response: Response, kind: str, key: str, load: Callable[[], Awaitable[Any]],
                   tags: Iterable[str] = (), entity_id: str | None = None) -> Any:
        """Cache-aside read of one value; sets ``X-Cache: HIT|MISS`` on ``response``.

        ``entity_id`` marks the read of one entity's own copy, which the coherence strategy may shape
        (lesson 06): under ``delete_with_token`` its fill is guarded by the entity's generation; under
        ``versioned_keys`` the copy read is the one of the entity's current version.
        """
        coherence = self.settings.cache_coherence
        if entity_id is not None and coherence == "versioned_keys" and self.settings.cache_enabled:
            key = await self._current_version_key(kind, entity_id)
        if not self.settings.cache_enabled or key is None:
            self.stats.misses[kind] += 1
            self.stats.sor_loads[kind] += 1
            response.headers["X-Cache"] = "MISS"
            return await load()
        guarded = entity_id is not None and coherence == "delete_with_token"
        value, hit = await pattern.cache_aside_get(self.redis, key, load, ttl_for(self.settings, kind), tags=tags,
                                                   stats=self.stats, kind=kind,
                                                   timeout_s=self.settings.cache_timeout_s,
                                                   generation_key=keys.cache_generation(kind, entity_id)
                                                   if guarded else None)
        response.headers["X-Cache"] = "HIT" if hit else "MISS"
        return value

    async def _current_version_key(self, kind: str, entity_id: str) -> str | None:
        """``lab:cache:policy:{POL-1}:v<generation>``: one round trip before the read. None if Redis did not
        answer — then the read goes to the system of record rather than guess a version."""
        try:
            version = await asyncio.wait_for(self.redis.get(keys.cache_generation(kind, entity_id)),
                                             self.settings.cache_timeout_s)
        except REDIS_DOWN_OR_REFUSING as exc:
            log.warning("could not read the version of %s %s (%r)", kind, entity_id, exc)
            self.stats.redis_failures[kind] += 1
            return None
        return keys.cache_versioned(kind, entity_id, version or 0)

    async def read_many(self, kind: str, ids: list[str], load_one: Callable[[str], Awaitable[Any]]):
        """``{id: (value, hit)}`` in one MGET + one pipeline (or straight from the SoR with caching off)."""
        if not self.settings.cache_enabled:
            self.stats.misses[kind] += len(ids)
            self.stats.sor_loads[kind] += len(ids)
            return {i: (await load_one(i), False) for i in dict.fromkeys(ids)}
        return await pattern.cache_aside_get_many(self.redis, lambda i: keys.cache_entity(kind, i), ids, load_one,
                                                  ttl_for(self.settings, kind), stats=self.stats, kind=kind,
                                                  timeout_s=self.settings.cache_timeout_s)

    async def invalidate(self, kind: str, entity_id: str, parents: Iterable[str] = (), reason: str = "",
                         new_value: Any = None) -> None:
        """After a committed write: make the copies follow it, as the coherence strategy says (lesson 06).

        ``parents`` are the entities the written one belongs to (a policy's customer; a claim's policy and
        customer): their lists and overviews changed too, and are deleted under every strategy but
        ``ttl_only``. ``new_value`` is the committed row (None once deleted), for ``write_through``. Then
        the change is announced on ``lab:events:invalidations`` — best effort, like the cache calls.
        Runs even with caching off, so copies from before the switch cannot outlive a write.
        """
        coherence = self.settings.cache_coherence
        if coherence == "ttl_only":  # the comparison baseline of lesson 06: copies live until their TTL
            return
        announced = {"kind": kind, "reason": reason, "parents": list(parents), "strategy": coherence}
        if coherence == "event_driven":  # the writer only announces; every instance deletes on the event
            return await self._announce(entity_id, {**announced, "keys": []})
        # versioned_keys leaves old versions to expire; write_through replaces the copy below (or, once the
        # entity is deleted, deletes it here with the rest).
        keeps_copy = coherence == "versioned_keys" or (coherence == "write_through" and new_value is not None)
        own_copy = [] if keeps_copy else [keys.cache_entity(kind, entity_id)]
        generations = [keys.cache_generation(kind, entity_id)] if coherence in ("delete_with_token",
                                                                                 "versioned_keys") else []
        deleted = await pattern.invalidate(self.redis, own_copy, dependents_of=[entity_id, *parents],
                                           stats=self.stats, kind=kind, timeout_s=self.settings.cache_timeout_s,
                                           generations=generations)
        if deleted is None:
            return
        if coherence == "write_through" and new_value is not None:
            await self._write_through(kind, entity_id, new_value)
        await self._announce(entity_id, {**announced, "keys": deleted})

    async def _write_through(self, kind: str, entity_id: str, new_value: Any) -> None:
        """SET the committed row as the new copy. Two writers can still SET in the opposite order of their
        commits — lesson 06 measures how often that leaves a stale copy."""
        await pattern.store(self.redis, keys.cache_entity(kind, entity_id), new_value, ttl_for(self.settings, kind),
                            stats=self.stats, kind=kind, timeout_s=self.settings.cache_timeout_s)

    async def _announce(self, entity_id: str, data: dict) -> None:
        event = Event(EventType.CACHE_INVALIDATED, self.source, entity_id, data)
        try:
            await self.redis.publish(INVALIDATIONS_CHANNEL, event.to_json())
        except REDIS_DOWN as exc:
            log.warning("could not announce the invalidation of %s (%r)", entity_id, exc)



async def service_cache(request: Request) -> ServiceCache:
    state = request.app.state
    return ServiceCache(state.redis, state.settings, state.cache_stats, f"{state.service}/{state.instance_id}")


CacheDep = Annotated[ServiceCache, Depends(service_cache)]
