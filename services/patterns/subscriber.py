"""A pub/sub subscriber that survives Redis restarts.

Pub/sub is fire-and-forget: Redis pushes each message to the connections subscribed *right now* and keeps
nothing. When Redis restarts, every subscription is gone with its connection, and redis-py does not
resubscribe by itself. So the loop below catches the connection error, waits (backoff), opens a new
connection and subscribes again. What was published in between is missed — that is the nature of
pub/sub (notebook 02 measures it); the durable log is the stream.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import redis.asyncio as aioredis

from services.core.redis_client import REDIS_DOWN, REDIS_DOWN_OR_REFUSING

from .envelope import Event
from .trace_context import continue_trace

log = logging.getLogger("lab.subscriber")


async def subscribe_forever(r: aioredis.Redis, channels: list[str], on_event: Callable[[Event], Awaitable[None]],
                            *, max_backoff_s: float = 2.0, on_subscribed: Callable[[], None] | None = None) -> None:
    """Call ``on_event`` for every event published on ``channels``; resubscribe after Redis comes back."""
    backoff = 0.05
    while True:
        pubsub = r.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*channels)
            log.info("subscribed to %s", ", ".join(channels))
            if on_subscribed:
                on_subscribed()
            backoff = 0.05
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                try:
                    event = Event.from_json(message["data"])
                    with continue_trace(event, "receive"):  # the writer's trace, continued (trace_context.py)
                        await on_event(event)
                except Exception:  # noqa: BLE001 - one bad message must not end the subscription
                    log.exception("subscriber: could not handle a message on %s", message.get("channel"))
        except REDIS_DOWN_OR_REFUSING as exc:
            log.warning("subscriber: Redis unreachable or refusing (%s); resubscribing in %.2f s",
                        type(exc).__name__, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
        finally:
            try:
                await pubsub.aclose()
            except REDIS_DOWN:
                pass
