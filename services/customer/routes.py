"""Customer routes: CRUD plus a filtered, paginated list, and the cached cross-service overview (lesson 01).

Reads by id go through the cache (``X-Cache: HIT|MISS``); every committed write then invalidates the
cached copy and what was derived from it (the customer's overview, their policies' list pages).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.core import keys
from services.core.errors import not_found
from services.core.models import Customer, CustomerIn, CustomerPatch, Page, RiskTier
from services.platform.access import Caller
from services.platform.batch import read_batch
from services.platform.etags import IfMatch, with_etag
from services.platform.knobs import apply_fault_knobs
from services.platform.paging import PageDep
from services.platform.path_ids import CustomerId
from services.platform.peers import fetch_peer_entity
from services.platform.service_cache import CacheDep
from services.platform.state import DbDep

from . import repository as repo

router = APIRouter(prefix="/customers", tags=["customers"], dependencies=[Depends(apply_fault_knobs)])


@router.post("", status_code=201, response_model=Customer)
async def create_customer(data: CustomerIn, db: DbDep, response: Response, who: Caller, cache: CacheDep):
    who.require("agent")
    customer = repo.create_customer(db, data)
    # drops a cached "no such id" (or, under write_through, replaces it with the new row)
    await cache.after_write("customer", customer["id"], reason="customer.created", new_value=customer)
    return with_etag(response, customer)


@router.get("", response_model=Page)
async def list_customers(db: DbDep, page: PageDep, who: Caller,
                         risk_tier: Annotated[RiskTier | None, Query()] = None):
    who.require("agent", "adjuster")
    items, total = await repo.list_customers(db, page.limit, page.offset, risk_tier)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get("/batch")
async def get_customers_batch(db: DbDep, who: Caller, cache: CacheDep,
                              ids: Annotated[str, Query(description="comma-separated, up to 100")]):
    """Many customers in one round trip to Redis; invalid or unknown ids are reported per id."""
    return await read_batch(cache, "customer", ids, lambda i: repo.get_customer(db, i),
                            visible=lambda c: who.owns(c["id"]))


@router.get("/{customer_id}", response_model=Customer)
async def get_customer(customer_id: CustomerId, db: DbDep, response: Response, who: Caller,
                       cache: CacheDep):
    who.ensure_sees(customer_id, "customer", customer_id)
    customer = await cache.read_entity(response, "customer", customer_id,
                                       lambda: repo.get_customer(db, customer_id))
    if customer is None:
        raise not_found("customer", customer_id)
    return with_etag(response, customer)


@router.patch("/{customer_id}", response_model=Customer)
async def update_customer(customer_id: CustomerId, change: CustomerPatch, db: DbDep, response: Response,
                          who: Caller, cache: CacheDep, if_match: IfMatch):
    """Change name, email or risk tier. Send ``If-Match`` with the ETag you read: 412 if it moved on."""
    who.require("agent")
    customer = repo.update_customer(db, customer_id, change,  # the system of record first
                                    expected_version=if_match)
    if customer is None:
        raise not_found("customer", customer_id)
    await cache.after_write("customer", customer_id, reason="customer.updated", new_value=customer)  # then the copies
    return with_etag(response, customer)


@router.delete("/{customer_id}", status_code=204)
async def delete_customer(customer_id: CustomerId, db: DbDep, who: Caller, cache: CacheDep,
                          if_match: IfMatch):
    who.require("agent")
    if not repo.delete_customer(db, customer_id, expected_version=if_match):
        raise not_found("customer", customer_id)
    await cache.after_write("customer", customer_id, reason="customer.deleted")
    return Response(status_code=204)


OPEN_CLAIM = ("submitted", "under_review", "approved")  # approved is still open until it is paid


@router.get("/{customer_id}/overview")
async def customer_overview(customer_id: CustomerId, request: Request, db: DbDep, response: Response, who: Caller,
                            cache: CacheDep):
    """The customer, their policies and their open claims — composed from three services, cached as a whole.

    The cached overview joins the tag set of every entity it was built from (the customer, each policy,
    each open claim), so the policy and claims services drop it when they write one of them.
    """
    who.ensure_sees(customer_id, "customer", customer_id)

    async def build() -> dict | None:
        customer = await repo.get_customer(db, customer_id)
        if customer is None:
            return None
        policies, claims = await asyncio.gather(
            fetch_peer_entity(request, "policy", f"/policies?customer_id={customer_id}&limit=100"),
            fetch_peer_entity(request, "claims", f"/claims?customer_id={customer_id}&limit=100"))
        open_claims = [c for c in claims["items"] if c["status"] in OPEN_CLAIM]
        return {"customer": customer, "policies": policies["items"], "policies_total": policies["total"],
                "open_claims": open_claims}

    def built_from(overview: dict) -> list[str]:
        return [customer_id, *(p["id"] for p in overview["policies"]), *(c["id"] for c in overview["open_claims"])]

    overview = await cache.read(response, "overview", keys.cache_entity("overview", customer_id), build,
                                tags=built_from)
    if overview is None:
        raise not_found("customer", customer_id)
    return overview


@router.get("/{customer_id}/notifications")
async def customer_notifications(customer_id: CustomerId, db: DbDep, who: Caller):
    """What the customer was told about their claims, newest first (filled from the claims channel, lesson 02)."""
    who.ensure_sees(customer_id, "customer", customer_id)
    if await repo.get_customer(db, customer_id) is None:
        raise not_found("customer", customer_id)
    return {"customer_id": customer_id, "items": await repo.notifications_of(db, customer_id)}
