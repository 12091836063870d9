"""The one Redis connection pool each process opens (in its app lifespan) and closes.

Why these options:
* ``decode_responses=True``: the lab stores JSON text; str in, str out.
* socket timeouts: a request must never hang on a Redis that went away; it fails fast and the service
  falls back to its system of record.
* ``retry`` with exponential backoff and ``health_check_interval``: after Redis restarts, the pool
  reconnects by itself.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

#: The one definition of "Redis is unavailable": refused, reset, unreachable, or too slow to answer.
#: ``asyncio.TimeoutError`` is what ``asyncio.wait_for`` raises around a Redis call (the cache's own
#: deadline); on Python 3.11+ it is the builtin ``TimeoutError``, an ``OSError``, so it was always in here
#: and is named only so the reader does not have to know that.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)

#: Unavailable, or up and refusing (``NOPERM``, ``OOM`` under ``noeviction``, any other Redis error, or a
#: cluster client that cannot place a command — redis-py raises those outside ``RedisError``): what
#: code that must *fail open* — the cache, a relay, a heartbeat — treats as "Redis did not help". Built from
#: ``REDIS_DOWN``, so the two cannot drift apart; kept apart from it because some callers answer the two
#: differently (a refused session lookup is a bug to see, an unreachable one a 503).
REDIS_DOWN_OR_REFUSING = (*REDIS_DOWN, RedisError, RedisClusterException)


def connect(url: str, timeout_s: float = 1.0, client_name: str | None = None, *, cluster: bool = False,
            **extra) -> aioredis.Redis:
    """The one place that decides which client a process gets: one server, or a cluster (lesson 09).

    The cluster client learns the slot map from the node in ``url``, sends each command to the node that
    owns its key's slot, follows ``MOVED``/``ASK`` redirects, and refreshes the map after a failover. Every
    call site stays the same: that is why every multi-key command here keeps its keys in one slot.
    """
    if cluster:
        return RedisCluster.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=3),
            client_name=client_name,
            max_connections=64,
            **extra,
        )
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=10,
        client_name=client_name,
        max_connections=64,
        **extra,
    )


async def ping_latency_ms(client: aioredis.Redis) -> float | None:
    """Round-trip time of one PING in ms, or None when Redis does not answer."""
    started = time.perf_counter()
    try:
        await client.ping()
    except REDIS_DOWN:
        return None
    return round((time.perf_counter() - started) * 1000, 3)
