"""The policy service (:3001): who is insured for what, at which premium.

Lesson 02: its writes' events reach Redis via the outbox; it listens on the claims channel to count the
claims of each policy.
"""

from fastapi import FastAPI

from services.patterns.envelope import Event, EventType
from services.core.models import Policy
from services.platform.app import ServiceSpec, create_app
from services.platform.cached_read import CachedRead, CachedReadFront
from services.platform.events import WakeRelayAfterWrites, start_outbox_relay, start_subscriber

from . import repository as repo
from .repository import SCHEMA, TOPIC
from .routes import router


async def count_claims(app: FastAPI, event: Event) -> None:
    if event.type == EventType.CLAIM_SUBMITTED:
        repo.record_claim(app.state.db, event.data["claim"]["policy_id"], event.subject)


SPEC = ServiceSpec(name="policy", routers=[router], schema=SCHEMA,
                   on_startup=[start_outbox_relay(TOPIC), start_subscriber(["claims"], count_claims)],
                   middleware=[(WakeRelayAfterWrites, {})],
                   front=[(CachedReadFront, {"reads": [CachedRead("/policies/", "policy", Policy, owner="customer_id")]})],
                   description="Policies (POL-000001): customer, product, premium and coverage in cents, dates.")


def build(**kwargs):
    return create_app(SPEC, **kwargs)
