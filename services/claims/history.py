"""A claim's audit trail, read from its own stream, and its state rebuilt from events alone (replay).

Why a stream per claim (``keys.subject_history``): the history of one claim is then one ``XRANGE`` of a
handful of entries, however long the claims log grows — no scan of the whole ``lab:stream:claims``
filtered by subject. The outbox's publish script writes both in the same atomic step.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from services.core import keys
from services.patterns.envelope import Event, EventType

from .repository import TOPIC


async def claim_events(r: aioredis.Redis, claim_id: str) -> list[Event]:
    """Every event of one claim, oldest first."""
    entries = await r.xrange(keys.subject_history(TOPIC, claim_id))
    return [Event.from_json(fields["event"]) for _entry_id, fields in entries]


def timeline(events: list[Event]) -> list[dict]:
    """Who did what, when: one row per event, the shape ``GET /claims/{id}/history`` answers with."""
    rows = []
    for event in events:
        if event.type == EventType.CLAIM_SUBMITTED:
            rows.append({"time": event.time, "type": event.type, "actor": event.data.get("actor"),
                         "from": None, "to": "submitted", "note": None, "event_id": event.id})
        elif event.type == EventType.CLAIM_STATUS_CHANGED:
            rows.append({"time": event.time, "type": event.type, "actor": event.data.get("actor"),
                         "from": event.data["from"], "to": event.data["to"], "note": event.data.get("note"),
                         "event_id": event.id})
    return rows


def replay_claim(events: list[Event]) -> dict | None:
    """Rebuild a claim from its events only — the same fields the claims table holds.

    ``claim.submitted`` carries the claim as it was created; each ``claim.status_changed`` applies what
    the UPDATE did: the new status, the note (kept when none was given), the time of the change, the
    version it bumped.
    """
    claim = None
    for event in events:
        if event.type == EventType.CLAIM_SUBMITTED:
            claim = dict(event.data["claim"])
        elif event.type == EventType.CLAIM_STATUS_CHANGED and claim is not None:
            claim["status"] = event.data["to"]
            if event.data.get("note") is not None:
                claim["note"] = event.data["note"]
            claim["updated_at"] = event.data["updated_at"]
            claim["version"] = event.data.get("version", claim.get("version", 1) + 1)  # older events lack it
    return claim
