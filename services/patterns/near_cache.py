"""A near cache: an in-process dict (L1) in front of Redis, kept coherent by the server itself.

A hit in a Python dict costs well under a microsecond; a Redis GET is a network round trip. But a dict in
every process is a copy nobody invalidates — unless Redis tells us. ``CLIENT TRACKING`` does:

* **BCAST mode with prefixes**: Redis announces *every* change to a key under the prefixes (here
  ``lab:cache:…``), whoever made it, without remembering which keys we read.
* **REDIRECT, protocol 2**: the announcements are published to ``__redis__:invalidate`` for the client
  we name. redis-py 8 speaks RESP3 by default, and RESP3 push messages never reached an async PubSub
  (FIELD-NOTES), so one dedicated RESP2 connection asks ``CLIENT ID``, turns tracking on REDIRECTed to
  *itself*, and subscribes. Tracking and the subscription live and die together on that connection.
* **Flush when the connection drops**: while it is down we cannot hear invalidations, so the whole L1 is
  dropped and reads go to Redis until it is back.
* **Every entry has a maximum age**: a bound on staleness should anything still slip through.
* **The fill race**: a GET is sent, the key changes, the invalidation arrives *before* the GET's reply is
  stored. Each read notes how many invalidations its key (and the whole L1) had before it asked; the reply
  is stored only if none arrived meanwhile.

    near = NearCache(r, [keys.cache_prefix()], max_age_s=5)
    await near.start()
    raw, from_l1 = await near.get(key)   # raw JSON text or None (a miss in Redis too)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from typing import Callable

from redis.asyncio import Redis

from services.core.redis_client import REDIS_DOWN

log = logging.getLogger("lab.near_cache")

INVALIDATION_CHANNEL = "__redis__:invalidate"


class NearCache:
    def __init__(self, r: Redis, prefixes: list[str], *, max_age_s: float = 5.0, max_entries: int = 10_000,
                 on_change: Callable[[str, list[str] | None], None] | None = None):
        self.r, self.prefixes = r, tuple(prefixes)
        self.max_age_s, self.max_entries = max_age_s, max_entries
        self.on_change = on_change  # called with ("invalidate", keys) / ("flush", None) / ("connected", None)
        self.connected = False
        self.counts = Counter()  # l1_hits, redis_reads, invalidations, flushes, fills_refused
        self.tracking_client_id: int | None = None
        self._l1: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._epoch = 0  # bumped on every flush
        self._inflight: Counter = Counter()  # key -> reads waiting for Redis
        self._invalidated: Counter = Counter()  # key -> invalidations seen while reads were in flight
        self._task: asyncio.Task | None = None
        self._connected = asyncio.Event()

    # ----------------------------------------------------------------------------------------- reads
    async def get(self, key: str) -> tuple[str | None, bool]:
        """``(raw value or None, served from L1)``. Keys outside the tracked prefixes always go to Redis."""
        tracked = self.connected and key.startswith(self.prefixes)
        if tracked:
            entry = self._l1.get(key)
            if entry is not None:
                raw, stored_at = entry
                if time.monotonic() - stored_at <= self.max_age_s:
                    self._l1.move_to_end(key)
                    self.counts["l1_hits"] += 1
                    return raw, True
                del self._l1[key]  # too old: ask Redis again
        seen = (self._epoch, self._invalidated[key])
        self._inflight[key] += 1
        try:
            raw = await self.r.get(key)
        finally:
            self._inflight[key] -= 1
            unchanged = seen == (self._epoch, self._invalidated[key])
            if not self._inflight[key]:
                del self._inflight[key]
                self._invalidated.pop(key, None)
        self.counts["redis_reads"] += 1
        if tracked and raw is not None:
            if unchanged and self.connected:
                self._store(key, raw)
            else:
                self.counts["fills_refused"] += 1
        return raw, False

    def _store(self, key: str, raw: str) -> None:
        self._l1[key] = (raw, time.monotonic())
        self._l1.move_to_end(key)
        while len(self._l1) > self.max_entries:
            self._l1.popitem(last=False)  # least recently used

    def __contains__(self, key: str) -> bool:
        return key in self._l1

    def __len__(self) -> int:
        return len(self._l1)

    # ---------------------------------------------------------------------------------- invalidations
    def invalidate(self, changed: list[str] | None) -> None:
        """Drop the changed keys (None = the server flushed everything: drop all)."""
        if changed is None:
            self.flush("server flushed")
            return
        self.counts["invalidations"] += len(changed)
        for key in changed:
            self._l1.pop(key, None)
            if key in self._inflight:
                self._invalidated[key] += 1
        if self.on_change:
            self.on_change("invalidate", changed)

    def flush(self, why: str) -> None:
        self._l1.clear()
        self._epoch += 1
        self.counts["flushes"] += 1
        log.info("near cache flushed: %s", why)
        if self.on_change:
            self.on_change("flush", None)

    async def _open_tracking_connection(self):
        pool = self.r.connection_pool
        options = {k: v for k, v in pool.connection_kwargs.items() if not k.startswith(("maint_", "orig_"))}
        conn = pool.connection_class(**{**options, "protocol": 2, "socket_timeout": None,
                                        "client_name": "near-cache"})
        await conn.connect()
        await conn.send_command("CLIENT", "ID")
        client_id = await conn.read_response()
        prefix_args = [arg for prefix in self.prefixes for arg in ("PREFIX", prefix)]
        await conn.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", *prefix_args)
        await conn.read_response()
        await conn.send_command("SUBSCRIBE", INVALIDATION_CHANNEL)
        await conn.read_response()  # ["subscribe", channel, 1]
        return conn, int(client_id)

    async def _listen_forever(self) -> None:
        backoff = 0.05
        while True:
            conn = None
            try:
                conn, self.tracking_client_id = await self._open_tracking_connection()
                self._l1.clear()  # anything cached before this point was not tracked
                self.connected, backoff = True, 0.05
                self._connected.set()
                if self.on_change:
                    self.on_change("connected", None)
                while True:
                    message = await conn.read_response()
                    if isinstance(message, list) and message[0] == "message":
                        self.invalidate(message[2])
            except REDIS_DOWN as exc:
                was_connected, self.connected = self.connected, False
                self._connected.clear()
                if was_connected:
                    self.flush(f"tracking connection lost ({type(exc).__name__})")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                self.connected = False
                if conn is not None:
                    await conn.disconnect()

    # ------------------------------------------------------------------------------------- lifecycle
    async def start(self, timeout_s: float = 5.0) -> "NearCache":
        """Open the tracking connection (in a background task that reopens it) and wait until it is up."""
        self._task = asyncio.create_task(self._listen_forever(), name="near-cache-invalidations")
        await asyncio.wait_for(self._connected.wait(), timeout_s)
        return self

    async def wait_connected(self, timeout_s: float = 5.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._l1.clear()
