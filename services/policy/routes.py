"""Policy routes: CRUD, cancel, and the obvious queries (by customer, status, product).

Lesson 01: a policy by id and a customer's list pages are read through the cache (``X-Cache``); a write
commits first, then drops the policy's copy and what depends on it or on its customer (the customer's
list pages and overview — built by the customer service, dropped here through the tag sets).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.core import keys
from services.core.errors import LabError, VersionMismatch, not_found
from services.core.ids import ID_PATTERN
from services.core.models import Page, Policy, PolicyIn, PolicyPatch, PolicyStatus, Product
from services.platform.access import Caller
from services.platform.batch import read_batch
from services.platform.etags import IfMatch, with_etag
from services.platform.knobs import apply_fault_knobs
from services.platform.paging import PageDep
from services.platform.path_ids import PolicyId
from services.platform.peers import fetch_peer_entity
from services.platform.service_cache import CacheDep
from services.platform.state import DbDep

from . import repository as repo

router = APIRouter(prefix="/policies", tags=["policies"], dependencies=[Depends(apply_fault_knobs)])


@router.post("", status_code=201, response_model=Policy)
async def create_policy(data: PolicyIn, request: Request, db: DbDep, response: Response, who: Caller,
                        cache: CacheDep):
    who.require("agent")
    if await fetch_peer_entity(request, "customer", f"/customers/{data.customer_id}") is None:
        raise LabError(422, "unknown_reference", f"customer {data.customer_id} does not exist", "customer_id")
    policy = repo.create_policy(db, data)
    await cache.after_write("policy", policy["id"], parents=[data.customer_id], reason="policy.created",
                            new_value=policy)
    return with_etag(response, policy)


@router.get("", response_model=Page)
async def list_policies(
    db: DbDep, response: Response, page: PageDep, who: Caller, cache: CacheDep,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN["customer"])] = None,
    status: Annotated[PolicyStatus | None, Query()] = None,
    product: Annotated[Product | None, Query()] = None,
):
    customer_id = who.own_customer_filter(customer_id)  # a customer lists only their own, whatever they asked

    async def load() -> dict:
        items, total = await repo.list_policies(db, page.limit, page.offset,
                                                customer_id=customer_id, status=status, product=product)
        return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}

    if customer_id and status is None and product is None:  # "a customer's policies": cached, page by page
        key = keys.cache_list_page("policies", customer_id, page.limit, page.offset)
        return await cache.read(response, "policies", key, load, tags=[customer_id])
    return await load()


@router.get("/batch")
async def get_policies_batch(db: DbDep, who: Caller, cache: CacheDep,
                             ids: Annotated[str, Query(description="comma-separated, up to 100")]):
    """Many policies in one round trip to Redis; invalid or unknown ids are reported per id."""
    return await read_batch(cache, "policy", ids, lambda i: repo.get_policy(db, i),
                            visible=lambda p: who.owns(p["customer_id"]))


@router.get("/{policy_id}", response_model=Policy)
async def get_policy(policy_id: PolicyId, db: DbDep, response: Response, who: Caller, cache: CacheDep):
    policy = await cache.read_entity(response, "policy", policy_id,
                                     lambda: repo.get_policy(db, policy_id))
    if policy is None:
        raise not_found("policy", policy_id)
    who.ensure_sees(policy["customer_id"], "policy", policy_id)
    return with_etag(response, policy)  # the cached copy is the row with its version: a HIT has the same ETag


@router.patch("/{policy_id}", response_model=Policy)
async def update_policy(policy_id: PolicyId, change: PolicyPatch, db: DbDep, response: Response,
                        who: Caller, cache: CacheDep, if_match: IfMatch):
    """Change premium, coverage or end date. Send ``If-Match`` with the ETag you read: 412 if it moved on."""
    who.require("agent")
    policy = await repo.get_policy(db, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    end_date = change.end_date.isoformat() if change.end_date else None
    if end_date and end_date <= policy["start_date"]:
        raise LabError(422, "invalid_input", "end_date must be after start_date", "end_date")
    updated = repo.update_policy(db, policy_id, change, expected_version=if_match)
    if updated is None:  # deleted while this request ran
        raise not_found("policy", policy_id)
    await cache.after_write("policy", policy_id, parents=[policy["customer_id"]], reason="policy.updated",
                            new_value=updated)
    return with_etag(response, updated)


@router.post("/{policy_id}/cancel", response_model=Policy)
async def cancel_policy(policy_id: PolicyId, db: DbDep, response: Response, who: Caller, cache: CacheDep,
                        if_match: IfMatch):
    who.require("agent")
    policy = await repo.get_policy(db, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    if policy["status"] != "active":
        raise LabError(409, "invalid_transition", f"policy {policy_id} is {policy['status']}, not active",
                       "status")
    try:  # conditional on the version just read, so two racing cancels cannot both succeed
        cancelled = repo.update_policy(db, policy_id, {"status": "cancelled"},
                                       expected_version=policy["version"] if if_match is None else if_match)
    except VersionMismatch:
        if if_match is not None:
            raise
        raise LabError(409, "concurrent_change", f"policy {policy_id} changed while this request ran; retry",
                       "status") from None
    if cancelled is None:
        raise not_found("policy", policy_id)
    await cache.after_write("policy", policy_id, parents=[policy["customer_id"]], reason="policy.cancelled",
                            new_value=cancelled)
    return with_etag(response, cancelled)


@router.delete("/{policy_id}", status_code=204)
async def delete_policy(policy_id: PolicyId, db: DbDep, who: Caller, cache: CacheDep, if_match: IfMatch):
    who.require("agent")
    policy = await repo.get_policy(db, policy_id)
    if policy is None or not repo.delete_policy(db, policy_id, expected_version=if_match):
        raise not_found("policy", policy_id)
    await cache.after_write("policy", policy_id, parents=[policy["customer_id"]], reason="policy.deleted")
    return Response(status_code=204)


@router.get("/{policy_id}/claims-count")
async def policy_claims_count(policy_id: PolicyId, db: DbDep, who: Caller):
    """How many claims the policy service has heard of for this policy (from the claims channel, lesson 02)."""
    policy = await repo.get_policy(db, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    who.ensure_sees(policy["customer_id"], "policy", policy_id)
    return {"policy_id": policy_id, "claims_count": await repo.claims_count(db, policy_id)}
