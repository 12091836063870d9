"""What the dashboard shows, gathered once per second from what the lab already exposes.

Nothing here is new instrumentation: the gateway's ``GET /services`` (instances, health as its active
probes see it, breaker, requests in flight and served, balancer strategy, its response cache, what it
refused), each domain instance's ``GET /stats`` (cache hits, misses, system-of-record loads), the registry
in Redis (``PTTL`` of every registration), ``XINFO`` of every topic stream, ``INFO``, and labkit's own
pidfiles (is the process still alive? A SIGKILLed instance is seen dead at the next tick, before the
gateway's probes or the registry's TTL notice — the page shows all three, so a learner watches the news
travel).

Why one collector per dashboard process, not one per page: a page only listens (Server-Sent Events), so
N open pages cost the lab what one costs. And nothing is collected while no page is open
(``Hub.subscribe`` starts and stops the loop), so a dashboard nobody watches costs the lab nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx
import redis.asyncio as aioredis

from services.core import keys
from services.core.acl import TOPIC_OF
from services.core.settings import ROUTES, SERVICE_NAMES, Settings
from services.patterns.envelope import Event
from services.patterns.subscriber import subscribe_forever

from .. import procs

log = logging.getLogger("lab.dashboard")

ROUTED = tuple(sorted(set(ROUTES.values())))  # the services the gateway routes to (and that cache)
SHOWN_IN_ORDER = ("gateway", *ROUTED, *(name for name in SERVICE_NAMES if name not in ROUTED and name != "gateway"))
TOPICS = tuple(sorted(set(TOPIC_OF.values())))  # one stream per topic: customers, policies, claims
HISTORY_S = 60  # the hit-rate line covers the last minute, one point per tick
RECENT_EVENTS = 25
REDIS_WAIT_S = 1.5  # longer than one Redis timeout: a slow answer is waited for, a frozen server is not
SESSION_COUNT_EVERY_S = 5.0  # counting sessions is a SCAN over the keyspace: not every second


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class HitRateHistory:
    """Per-tick hits and misses of one service (summed over its instances), for the last minute."""

    last_totals: dict[str, tuple[int, int]] = field(default_factory=dict)  # instance -> (hits, misses)
    points: deque = field(default_factory=lambda: deque(maxlen=HISTORY_S))  # (hits, misses) per tick

    def add(self, totals: dict[str, tuple[int, int]]) -> None:
        hits = misses = 0
        for instance, (h, m) in totals.items():
            before = self.last_totals.get(instance)
            if before is None:
                continue  # first sight of this instance: its counters are a baseline, not this tick's reads
            dh, dm = h - before[0], m - before[1]
            if dh < 0 or dm < 0:  # the instance restarted: its counters began again from zero
                dh, dm = h, m
            hits, misses = hits + dh, misses + dm
        self.last_totals = dict(totals)
        self.points.append((hits, misses))

    def describe(self) -> dict:
        hits = sum(h for h, _ in self.points)
        reads = hits + sum(m for _, m in self.points)
        return {"hit_rate_1m": round(hits / reads, 4) if reads else None, "reads_1m": reads,
                "line": [round(h / (h + m), 3) if h + m else None for h, m in self.points]}


class Collector:
    """Builds one snapshot (a JSON-able dict) per call to :meth:`collect`; keeps the little history it needs."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, http: httpx.AsyncClient):
        self.settings, self.redis, self.http = settings, redis, http
        self.history = {service: HitRateHistory() for service in ROUTED}
        self.recent_events: deque = deque(maxlen=RECENT_EVENTS)
        self.sessions_active: int | None = None
        self.on_new_event = None  # set by the hub: push each event to the open pages as it arrives
        self._sessions_counted_at = 0.0

    # --- the sources ---------------------------------------------------------------------------------

    async def _get_json(self, url: str) -> dict | None:
        try:
            response = await self.http.get(url)
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    async def _registry(self) -> dict[str, list[dict]]:
        """Every registration per service with its remaining TTL (s); ids whose key expired are left out."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for service in SERVICE_NAMES:
                pipe.zrange(keys.registry_index(service), 0, -1)
            ids = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for service, found in zip(SERVICE_NAMES, ids):
                for instance_id in found:
                    pipe.get(keys.registry_instance(service, instance_id))
                    pipe.pttl(keys.registry_instance(service, instance_id))
            answers = await pipe.execute()
        registry, at = {}, 0
        for service, found in zip(SERVICE_NAMES, ids):
            registry[service] = []
            for instance_id in found:
                raw, pttl = answers[at], answers[at + 1]
                at += 2
                if raw is None or pttl < 0:
                    continue
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                registry[service].append({"instance": instance_id, "port": entry.get("port"),
                                          "url": f"http://{entry.get('host')}:{entry.get('port')}",
                                          "weight": entry.get("weight"), "ttl_s": round(pttl / 1000, 1)})
        return registry

    async def _streams(self) -> list[dict]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for topic in TOPICS:
                pipe.xlen(keys.stream(topic))
                pipe.xinfo_groups(keys.stream(topic))
                pipe.xlen(keys.dead_letter(topic))
            answers = await pipe.execute(raise_on_error=False)
        streams = []
        for i, topic in enumerate(TOPICS):
            length, groups, dead = answers[3 * i: 3 * i + 3]
            groups = groups if isinstance(groups, list) else []
            streams.append({
                "topic": topic, "stream": keys.stream(topic), "length": length if isinstance(length, int) else 0,
                "dead_lettered": dead if isinstance(dead, int) else 0,
                "groups": [{"name": _text(g.get("name")), "consumers": g.get("consumers"), "pending": g.get("pending"),
                            "lag": g.get("lag")} for g in groups]})
        return streams

    async def _redis_info(self) -> dict:
        info = await self.redis.info()
        about = {"ok": True, "server": "valkey" if "valkey_version" in info else "redis",
                 "version": info.get("valkey_version") or info.get("redis_version"),
                 "mode": info.get("redis_mode", "standalone"), "memory": info.get("used_memory_human"),
                 "memory_bytes": info.get("used_memory"), "ops_per_sec": info.get("instantaneous_ops_per_sec"),
                 "clients": info.get("connected_clients"), "keys": _key_count(info), "nodes": []}
        if info.get("cluster_enabled"):
            about["nodes"] = _cluster_nodes(await self.redis.execute_command("CLUSTER", "NODES"))
        return about

    async def _count_sessions(self) -> None:
        """``SCAN`` for ``lab:session:*`` every few seconds (a session expires by itself: no index to read)."""
        if time.monotonic() - self._sessions_counted_at < SESSION_COUNT_EVERY_S:
            return
        self._sessions_counted_at = time.monotonic()
        count = 0
        async for _ in self.redis.scan_iter(match=keys.session("*"), count=1000):
            count += 1
        self.sessions_active = count

    async def on_event(self, event: Event) -> None:
        seen = {"type": str(event.type), "subject": event.subject, "time": event.time, "source": event.source}
        self.recent_events.appendleft(seen)
        if self.on_new_event is not None:
            self.on_new_event(seen)

    def listen(self) -> asyncio.Task:
        """Keep the last events as they are published (topics, registry, cache invalidations)."""
        channels = [keys.channel(topic) for topic in TOPICS] + [keys.registry_channel(), keys.channel("invalidations")]
        return asyncio.create_task(subscribe_forever(self.redis, channels, self.on_event), name="dashboard-events")

    # --- one snapshot ----------------------------------------------------------------------------------

    async def collect(self) -> dict:
        errors: list[str] = []
        records = procs.read_pidfiles(self.settings.run_dir)
        by_port = {r.port: r for r in records.values() if "#" in r.name or r.name in SERVICE_NAMES}

        async def guarded(what: str, coroutine, default):
            """A frozen or restarting Redis must not stall the tick: the processes' state still goes out."""
            try:
                return await asyncio.wait_for(coroutine, REDIS_WAIT_S)
            except asyncio.TimeoutError:
                errors.append(f"{what}: no answer from Redis within {REDIS_WAIT_S:g} s")
            except Exception as exc:  # noqa: BLE001 - one source down must not blank the page
                errors.append(f"{what}: {type(exc).__name__}")
            return default

        registry, streams, redis_about, _ = await asyncio.gather(
            guarded("registry", self._registry(), {}), guarded("streams", self._streams(), []),
            guarded("redis", self._redis_info(), {"ok": False}), guarded("sessions", self._count_sessions(), None))

        # Every instance we know of: registered ones, plus labkit's processes that are not (or no longer).
        known: dict[str, dict[int, dict]] = {service: {} for service in SERVICE_NAMES}
        for service, entries in registry.items():
            for entry in entries:
                known[service][entry["port"]] = {**entry, "name": None, "pid": None, "process": None}
        for record in by_port.values():
            service = record.name.split("#")[0]
            if service not in known:
                continue
            row = known[service].setdefault(record.port, {"instance": None, "port": record.port, "url": record.url,
                                                           "weight": None, "ttl_s": None})
            alive = procs.is_alive(record.pid)
            row.update(name=record.name, pid=record.pid, process="alive" if alive else "dead")

        # Every HTTP question at once: a tick costs the slowest answer (at most the client's timeout), not the sum.
        alive = {service: [row["url"] for row in known[service].values() if row.get("process") != "dead"]
                 for service in SERVICE_NAMES}
        gateway_urls, worker_urls = alive["gateway"], alive["worker"]
        stats_urls = [url for service in ROUTED for url in alive[service]]
        answers = await asyncio.gather(*(self._get_json(url + "/services") for url in gateway_urls),
                                       *(self._get_json(url + "/health") for url in worker_urls),
                                       *(self._get_json(url + "/stats") for url in stats_urls))
        views = answers[:len(gateway_urls)]
        view = next((v for v in views if v), None)
        worker_health = dict(zip(worker_urls, answers[len(gateway_urls):len(gateway_urls) + len(worker_urls)]))
        stats = dict(zip(stats_urls, answers[len(gateway_urls) + len(worker_urls):]))
        if gateway_urls and view is None:
            errors.append("gateway: GET /services did not answer")

        services = []
        for service in SHOWN_IN_ORDER:
            gateway_side = (view or {}).get("services", {}).get(service, {})
            seen_by_gateway = {_port_of(u["url"]): u for u in gateway_side.get("instances", [])}
            instances = []
            for port, row in sorted(known[service].items(), key=lambda item: _order(item[1])):
                routed = seen_by_gateway.get(port) if service in ROUTED else None
                if routed:
                    row.update(instance=row["instance"] or routed["instance"], breaker=routed["breaker"],
                               in_flight=routed["outstanding"], served=routed["served"],
                               weight=routed["weight"], last_error=routed["last_error"])
                if service == "gateway":
                    answered = views[gateway_urls.index(row["url"])] if row["url"] in gateway_urls else None
                    probe = {"healthy": answered is not None}
                elif service == "worker":
                    health = worker_health.get(row["url"])
                    probe = {"healthy": bool(health), "consumer": (health or {}).get("consumer")}
                else:
                    probe = {"gateway_healthy": routed["healthy"] if routed else None}
                row.update(probe)
                row["health"], row["why"] = _health(service, row, routed, view is not None)
                answer = stats.get(row["url"])
                if answer:
                    row["cache"] = {k: answer.get(k) for k in ("hits", "misses", "hit_rate", "sor_loads", "sor_queries")}
                instances.append(row)
            services.append({"name": service, "strategy": gateway_side.get("strategy"), "instances": instances,
                             "health": _service_health(instances)})

        caches = {}
        for service in ROUTED:
            totals, sor_loads, sor_queries = {}, 0, 0
            for row in known[service].values():
                cache = row.get("cache")
                if cache:
                    totals[row["url"]] = (cache["hits"] or 0, cache["misses"] or 0)
                    sor_loads += cache["sor_loads"] or 0
                    sor_queries += cache["sor_queries"] or 0
            self.history[service].add(totals)
            caches[service] = {**self.history[service].describe(), "sor_loads": sor_loads, "sor_queries": sor_queries}
        response_cache = (view or {}).get("response_cache")
        if response_cache:
            reads = response_cache["hits"] + response_cache["misses"]
            response_cache = {**response_cache, "hit_rate": round(response_cache["hits"] / reads, 4) if reads else None}

        refused = (view or {}).get("refused") or {}
        return {
            "time": now_iso(),
            "registry_ttl_s": self.settings.registry_ttl_s,
            "services": services,
            "caches": {"services": caches, "gateway": response_cache},
            "events": {"streams": streams, "recent": list(self.recent_events)},
            "access": {"sessions_active": self.sessions_active, "rate_limit": (view or {}).get("rate_limit"),
                       "logins_locked_out": refused.get("logins_locked_out"),
                       "logins_failed": refused.get("logins_failed"), "rate_limited": refused.get("rate_limited")},
            "redis": redis_about,
            "errors": errors,
        }


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _port_of(url: str) -> int | None:
    try:
        return int(url.rsplit(":", 1)[1].split("/")[0])
    except (IndexError, ValueError):
        return None


