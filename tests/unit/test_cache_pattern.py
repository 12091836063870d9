"""The cache-aside pattern against the real server: TTL strategies, negative caching, tags, batches, fail-open."""

import asyncio
import json
import uuid

import pytest
import redis.asyncio as aioredis

from labkit import procs
from services.core import keys
from services.patterns import cache
from services.patterns.cache import CacheStats, Ttl


def run(redis_url, body, **client_options):
    async def main():
        client = aioredis.Redis.from_url(redis_url, decode_responses=True, **client_options)
        try:
            return await body(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


class CountingSource:
    """A stand-in system of record that counts how often it was asked."""

    def __init__(self, data):
        self.data, self.calls = data, 0

    async def load(self, entity_id):
        self.calls += 1
        return self.data.get(entity_id)


def fresh_id():
    return f"UNIT-{uuid.uuid4().hex[:10]}"


def test_second_read_is_a_hit_and_does_not_touch_the_source(redis_url):
    entity = fresh_id()
    source = CountingSource({entity: {"id": entity, "premium_cents": 9_000}})
    key = keys.cache_entity("unit", entity)

    async def body(r):
        stats = CacheStats()
        first = await cache.cache_aside_get(r, key, lambda: source.load(entity), Ttl.fixed(30), stats=stats)
        second = await cache.cache_aside_get(r, key, lambda: source.load(entity), Ttl.fixed(30), stats=stats)
        return first, second, await r.get(key), stats.summary()
    first, second, raw, summary = run(redis_url, body)
    assert first == ({"id": entity, "premium_cents": 9_000}, False) and second == (first[0], True)
    assert source.calls == 1 and raw == json.dumps(first[0], separators=(",", ":"))
    assert summary["hits"] == 1 and summary["misses"] == 1 and summary["hit_rate"] == 0.5


def test_fixed_ttl_is_exact_and_jittered_ttls_spread_within_their_range():
    assert {Ttl.fixed(100).for_value({}) for _ in range(50)} == {100_000}
    spread = [Ttl.jittered(100, jitter=0.2).for_value({}) for _ in range(500)]
    assert min(spread) >= 80_000 and max(spread) <= 120_000
    assert len(set(spread)) > 100  # spread out, not one expiry for the whole batch
    assert Ttl.jittered(100, negative_s=3).for_value(None) == 3_000


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="sliding"):
        Ttl(10, "forever")


def test_sliding_ttl_is_renewed_by_every_hit(redis_url):
    key = keys.cache_entity("unit", fresh_id())

    async def body(r):
        ttl = Ttl.sliding(10)
        await cache.cache_aside_get(r, key, lambda: asyncio.sleep(0, {"v": 1}), ttl)
        await r.pexpire(key, 1_000)  # pretend it has aged
        await cache.cache_aside_get(r, key, lambda: asyncio.sleep(0, {"v": 1}), ttl)
        return await r.pttl(key)
    assert 9_000 < run(redis_url, body) <= 10_000


def test_fixed_ttl_is_not_renewed_by_a_hit(redis_url):
    key = keys.cache_entity("unit", fresh_id())

    async def body(r):
        await cache.cache_aside_get(r, key, lambda: asyncio.sleep(0, {"v": 1}), Ttl.fixed(10))
        await r.pexpire(key, 1_000)
        await cache.cache_aside_get(r, key, lambda: asyncio.sleep(0, {"v": 1}), Ttl.fixed(10))
        return await r.pttl(key)
    assert 0 < run(redis_url, body) <= 1_000


def test_an_unknown_id_is_cached_briefly_as_null(redis_url):
    entity = fresh_id()
    source = CountingSource({})
    key = keys.cache_entity("unit", entity)

    async def body(r):
        stats = CacheStats()
        results = [await cache.cache_aside_get(r, key, lambda: source.load(entity), Ttl.fixed(60, negative_s=2),
                                               stats=stats) for _ in range(4)]
        return results, await r.get(key), await r.pttl(key), stats.summary()
    results, raw, pttl, summary = run(redis_url, body)
    assert results == [(None, False)] + [(None, True)] * 3
    assert raw == "null" and 0 < pttl <= 2_000 and source.calls == 1 and summary["negative_hits"] == 3


def test_negative_caching_can_be_off(redis_url):
    key = keys.cache_entity("unit", fresh_id())

    async def body(r):
        await cache.cache_aside_get(r, key, lambda: asyncio.sleep(0, None), Ttl.fixed(60, negative_s=0))
        return await r.exists(key)
    assert run(redis_url, body) == 0


