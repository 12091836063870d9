"""Where the gateway sends each service's traffic: its local view of the Redis registry.

Why a local view and not a Redis lookup per request: the registry changes a few times a minute, requests
arrive thousands of times a second. The view is kept fresh three ways:

* **events** — ``instance.registered`` / ``instance.deregistered`` on ``lab:events:registry`` add or drop an
  instance within a millisecond;
* **periodic sync** — every ``gateway_sync_s`` the whole registry is re-read: that is how an instance
  killed without a goodbye disappears (its key expired) and how a missed event is repaired;
* **health checks** — *active*: ``GET /health`` on every instance every ``gateway_probe_s``
  (``gateway_unhealthy_after`` failures in a row -> unhealthy, ``gateway_healthy_after`` successes -> healthy
  again); *passive*: a refused or broken connection on real traffic counts as a failed check. Any 200 is
  a good check, ``degraded`` included: an instance that lost Redis still serves from its system of record,
  so it stays in rotation. (That only holds because ``/health`` answers within its own Redis budget,
  ``services/platform/health.py``, well inside the probe's timeout.)

On top of health, each instance has a circuit breaker (``services/patterns/breaker.py``), and each service a
balancer (``services/patterns/loadbalance.py``) that picks among the instances that are healthy and whose
breaker lets a request through. If Redis goes away the view keeps what it last knew.

``StaticUpstreams`` is the original lab's way — one instance per service at its settings port — kept for
comparison (``LAB_GATEWAY_DISCOVERY=static``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import aiohttp
import redis.asyncio as aioredis

from services.core import keys
from services.core.redis_client import REDIS_DOWN
from services.core.settings import ROUTES, SERVICE_NAMES, Settings
from services.patterns import registry
from services.patterns.breaker import CircuitBreaker
from services.patterns.envelope import Event, EventType
from services.patterns.loadbalance import make_balancer
from services.patterns.subscriber import subscribe_forever
from services.platform.health import REDIS_CHECK_BUDGET_S
from services.platform.tasks import BackgroundTasks

log = logging.getLogger("lab.gateway.upstreams")


@dataclass(eq=False)
class Upstream:
    """One instance as this gateway sees it."""

    service: str
    instance_id: str
    base_url: str
    weight: int = 1
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    healthy: bool = True
    outstanding: int = 0  # requests sent and not answered yet (least-outstanding balancing reads it)
    served: int = 0
    failures_in_row: int = 0
    successes_in_row: int = 0
    last_error: str | None = None
    registered: bool = True  # its id is the one it registered under (StaticUpstreams' ids are made up here)

    def describe(self) -> dict:
        return {"instance": self.instance_id, "url": self.base_url, "healthy": self.healthy,
                "breaker": self.breaker.state, "outstanding": self.outstanding, "served": self.served,
                "weight": self.weight, "last_error": self.last_error}


class Upstreams:
    """What the proxy needs: pick an instance, report how a request to it went, describe the view."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.instances: dict[str, dict[str, Upstream]] = {name: {} for name in SERVICE_NAMES}
        self.balancers = {service: make_balancer(self.strategy_setting(service)) for service in ROUTES.values()}

    def strategy_setting(self, service: str) -> str:
        return self.settings.gateway_balancer_per_service.get(service, self.settings.gateway_balancer)

    def set_strategy(self, service: str, strategy: str) -> None:
        self.balancers[service] = make_balancer(strategy)  # ValueError names the choices

    def candidates(self, service: str, exclude: Upstream | None = None) -> list[Upstream]:
        return [u for u in self.instances.get(service, {}).values()
                if u.healthy and u is not exclude and u.breaker.allows()]

    def pick(self, service: str, exclude: Upstream | None = None) -> Upstream | None:
        balancer = self.balancers.get(service)
        return balancer.pick(self.candidates(service, exclude)) if balancer else None

    def any_instance(self, service: str) -> Upstream | None:
        """For the aggregated /health: a healthy instance if there is one (no balancer turn used)."""
        every = list(self.instances.get(service, {}).values())
        return next((u for u in every if u.healthy), every[0] if every else None)

    # --- what happened to a request (passive health + breaker) ---
    def on_sent(self, upstream: Upstream) -> None:
        upstream.outstanding += 1
        upstream.breaker.on_send()

    def on_answer(self, upstream: Upstream, status: int) -> None:
        upstream.outstanding -= 1
        upstream.served += 1
        if status >= 500:
            upstream.breaker.on_failure()
            upstream.last_error = f"answered {status}"
        else:
            upstream.breaker.on_success()

    def on_failure(self, upstream: Upstream, error: str, connection_failed: bool) -> None:
        upstream.outstanding -= 1
        upstream.breaker.on_failure()
        upstream.last_error = error
        if connection_failed:
            self._health_result(upstream, ok=False)

    def _health_result(self, upstream: Upstream, ok: bool) -> None:
        if ok:
            upstream.failures_in_row, upstream.successes_in_row = 0, upstream.successes_in_row + 1
            if not upstream.healthy and upstream.successes_in_row >= self.settings.gateway_healthy_after:
                upstream.healthy = True
                log.info("%s is healthy again", upstream.instance_id)
        else:
            upstream.successes_in_row, upstream.failures_in_row = 0, upstream.failures_in_row + 1
            if upstream.healthy and upstream.failures_in_row >= self.settings.gateway_unhealthy_after:
                upstream.healthy = False
                log.warning("%s is unhealthy (%s)", upstream.instance_id, upstream.last_error)

    def describe(self) -> dict:
        return {service: {"strategy": self.balancers[service].name if service in self.balancers else None,
                          "instances": [u.describe() for u in sorted(found.values(), key=lambda u: u.instance_id)]}
                for service, found in self.instances.items() if found or service in self.balancers}

    async def start(self, tasks: BackgroundTasks) -> None:
        """Begin keeping the view current; any task it needs runs on the app's ``tasks``."""


