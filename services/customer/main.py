"""The customer service (:3003): who the policyholders are.

Lesson 02: its writes' events reach Redis via the outbox; it listens on the claims channel and records a
notification for the customer whenever one of their claims is received or decided.
"""

from fastapi import FastAPI

from services.patterns.envelope import Event, EventType
from services.core.models import Customer
from services.platform.app import ServiceSpec, create_app
from services.platform.cached_read import CachedRead, CachedReadFront
from services.platform.events import WakeRelayAfterWrites, start_outbox_relay, start_subscriber

from . import repository as repo
from .repository import SCHEMA, TOPIC
from .routes import router

OUTCOME = {"under_review": "is being reviewed", "approved": "was approved", "rejected": "was rejected",
           "paid": "was paid"}


async def notify_customer(app: FastAPI, event: Event) -> None:
    if event.type == EventType.CLAIM_SUBMITTED:
        claim = event.data["claim"]
        repo.add_notification(app.state.db, event.id, claim["customer_id"],
                              f"we received claim {claim['id']} for your policy {claim['policy_id']}")
    elif event.type == EventType.CLAIM_STATUS_CHANGED and event.data["to"] in OUTCOME:
        repo.add_notification(app.state.db, event.id, event.data["customer_id"],
                              f"claim {event.subject} for your policy {event.data['policy_id']} "
                              f"{OUTCOME[event.data['to']]}")


SPEC = ServiceSpec(name="customer", routers=[router], schema=SCHEMA,
                   on_startup=[start_outbox_relay(TOPIC), start_subscriber(["claims"], notify_customer)],
                   middleware=[(WakeRelayAfterWrites, {})],
                   front=[(CachedReadFront, {"reads": [CachedRead("/customers/", "customer", Customer, owner=None)]})],
                   description="Customers (CUS-000001): name, email, date of birth, risk tier.")


def build(**kwargs):
    return create_app(SPEC, **kwargs)