def _order(row: dict) -> tuple:
    """The first instance (``claims``) first, then ``claims#2``, ``#3`` ..., then instances labkit did not start."""
    name = row.get("name")
    if name is None:
        return (2, 0, row.get("instance") or "")
    return (0 if "#" not in name else 1, int(name.split("#")[1]) if "#" in name else 0, name)


def _health(service: str, row: dict, routed: dict | None, gateway_answered: bool) -> tuple[str, str]:
    """``healthy``, ``unhealthy`` or ``down``, and why, from the process, the gateway's view and the registry."""
    if row.get("process") == "dead":
        return "down", "process gone (killed or exited)"
    if service in ROUTED:
        if routed is None:
            if not gateway_answered:
                return "unknown", "the gateway does not answer"
            return "unhealthy", "not in the gateway's view (not registered?)"
        if not routed["healthy"]:
            return "unhealthy", f"the gateway's probes fail ({routed.get('last_error') or 'no answer'})"
        if routed["breaker"] == "open":
            return "unhealthy", "circuit breaker open"
        return "healthy", "the gateway routes to it" + (" (breaker half-open)" if routed["breaker"] == "half_open" else "")
    if row.get("healthy"):
        return "healthy", "answers"
    return "unhealthy", "does not answer"


def _service_health(instances: list[dict]) -> str:
    states = {row["health"] for row in instances}
    if not instances:
        return "down"
    if states == {"healthy"}:
        return "healthy"
    return "degraded" if "healthy" in states else "down"


def _key_count(info: dict) -> int:
    return sum(v.get("keys", 0) for k, v in info.items() if k.startswith("db") and isinstance(v, dict))


def _cluster_nodes(text: str) -> list[dict]:
    """``CLUSTER NODES`` lines -> [{id, address, role, state}] (role: primary or replica)."""
    nodes = []
    for line in _text(text).splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        flags = parts[2].split(",")
        nodes.append({"id": parts[0][:8], "address": parts[1].split("@")[0],
                      "role": "primary" if "master" in flags else "replica" if "slave" in flags else parts[2],
                      "state": "fail" if any(f.startswith("fail") for f in flags) else parts[7]})
    return nodes
