"""Calls from one domain service to another (policy asks customer, claims asks policy).

A service never reads another service's database: it asks over HTTP, as itself (``service:<name>`` with
the system role, in an identity signed for that one request with the one key it holds for that peer, see
``access.py``). When the other service cannot answer, the caller answers 503 naming it,
rather than guessing.

*Where* to ask comes from the registry (lesson 03), like the gateway's routing: ``PeerDirectory`` keeps,
per peer service, the addresses of its live instances, re-read from Redis at most every
``peer_refresh_s`` (one round trip a second, not one per call), and takes them in turn. A call that
failed on the way (connection refused, or a kept-alive connection to a killed instance found dead) is a
GET, safe to repeat: it is retried once on the next instance, and the view is re-read on the next call.
A timeout is not retried (the instance is slow, not gone). With no registration to go by (Redis down at
start, or a lab started without discovery) it falls back to the service's port in the settings.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time

import aiohttp
from fastapi import Request
from opentelemetry import propagate

from services.patterns import registry

from .access import peer_identity_header
from services.core.errors import LabError
from services.core.redis_client import REDIS_DOWN_OR_REFUSING
from services.core.settings import Settings

log = logging.getLogger("lab.peers")


class PeerDirectory:
    """The live instances of each peer service, from the registry, in turn."""

    def __init__(self, redis, settings: Settings):
        self.redis, self.settings = redis, settings
        self.views: dict[str, tuple[float, list[str]]] = {}  # service -> (read at, base URLs)
        self.turn = itertools.count()

    async def addresses(self, service: str) -> list[str]:
        """Base URLs of ``service``'s instances, the next one in turn first."""
        read_at, urls = self.views.get(service, (float("-inf"), []))
        if time.monotonic() - read_at >= self.settings.peer_refresh_s:
            urls = await self._read_registry(service) or urls or [self.settings.url_of(service)]
            self.views[service] = (time.monotonic(), urls)
        start = next(self.turn) % len(urls)
        return urls[start:] + urls[:start]

    async def _read_registry(self, service: str) -> list[str]:
        try:
            instances = await asyncio.wait_for(registry.list_instances(self.redis, service),
                                               self.settings.redis_timeout_s)
        except REDIS_DOWN_OR_REFUSING as exc:
            log.warning("could not read the registry for %s (%s): using what was known", service,
                        type(exc).__name__)
            return []
        return [instance.base_url for instance in instances]

    def forget(self, service: str) -> None:
        """An instance refused a connection: re-read the registry on the next call."""
        self.views.pop(service, None)


async def fetch_peer_entity(request: Request, service: str, path: str) -> dict | None:
    """GET ``path`` on ``service``: the JSON body, None on 404, LabError 503 when it cannot answer."""
    state = request.app.state
    rid = request.scope.get("state", {}).get("request_id")
    headers = peer_identity_header(state.settings, state.service, service, "GET", path)
    if rid:
        headers["x-request-id"] = rid
    # the trace context, sampled or not (lesson 10): the aiohttp instrumentation writes it too when it runs,
    # but for a request the edge chose not to trace it is suppressed, and the peer must still learn "not sampled"
    propagate.inject(headers)
    status, body, failure = None, b"", None
    for attempt, base_url in enumerate((await state.peers.addresses(service))[:2]):
        try:
            async with state.http.get(base_url + path, headers=headers) as response:
                status, body = response.status, await response.read()
            break
        except asyncio.TimeoutError as exc:  # slow, not gone: asking another would only double the wait
            failure = exc
            break
        except aiohttp.ClientError as exc:  # refused, or a kept-alive connection found dead: a GET is safe
            state.peers.forget(service)     # to repeat, so ask the next instance (once)
            failure = exc
            log.warning("%s at %s failed (%s, attempt %d)", service, base_url, type(exc).__name__, attempt + 1)
    if status is None:
        raise LabError(503, "dependency_unavailable",
                       f"the {service} service did not answer ({type(failure).__name__}); try again shortly",
                       service=service) from failure
    if status == 404:
        return None
    if status != 200:
        raise LabError(503, "dependency_unavailable", f"the {service} service answered {status}", service=service)
    return json.loads(body)
