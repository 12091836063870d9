"""Lesson 01 in a service: the cache-aside pattern bound to this app's Redis, settings and counters.

Routes take ``cache: CacheDep`` and call ``cache.read(...)`` for a cacheable GET (it sets ``X-Cache``) and
``cache.invalidate(...)`` after a committed write. ``GET /stats`` and ``GET /metrics`` (Prometheus text,
from this app's own CollectorRegistry) show the counters. The pattern itself — TTLs, tags, fail-open —
lives in ``services/patterns/cache.py``; this module only decides *which* TTL and *which* key.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Annotated, Any, Awaitable, Callable, Iterable

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily

from services.patterns import cache as pattern
from services.patterns.envelope import Event, EventType
from services.patterns.subscriber import subscribe_forever

from . import keys
from .errors import LabError
from .ids import is_valid, make_id
from .redis_client import REDIS_DOWN
from .settings import Settings

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
        except pattern.CACHE_FAILURES as exc:
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


async def invalidate_announced_changes(app: FastAPI) -> None:
    """``event_driven`` coherence: forever, delete what an announced write made stale.

    Every instance of the service runs this and handles its own service's announcements (``source``
    ``policy/<instance>``), so copies go when the event arrives — a window of about a pub/sub hop in which
    readers still get the old copy, and until the TTL if the event is lost (pub/sub keeps nothing).
    """
    state = app.state

    async def on_event(event: Event) -> None:
        data = event.data
        if data.get("strategy") != "event_driven" or event.source.split("/")[0] != state.service:
            return
        await pattern.invalidate(state.redis, [keys.cache_entity(data["kind"], event.subject)],
                                 dependents_of=[event.subject, *data.get("parents", [])], stats=state.cache_stats,
                                 kind=data["kind"], timeout_s=state.settings.cache_timeout_s)

    await subscribe_forever(state.redis, [INVALIDATIONS_CHANNEL], on_event)


def start_event_driven_invalidation(app: FastAPI) -> None:
    """Called at start-up: the subscriber runs only when the lab is set to ``event_driven``."""
    app.state.invalidator = (asyncio.create_task(invalidate_announced_changes(app), name="event-driven-invalidation")
                             if app.state.settings.cache_coherence == "event_driven" else None)


async def stop_event_driven_invalidation(app: FastAPI) -> None:
    task = getattr(app.state, "invalidator", None)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


MAX_BATCH = 100


def parse_batch_ids(raw: str, kind: str) -> tuple[list[str], dict[str, dict]]:
    """``"POL-000001,oops"`` -> (valid ids, {bad id: error}); too many or none at all is a 422 naming ``ids``."""
    asked = [part.strip() for part in raw.split(",") if part.strip()]
    if not asked or len(asked) > MAX_BATCH:
        raise LabError(422, "invalid_input", f"ids must list 1 to {MAX_BATCH} comma-separated ids, got {len(asked)}",
                       "ids")
    valid = [i for i in asked if is_valid(kind, i)]
    errors = {i: {"code": "invalid_id", "message": f"{i!r} is not a {kind} id (like {make_id(kind, 1)})"}
              for i in asked if not is_valid(kind, i)}
    return valid, errors


async def read_batch(cache: "ServiceCache", kind: str, raw_ids: str, load_one: Callable[[str], Awaitable[Any]],
                     visible: Callable[[dict], bool]) -> dict:
    """A batch read answered per id: ``items`` found, ``errors`` (invalid id, not found) — never one opaque 4xx.

    An entity the caller may not see is reported exactly like one that does not exist.
    """
    ids, errors = parse_batch_ids(raw_ids, kind)
    results = await cache.read_many(kind, ids, load_one) if ids else {}
    items = {}
    for entity_id, (value, _) in results.items():
        if value is not None and visible(value):
            items[entity_id] = value
        else:
            errors[entity_id] = {"code": "not_found", "message": f"{kind} {entity_id} does not exist"}
    hits = sum(1 for _, hit in results.values() if hit)
    return {"items": items, "errors": errors, "cache": {"hits": hits, "misses": len(results) - hits}}


async def service_cache(request: Request) -> ServiceCache:
    state = request.app.state
    return ServiceCache(state.redis, state.settings, state.cache_stats, f"{state.service}/{state.instance_id}")


CacheDep = Annotated[ServiceCache, Depends(service_cache)]


class _CacheCollector:
    """Reads the app's CacheStats when Prometheus scrapes: one set of counters, two views."""

    def __init__(self, app: FastAPI):
        self.app = app

    def collect(self):
        stats: pattern.CacheStats = self.app.state.cache_stats
        labels = ["service", "kind"]
        service = self.app.state.service
        families = {
            "lab_cache_hits": (stats.hits, "Cache-aside reads answered from Redis"),
            "lab_cache_misses": (stats.misses, "Cache-aside reads Redis could not answer"),
            "lab_cache_negative_hits": (stats.negative_hits, "Hits on a cached 'does not exist'"),
            "lab_cache_sor_loads": (stats.sor_loads, "Cache-aside reads that reached the system of record"),
            "lab_cache_redis_failures": (stats.redis_failures, "Cache calls that failed open (Redis down or slow)"),
            "lab_cache_invalidations": (stats.invalidations, "Invalidations after writes"),
        }
        for name, (counter, text) in families.items():
            family = CounterMetricFamily(name, text, labels=labels)
            for kind, count in sorted(counter.items()):
                family.add_metric([service, kind], count)
            yield family
        db = self.app.state.db if hasattr(self.app.state, "db") else None
        if db is not None:
            queries = CounterMetricFamily("lab_sor_queries", "Every query the system of record ran",
                                          labels=["service"])
            queries.add_metric([service], db.loads)
            yield queries


def install_cache_stats(app: FastAPI) -> None:
    """Called by the app factory: counters on ``app.state``, a registry of its own, the two routes."""
    app.state.cache_stats = pattern.CacheStats()
    app.state.metrics_registry = CollectorRegistry(auto_describe=False)
    app.state.metrics_registry.register(_CacheCollector(app))
    app.include_router(stats_router)


stats_router = APIRouter(tags=["stats"])


@stats_router.get("/stats")
async def cache_stats(request: Request) -> dict:
    """Hits, misses, hit rate and system-of-record loads of this instance since it started."""
    state = request.app.state
    db = getattr(state, "db", None)
    return {"service": state.service, "instance": state.instance_id, "cache_enabled": state.settings.cache_enabled,
            **state.cache_stats.summary(), "sor_queries": db.loads if db is not None else 0,
            "by_kind": state.cache_stats.by_kind()}


@stats_router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """The same counters in Prometheus text format, from this app's own registry (not the global one)."""
    return PlainTextResponse(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
