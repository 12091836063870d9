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
from datetime import datetime

import aiohttp
import pandas as pd

from services.core import keys
from services.core.settings import Settings, get_settings
from services.patterns.envelope import Event, EventType

from .. import lab as lab_module
from .. import procs
from ..auth import gateway_headers
from ..coroutines import run_async
from ..traffic import Request, open_loop
from . import PATHS


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


async def _traffic_while(settings: Settings, service: str, seconds: float, rate: float, watch, act,
                         until=None, max_seconds: float | None = None) -> list[dict]:
    """Reads of one ``service`` entity through the gateway at ``rate``/s for ``seconds`` (the open loop of
    ``labkit.traffic``: a slow answer delays nothing), past the gateway's response cache so every read reaches
    an instance. Meanwhile ``act(clock)`` does the thing under study (``clock()``: seconds since the traffic
    started) and ``watch(session, now)`` runs every 50 ms. With ``until(rows)``, the traffic goes on past
    ``seconds`` until it says so (at most ``max_seconds``): on a busy machine what we wait for can take longer.
    One row per request, ``t_s`` its intended send time."""
    read = Request("GET", PATHS[service])
    async with aiohttp.ClientSession(headers=gateway_headers(settings, ask_the_service=True)) as session:
        traffic = await open_loop(session, settings.url_of("gateway"), lambda _: read, rate, seconds, timeout_s=5,
                                  alongside=[act], watch=lambda now, _: watch(session, now),
                                  until=until, max_duration_s=max_seconds)
    return traffic.records


async def _gateway_view(session: aiohttp.ClientSession, settings: Settings, service: str) -> dict[str, dict]:
    """The gateway's local view of one service's instances, by instance id (``GET /services``)."""
    async with session.get(settings.url_of("gateway") + "/services") as response:
        return {i["instance"]: i for i in (await response.json())["services"][service]["instances"]}


def _as_frame(rows: list[dict], milestones: dict) -> pd.DataFrame:
    df = pd.DataFrame(rows).rename(columns={"intended_s": "t_s"}).sort_values("t_s").reset_index(drop=True)
    df.attrs["milestones"] = milestones
    return df


def kill_under_traffic(service: str = "claims", victim: str = "claims#3", before_s: float = 2.0,
                       after_s: float = 6.0, rate: float = 40.0, settings: Settings | None = None) -> pd.DataFrame:
    """Reads at ``rate``/s through the gateway; ``victim`` is SIGKILLed after ``before_s``. One row per request
    (``labkit.traffic``'s record, ``t_s`` its intended send time); ``df.attrs["milestones"]``: seconds at which it was killed, the
    gateway stopped routing to it, the gateway forgot it, its registration expired."""
    settings = settings or get_settings()
    victim_id = procs.get_health(procs.read_pidfiles(settings.run_dir)[victim].url)["instance"]
    r = lab_module.status(settings).redis_client()
    milestones: dict[str, float] = {}
    facts: dict[str, float] = {}

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
        # was it registered right before the kill? (on a starved machine a heartbeat can be 3 s late)
        facts["ttl_left_at_kill_ms"] = await asyncio.to_thread(r.pttl, keys.registry_instance(service, victim_id))
        await asyncio.to_thread(lab_module.kill_instance, victim, settings)
        milestones["killed"] = clock()

    try:
        rows = run_async(_traffic_while(settings, service, before_s + after_s, rate, watch, kill))
    finally:
        r.close()
    df = _as_frame(rows, milestones)
    df.attrs.update(facts)
    return df


