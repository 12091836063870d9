"""The claims service (:3002): claims and their lifecycle; its writes' events reach Redis via the outbox."""

from services.core.models import Claim
from services.platform.app import ServiceSpec, create_app
from services.platform.cached_read import CachedRead, CachedReadFront
from services.platform.events import WakeRelayAfterWrites, start_outbox_relay

from .repository import SCHEMA, TOPIC
from .routes import router

SPEC = ServiceSpec(name="claims", routers=[router], schema=SCHEMA,
                   on_startup=[start_outbox_relay(TOPIC)],
                   middleware=[(WakeRelayAfterWrites, {})],
                   front=[(CachedReadFront, {"reads": [CachedRead("/claims/", "claim", Claim, owner="customer_id")]})],
                   description="Claims (CLM-000001): submitted -> under_review -> approved | rejected -> paid.")


def build(**kwargs):
    return create_app(SPEC, **kwargs)
