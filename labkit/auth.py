"""How labkit, the notebooks and the tests identify themselves to the lab.

* Through the gateway: ``Authorization: Bearer <api key>`` (``Settings.api_key()``), the lab's system
  user — what ``lab.client`` sends. A person logs in instead (``POST /api/auth/login``, lesson 04).
* Straight to a service: a freshly signed ``X-Lab-Identity`` on every request (``ServiceAuth``), bound to
  that service, method and path like the gateway's. Without it a service answers 401.

labkit holds the lab's master secret, so it can sign as ``labkit`` for any service; the services themselves
hold only their own few keys (``services/core/credentials.py``).
"""

from __future__ import annotations

import httpx

from services.core.credentials import LABKIT
from services.core.settings import SERVICE_NAMES, Settings
from services.patterns.identity import HEADER, LABKIT_LIFETIME_S, sign_identity

from .errors import LabkitError

SYSTEM = {"sub": "labkit", "roles": ["system"]}


class ServiceAuth(httpx.Auth):
    """Signs each request as the lab's system user, for its service and that request's method and path.

    The service is ``service``, or else the one whose settings port the request goes to."""

    def __init__(self, settings: Settings, service: str | None = None, name: str = "labkit"):
        self.settings, self.service = settings, service
        self.identity = {**SYSTEM, "sub": name}

    def audience(self, url: httpx.URL) -> str:
        if self.service:
            return self.service
        for name in SERVICE_NAMES:
            if url.port == self.settings.port_of(name):
                return name
        raise LabkitError(f"no lab service listens on port {url.port}: pass ServiceAuth(settings, '<service>')")

    def auth_flow(self, request):
        audience = self.audience(request.url)
        request.headers[HEADER] = sign_identity(self.identity, self.settings.identity_key(LABKIT, audience),
                                                issuer=LABKIT, audience=audience, method=request.method,
                                                path=request.url.path)
        yield request


#: Sent by the experiments that study routing, balancing and faults: without it, repeated reads of one
#: policy would be answered by the gateway's own response cache and never reach an instance.
ASK_THE_SERVICE = {"Cache-Control": "no-cache"}


def gateway_headers(settings: Settings, *, ask_the_service: bool = False) -> dict[str, str]:
    """The lab's API key; with ``ask_the_service``, also ``Cache-Control: no-cache`` (skip the gateway's cache)."""
    return {"Authorization": f"Bearer {settings.api_key()}", **(ASK_THE_SERVICE if ask_the_service else {})}


def service_headers(settings: Settings, service: str, name: str = "labkit") -> dict[str, str]:
    """One signed identity header for calls straight to ``service`` (any method and path, as often as
    needed for about a minute): for quick calls and timing loops (aiohttp, curl). No other service
    accepts it."""
    key = settings.identity_key(LABKIT, service)
    return {HEADER: sign_identity({**SYSTEM, "sub": name}, key, issuer=LABKIT, audience=service, once=False,
                                  lifetime_s=LABKIT_LIFETIME_S)}


def gateway_client(settings: Settings, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=settings.url_of("gateway"), headers=gateway_headers(settings),
                        timeout=kwargs.pop("timeout", 10), **kwargs)


def service_client(settings: Settings, service: str, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=settings.url_of(service), auth=ServiceAuth(settings, service),
                        timeout=kwargs.pop("timeout", 10), **kwargs)
