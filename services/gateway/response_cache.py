"""Caching whole GET answers at the gateway, dropped when an event says an entity in them changed.

Off by default (``LAB_GATEWAY_CACHE_TTL_S=0``; ``PUT /admin/gateway-cache`` turns it on at run time), so
the plain proxy path stays what the hop benchmark measures.

* Kept in this process's memory: a hit costs no network round trip at all.
* The key includes *who* asked: alice's and bob's answers to the same URL differ (each sees only their
  own records), so one must never be served the other's.
* Every entity id in a cached body (``CUS-…``, ``POL-…``, ``CLM-…``) is indexed. An event whose
  ``subject`` is one of them — a domain event on ``lab:events:claims|policies|customers`` or a
  ``cache.invalidated`` on ``lab:events:invalidations`` — drops every answer that contains it. A write that
  passes through this gateway drops its entity at once, without waiting for the event.
* The TTL bounds staleness when an event is missed (pub/sub keeps nothing for a subscriber that was away).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

ENTITY_ID = re.compile(rb"\b(?:CUS|POL|CLM)-\d{6,12}\b")
INVALIDATING_CHANNELS = ("invalidations", "claims", "policies", "customers")


@dataclass
class CachedAnswer:
    expires_at: float
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    entities: frozenset[str]


class ResponseCache:
    def __init__(self, ttl_s: float, max_entries: int = 10_000):
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self.answers: dict[tuple[str, str], CachedAnswer] = {}
        self.by_entity: dict[str, set[tuple[str, str]]] = {}
        self.hits = self.misses = self.dropped = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, who: str, url: str) -> CachedAnswer | None:
        answer = self.answers.get((who, url))
        if answer is None or answer.expires_at < time.monotonic():
            self.misses += 1
            return None
        self.hits += 1
        return answer

    def put(self, who: str, url: str, status: int, headers: list, body: bytes) -> None:
        if len(self.answers) >= self.max_entries:
            self.clear()  # crude but bounded; a lab gateway never gets near it
        entities = frozenset(m.decode() for m in ENTITY_ID.findall(body))
        key = (who, url)
        self.answers[key] = CachedAnswer(time.monotonic() + self.ttl_s, status, headers, body, entities)
        for entity in entities:
            self.by_entity.setdefault(entity, set()).add(key)

    def drop_entity(self, entity_id: str) -> int:
        """Forget every answer that contains ``entity_id``; returns how many."""
        dropped = 0
        for key in self.by_entity.pop(entity_id, ()):
            if self.answers.pop(key, None) is not None:
                dropped += 1
        self.dropped += dropped
        return dropped

    def clear(self) -> None:
        self.answers.clear()
        self.by_entity.clear()

    def describe(self) -> dict:
        return {"ttl_s": self.ttl_s, "entries": len(self.answers), "hits": self.hits, "misses": self.misses,
                "dropped_by_events": self.dropped}
