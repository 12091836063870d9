"""Lesson 03's experiments: read the registry, kill an instance under traffic and bring it back.

``kill_under_traffic`` sends a steady stream of reads through the gateway, SIGKILLs one instance part-way
and samples, every tick, the registry (is its key still there?) and the gateway's view (does it still route
there?). ``rejoin_under_traffic`` does the same while the instance starts again: when does it register,
when does the gateway route to it, when does it serve? One row per request; the moments that matter are in
``df.attrs["milestones"]``.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pandas as pd

from services.core import keys
from services.core.settings import Settings, get_settings
from services.patterns.envelope import Event, EventType

from .. import lab as lab_module
from .. import procs
from ..auth import gateway_headers
from . import PATHS, run_async


def registry_table(settings: Settings | None = None, services: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Every registered instance as Redis holds it now: service, instance, address, TTL left, age."""
    settings = settings or get_settings()
    r = lab_module.status(settings).redis_client()
    rows = []
    for service in services or lab_module.SERVICE_NAMES:
        for instance_id in r.zrange(keys.registry_index(service), 0, -1):
            key = keys.registry_instance(service, instance_id)
            raw, ttl_ms = r.get(key), r.pttl(key)
            if raw:
                data = json.loads(raw)
                rows.append({"service": service, "instance": instance_id, "address": f"{data['host']}:{data['port']}",
                             "ttl_ms": ttl_ms, "age_s": round(time.time() - data["started_at"], 1),
                             "weight": data.get("weight", 1), "key": key})
    r.close()
    return pd.DataFrame(rows, columns=["service", "instance", "address", "ttl_ms", "age_s", "weight", "key"])


async def _traffic_while(settings: Settings, service: str, seconds: float, rate: float, watch, act) -> list[dict]:
    """Reads of one ``service`` entity through the gateway at ``rate``/s for ``seconds`` (open loop: a slow
    answer delays nothing), past the gateway's response cache so every read reaches an instance. Meanwhile
    ``act(clock)`` does the thing under study (``clock()``: seconds since the traffic started) and
    ``watch(session, now)`` runs every 50 ms. One row per request."""
    url, rows = settings.url_of("gateway") + PATHS[service], []
    async with aiohttp.ClientSession(headers=gateway_headers(settings, ask_the_service=True)) as session:
        started = time.perf_counter()

        async def one(t_s: float):
            sent = time.perf_counter()
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    await response.read()
                    status, by = response.status, response.headers.get("x-served-by", "-")
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status, by = 599, "-"
            rows.append({"t_s": t_s, "status": status, "served_by": by, "ok": status < 500,
                         "latency_ms": (time.perf_counter() - sent) * 1000})

        async def watching():
            while (now := time.perf_counter() - started) < seconds:
                await watch(session, now)
                await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(watching()), asyncio.create_task(act(lambda: time.perf_counter() - started))]
        pending, n = set(), 0
        while (now := time.perf_counter() - started) < seconds:
            pending.add(asyncio.create_task(one(now)))
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        await asyncio.gather(*pending, *tasks)
    return rows


async def _gateway_view(session: aiohttp.ClientSession, settings: Settings, service: str) -> dict[str, dict]:
    """The gateway's local view of one service's instances, by instance id (``GET /services``)."""
    async with session.get(settings.url_of("gateway") + "/services") as response:
        return {i["instance"]: i for i in (await response.json())["services"][service]["instances"]}


def _as_frame(rows: list[dict], milestones: dict) -> pd.DataFrame:
    df = pd.DataFrame(rows).sort_values("t_s").reset_index(drop=True)
    df.attrs["milestones"] = milestones
    return df


def kill_under_traffic(service: str = "claims", victim: str = "claims#3", before_s: float = 2.0,
                       after_s: float = 6.0, rate: float = 40.0, settings: Settings | None = None) -> pd.DataFrame:
    """Reads at ``rate``/s through the gateway; ``victim`` is SIGKILLed after ``before_s``. One row per request
    (t_s, status, served_by, ok, latency_ms); ``df.attrs["milestones"]``: seconds at which it was killed, the
    gateway stopped routing to it, the gateway forgot it, its registration expired."""
    settings = settings or get_settings()
    victim_id = procs.get_health(procs.read_pidfiles(settings.run_dir)[victim].url)["instance"]
    r = lab_module.status(settings).redis_client()
    milestones: dict[str, float] = {}

    async def watch(session, now):
        if "killed" not in milestones:
            return
        view = await _gateway_view(session, settings, service)
        if "gateway_stops_routing" not in milestones and (
                victim_id not in view or not view[victim_id]["healthy"] or view[victim_id]["breaker"] != "closed"):
            milestones["gateway_stops_routing"] = now
        if "gateway_forgets" not in milestones and victim_id not in view:
            milestones["gateway_forgets"] = now
        if "registry_expires" not in milestones and not await asyncio.to_thread(
                r.exists, keys.registry_instance(service, victim_id)):
            milestones["registry_expires"] = now

    async def kill(clock):
        await asyncio.sleep(before_s)
        await asyncio.to_thread(lab_module.kill_instance, victim, settings)
        milestones["killed"] = clock()

    try:
        rows = run_async(_traffic_while(settings, service, before_s + after_s, rate, watch, kill))
    finally:
        r.close()
    return _as_frame(rows, milestones)


