"""Entity ids (``CUS-000001``, ``POL-000001``, ``CLM-000001``): made here, validated at the edge.

Nothing a client sends becomes part of a Redis key or a SQL statement unless it matched one of these
patterns first.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path

ID_PREFIX = {"customer": "CUS", "policy": "POL", "claim": "CLM"}
# Six to twelve digits: enough for a trillion rows, and never a number SQLite cannot hold.
ID_PATTERN = {kind: rf"^{prefix}-\d{{6,12}}$" for kind, prefix in ID_PREFIX.items()}


def make_id(kind: str, number: int) -> str:
    return f"{ID_PREFIX[kind]}-{number:06d}"


def id_number(entity_id: str) -> int:
    return int(entity_id.split("-", 1)[1])


def is_valid(kind: str, entity_id: str) -> bool:
    return re.fullmatch(ID_PATTERN[kind], entity_id) is not None


CustomerId = Annotated[str, Path(pattern=ID_PATTERN["customer"], examples=["CUS-000001"])]
PolicyId = Annotated[str, Path(pattern=ID_PATTERN["policy"], examples=["POL-000001"])]
ClaimId = Annotated[str, Path(pattern=ID_PATTERN["claim"], examples=["CLM-000001"])]
