"""Path-parameter types that refuse any id not in its canonical spelling (``services/core/ids.py``).

A route that declares ``policy_id: PolicyId`` gets a 422 naming the field for ``POL-0000512`` or
``pol-000512`` before the id reaches a Redis key or a SQL query.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from services.core.ids import ID_PATTERN

CustomerId = Annotated[str, Path(pattern=ID_PATTERN["customer"], examples=["CUS-000001"])]
PolicyId = Annotated[str, Path(pattern=ID_PATTERN["policy"], examples=["POL-000001"])]
ClaimId = Annotated[str, Path(pattern=ID_PATTERN["claim"], examples=["CLM-000001"])]
