"""Lesson 03's experiments: read the registry, and kill an instance under traffic to see who notices when.

``kill_under_traffic`` sends a steady stream of reads through the gateway, SIGKILLs one instance part-way
and samples, every tick, the registry (is its key still there?) and the gateway's view (does it still route
there?). One row per request; the moments that matter are in ``df.attrs["milestones"]``.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pandas as pd

from services.core import keys
from services.core.settings import Settings, get_settings

from .. import lab as lab_module
from .. import procs
from ..auth import gateway_headers
from . import run_async


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


async def _kill_under_traffic(settings: Settings, service: str, victim: str, before_s: float, after_s: float,
                              rate: float) -> tuple[list[dict], dict]:
    record = procs.read_pidfiles(settings.run_dir)[victim]
    victim_id = procs.get_health(record.url)["instance"]
    gateway, path = settings.url_of("gateway"), {"claims": "/api/claims/CLM-000001",
                                                 "policy": "/api/policies/POL-000001",
                                                 "customer": "/api/customers/CUS-000001"}[service]
    r = lab_module.status(settings).redis_client()
    rows, milestones = [], {}
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(headers=gateway_headers(settings, ask_the_service=True)) as session:
        started = time.perf_counter()

        async def one(t_s: float):
            sent = time.perf_counter()
            try:
                async with session.get(gateway + path, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    await response.read()
                    status, by = response.status, response.headers.get("x-served-by", "-")
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status, by = 599, "-"
            rows.append({"t_s": t_s, "status": status, "served_by": by, "ok": status < 500,
                         "latency_ms": (time.perf_counter() - sent) * 1000})

        async def watch():
            while (now := time.perf_counter() - started) < before_s + after_s:
                if "killed" in milestones:
                    async with session.get(gateway + "/services") as response:
                        view = {i["instance"]: i for i in (await response.json())["services"][service]["instances"]}
                    if "gateway_stops_routing" not in milestones and (
                            victim_id not in view or not view[victim_id]["healthy"]
                            or view[victim_id]["breaker"] != "closed"):
                        milestones["gateway_stops_routing"] = now
                    if "gateway_forgets" not in milestones and victim_id not in view:
                        milestones["gateway_forgets"] = now
                    if "registry_expires" not in milestones and not await loop.run_in_executor(
                            None, r.exists, keys.registry_instance(service, victim_id)):
                        milestones["registry_expires"] = now
                await asyncio.sleep(0.05)

        async def kill():
            await asyncio.sleep(before_s)
            await loop.run_in_executor(None, lab_module.kill_instance, victim, settings)
            milestones["killed"] = time.perf_counter() - started

        tasks = [asyncio.create_task(watch()), asyncio.create_task(kill())]
        pending, n = set(), 0
        while (now := time.perf_counter() - started) < before_s + after_s:
            pending.add(asyncio.create_task(one(now)))
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        await asyncio.gather(*pending, *tasks)
    r.close()
    return rows, milestones


def kill_under_traffic(service: str = "claims", victim: str = "claims#3", before_s: float = 2.0,
                       after_s: float = 6.0, rate: float = 40.0, settings: Settings | None = None) -> pd.DataFrame:
    """Reads at ``rate``/s through the gateway; ``victim`` is SIGKILLed after ``before_s``. One row per request
    (t_s, status, served_by, ok, latency_ms); ``df.attrs["milestones"]``: seconds at which it was killed, the
    gateway stopped routing to it, the gateway forgot it, its registration expired."""
    settings = settings or get_settings()
    rows, milestones = run_async(_kill_under_traffic(settings, service, victim, before_s, after_s, rate))
    df = pd.DataFrame(rows).sort_values("t_s").reset_index(drop=True)
    df.attrs["milestones"] = milestones
    return df


def detection_times(df: pd.DataFrame) -> pd.DataFrame:
    """How long after the kill each part of the system noticed, from ``kill_under_traffic``'s milestones."""
    m = df.attrs["milestones"]
    labels = {"gateway_stops_routing": "gateway stops routing to it (health checks / breaker)",
              "registry_expires": "its registration expires in Redis (TTL)",
              "gateway_forgets": "gateway drops it from its view (registry sync)"}
    return pd.DataFrame([{"what": text, "seconds_after_kill": round(m[k] - m["killed"], 3) if k in m else None}
                         for k, text in labels.items()])