def rejoin_under_traffic(service: str = "claims", victim: str = "claims#3", before_s: float = 1.0,
                         after_s: float = 5.0, rate: float = 40.0, settings: Settings | None = None,
                         max_s: float = 30.0) -> pd.DataFrame:
    """Reads at ``rate``/s through the gateway; the stopped (or killed) ``victim`` is started again after
    ``before_s``; the traffic lasts ``after_s`` more, longer if the newcomer has not served yet (at most
    ``max_s``: a slow boot on a busy machine). Same rows as ``kill_under_traffic``. ``df.attrs["milestones"]``:
    seconds at which the restart began, the new instance registered (its ``instance.registered`` event's own
    timestamp, not when we read it), the gateway's view showed it healthy (sampled every 50 ms), the answer to
    its first request arrived (``answered_s``). Exact times, not time buckets, so its first answer can never
    appear before its registration. ``df.attrs["instance"]``: its new instance id."""
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
            while newcomer_id is None and clock() < before_s + max_s:
                message = await asyncio.to_thread(announcements.get_message, timeout=0.2)
                event = Event.from_json(message["data"]) if message else None
                if event and event.type == EventType.INSTANCE_REGISTERED and event.subject.startswith(newcomer_prefix):
                    # the moment the instance announced itself (the event's own time, on this clock), not the
                    # moment this polling loop got round to reading it
                    published = datetime.fromisoformat(event.time.replace("Z", "+00:00")).timestamp()
                    newcomer_id, milestones["registered"] = event.subject, clock() - (time.time() - published)
            await starting
        finally:
            announcements.close()

    def newcomer_served(rows: list[dict]) -> bool:
        return newcomer_id is not None and any(row["served_by"] == newcomer_id for row in rows[-100:])

    try:
        rows = run_async(_traffic_while(settings, service, before_s + after_s, rate, watch, restart,
                                        until=newcomer_served, max_seconds=before_s + max_s))
    finally:
        r.close()
    df = _as_frame(rows, milestones)
    served = df.loc[df["served_by"] == newcomer_id, "answered_s"]  # it served the request before this moment
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
        "first_served": "the answer to its first request arrives"}, "seconds_after_restart")


def kill_in_words(df: pd.DataFrame) -> str:
    """Lesson 03's claims about a SIGKILL, read off ``kill_under_traffic``: who noticed first, what failed."""
    m, failed = df.attrs["milestones"], int((~df["ok"]).sum())
    lines = []
    ttl_left = df.attrs.get("ttl_left_at_kill_ms")
    if ttl_left is not None and ttl_left < 0:
        lines.append("Its registration was ALREADY gone when it was killed: its heartbeat (every second) had not "
                     "run for a whole TTL — the machine is too busy for this run to show the order of events. "
                     "Run the cell again.")
    elif ttl_left is not None:
        lines.append(f"At the kill its registration had {ttl_left / 1000:.2f} s of TTL left.")
    if "gateway_stops_routing" in m and "registry_expires" in m:
        stop, expire = m["gateway_stops_routing"] - m["killed"], m["registry_expires"] - m["killed"]
        lines.append(f"The gateway stopped routing to the dead instance {stop:.2f} s after the kill; its registration "
                     f"expired in Redis {expire:.2f} s after it." + (
                         " The health checks noticed first, long before the TTL ran out." if stop < expire else
                         " In this run the health checks were NOT faster than the TTL."))
    else:
        lines.append(f"Not every moment was seen within the run: {sorted(m)}.")
    lines.append(f"{failed} of {len(df)} requests failed." + (
        " A refused connection is retried once on another instance, so none reached the client as an error."
        if failed == 0 else " These were requests the retry could not save (e.g. already sent to the dying "
        "process when it died, or the retry landed on a slow instance past the timeout)."))
    return "\n".join(lines)


def rejoin_in_words(df: pd.DataFrame) -> str:
    """Lesson 03's claims about a rejoin, read off ``rejoin_under_traffic``'s exact milestones."""
    m, failed = df.attrs["milestones"], int((~df["ok"]).sum())
    if not {"restarted", "registered", "first_served"} <= set(m):
        return f"Not every moment was seen within the run: {sorted(m)} — the instance may have booted too slowly."
    first = df[df["served_by"] == df.attrs.get("instance")].sort_values("answered_s").iloc[0]
    gap, took = m["first_served"] - m["registered"], first["latency_ms"] / 1000
    lines = [f"Booting took {m['registered'] - m['restarted']:.2f} s (restart to registration); the answer to its "
             f"first request arrived {gap:.3f} s after it registered (that request itself took {took:.3f} s"
             + (": a fresh process is slow on its first request)." if took >= gap / 2 else ").")]
    if "gateway_routes" in m:
        lines.append(f"The gateway's view showed it healthy {m['gateway_routes'] - m['registered']:.3f} s after it "
                     "registered (that view is sampled every 50 ms, so this is an upper bound).")
    lines.append(f"{failed} of {len(df)} requests failed meanwhile" + (
        ": the other instances carried the traffic." if failed == 0 else "."))
    return "\n".join(lines)
