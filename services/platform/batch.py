"""Batch reads (``GET /policies/batch?ids=...``): one cache round trip, an answer per id.

A batch is never one opaque 4xx: each id is found, invalid or not found on its own.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from services.core.errors import LabError
from services.core.ids import is_valid, make_id

from .service_cache import ServiceCache

MAX_BATCH = 100


def parse_batch_ids(raw: str, kind: str) -> tuple[list[str], dict[str, dict]]:
    """``"POL-000001,oops"`` -> (valid ids, {bad id: error}); too many or none at all is a 422 naming ``ids``."""
    asked = [part.strip() for part in raw.split(",") if part.strip()]
    if not asked or len(asked) > MAX_BATCH:
        raise LabError(422, "invalid_input", f"ids must list 1 to {MAX_BATCH} comma-separated ids, got {len(asked)}",
                       "ids")
    valid = [i for i in asked if is_valid(kind, i)]
    errors = {i: {"code": "invalid_id", "message": f"{i!r} is not a {kind} id (like {make_id(kind, 1)})"}
              for i in asked if not is_valid(kind, i)}
    return valid, errors


async def read_batch(cache: ServiceCache, kind: str, raw_ids: str, load_one: Callable[[str], Awaitable[Any]],
                     visible: Callable[[dict], bool]) -> dict:
    """A batch read answered per id: ``items`` found, ``errors`` (invalid id, not found) — never one opaque 4xx.

    An entity the caller may not see is reported exactly like one that does not exist.
    """
    ids, errors = parse_batch_ids(raw_ids, kind)
    results = await cache.read_many(kind, ids, load_one) if ids else {}
    items = {}
    for entity_id, (value, _) in results.items():
        if value is not None and visible(value):
            items[entity_id] = value
        else:
            errors[entity_id] = {"code": "not_found", "message": f"{kind} {entity_id} does not exist"}
    hits = sum(1 for _, hit in results.values() if hit)
    return {"items": items, "errors": errors, "cache": {"hits": hits, "misses": len(results) - hits}}
