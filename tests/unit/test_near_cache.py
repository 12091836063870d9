"""The near cache against the real server: L1 hits, invalidation by CLIENT TRACKING, drops, max age, the fill race."""

import asyncio
import uuid

import redis.asyncio as aioredis

from services.core import keys
from services.patterns.near_cache import NearCache


def run(redis_url, body):
    async def main():
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        writer = aioredis.Redis.from_url(redis_url, decode_responses=True)  # another process, in effect
        try:
            return await body(client, writer)
        finally:
            await client.aclose()
            await writer.aclose()
    return asyncio.run(main())


def fresh_kind():
    return f"near{uuid.uuid4().hex[:8]}"


class Changes:
    """Records what the near cache was told, and lets a test wait for the next one of a kind."""

    def __init__(self):
        self.seen, self.events = [], {"invalidate": asyncio.Event(), "flush": asyncio.Event(),
                                      "connected": asyncio.Event()}

    def __call__(self, what, changed):
        self.seen.append((what, changed))
        self.events[what].set()

    async def next(self, what):
        await asyncio.wait_for(self.events[what].wait(), 5)
        self.events[what].clear()


def test_second_read_is_served_from_l1_without_redis(redis_url):
    kind = fresh_kind()
    key = keys.cache_entity(kind, "POL-000001")

    async def body(r, writer):
        await writer.set(key, '{"version":1}')
        near = await NearCache(r, [keys.cache_prefix(kind)]).start()
        try:
            return await near.get(key), await near.get(key), dict(near.counts)
        finally:
            await near.close()
    first, second, counts = run(redis_url, body)
    assert first == ('{"version":1}', False) and second == ('{"version":1}', True)
    assert counts["redis_reads"] == 1 and counts["l1_hits"] == 1


def test_a_write_by_another_client_invalidates_l1(redis_url):
    kind = fresh_kind()
    key = keys.cache_entity(kind, "POL-000001")

    async def body(r, writer):
        changes = Changes()
        await writer.set(key, "old")
        near = await NearCache(r, [keys.cache_prefix(kind)], on_change=changes).start()
        try:
            await near.get(key)
            cached_before = key in near
            await writer.set(key, "new")
            await changes.next("invalidate")
            return cached_before, key in near, await near.get(key), changes.seen[-1]
        finally:
            await near.close()
    cached_before, cached_after, read, last = run(redis_url, body)
    assert cached_before and not cached_after
    assert read == ("new", False) and last == ("invalidate", [key])


def test_keys_outside_the_tracked_prefixes_are_never_kept(redis_url):
    kind = fresh_kind()
    untracked = keys.exercise("06", f"untracked-{uuid.uuid4().hex[:6]}")

    async def body(r, writer):
        await writer.set(untracked, "x")
        near = await NearCache(r, [keys.cache_prefix(kind)]).start()
        try:
            return await near.get(untracked), await near.get(untracked), untracked in near
        finally:
            await near.close()
    first, second, kept = run(redis_url, body)
    assert first == ("x", False) and second == ("x", False) and not kept


def test_l1_is_flushed_when_the_tracking_connection_drops_and_comes_back(redis_url):
    kind = fresh_kind()
    key = keys.cache_entity(kind, "A")

    async def body(r, writer):
        changes = Changes()
        await writer.set(key, "v1")
        near = await NearCache(r, [keys.cache_prefix(kind)], on_change=changes).start()
        await changes.next("connected")
        try:
            await near.get(key)
            assert key in near
            await writer.client_kill_filter(_id=near.tracking_client_id)  # the connection drops
            await changes.next("flush")
            flushed = key not in near and len(near) == 0
            while_down = await near.get(key)
            await changes.next("connected")  # reconnected, tracking again
            await near.get(key)
            await writer.set(key, "v2")  # invalidations flow again after the reconnect
            await changes.next("invalidate")
            return flushed, while_down, await near.get(key), near.counts["flushes"]
        finally:
            await near.close()
    flushed, while_down, after, flushes = run(redis_url, body)
    assert flushed and while_down == ("v1", False)
    assert after == ("v2", False) and flushes == 1


def test_an_entry_older_than_max_age_is_read_again_from_redis(redis_url):
    kind = fresh_kind()
    key = keys.cache_entity(kind, "A")

    async def body(r, writer):
        await writer.set(key, "v1")
        near = await NearCache(r, [keys.cache_prefix(kind)], max_age_s=0.05).start()
        try:
            first, young = await near.get(key), await near.get(key)
            await asyncio.sleep(0.1)  # only ages the entry past max_age; correctness does not hinge on timing
            return first, young, await near.get(key)
        finally:
            await near.close()
    first, young, old = run(redis_url, body)
    assert first[1] is False and young[1] is True and old == ("v1", False)


def test_an_invalidation_during_the_get_keeps_the_reply_out_of_l1(redis_url):
    """The fill race: the GET's reply (old) is processed after the invalidation of that key arrived."""
    kind = fresh_kind()
    key = keys.cache_entity(kind, "A")

    class SlowReplyRedis:
        """Delegates to Redis, but holds the GET's (old) reply until the test let an invalidation in."""

        def __init__(self, real):
            self.real, self.connection_pool = real, real.connection_pool
            self.got_reply, self.release = asyncio.Event(), asyncio.Event()

        async def get(self, k):
            value = await self.real.get(k)
            self.got_reply.set()
            await self.release.wait()
            return value

    async def body(r, writer):
        changes = Changes()
        await writer.set(key, "old")
        slow = SlowReplyRedis(r)
        near = await NearCache(slow, [keys.cache_prefix(kind)], on_change=changes).start()
        try:
            reading = asyncio.create_task(near.get(key))
            await slow.got_reply.wait()
            await writer.set(key, "new")
            await changes.next("invalidate")
            slow.release.set()
            return await reading, key in near, near.counts["fills_refused"]
        finally:
            await near.close()
    read, kept, refused = run(redis_url, body)
    assert read == ("old", False)  # this one read was already in flight: it may return old
    assert not kept and refused == 1  # but L1 does not keep it
