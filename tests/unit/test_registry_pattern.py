"""The registry pattern against the real server: TTL, heartbeat, deregistration, events, listing."""

import asyncio
import json
import secrets
import time

import redis.asyncio as aioredis

from services.core import keys
from services.patterns import registry
from services.patterns.envelope import Event, EventType

from redis_async import run  # the shared async-client helper (tests/unit/redis_async.py)


def an_instance(service=None, port=4100) -> registry.Instance:
    service = service or f"unit-{secrets.token_hex(3)}"  # a service no gateway routes to
    return registry.Instance(service, f"{service}-{port}-ab12", "127.0.0.1", port, "9.9.9", time.time())


def test_registration_is_a_key_with_the_ttl_and_the_instance_data(redis_url):
    instance = an_instance()

    async def body(r):
        new = await registry.register_instance(r, instance, ttl_s=3)
        again = await registry.register_instance(r, instance, ttl_s=3)
        key = keys.registry_instance(instance.service, instance.instance_id)
        return new, again, await r.pttl(key), json.loads(await r.get(key))

    new, again, ttl_ms, stored = run(redis_url, body)
    assert new is True and again is False, "only the first registration is new"
    assert 2000 < ttl_ms <= 3000
    assert stored["port"] == 4100 and stored["version"] == "9.9.9" and stored["host"] == "127.0.0.1"


def test_listing_reads_the_index_and_skips_expired_registrations(redis_url):
    alive, dying = an_instance(port=4101), None

    async def body(r):
        nonlocal dying
        dying = registry.Instance(alive.service, f"{alive.service}-4102-cd34", "127.0.0.1", 4102, "1", time.time())
        await registry.register_instance(r, alive, ttl_s=5)
        await registry.register_instance(r, dying, ttl_s=0.2)
        both = await registry.list_instances(r, alive.service)
        await asyncio.sleep(0.4)  # no heartbeat: the short registration expires
        after = await registry.list_instances(r, alive.service)
        await registry.register_instance(r, alive, ttl_s=5)  # the next heartbeat of the service itself
        index = await r.zrange(keys.registry_index(alive.service), 0, -1)
        return both, after, index

    both, after, index = run(redis_url, body)
    assert [i.port for i in both] == [4101, 4102]
    assert [i.instance_id for i in after] == [alive.instance_id]
    assert index == [alive.instance_id], "the service's own heartbeat tidies its index of expired ids"


def test_heartbeat_keeps_a_short_ttl_registration_alive_and_deregistration_announces_it(redis_url):
    instance = an_instance(port=4103)

    async def body(r):
        pubsub = r.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(keys.registry_channel())
        task = asyncio.create_task(registry.heartbeat_forever(r, instance, interval_s=0.1, ttl_s=0.3))
        await asyncio.sleep(1.0)  # more than three TTLs
        alive = await registry.list_instances(r, instance.service)
        task.cancel()
        await registry.deregister_instance(r, instance)
        gone = await registry.list_instances(r, instance.service)
        events = []
        deadline = time.monotonic() + 3
        while len(events) < 2 and time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=0.2)
            if message:
                event = Event.from_json(message["data"])
                if event.subject == instance.instance_id:
                    events.append(event)
        await pubsub.aclose()
        return alive, gone, events

    alive, gone, events = run(redis_url, body)
    assert [i.instance_id for i in alive] == [instance.instance_id]
    assert gone == []
    assert [e.type for e in events] == [EventType.INSTANCE_REGISTERED, EventType.INSTANCE_DEREGISTERED]
    assert events[0].data["port"] == 4103 and events[0].source == f"{instance.service}/{instance.instance_id}"


def test_heartbeat_survives_an_unreachable_redis_and_keeps_trying():
    """Nothing listens on this port: every heartbeat fails, the loop goes on (the service must still start)."""
    from labkit.procs import free_port

    async def body():
        r = aioredis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
        task = asyncio.create_task(registry.heartbeat_forever(r, an_instance(), interval_s=0.05, ttl_s=1))
        await asyncio.sleep(0.5)
        still_running = not task.done()
        task.cancel()
        await r.aclose()
        return still_running

    assert asyncio.run(body())
