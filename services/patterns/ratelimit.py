"""Rate limiting per client: a sliding-window log in one Lua script.

Each client has a sorted set of its recent requests (member = a unique id, score = time in ms). A request
is allowed when fewer than ``limit`` requests remain in the last ``window``. Why a sliding window and not
a fixed one: a fixed window lets a client send ``limit`` at 0.999 s and ``limit`` more at 1.001 s —
twice the limit in 2 ms. The log has no such edge.

Why one Lua script: "count, then add" done as two commands lets two gateways both read 9 of 10 and both
allow — 11 requests. A script runs atomically on the server, and uses the *server's* clock (``TIME``),
so gateways with skewed clocks still agree. It touches one key, so it runs unchanged on Redis Cluster.

The answer says how long until the oldest request leaves the window: that is the ``Retry-After``.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis

from services.core import keys

SLIDING_WINDOW_LUA = """
local key, limit, window_ms, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms - window_ms)
local used = redis.call('ZCARD', key)
if used < limit then
  redis.call('ZADD', key, now_ms, member)
  redis.call('PEXPIRE', key, window_ms)
  return {1, limit - used - 1, 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local retry_ms = tonumber(oldest[2]) + window_ms - now_ms
return {0, 0, retry_ms}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_ms: int

    @property
    def retry_after_s(self) -> int:
        """For the ``Retry-After`` header, which takes whole seconds: rounded up, at least 1."""
        return max(1, math.ceil(self.retry_after_ms / 1000))


class SlidingWindowLimiter:
    def __init__(self, r: aioredis.Redis, limit: int, window_s: float):
        self.limit, self.window_ms = limit, max(1, int(window_s * 1000))
        self.script = r.register_script(SLIDING_WINDOW_LUA)

    async def check(self, client: str) -> Decision:
        """Count this request for ``client`` if it is allowed; say when to retry if it is not."""
        allowed, remaining, retry_ms = await self.script(keys=[keys.rate_limit(client)],
                                                         args=[self.limit, self.window_ms, uuid.uuid4().hex])
        return Decision(bool(allowed), int(remaining), int(retry_ms))
