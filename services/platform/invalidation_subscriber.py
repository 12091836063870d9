"""``event_driven`` coherence (lesson 06): every instance deletes the copies an announced write made stale.

The writer only announces on ``lab:events:invalidations`` (``coherence.after_write``); every instance of the
service runs lesson 06's ``coherence.invalidate_on_events`` (started with the app when the lab is set to
``event_driven``), which does the deleting.
"""

from __future__ import annotations

from typing import Any

from services.patterns import coherence


def event_driven_invalidation(state: Any):
    """The subscriber's coroutine when the lab runs ``event_driven`` coherence, else None.

    It handles its own service's announcements (``source`` ``policy/<instance>``), so copies go when the
    event arrives — a window of about a pub/sub hop in which readers still get the old copy, and until the
    TTL if the event is lost (pub/sub keeps nothing).
    """
    if state.settings.cache_coherence != "event_driven":
        return None
    return coherence.invalidate_on_events(state.redis, from_source=f"{state.service}/", stats=state.cache_stats,
                                          timeout_s=state.settings.cache_timeout_s)
