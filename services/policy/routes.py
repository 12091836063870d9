"""Policy routes: CRUD, cancel, and the obvious queries (by customer, status, product)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.core.access import Caller
from services.core.errors import LabError, not_found
from services.core.ids import ID_PATTERN, PolicyId
from services.core.knobs import apply_fault_knobs
from services.core.models import Page, Policy, PolicyIn, PolicyPatch, PolicyStatus, Product
from services.core.paging import PageDep
from services.core.peers import fetch_peer_entity

from . import repository as repo

router = APIRouter(prefix="/policies", tags=["policies"], dependencies=[Depends(apply_fault_knobs)])


@router.post("", status_code=201, response_model=Policy)
async def create_policy(data: PolicyIn, request: Request, who: Caller):
    who.require("agent")
    if await fetch_peer_entity(request, "customer", f"/customers/{data.customer_id}") is None:
        raise LabError(422, "unknown_reference", f"customer {data.customer_id} does not exist", "customer_id")
    return repo.create_policy(request.app.state.db, data)


@router.get("", response_model=Page)
async def list_policies(
    request: Request, page: PageDep, who: Caller,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN["customer"])] = None,
    status: Annotated[PolicyStatus | None, Query()] = None,
    product: Annotated[Product | None, Query()] = None,
):
    if not who.is_staff:  # a customer lists only their own policies, whatever they asked for
        customer_id = who.customer_id
    items, total = await repo.list_policies(request.app.state.db, page.limit, page.offset,
                                            customer_id=customer_id, status=status, product=product)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get("/{policy_id}", response_model=Policy)
async def get_policy(policy_id: PolicyId, request: Request, who: Caller):
    policy = await repo.get_policy(request.app.state.db, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    who.ensure_sees(policy["customer_id"], "policy", policy_id)
    return policy


@router.patch("/{policy_id}", response_model=Policy)
async def update_policy(policy_id: PolicyId, change: PolicyPatch, request: Request, who: Caller):
    who.require("agent")
    policy = await repo.get_policy(request.app.state.db, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    end_date = change.end_date.isoformat() if change.end_date else None
    if end_date and end_date <= policy["start_date"]:
        raise LabError(422, "invalid_input", "end_date must be after start_date", "end_date")
    return repo.update_policy(request.app.state.db, policy_id, change)


@router.post("/{policy_id}/cancel", response_model=Policy)
async def cancel_policy(policy_id: PolicyId, request: Request, who: Caller):
    who.require("agent")
    policy = await repo.get_policy(request.app.state.db, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    if policy["status"] != "active":
        raise LabError(409, "invalid_transition", f"policy {policy_id} is {policy['status']}, not active",
                       "status")
    return repo.update_policy(request.app.state.db, policy_id, {"status": "cancelled"})


@router.delete("/{policy_id}", status_code=204)
async def delete_policy(policy_id: PolicyId, request: Request, who: Caller):
    who.require("agent")
    if not repo.delete_policy(request.app.state.db, policy_id):
        raise not_found("policy", policy_id)
    return Response(status_code=204)


@router.get("/{policy_id}/claims-count")
async def policy_claims_count(policy_id: PolicyId, request: Request, who: Caller):
    """How many claims the policy service has heard of for this policy (from the claims channel, lesson 02)."""
    policy = await repo.get_policy(request.app.state.db, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    who.ensure_sees(policy["customer_id"], "policy", policy_id)
    return {"policy_id": policy_id, "claims_count": await repo.claims_count(request.app.state.db, policy_id)}
