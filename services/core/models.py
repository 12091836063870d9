"""The domain, as pydantic models: what a client may send (``...In``, ``...Patch``) and what it gets back.

Money is integer cents, dates are ISO 8601, times are UTC. ``extra="forbid"`` makes an unknown field a 422
that names it, instead of a silently ignored typo.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator

from .ids import ID_PATTERN

RiskTier = Literal["low", "medium", "high"]
Product = Literal["auto", "home", "life"]
PolicyStatus = Literal["active", "cancelled", "expired"]
ClaimStatus = Literal["submitted", "under_review", "approved", "rejected", "paid"]

#: The claim lifecycle: submitted -> under_review -> approved | rejected; approved -> paid.
CLAIM_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "submitted": ("under_review",),
    "under_review": ("approved", "rejected"),
    "approved": ("paid",),
    "rejected": (),
    "paid": (),
}

MAX_CENTS = 10**12  # ten billion in any currency: beyond that it is a typo, not a policy

#: Money in a request: a JSON integer of cents, nothing else. Strict, because lax parsing turns ``true``
#: into 1 cent and accepts ``"100"`` and ``100.0`` — a client bug would become a stored amount.
Cents = Annotated[int, Field(strict=True, gt=0, le=MAX_CENTS)]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- customers ---------------------------------------------------------------------------------------

class CustomerIn(Strict):
    name: str = Field(min_length=1, max_length=200, examples=["Ada Lovelace"])
    email: EmailStr
    date_of_birth: date = Field(examples=["1985-12-10"])
    risk_tier: RiskTier = "medium"

    @field_validator("date_of_birth")
    @classmethod
    def _plausible_birth_date(cls, value: date) -> date:
        if not date(1900, 1, 1) <= value <= date.today():
            raise ValueError("date_of_birth must be between 1900-01-01 and today")
        return value


class CustomerPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: EmailStr | None = None
    risk_tier: RiskTier | None = None


class Customer(BaseModel):
    id: str
    name: str
    email: str
    date_of_birth: date
    risk_tier: RiskTier
    created_at: str
    updated_at: str
    version: int = Field(description="bumped by every write; the ETag is this number in quotes")


# --- policies ----------------------------------------------------------------------------------------

class PolicyIn(Strict):
    customer_id: str = Field(pattern=ID_PATTERN["customer"], examples=["CUS-000001"])
    product: Product
    premium_cents: Cents = Field(examples=[98_000])
    coverage_cents: Cents = Field(examples=[25_000_000])
    start_date: date
    end_date: date

    @field_validator("end_date")
    @classmethod
    def _end_after_start(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("start_date")
        if start is not None and value <= start:
            raise ValueError("end_date must be after start_date")
        return value


class PolicyPatch(Strict):
    premium_cents: Cents | None = None
    coverage_cents: Cents | None = None
    end_date: date | None = None


class Policy(BaseModel):
    id: str
    customer_id: str
    product: Product
    premium_cents: int
    coverage_cents: int
    start_date: date
    end_date: date
    status: PolicyStatus
    created_at: str
    updated_at: str
    version: int = Field(description="bumped by every write; the ETag is this number in quotes")


# --- claims ------------------------------------------------------------------------------------------

class ClaimIn(Strict):
    policy_id: str = Field(pattern=ID_PATTERN["policy"], examples=["POL-000001"])
    amount_cents: Cents = Field(examples=[120_000])
    description: str = Field(min_length=1, max_length=2000, examples=["Rear-ended at a red light"])


class ClaimStatusChange(Strict):
    status: ClaimStatus
    note: str | None = Field(default=None, max_length=2000)


class Claim(BaseModel):
    id: str
    policy_id: str
    customer_id: str
    amount_cents: int
    description: str
    status: ClaimStatus
    note: str | None = None
    submitted_at: str
    updated_at: str
    version: int = Field(description="bumped by every write; the ETag is this number in quotes")


class Page(BaseModel):
    """One page of a list: ``items`` plus what is needed to ask for the next one."""

    items: list
    total: int
    limit: int
    offset: int
