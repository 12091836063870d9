"""Lessons 01 and 06 in a service: the cache patterns bound to this app's Redis, settings and counters.

Routes take ``cache: CacheDep`` and call ``cache.read_entity(...)`` for one entity by id (lesson 06's
``coherence.read`` under the lab's ``LAB_CACHE_COHERENCE``), ``cache.read(...)`` for a list page or an
overview (lesson 01's ``cache_aside_get``) — both set ``X-Cache`` — and ``cache.after_write(...)`` once a
write committed (lesson 06's ``coherence.after_write``). The patterns themselves — TTLs, tags, fail-open,
the generation token, the announcement — live in ``services/patterns/``; this module only decides *which*
TTL, *which* strategy and *which* counters. Its neighbours: ``batch.py`` (batch reads answered per id),
``invalidation_subscriber.py`` (``event_driven``: every instance deletes on the announcement) and
``cache_stats.py`` (the counters behind ``GET /stats`` and ``GET /metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Awaitable, Callable, Iterable

from fastapi import Depends, Request, Response

from services.core import keys
from services.core.settings import Settings
from services.patterns import cache as pattern
from services.patterns import coherence
from services.patterns.coherence import CachedEntity

Loader = Callable[[], Awaitable[Any]]


def ttl_for(settings: Settings, kind: str) -> pattern.Ttl:
    """Per-entity TTLs: the kind's own seconds (``cache_ttl_per_kind``), the strategy of the settings."""
    seconds = settings.cache_ttl_per_kind.get(kind, settings.cache_ttl_s)
    return pattern.Ttl(seconds, settings.cache_ttl_strategy, settings.cache_jitter, settings.cache_negative_ttl_s)


@dataclass
class ServiceCache:
    redis: Any
    settings: Settings
    stats: pattern.CacheStats
    source: str  # "policy/policy-3001-ab12": who wrote, in the announcement
    redis_just_failed: bool = False  # the fast path in front asked Redis for this request and got no answer

    async def peek_entity(self, kind: str, entity_id: str) -> pattern.Lookup:
        """What ``read_entity`` would find in Redis (lesson 06's ``coherence.peek``): for the fast path."""
        return await coherence.peek(self.redis, CachedEntity(kind, entity_id), ttl_for(self.settings, kind),
                                    self.settings.cache_coherence, stats=self.stats,
                                    timeout_s=self.settings.cache_timeout_s)

    async def read_entity(self, response: Response, kind: str, entity_id: str, load: Loader) -> Any:
        """One entity by id, through lesson 06's ``coherence.read`` under the lab's coherence strategy."""
        if not self.settings.cache_enabled or self.redis_just_failed:  # (asking again would wait twice)
            return await self._uncached(response, kind, load)
        value, hit = await coherence.read(self.redis, CachedEntity(kind, entity_id), load, ttl_for(self.settings, kind),
                                          self.settings.cache_coherence, stats=self.stats,
                                          timeout_s=self.settings.cache_timeout_s)
        response.headers["X-Cache"] = "HIT" if hit else "MISS"
        return value

    async def read(self, response: Response, kind: str, key: str, load: Loader, tags: Iterable[str] = ()) -> Any:
        """A list page or an overview, through lesson 01's ``cache_aside_get``; ``tags``: built from these ids."""
        if not self.settings.cache_enabled:
            return await self._uncached(response, kind, load)
        value, hit = await pattern.cache_aside_get(self.redis, key, load, ttl_for(self.settings, kind), tags=tags,
                                                   stats=self.stats, kind=kind,
                                                   timeout_s=self.settings.cache_timeout_s)
        response.headers["X-Cache"] = "HIT" if hit else "MISS"
        return value

    async def _uncached(self, response: Response, kind: str, load: Loader) -> Any:
        self.stats.misses[kind] += 1
        self.stats.sor_loads[kind] += 1
        response.headers["X-Cache"] = "MISS"
        return await load()

    async def read_many(self, kind: str, ids: list[str], load_one: Callable[[str], Awaitable[Any]]):
        """``{id: (value, hit)}`` in one pipeline of GETs + one of SETs (or straight from the SoR, caching off)."""
        if not self.settings.cache_enabled:
            self.stats.misses[kind] += len(ids)
            self.stats.sor_loads[kind] += len(ids)
            return {i: (await load_one(i), False) for i in dict.fromkeys(ids)}
        return await pattern.cache_aside_get_many(self.redis, lambda i: keys.cache_entity(kind, i), ids, load_one,
                                                  ttl_for(self.settings, kind), stats=self.stats, kind=kind,
                                                  timeout_s=self.settings.cache_timeout_s)

    async def after_write(self, kind: str, entity_id: str, parents: Iterable[str] = (), reason: str = "",
                          new_value: Any = None) -> None:
        """After a committed write: lesson 06's ``coherence.after_write`` under the lab's strategy.

        ``parents`` are the entities the written one belongs to (a policy's customer; a claim's policy and
        customer): their lists and overviews changed too. ``new_value`` is the committed row (None once
        deleted), for ``write_through``. Runs even with caching off, so copies from before the switch cannot
        outlive a write.
        """
        await coherence.after_write(self.redis, CachedEntity(kind, entity_id), self.settings.cache_coherence,
                                    new_value=new_value, ttl=ttl_for(self.settings, kind), parents=parents,
                                    source=self.source, reason=reason, stats=self.stats,
                                    timeout_s=self.settings.cache_timeout_s)


REDIS_JUST_FAILED = "lab.redis_just_failed"  # set in the ASGI scope's state by the fast path in front


def cache_of(state) -> ServiceCache:
    return ServiceCache(state.redis, state.settings, state.cache_stats, f"{state.service}/{state.instance_id}")


async def service_cache(request: Request) -> ServiceCache:
    cache = cache_of(request.app.state)
    cache.redis_just_failed = request.scope.get("state", {}).get(REDIS_JUST_FAILED, False)
    return cache


CacheDep = Annotated[ServiceCache, Depends(service_cache)]
