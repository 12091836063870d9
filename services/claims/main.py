"""The claims service (:3002): claims and their lifecycle."""

from services.core.app import ServiceSpec, create_app

from .repository import SCHEMA
from .routes import router

SPEC = ServiceSpec(name="claims", routers=[router], schema=SCHEMA,
                   description="Claims (CLM-000001): submitted -> under_review -> approved | rejected -> paid.")


def build(**kwargs):
    return create_app(SPEC, **kwargs)
