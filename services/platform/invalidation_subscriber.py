"""``event_driven`` coherence (lesson 06): every instance deletes the copies an announced write made stale.

The writer only announces on ``lab:events:invalidations`` (``ServiceCache.invalidate``); this subscriber,
started with the app when the lab is set to ``event_driven``, does the deleting.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.core import keys
from services.patterns import cache as pattern
from services.patterns.envelope import Event
from services.patterns.subscriber import subscribe_forever

from .service_cache import INVALIDATIONS_CHANNEL


async def invalidate_announced_changes(app: FastAPI) -> None:
    """``event_driven`` coherence: forever, delete what an announced write made stale.

    Every instance of the service runs this and handles its own service's announcements (``source``
    ``policy/<instance>``), so copies go when the event arrives — a window of about a pub/sub hop in which
    readers still get the old copy, and until the TTL if the event is lost (pub/sub keeps nothing).
    """
    state = app.state

    async def on_event(event: Event) -> None:
        data = event.data
        if data.get("strategy") != "event_driven" or event.source.split("/")[0] != state.service:
            return
        await pattern.invalidate(state.redis, [keys.cache_entity(data["kind"], event.subject)],
                                 dependents_of=[event.subject, *data.get("parents", [])], stats=state.cache_stats,
                                 kind=data["kind"], timeout_s=state.settings.cache_timeout_s)

    await subscribe_forever(state.redis, [INVALIDATIONS_CHANNEL], on_event)


def start_event_driven_invalidation(app: FastAPI) -> None:
    """Called at start-up: the subscriber runs only when the lab is set to ``event_driven``."""
    app.state.invalidator = (asyncio.create_task(invalidate_announced_changes(app), name="event-driven-invalidation")
                             if app.state.settings.cache_coherence == "event_driven" else None)


async def stop_event_driven_invalidation(app: FastAPI) -> None:
    task = getattr(app.state, "invalidator", None)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