def rejoin_under_traffic(service: str = "claims", victim: str = "claims#3", before_s: float = 1.0,
                         after_s: float = 5.0, rate: float = 40.0, settings: Settings | None = None) -> pd.DataFrame:
    """Reads at ``rate``/s through the gateway; the stopped (or killed) ``victim`` is started again after
    ``before_s``. Same rows as ``kill_under_traffic``; ``df.attrs["milestones"]``: seconds at which the restart
    began, the new instance's ``instance.registered`` event arrived, the gateway's view showed it healthy
    (sampled every 50 ms), it served its first request; ``df.attrs["instance"]``: its new instance id."""
    settings = settings or get_settings()
    newcomer_prefix = f"{service}-{procs.read_pidfiles(settings.run_dir)[victim].port}-"  # ids are <service>-<port>-…
    r = lab_module.status(settings).redis_client()
    milestones: dict[str, float] = {}
    newcomer_id: str | None = None  # known once its instance.registered event arrives

    async def watch(session, now):
        if newcomer_id is not None and "gateway_routes" not in milestones:
            seen = (await _gateway_view(session, settings, service)).get(newcomer_id)
            if seen and seen["healthy"] and seen["breaker"] == "closed":
                milestones["gateway_routes"] = now

    async def restart(clock):
        nonlocal newcomer_id
        announcements = r.pubsub(ignore_subscribe_messages=True)
        announcements.subscribe(keys.registry_channel())  # the same events the gateway listens to
        try:
            await asyncio.sleep(before_s)
            milestones["restarted"] = clock()
            starting = asyncio.create_task(asyncio.to_thread(lab_module.restart_instance, victim, settings))
            while newcomer_id is None and clock() < before_s + after_s:
                message = await asyncio.to_thread(announcements.get_message, timeout=0.2)
                event = Event.from_json(message["data"]) if message else None
                if event and event.type == EventType.INSTANCE_REGISTERED and event.subject.startswith(newcomer_prefix):
                    newcomer_id, milestones["registered"] = event.subject, clock()
            await starting
        finally:
            announcements.close()

    try:
        rows = run_async(_traffic_while(settings, service, before_s + after_s, rate, watch, restart))
    finally:
        r.close()
    df = _as_frame(rows, milestones)
    served = df.loc[df["served_by"] == newcomer_id, "t_s"]
    if not served.empty:
        milestones["first_served"] = float(served.min())
    df.attrs["instance"] = newcomer_id
    return df


def _seconds_after(df: pd.DataFrame, origin: str, labels: dict[str, str], column: str) -> pd.DataFrame:
    """One row per milestone in ``labels``: its text and how many seconds after ``origin`` it came (None if
    it never did)."""
    m = df.attrs["milestones"]
    return pd.DataFrame([{"what": text, column: round(m[k] - m[origin], 3) if k in m else None}
                         for k, text in labels.items()])


def detection_times(df: pd.DataFrame) -> pd.DataFrame:
    """How long after the kill each part of the system noticed, from ``kill_under_traffic``'s milestones."""
    return _seconds_after(df, "killed", {
        "gateway_stops_routing": "gateway stops routing to it (health checks / breaker)",
        "registry_expires": "its registration expires in Redis (TTL)",
        "gateway_forgets": "gateway drops it from its view (registry sync)"}, "seconds_after_kill")


def rejoin_times(df: pd.DataFrame) -> pd.DataFrame:
    """How long after the restart began each step happened, from ``rejoin_under_traffic``'s milestones."""
    return _seconds_after(df, "restarted", {
        "registered": "it registers in Redis: instance.registered arrives",
        "gateway_routes": "the gateway's view shows it healthy (sampled every 50 ms)",
        "first_served": "it serves its first request"}, "seconds_after_restart")
