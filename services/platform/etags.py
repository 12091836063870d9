"""Optimistic concurrency over HTTP: ``ETag`` says which version you read, ``If-Match`` writes only on top of it.

Every row of a system of record has a ``version``: 1 when it is created, bumped by every write in the
same UPDATE. A read by id answers ``ETag: "<version>"`` (a strong tag: the number in quotes, as RFC 9110
spells it) — a cache hit too, since the cached copy is the row with its version. A write may send
``If-Match: "<version>"``; the repository then updates ``WHERE num = ? AND version = ?``. Of two people
who read version 3 and both save, exactly one matches; the other gets **412 Precondition Failed** instead
of a 200 that silently throws the first edit away (last writer wins, a *lost update*).

``If-Match: *`` means "whatever version it has now"; no ``If-Match`` at all is an unconditional write,
as before — the lab does not force clients to send one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header, Response

from services.core.errors import LabError

STRONG_TAG = re.compile(r'"([0-9]{1,18})"')


def etag(version: int) -> str:
    return f'"{version}"'


def with_etag(response: Response, entity: dict[str, Any]) -> dict[str, Any]:
    """Set ``ETag`` from the entity's version; returns the entity, so a route can ``return with_etag(...)``."""
    response.headers["ETag"] = etag(entity["version"])
    return entity


async def expected_version(
    if_match: Annotated[str | None, Header(description='"<version>" from the ETag you read (or *): '
                                           "write only if nobody changed it since; else 412")] = None,
) -> int | None:
    """The version a write must find, from ``If-Match``; None: write whatever the version (absent or ``*``).

    One strong tag is accepted. A weak tag (``W/"3"``) or an unquoted number would never match a strong
    ETag; rather than answer an unexplained 412 every time, it is refused as bad input naming the header.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    match = STRONG_TAG.fullmatch(if_match.strip())
    if match is None:
        raise LabError(422, "invalid_input", 'If-Match takes one entity tag exactly as ETag gave it, quotes '
                       'included (e.g. "3"), or *', "If-Match")
    return int(match.group(1))


IfMatch = Annotated[int | None, Depends(expected_version)]
