"""No route of any service waits on a worker thread for a dependency.

FastAPI runs a plain ``def`` dependency (or endpoint) in its thread pool: a hop to another thread and back on
every request. Four one-line ``def`` dependencies once cost the cached read about 0.3 ms at p50 (issue 20),
which no functional test notices. So every dependency and endpoint the apps' routes use is ``async def``.
"""

from __future__ import annotations

import importlib
import inspect

import pytest
from fastapi.routing import APIRoute

from services.core.settings import SERVICE_NAMES, Settings


def _api_routes(routes):
    """Every APIRoute, also inside included routers (FastAPI keeps an included router as one entry)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)
        elif hasattr(route, "routes"):
            yield from _api_routes(route.routes)


def _calls(dependant):
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_dependency_and_endpoint_runs_on_the_event_loop(service, tmp_path):
    app = importlib.import_module(f"services.{service}.main").build(settings=Settings(run_dir=tmp_path), port=1,
                                                                      instance_id=f"{service}-1-test")
    fastapi_app = app
    while not hasattr(fastapi_app, "routes"):  # under the lab's ASGI middlewares
        fastapi_app = getattr(fastapi_app, "app")
    threaded, routes = [], list(_api_routes(fastapi_app.routes))
    assert len(routes) >= 3, "found too few routes to check: has FastAPI changed how it keeps them?"
    for route in routes:
        for call in [route.dependant.call, *_calls(route.dependant)]:
            if call is not None and not inspect.iscoroutinefunction(call) \
                    and not inspect.iscoroutinefunction(getattr(call, "__call__", None)):
                threaded.append(f"{route.path}: {getattr(call, '__qualname__', call)}")
    assert not threaded, f"these run in a worker thread on every request: {sorted(set(threaded))}"
