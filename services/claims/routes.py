"""Claim routes: submit, read, list (by policy, customer, status) and move through the lifecycle.

Lesson 01: a claim by id is read through the cache (``X-Cache``). A new claim or a status change commits
first, then drops the claim's copy and what depends on its policy and customer (the customer's overview,
which the customer service built — the tag sets let this service find it without asking).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.core.errors import LabError, VersionMismatch, not_found
from services.core.ids import ID_PATTERN
from services.core.models import CLAIM_TRANSITIONS, Claim, ClaimIn, ClaimStatus, ClaimStatusChange, Page
from services.core.redis_client import REDIS_DOWN
from services.patterns.outbox import events_of_subject
from services.platform.access import Caller
from services.platform.batch import read_batch
from services.platform.etags import IfMatch, with_etag
from services.platform.knobs import apply_fault_knobs
from services.platform.paging import PageDep
from services.platform.path_ids import ClaimId
from services.platform.peers import fetch_peer_entity
from services.platform.service_cache import CacheDep
from services.platform.state import DbDep, RedisDep

from . import history
from . import repository as repo

router = APIRouter(prefix="/claims", tags=["claims"], dependencies=[Depends(apply_fault_knobs)])


@router.post("", status_code=201, response_model=Claim)
async def submit_claim(data: ClaimIn, request: Request, db: DbDep, response: Response, who: Caller,
                       cache: CacheDep):
    who.require("customer", "agent")
    policy = await fetch_peer_entity(request, "policy", f"/policies/{data.policy_id}")
    if policy is None or not who.owns(policy["customer_id"]):  # someone else's policy looks like none at all
        raise LabError(422, "unknown_reference", f"policy {data.policy_id} does not exist", "policy_id")
    if policy["status"] != "active":
        raise LabError(422, "policy_not_active", f"policy {data.policy_id} is {policy['status']}", "policy_id")
    if data.amount_cents > policy["coverage_cents"]:
        raise LabError(422, "over_coverage",
                       f"amount_cents exceeds the policy's coverage of {policy['coverage_cents']}", "amount_cents")
    claim = repo.create_claim(db, data.policy_id, policy["customer_id"], data.amount_cents,
                              data.description, actor=who.sub, coverage_cents=policy["coverage_cents"])
    await cache.after_write("claim", claim["id"], parents=[claim["policy_id"], claim["customer_id"]],
                            reason="claim.submitted", new_value=claim)
    return with_etag(response, claim)


@router.get("", response_model=Page)
async def list_claims(
    db: DbDep, page: PageDep, who: Caller,
    policy_id: Annotated[str | None, Query(pattern=ID_PATTERN["policy"])] = None,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN["customer"])] = None,
    status: Annotated[ClaimStatus | None, Query()] = None,
):
    customer_id = who.own_customer_filter(customer_id)  # a customer lists only their own claims
    items, total = await repo.list_claims(db, page.limit, page.offset,
                                          policy_id=policy_id, customer_id=customer_id, status=status)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get("/batch")
async def get_claims_batch(db: DbDep, who: Caller, cache: CacheDep,
                           ids: Annotated[str, Query(description="comma-separated, up to 100")]):
    """Many claims in one round trip to Redis; invalid or unknown ids are reported per id."""
    return await read_batch(cache, "claim", ids, lambda i: repo.get_claim(db, i),
                            visible=lambda c: who.owns(c["customer_id"]))


@router.get("/{claim_id}", response_model=Claim)
async def get_claim(claim_id: ClaimId, db: DbDep, response: Response, who: Caller, cache: CacheDep):
    claim = await cache.read_entity(response, "claim", claim_id,
                                    lambda: repo.get_claim(db, claim_id))
    if claim is None:
        raise not_found("claim", claim_id)
    who.ensure_sees(claim["customer_id"], "claim", claim_id)
    return with_etag(response, claim)


@router.post("/{claim_id}/status", response_model=Claim)
async def change_claim_status(claim_id: ClaimId, change: ClaimStatusChange, db: DbDep, response: Response,
                              who: Caller, cache: CacheDep, if_match: IfMatch):
    """Move the claim one step of its lifecycle. Exactly one of two identical requests wins; the other gets
    409 (``already_in_status``, or ``concurrent_change`` if they overlapped), so no note is silently lost."""
    who.require("adjuster")
    claim = await repo.get_claim(db, claim_id)
    if claim is None:
        raise not_found("claim", claim_id)
    if if_match is not None and claim["version"] != if_match:
        raise VersionMismatch(claim["version"], if_match)
    if change.status == claim["status"]:  # someone (the worker, another adjuster, a first try) got there first
        raise LabError(409, "already_in_status", f"claim {claim_id} is already {claim['status']}; this change "
                       "(and its note) was not applied", "status", claim=claim)
    allowed = CLAIM_TRANSITIONS[claim["status"]]
    if change.status not in allowed:
        raise LabError(409, "invalid_transition",
                       f"a {claim['status']} claim can move to {', '.join(allowed) or 'nothing'}, "
                       f"not {change.status}", "status")
    updated = repo.change_status(db, claim_id, claim["status"], change.status, change.note, actor=who.sub,
                                 expected_version=if_match)
    if updated is None:
        raise LabError(409, "concurrent_change", f"claim {claim_id} changed while this request ran; retry",
                       "status")
    await cache.after_write("claim", claim_id, parents=[updated["policy_id"], updated["customer_id"]],
                            reason="claim.status_changed", new_value=updated)
    return with_etag(response, updated)


@router.get("/{claim_id}/history")
async def claim_history(claim_id: ClaimId, db: DbDep, redis: RedisDep, who: Caller):
    """The claim's audit trail from its event stream (who, what, when), and its state replayed from it.

    When Redis cannot answer, the same events come from the claims service's own outbox table.
    """
    claim = await repo.get_claim(db, claim_id)
    if claim is None:
        raise not_found("claim", claim_id)
    who.ensure_sees(claim["customer_id"], "claim", claim_id)
    try:
        events, source = await history.claim_events(redis, claim_id), "redis stream"
    except REDIS_DOWN:
        events, source = events_of_subject(db.conn, claim_id), "outbox (Redis unreachable)"
    return {"claim_id": claim_id, "source": source, "events": history.timeline(events),
            "replayed": history.replay_claim(events)}