class StaticUpstreams(Upstreams):
    """One instance per service at the port settings give it (the original lab's hard-coded registry)."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        for service in ROUTES.values():
            instance_id = f"{service}@{settings.advertised_host}:{settings.port_of(service)}"
            self.instances[service][instance_id] = Upstream(service, instance_id, settings.url_of(service),
                                                            registered=False)


class RegistryUpstreams(Upstreams):
    """The registry in Redis, mirrored locally (events + periodic sync) and health-checked."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, session: aiohttp.ClientSession):
        super().__init__(settings)
        self.redis, self.session = redis, session
        self.last_sync: float | None = None

    def add(self, found: registry.Instance) -> None:
        known = self.instances.setdefault(found.service, {})
        current = known.get(found.instance_id)
        if current is None or current.base_url != found.base_url or current.weight != found.weight:
            known[found.instance_id] = Upstream(found.service, found.instance_id, found.base_url, found.weight,
                                                CircuitBreaker(self.settings.breaker_failures,
                                                               self.settings.breaker_open_s))
            log.info("now routing to %s at %s", found.instance_id, found.base_url)

    def remove(self, service: str, instance_id: str) -> None:
        if self.instances.get(service, {}).pop(instance_id, None) is not None:
            log.info("stopped routing to %s", instance_id)

    async def sync(self) -> None:
        """Make the view equal to the registry (Redis down: keep the view as it is)."""
        for service in list(self.instances):
            alive = await registry.list_instances(self.redis, service)
            for found in alive:
                self.add(found)
            for gone in set(self.instances[service]) - {i.instance_id for i in alive}:
                self.remove(service, gone)
        self.last_sync = time.time()

    async def on_event(self, event: Event) -> None:
        """An event is a hint, not a source: any lab process may publish on the channel, so an instance is
        added only if its registration — writable by its own service's Redis user alone — says so."""
        announced = registry.Instance(**event.data)
        if announced.service not in self.instances:
            return
        if event.type == EventType.INSTANCE_REGISTERED:
            found = await registry.read_instance(self.redis, announced.service, announced.instance_id)
            if found is not None:
                self.add(found)
        elif event.type == EventType.INSTANCE_DEREGISTERED:
            if await registry.read_instance(self.redis, announced.service, announced.instance_id) is None:
                self.remove(announced.service, announced.instance_id)

    async def _sync_forever(self) -> None:
        while True:
            try:
                await self.sync()
            except REDIS_DOWN as exc:
                log.warning("registry sync failed (%s); keeping the last view", type(exc).__name__)
            await asyncio.sleep(self.settings.gateway_sync_s)

    async def _probe(self, upstream: Upstream) -> None:
        # At least twice the time /health may spend waiting for Redis: degraded must not look like dead.
        timeout = aiohttp.ClientTimeout(total=max(2 * REDIS_CHECK_BUDGET_S, self.settings.gateway_probe_s * 2))
        try:
            async with self.session.get(upstream.base_url + "/health", timeout=timeout) as response:
                await response.read()
                ok = response.status == 200
                upstream.last_error = None if ok else f"/health answered {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            ok, upstream.last_error = False, f"/health: {type(exc).__name__}"
        self._health_result(upstream, ok)

    async def _probe_forever(self) -> None:
        while True:
            routed = [u for service in ROUTES.values() for u in list(self.instances.get(service, {}).values())]
            await asyncio.gather(*(self._probe(u) for u in routed))
            await asyncio.sleep(self.settings.gateway_probe_s)

    async def start(self, tasks: BackgroundTasks) -> None:
        try:
            await self.sync()
        except REDIS_DOWN as exc:  # the sync loop keeps trying; the gateway starts anyway
            log.warning("registry not readable at start (%s)", type(exc).__name__)
        tasks.start("registry-events", subscribe_forever(self.redis, [keys.registry_channel()], self.on_event))
        tasks.start("registry-sync", self._sync_forever())
        tasks.start("health-probes", self._probe_forever())
