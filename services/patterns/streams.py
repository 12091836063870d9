"""Reading a stream through a consumer group: at-least-once work that survives dead consumers.

Pub/sub delivers a message to whoever listens *now*; a consumer group remembers, for the group, what was
delivered and what was acknowledged:

* ``XREADGROUP ... >`` hands each new entry to one consumer of the group and puts it on the group's
  pending list (PEL) until that consumer ``XACK``s it;
* a consumer that dies leaves entries pending. ``XAUTOCLAIM`` lets any other consumer take over entries
  idle longer than ``min_idle_ms`` — the work is redone, never lost;
* an entry that keeps failing (``max_deliveries``) or cannot even be parsed goes to a dead-letter stream
  with the reason and is acknowledged, so one poison message never blocks the consumer.

Because an entry may be delivered more than once, handlers must be idempotent (skip an event id they
already handled; exercise 02 builds exactly that).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from .envelope import Event
from .trace_context import continue_trace

log = logging.getLogger("lab.streams")

Handler = Callable[[Event], Awaitable[None]]


class PoisonEvent(ValueError):
    """Raised by a handler for an event no retry can fix (wrong shape): it goes to dead letter at once."""


@dataclass
class ConsumerStats:
    handled: int = 0
    reclaimed: int = 0
    failed: int = 0
    dead_lettered: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


async def ensure_group(r: aioredis.Redis, stream: str, group: str, start_id: str = "0") -> None:
    """Create the group (and the stream) unless it exists. ``start_id="0"``: the group reads the whole log."""
    try:
        await r.xgroup_create(stream, group, id=start_id, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def dead_letter(r: aioredis.Redis, stream: str, group: str, dead_key: str, entry_id: str, fields: dict,
                      reason: str, deliveries: int) -> None:
    """Park the entry in the dead-letter stream with why, then acknowledge it in one MULTI."""
    async with r.pipeline(transaction=True) as pipe:
        pipe.xadd(dead_key, {"stream": stream, "group": group, "entry_id": entry_id,
                             "event": fields.get("event", ""), "reason": reason[:500],
                             "deliveries": deliveries})
        pipe.xack(stream, group, entry_id)
        await pipe.execute()


async def deliveries_of(r: aioredis.Redis, stream: str, group: str, entry_id: str) -> int:
    pending = await r.xpending_range(stream, group, min=entry_id, max=entry_id, count=1)
    return pending[0]["times_delivered"] if pending else 0


async def consume_once(r: aioredis.Redis, stream: str, group: str, consumer: str, handler: Handler, *,
                       dead_key: str, count: int = 50, block_ms: int = 1000, min_idle_ms: int = 5000,
                       max_deliveries: int = 3, stats: ConsumerStats | None = None) -> int:
    """One round: reclaim entries a dead consumer left (XAUTOCLAIM), else read new ones; handle each.

    Returns how many entries were looked at. A handler that raises leaves its entry pending: it comes back
    through XAUTOCLAIM after ``min_idle_ms``, up to ``max_deliveries`` times, then goes to dead letter.
    """
    stats = stats if stats is not None else ConsumerStats()
    _next, claimed, _deleted = await r.xautoclaim(stream, group, consumer, min_idle_time=min_idle_ms,
                                                  start_id="0-0", count=count)
    entries = [(entry_id, fields) for entry_id, fields in claimed if fields]
    stats.reclaimed += len(entries)
    if not entries:
        answer = await r.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block_ms)
        entries = answer[0][1] if answer else []
    for entry_id, fields in entries:
        await _handle_entry(r, stream, group, entry_id, fields, handler, dead_key, max_deliveries, stats)
    return len(entries)


async def _handle_entry(r, stream, group, entry_id, fields, handler, dead_key, max_deliveries, stats) -> None:
    try:
        event = Event.from_json(fields.get("event"))
    except ValueError as exc:  # malformed: retrying will not fix it
        await dead_letter(r, stream, group, dead_key, entry_id, fields, f"malformed event: {exc}", 1)
        stats.dead_lettered += 1
        return
    try:
        with continue_trace(event, "process"):  # the request that made the event, continued (trace_context.py)
            await handler(event)
    except PoisonEvent as exc:
        await dead_letter(r, stream, group, dead_key, entry_id, fields, f"unusable {event.type}: {exc}", 1)
        stats.dead_lettered += 1
        return
    except Exception as exc:  # noqa: BLE001 - any failure of the handler counts as one failed delivery
        stats.failed += 1
        deliveries = await deliveries_of(r, stream, group, entry_id)
        log.warning("entry %s (%s) failed delivery %d: %s", entry_id, event.type, deliveries, exc)
        if deliveries >= max_deliveries:
            await dead_letter(r, stream, group, dead_key, entry_id, fields,
                              f"failed {deliveries} deliveries; last error: {type(exc).__name__}: {exc}",
                              deliveries)
            stats.dead_lettered += 1
        return
    await r.xack(stream, group, entry_id)
    stats.handled += 1


async def group_progress(r: aioredis.Redis, stream: str, group: str) -> dict:
    """The group's ``lag`` (entries not yet delivered) and ``pending`` (delivered, not acknowledged)."""
    for info in await r.xinfo_groups(stream):
        if info["name"] == group:
            return {"lag": info.get("lag"), "pending": info["pending"],
                    "last_delivered_id": info["last-delivered-id"]}
    return {"lag": None, "pending": 0, "last_delivered_id": None}
