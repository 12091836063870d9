"""The cache counters of one instance, two views: ``GET /stats`` (JSON) and ``GET /metrics`` (Prometheus).

Both read the same ``CacheStats`` on ``app.state``; ``/metrics`` comes from this app's own
CollectorRegistry (not the process-global one), so two apps in one process never mix their counters.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily

from services.patterns import cache as pattern


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
        db = self.app.state.db
        if db is not None:
            queries = CounterMetricFamily("lab_sor_queries", "Every query the system of record ran",
                                          labels=["service"])
            queries.add_metric([service], db.loads)
            yield queries


def install_cache_stats(app: FastAPI) -> None:
    """Called by the app factory: the counters on ``app.state`` read by its own registry, the two routes."""
    app.state.metrics_registry.register(_CacheCollector(app))
    app.include_router(stats_router)


stats_router = APIRouter(tags=["stats"])


@stats_router.get("/stats")
async def cache_stats(request: Request) -> dict:
    """Hits, misses, hit rate and system-of-record loads of this instance since it started."""
    state = request.app.state
    db = state.db
    return {"service": state.service, "instance": state.instance_id, "cache_enabled": state.settings.cache_enabled,
            **state.cache_stats.summary(), "sor_queries": db.loads if db is not None else 0,
            "by_kind": state.cache_stats.by_kind()}


@stats_router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """The same counters in Prometheus text format, from this app's own registry (not the global one)."""
    return PlainTextResponse(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
