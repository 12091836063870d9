"""Wiring lesson 02's patterns into a service: the outbox relay and pub/sub subscribers as background tasks.

Each domain service's ``main.py`` adds ``start_outbox_relay(topic)`` (and maybe ``start_subscriber``) to its
startup hooks. The tasks run on the app's ``BackgroundTasks`` (``app.state.tasks``), which the lifespan
stops at shutdown.

``WakeRelayAfterWrites`` is a tiny ASGI middleware: after any non-GET request it wakes the relay, so an
event reaches Redis within about a millisecond instead of at the next poll — without touching any route.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from fastapi import FastAPI

from services.patterns import outbox, subscriber
from services.patterns.envelope import Event

from services.core import keys

log = logging.getLogger("lab.events")


def start_outbox_relay(topic: str):
    """A startup hook: run the relay that moves this service's outbox rows to Redis."""
    async def hook(app: FastAPI) -> None:
        s = app.state.settings
        app.state.outbox_wake = asyncio.Event()
        app.state.outbox_topic = topic
        app.state.tasks.start(f"outbox-relay-{topic}", outbox.run_relay(
            app.state.redis, app.state.db.conn, app.state.outbox_wake, batch=s.outbox_batch, poll_s=s.outbox_poll_s,
            dedupe_ttl_s=s.events_dedupe_ttl_s, maxlen=s.events_stream_maxlen,
            replicas=s.outbox_replica_acks if s.redis_cluster else 0))
    return hook


def start_subscriber(topics: list[str], handler: Callable[[FastAPI, Event], Awaitable[None]]):
    """A startup hook: subscribe to the topics' channels for the app's life, resubscribing after restarts."""
    async def hook(app: FastAPI) -> None:
        async def on_event(event: Event) -> None:
            await handler(app, event)
        app.state.tasks.start(f"subscriber-{'-'.join(topics)}", subscriber.subscribe_forever(
            app.state.redis, [keys.channel(t) for t in topics], on_event))
    return hook


class WakeRelayAfterWrites:
    """After a POST/PUT/PATCH/DELETE has been answered, wake the outbox relay."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)
        if scope["type"] == "http" and scope["method"] != "GET":
            wake = getattr(scope["app"].state, "outbox_wake", None)
            if wake is not None:
                wake.set()
