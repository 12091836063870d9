"""Caching whole GET answers at the gateway, dropped when an event says an entity in them changed.

On by default for two seconds (``LAB_GATEWAY_CACHE_TTL_S``; ``PUT /admin/gateway-cache`` changes it at run
time, 0 turns it off). This is the last step of the caching story: the service's Redis cache saves the
system of record, this one saves the whole hop — a hit costs no network round trip at all, which is how a
read through the gateway gets under a millisecond (``benchmarks/load_targets.py``).

* **Who asked is part of the key.** alice's and bob's answers to the same URL differ (each sees only
  their own records), so one must never be served the other's.
* **Only answers about named entities are kept**: a URL whose path names one (``/policies/POL-…``,
  ``/customers/CUS-…/overview``). A collection query (``/claims?status=open``) is forwarded every time: a
  new claim changes every list it could belong to, and no index of entity ids can say which.
* **Invalidation by events.** Every entity id in a kept answer's URL and body (``CUS-…``, ``POL-…``,
  ``CLM-…``) is indexed. An event whose ``subject`` (or data) names one — a domain event on
  ``lab:events:claims|policies|customers`` or a ``cache.invalidated`` on ``lab:events:invalidations`` —
  drops every answer that holds it. A write that passes through this gateway drops its entity at once,
  without waiting for the event (read-your-writes for that client).
* **Pub/sub keeps nothing for a subscriber that was away**, so the cache is emptied whenever the
  subscription is (re)made, and the TTL bounds how stale an answer can get if an event is missed.
* **Clients can opt out**, as HTTP says (RFC 9111, 5.2.1): ``Cache-Control: no-cache`` asks the service
  and keeps the fresh answer; ``no-store`` neither uses nor keeps one. The lessons that study routing send
  ``no-cache``, so every request really reaches an instance.

A hit says so: ``X-Gateway-Cache: HIT``, ``X-Cache: HIT``, ``Age`` (seconds since it was stored) and
``X-Served-By: gateway-cache``, since no instance served it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

ENTITY_ID = re.compile(rb"\b(?:CUS|POL|CLM)-\d{6,12}\b")
INVALIDATING_CHANNELS = ("invalidations", "claims", "policies", "customers")
# Answer headers that describe how *this* answer was produced: replaced on a hit.
PER_ANSWER = {b"x-cache", b"x-served-by", b"x-gateway-cache", b"age"}
HIT_HEADERS = [(b"x-cache", b"HIT"), (b"x-served-by", b"gateway-cache"), (b"x-gateway-cache", b"HIT")]


@dataclass
class CachedAnswer:
    stored_at: float
    expires_at: float
    status: int
    headers: list[tuple[bytes, bytes]]  # ready to send, hit headers included; ``Age`` is added per hit
    body: bytes


def entities_in_path(path: str) -> list[str]:
    """The entity ids a URL path names: ``/customers/CUS-000001/overview`` -> ``["CUS-000001"]``."""
    return [part for part in path.split("/") if ENTITY_ID.fullmatch(part.encode())]


def entities_in_body(body: bytes) -> set[str]:
    """The entity ids an answer mentions: a claim names its policy and its customer too."""
    return {match.decode() for match in ENTITY_ID.findall(body)}


def request_directives(cache_control: bytes | None) -> set[str]:
    """``Cache-Control: no-cache, max-age=0`` -> ``{"no-cache", "max-age=0"}`` (lower-case)."""
    if not cache_control:
        return set()
    return {part.strip().lower() for part in cache_control.decode("latin-1").split(",") if part.strip()}


class ResponseCache:
    def __init__(self, ttl_s: float, max_entries: int = 10_000):
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self.answers: dict[tuple[str, str], CachedAnswer] = {}
        self.by_entity: dict[str, set[tuple[str, str]]] = {}
        self.hits = self.misses = self.bypassed = self.dropped = self.emptied = 0

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

    def put(self, who: str, url: str, named: list[str], status: int, headers: list, body: bytes) -> None:
        """Keep one answer, indexed by the entities its URL ``named`` and those its body mentions."""
        if len(self.answers) >= self.max_entries:
            self.clear()  # crude but bounded; a lab gateway never gets near it
        entities = entities_in_body(body).union(named)
        key = (who, url)
        kept = [(name, value) for name, value in headers if name not in PER_ANSWER] + HIT_HEADERS
        now = time.monotonic()
        self.answers[key] = CachedAnswer(now, now + self.ttl_s, status, kept, body)
        for entity in entities:
            self.by_entity.setdefault(entity, set()).add(key)

    def drop_entities(self, entity_ids) -> int:
        """Forget every answer that contains one of ``entity_ids``; returns how many."""
        dropped = 0
        for entity_id in entity_ids:
            for key in self.by_entity.pop(entity_id, ()):
                if self.answers.pop(key, None) is not None:
                    dropped += 1
        self.dropped += dropped
        return dropped

    def clear(self) -> None:
        self.answers.clear()
        self.by_entity.clear()

    def empty_after_resubscribe(self) -> None:
        """Events published while the subscription was down are lost: nothing kept can be trusted."""
        if self.answers:
            self.emptied += 1
        self.clear()

    def describe(self) -> dict:
        return {"ttl_s": self.ttl_s, "entries": len(self.answers), "hits": self.hits, "misses": self.misses,
                "bypassed": self.bypassed, "dropped_by_events": self.dropped,
                "emptied_on_resubscribe": self.emptied}
