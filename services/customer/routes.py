"""Customer routes: CRUD plus a filtered, paginated list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.core.access import Caller
from services.core.errors import not_found
from services.core.ids import CustomerId
from services.core.knobs import apply_fault_knobs
from services.core.models import Customer, CustomerIn, CustomerPatch, Page, RiskTier
from services.core.paging import PageDep

from . import repository as repo

router = APIRouter(prefix="/customers", tags=["customers"], dependencies=[Depends(apply_fault_knobs)])


@router.post("", status_code=201, response_model=Customer)
async def create_customer(data: CustomerIn, request: Request, who: Caller):
    who.require("agent")
    return repo.create_customer(request.app.state.db, data)


@router.get("", response_model=Page)
async def list_customers(request: Request, page: PageDep, who: Caller,
                         risk_tier: Annotated[RiskTier | None, Query()] = None):
    who.require("agent", "adjuster")
    items, total = await repo.list_customers(request.app.state.db, page.limit, page.offset, risk_tier)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get("/{customer_id}", response_model=Customer)
async def get_customer(customer_id: CustomerId, request: Request, who: Caller):
    who.ensure_sees(customer_id, "customer", customer_id)
    customer = await repo.get_customer(request.app.state.db, customer_id)
    if customer is None:
        raise not_found("customer", customer_id)
    return customer


@router.patch("/{customer_id}", response_model=Customer)
async def update_customer(customer_id: CustomerId, change: CustomerPatch, request: Request, who: Caller):
    who.require("agent")
    customer = repo.update_customer(request.app.state.db, customer_id, change)
    if customer is None:
        raise not_found("customer", customer_id)
    return customer


@router.delete("/{customer_id}", status_code=204)
async def delete_customer(customer_id: CustomerId, request: Request, who: Caller):
    who.require("agent")
    if not repo.delete_customer(request.app.state.db, customer_id):
        raise not_found("customer", customer_id)
    return Response(status_code=204)


@router.get("/{customer_id}/notifications")
async def customer_notifications(customer_id: CustomerId, request: Request, who: Caller):
    """What the customer was told about their claims, newest first (filled from the claims channel, lesson 02)."""
    who.ensure_sees(customer_id, "customer", customer_id)
    if await repo.get_customer(request.app.state.db, customer_id) is None:
        raise not_found("customer", customer_id)
    return {"customer_id": customer_id, "items": await repo.notifications_of(request.app.state.db, customer_id)}
