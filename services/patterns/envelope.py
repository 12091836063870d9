"""The one event envelope every event in the lab uses, and the one list of event types.

    {"id": "9f1c…", "type": "claim.submitted", "source": "claims/claims-3002-ab12",
     "time": "2026-11-25T20:42:00.123Z", "subject": "CLM-000042", "data": {...}, "version": 1}

``id`` makes handling idempotent (a consumer that sees the same id twice skips it), ``subject`` is the
entity the event is about, ``version`` is the envelope's schema version. Shaped after CloudEvents.
``traceparent`` (present when tracing is on) is the W3C trace context of the request that made the event,
so its handlers continue that trace (``trace_context.py``, CloudEvents' distributed-tracing extension).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from .trace_context import current_traceparent

ENVELOPE_VERSION = 1


class EventType(StrEnum):
    CUSTOMER_CREATED = "customer.created"
    CUSTOMER_UPDATED = "customer.updated"
    CUSTOMER_DELETED = "customer.deleted"
    POLICY_CREATED = "policy.created"
    POLICY_UPDATED = "policy.updated"
    POLICY_CANCELLED = "policy.cancelled"
    POLICY_DELETED = "policy.deleted"
    CLAIM_SUBMITTED = "claim.submitted"
    CLAIM_STATUS_CHANGED = "claim.status_changed"
    CACHE_INVALIDATED = "cache.invalidated"
    INSTANCE_REGISTERED = "instance.registered"
    INSTANCE_DEREGISTERED = "instance.deregistered"


def utc_timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_now = utc_timestamp


@dataclass(frozen=True)
class Event:
    type: str
    source: str
    subject: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: str = field(default_factory=_now)
    version: int = ENVELOPE_VERSION
    traceparent: str | None = field(default_factory=current_traceparent)

    def to_json(self) -> str:
        fields = asdict(self)
        if fields["traceparent"] is None:
            del fields["traceparent"]
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "Event":
        """Parse and validate an envelope; ValueError names what is wrong (for dead-lettering)."""
        try:
            raw = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError("an event must be a JSON object")
        missing = [name for name in ("id", "type", "source", "time", "subject") if not raw.get(name)]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        if not isinstance(raw.get("data", {}), dict):
            raise ValueError("data must be an object")
        known = {k: raw[k] for k in ("id", "type", "source", "time", "subject", "data", "version") if k in raw}
        traceparent = raw.get("traceparent")
        return cls(**known, traceparent=traceparent if isinstance(traceparent, str) else None)
