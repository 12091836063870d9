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
        await registry.register_instance(r, dying, ttl_s=1)  # long enough to be listed on a busy machine
        both = await registry.list_instances(r, alive.service)
        await asyncio.sleep(1.2)  # no heartbeat: the short registration expires
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
        # Beats every 0.1 s keep a 1 s registration: a stall of most of a second must not let it lapse.
        task = asyncio.create_task(registry.heartbeat_forever(r, instance, interval_s=0.1, ttl_s=1))
        await asyncio.sleep(2.5)  # more than two TTLs
        alive = await registry.list_instances(r, instance.service)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # gone for good: no beat lands after the deregistration
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


def test_heartbeat_survives_redis_refusing_a_write_and_registers_once_it_accepts_again(redis_url):
    """Redis up but refusing the write (OOM under ``noeviction``, here a WRONGTYPE on the index, which fails
    the same way: an error reply, not a lost connection). The loop must not die: lesson 08 saw every
    instance vanish from the registry for good after one squeeze, because the heartbeat task had crashed."""
    instance = an_instance(port=4107)
    index = keys.registry_index(instance.service)

    async def body(r):
        await r.set(index, "not a sorted set")  # every ZADD on it answers an error
        task = asyncio.create_task(registry.heartbeat_forever(r, instance, interval_s=0.05, ttl_s=2))
        try:
            await asyncio.sleep(0.4)
            survived = not task.done()
            await r.delete(index)  # Redis accepts the write again
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not await r.zscore(index, instance.instance_id):
                await asyncio.sleep(0.05)
            return survived, await r.zscore(index, instance.instance_id)
        finally:
            task.cancel()
            await r.delete(index, keys.registry_instance(instance.service, instance.instance_id))

    survived, score = run(redis_url, body)
    assert survived, "the heartbeat task died on an error reply"
    assert score is not None, "the instance did not register again once Redis accepted writes"
