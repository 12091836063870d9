"""Knobs a lesson turns at run time on one instance: a slower system of record, extra delay, errors.

``GET /admin/knobs`` shows them, ``PUT /admin/knobs`` (the lab's system user only, e.g.
``labkit.faults.set_knobs``) changes any of them. They let a notebook make one
instance slow or flaky on purpose and watch what the gateway and the caches do about it.
"""

from __future__ import annotations

import asyncio
import random

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from .access import Caller


class Knobs(BaseModel):
    sor_latency_ms: float = Field(default=0.0, ge=0, le=10_000)
    delay_ms: float = Field(default=0.0, ge=0, le=60_000, description="added to every /api-style request")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="fraction of requests answered 500")


class KnobsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sor_latency_ms: float | None = Field(default=None, ge=0, le=10_000)
    delay_ms: float | None = Field(default=None, ge=0, le=60_000)
    error_rate: float | None = Field(default=None, ge=0, le=1)


knobs_router = APIRouter(prefix="/admin", tags=["admin"])


@knobs_router.get("/knobs")
async def read_knobs(request: Request) -> Knobs:
    return request.app.state.knobs


@knobs_router.put("/knobs")
async def change_knobs(change: KnobsPatch, request: Request, who: Caller) -> Knobs:
    """Only the lab's system user may turn a knob: an open "fail 100% of requests" switch is a DoS."""
    who.require("system")
    state = request.app.state
    state.knobs = state.knobs.model_copy(update=change.model_dump(exclude_none=True))
    if state.db is not None:
        state.db.latency_ms = state.knobs.sor_latency_ms
    return state.knobs


async def apply_fault_knobs(request: Request) -> None:
    """A dependency domain routes use: wait ``delay_ms``, then fail ``error_rate`` of the time."""
    from services.core.errors import LabError

    knobs: Knobs = request.app.state.knobs
    if knobs.delay_ms:
        await asyncio.sleep(knobs.delay_ms / 1000)
    if knobs.error_rate and random.random() < knobs.error_rate:
        raise LabError(500, "injected_fault", "error injected by the error_rate knob")
