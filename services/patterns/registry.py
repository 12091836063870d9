"""Service discovery: every instance registers itself in Redis and keeps the registration alive.

Why a key with a TTL and a heartbeat: an instance that stops cleanly deletes its key (and says so on a
channel), but one that is SIGKILLed, frozen or cut off cannot say anything. Its key simply stops being
renewed and Redis deletes it when the TTL runs out — so the registry forgets a dead instance within one
TTL, without anyone having to notice the death. The TTL is a few heartbeats long, so one slow heartbeat
is not mistaken for a death.

Keys (see ``services.core.keys``):

* ``lab:registry:<service>:<instance>`` — the registration (JSON), expiring after ``ttl_s``;
* ``lab:registry-index:<service>`` — a sorted set of instance ids, so listing needs no ``KEYS``/``SCAN``;
  an id whose registration key is gone is dead and is pruned by whoever lists;
* ``lab:events:registry`` — ``instance.registered`` / ``instance.deregistered`` envelopes, so a gateway
  can update its local view at once instead of polling.

The two keys are written by separate commands (not one transaction): they hash to different Cluster
slots, and a reader tolerates the moment between them (an index entry without a key is skipped).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis

from services.core import keys
from services.core.redis_client import REDIS_DOWN_OR_REFUSING

from .envelope import Event, EventType

log = logging.getLogger("lab.registry")


@dataclass(frozen=True)
class Instance:
    service: str
    instance_id: str
    host: str
    port: int
    version: str
    started_at: float  # epoch seconds
    weight: int = 1

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Instance":
        return cls(**json.loads(text))


async def _publish(r: aioredis.Redis, kind: EventType, instance: Instance) -> None:
    event = Event(type=kind, source=f"{instance.service}/{instance.instance_id}", subject=instance.instance_id,
                  data=asdict(instance))
    await r.publish(keys.registry_channel(), event.to_json())


async def register_instance(r: aioredis.Redis, instance: Instance, ttl_s: float) -> bool:
    """Write (or renew) the registration with its TTL. True when it was new (and was announced).

    ``SET ... GET`` returns the previous value in the same command: None means the key did not exist,
    i.e. a first registration or a comeback after the key expired — the moments worth announcing. The
    index entries whose score (expiry) has passed are dropped on the way: only the service itself may write
    its index (``services/core/acl.py``), so it is the one that tidies it.
    """
    ttl_ms = max(1, int(ttl_s * 1000))
    now = time.time()
    previous = await r.set(keys.registry_instance(instance.service, instance.instance_id), instance.to_json(),
                           px=ttl_ms, get=True)
    index = keys.registry_index(instance.service)
    await r.zadd(index, {instance.instance_id: now + ttl_s})
    await r.zremrangebyscore(index, "-inf", f"({now}")  # score = when that registration expires
    if previous is None:
        await _publish(r, EventType.INSTANCE_REGISTERED, instance)
        return True
    return False


async def deregister_instance(r: aioredis.Redis, instance: Instance) -> None:
    """Graceful goodbye: delete the registration, drop it from the index, announce it."""
    await r.delete(keys.registry_instance(instance.service, instance.instance_id))
    await r.zrem(keys.registry_index(instance.service), instance.instance_id)
    await _publish(r, EventType.INSTANCE_DEREGISTERED, instance)


async def read_instance(r: aioredis.Redis, service: str, instance_id: str) -> Instance | None:
    """One registration as the registry holds it, or None (gone, or not registered under ``service``).

    Anyone may *publish* on the registry channel, so an ``instance.registered`` event is only a hint: the
    gateway believes the key, which only ``service``'s own Redis user can write."""
    value = await r.get(keys.registry_instance(service, instance_id))
    if not value:
        return None
    found = Instance.from_json(value)
    return found if found.service == service and found.instance_id == instance_id else None


async def list_instances(r: aioredis.Redis, service: str) -> list[Instance]:
    """The live instances of ``service``: ids from the index, data from their (unexpired) keys.

    Read-only: readers (the gateway, peers) may not write another service's index; an id whose key has
    expired is skipped here and dropped by the service's next registration."""
    ids = await r.zrange(keys.registry_index(service), 0, -1)
    if not ids:
        return []
    async with r.pipeline(transaction=False) as pipe:
        for instance_id in ids:
            pipe.get(keys.registry_instance(service, instance_id))
        values = await pipe.execute()
    alive = [Instance.from_json(value) for value in values if value]
    return sorted((i for i in alive if i.service == service), key=lambda i: i.instance_id)


async def heartbeat_forever(r: aioredis.Redis, instance: Instance, interval_s: float, ttl_s: float) -> None:
    """Renew the registration every ``interval_s`` until cancelled.

    Redis being down — or up and refusing writes (``OOM`` under ``noeviction``) — is not fatal: the service
    keeps serving from its system of record and this loop keeps trying, so the instance registers (and is
    announced) as soon as Redis takes writes again. A loop that died on the first error reply would leave
    the instance out of the registry for good.
    """
    while True:
        try:
            if await register_instance(r, instance, ttl_s):
                log.info("registered %s at %s", instance.instance_id, instance.base_url)
        except REDIS_DOWN_OR_REFUSING as exc:  # down, or up and refusing the write (OOM under noeviction)
            log.warning("heartbeat of %s failed (%s); retrying in %.1f s", instance.instance_id,
                        type(exc).__name__, interval_s)
        await asyncio.sleep(interval_s)
