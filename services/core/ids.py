"""Entity ids (``CUS-000001``, ``POL-000001``, ``CLM-000001``): made here, validated at the edge.

Nothing a client sends becomes part of a Redis key or a SQL statement unless it matched one of these
patterns first.

**One record, one spelling.** The number is what SQLite looks up, the text is what Redis keys, events,
tag sets and peer calls use. If ``POL-0000512`` and ``POL-000512`` both found row 512, each spelling
would get its own cached copy (one of them stale after a write that invalidated the other), its own
claims and its own history. So an id is valid only in the exact form ``make_id`` writes: the prefix in
capitals, ``-``, the number in ASCII digits, zero-padded to six and no further (``POL-000512``,
``POL-1234567``). Every other spelling — extra zeros, ``pol-``, ``+512``, Arabic-Indic digits, spaces
inside the path — is refused with a 422 naming the field before it reaches a key or a query.

The path-parameter types that make FastAPI check an id at the edge (``CustomerId``, ``PolicyId``,
``ClaimId``) are in ``services/platform/path_ids.py``; this module stays framework-free.
"""

from __future__ import annotations

import re

ID_PREFIX = {"customer": "CUS", "policy": "POL", "claim": "CLM"}
# Exactly the digits make_id writes: six (zero-padded), or seven to twelve without a leading zero —
# enough for a trillion rows, and never a number SQLite cannot hold. [0-9], not \d: \d also matches
# other scripts' digits ('٥'), which int() would happily read as the same number.
ID_DIGITS = r"(?:[0-9]{6}|[1-9][0-9]{6,11})"
ID_PATTERN = {kind: rf"^{prefix}-{ID_DIGITS}$" for kind, prefix in ID_PREFIX.items()}


def make_id(kind: str, number: int) -> str:
    return f"{ID_PREFIX[kind]}-{number:06d}"


def id_number(entity_id: str) -> int:
    return int(entity_id.split("-", 1)[1])


def is_valid(kind: str, entity_id: str) -> bool:
    """True only for the canonical spelling: ``is_valid(k, x)`` implies ``make_id(k, id_number(x)) == x``."""
    return isinstance(entity_id, str) and re.fullmatch(ID_PATTERN[kind], entity_id, re.ASCII) is not None
