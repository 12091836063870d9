"""How labkit, the notebooks and the tests identify themselves to the lab.

* Through the gateway: ``Authorization: Bearer <api key>`` (``Settings.api_key()``), the lab's system
  user — what ``lab.client`` sends. A person logs in instead (``POST /api/auth/login``, lesson 04).
* Straight to a service: a freshly signed ``X-Lab-Identity`` on every request (``ServiceAuth``), exactly
  what the gateway would have forwarded. Without it a service answers 401.
"""

from __future__ import annotations

import httpx

from services.core.access import system_identity_header
from services.core.settings import Settings


class ServiceAuth(httpx.Auth):
    """Signs each request as the lab's system user (signatures are short-lived, so one per request)."""

    def __init__(self, settings: Settings, name: str = "labkit"):
        self.secret, self.name = settings.shared_secret(), name

    def auth_flow(self, request):
        request.headers.update(system_identity_header(self.secret, self.name))
        yield request


#: Sent by the experiments that study routing, balancing and faults: without it, repeated reads of one
#: policy would be answered by the gateway's own response cache and never reach an instance.
ASK_THE_SERVICE = {"Cache-Control": "no-cache"}


def gateway_headers(settings: Settings, *, ask_the_service: bool = False) -> dict[str, str]:
    """The lab's API key; with ``ask_the_service``, also ``Cache-Control: no-cache`` (skip the gateway's cache)."""
    return {"Authorization": f"Bearer {settings.api_key()}", **(ASK_THE_SERVICE if ask_the_service else {})}


def service_headers(settings: Settings) -> dict[str, str]:
    """One signed identity header, valid for about a minute: for quick calls (aiohttp, curl)."""
    return system_identity_header(settings.shared_secret(), "labkit")


def gateway_client(settings: Settings, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=settings.url_of("gateway"), headers=gateway_headers(settings),
                        timeout=kwargs.pop("timeout", 10), **kwargs)


def service_client(settings: Settings, service: str, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=settings.url_of(service), auth=ServiceAuth(settings),
                        timeout=kwargs.pop("timeout", 10), **kwargs)