def test_invalidate_deletes_the_key_and_every_tagged_dependent(redis_url):
    customer, policy, bystander = fresh_id(), fresh_id(), fresh_id()
    overview = keys.cache_entity("overview", customer)
    own = keys.cache_entity("policy", policy)
    unrelated = keys.cache_entity("overview", bystander)

    async def body(r):
        await cache.cache_aside_get(r, own, lambda: asyncio.sleep(0, {"id": policy}), Ttl.fixed(60))
        await cache.cache_aside_get(r, overview, lambda: asyncio.sleep(0, {"c": customer}), Ttl.fixed(60),
                                    tags=lambda value: [customer, policy])
        await cache.cache_aside_get(r, unrelated, lambda: asyncio.sleep(0, {}), Ttl.fixed(60), tags=[bystander])
        tagged = await r.smembers(keys.cache_tags(policy))
        tag_ttl = await r.pttl(keys.cache_tags(policy))
        deleted = await cache.invalidate(r, [own], dependents_of=[policy])
        left = [await r.exists(k) for k in (own, overview, unrelated)]
        return tagged, tag_ttl, deleted, left, await r.smembers(keys.cache_tags(policy))
    tagged, tag_ttl, deleted, left, tags_after = run(redis_url, body)
    assert tagged == {overview} and 0 < tag_ttl <= 60_000
    assert set(deleted) == {own, overview} and left == [0, 0, 1] and tags_after == set()


def test_batch_read_is_one_round_trip_per_direction_and_reports_each_id(redis_url):
    present, absent, cached = fresh_id(), fresh_id(), fresh_id()
    source = CountingSource({present: {"id": present}, cached: {"id": cached}})

    async def body(r):
        await r.set(keys.cache_entity("unit", cached), json.dumps({"id": cached}), ex=60)
        stats = CacheStats()
        result = await cache.cache_aside_get_many(r, lambda i: keys.cache_entity("unit", i),
                                                  [present, absent, cached, present], source.load, Ttl.fixed(60),
                                                  stats=stats)
        again = await cache.cache_aside_get_many(r, lambda i: keys.cache_entity("unit", i), [present, absent],
                                                 source.load, Ttl.fixed(60))
        return result, again, stats.summary()
    result, again, summary = run(redis_url, body)
    assert list(result) == [present, absent, cached]
    assert result[present] == ({"id": present}, False) and result[absent] == (None, False)
    assert result[cached] == ({"id": cached}, True)
    assert again == {present: ({"id": present}, True), absent: (None, True)}
    assert source.calls == 2 and summary["sor_loads"] == 2


def test_reads_fail_open_when_redis_is_unreachable(redis_url):
    entity = fresh_id()
    source = CountingSource({entity: {"id": entity}})
    dead = f"redis://127.0.0.1:{procs.free_port()}/0"

    async def body(r):
        stats = CacheStats()
        one = await cache.cache_aside_get(r, keys.cache_entity("unit", entity), lambda: source.load(entity),
                                          Ttl.fixed(60), stats=stats)
        many = await cache.cache_aside_get_many(r, lambda i: keys.cache_entity("unit", i), [entity], source.load,
                                                Ttl.fixed(60), stats=stats)
        gone = await cache.invalidate(r, [keys.cache_entity("unit", entity)], stats=stats)
        return one, many, gone, stats.summary()
    one, many, gone, summary = run(dead, body, socket_connect_timeout=0.2)
    assert one == ({"id": entity}, False) and many == {entity: ({"id": entity}, False)} and gone is None
    assert summary["redis_failures"] >= 4 and source.calls == 2


def test_a_redis_that_never_answers_counts_as_a_miss_after_the_timeout():
    """A server that accepts the connection and never replies (like a frozen Redis); the client itself would
    wait forever (no socket timeout), so only the pattern's own ``timeout_s`` can end the read."""
    entity = fresh_id()
    source = CountingSource({entity: {"id": entity}})

    async def main():
        async def swallow(reader, writer):
            await reader.read(-1)
        server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=None)
        stats = CacheStats()
        try:
            value = await asyncio.wait_for(
                cache.cache_aside_get(client, keys.cache_entity("unit", entity), lambda: source.load(entity),
                                      Ttl.fixed(60), stats=stats, timeout_s=0.1), timeout=10)
        finally:
            await client.aclose()
            server.close()
        return value, stats.summary()
    value, summary = asyncio.run(main())
    assert value == ({"id": entity}, False) and source.calls == 1 and summary["redis_failures"] == 2


def test_a_fill_guarded_by_the_generation_cannot_put_back_a_row_a_write_replaced(redis_url):
    """The stale-set race, with the lab's default coherence (lesson 06): the slow reader's fill is refused.

    The services run exactly these two functions (``ServiceCache.read_entity`` / ``after_write``)."""
    from services.patterns import coherence
    from services.patterns.cache import Ttl

    entity = coherence.CachedEntity("unit", "RACE-1")

    async def body(r):
        await r.delete(entity.key, entity.generation)

        async def slow_load_of_the_old_row():
            # while this reader was loading, a writer committed and invalidated (with the token)
            await coherence.after_write(r, entity, "delete_with_token")
            return {"version": 1}

        value, hit = await coherence.read(r, entity, slow_load_of_the_old_row, Ttl.fixed(60), "delete_with_token")
        after = await r.get(entity.key)
        unguarded, _ = await coherence.read(r, entity, slow_load_of_the_old_row, Ttl.fixed(60), "delete_on_write")
        unguarded_after = await r.get(entity.key)
        await r.delete(entity.key, entity.generation)
        return value, hit, after, unguarded_after

    value, hit, after, unguarded_after = run(redis_url, body)
    assert value == {"version": 1} and not hit  # the reader still answers with what it loaded
    assert after is None  # ... but the old row is not left in the cache for everyone else
    assert unguarded_after == '{"version":1}'  # without the token, the race leaves the stale copy behind
