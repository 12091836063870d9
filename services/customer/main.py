"""The customer service (:3003): who the policyholders are."""

from services.core.app import ServiceSpec, create_app

from .repository import SCHEMA
from .routes import router

SPEC = ServiceSpec(name="customer", routers=[router], schema=SCHEMA,
                   description="Customers (CUS-000001): name, email, date of birth, risk tier.")


def build(**kwargs):
    return create_app(SPEC, **kwargs)
