"""The policy service (:3001): who is insured for what, at which premium."""

from services.core.app import ServiceSpec, create_app

from .repository import SCHEMA
from .routes import router

SPEC = ServiceSpec(name="policy", routers=[router], schema=SCHEMA,
                   description="Policies (POL-000001): customer, product, premium and coverage in cents, dates.")


def build(**kwargs):
    return create_app(SPEC, **kwargs)
