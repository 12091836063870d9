"""Who is asking, and may they? The services' half of access control.

Every domain route depends on ``Caller``: the identity the gateway (or a peer service, or labkit) signed
into ``X-Lab-Identity`` for this service, this method and path, moments ago, and not seen before
(``services/patterns/identity.py``). Anything else -> 401, whatever else the request says. The rules:

* **customers** see only their own customer record, policies and claims, and may submit claims on their
  own policies. Someone else's id answers **404**, exactly like an id that does not exist, so a customer
  cannot even learn which ids exist (no IDOR, no existence leak). Deny by default: an identity that is
  not staff and names no customer record sees nothing (403 on a list);
* **agents** create and change customers and policies; **adjusters** move claims through review;
  both read everything;
* **system** (labkit, the services themselves) may do everything;
* a role that may not do something gets **403**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.patterns.identity import HEADER, sign_identity, verify_identity

from services.core.errors import LabError
from services.core.ids import is_valid

STAFF = ("agent", "adjuster", "system")
PRINCIPAL = "lab.principal"  # where a verified caller waits in the ASGI scope's state


@dataclass(frozen=True)
class Principal:
    sub: str
    roles: tuple[str, ...]
    customer_id: str | None = None

    def has(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)

    @property
    def is_staff(self) -> bool:
        return self.has(*STAFF)

    def require(self, *roles: str) -> None:
        if not self.has(*roles, "system"):
            raise LabError(403, "forbidden", f"this needs the role {' or '.join(roles)}; you have "
                           f"{', '.join(self.roles) or 'none'}")

    def owns(self, customer_id: str | None) -> bool:
        return self.is_staff or (customer_id is not None and customer_id == self.customer_id)

    def own_customer_filter(self, asked: str | None) -> str | None:
        """The ``customer_id`` a list must be filtered by. Staff: what they asked for (None = everyone's).

        Anyone else: their own, whatever they asked for. Deny by default: an identity that is neither staff
        nor linked to a customer record gets a 403 — never "no filter", which would list every customer's
        records (a customer whose record id went missing in a refactor would otherwise see them all).
        """
        if self.is_staff:
            return asked
        if not self.customer_id:
            raise LabError(403, "forbidden", "this identity is linked to no customer record, so it may list "
                           "nothing; staff roles are agent, adjuster and system")
        return self.customer_id

    def ensure_sees(self, customer_id: str | None, kind: str, entity_id: str) -> None:
        """Staff see everything; a customer sees their own — anything else looks like it does not exist."""
        if not self.owns(customer_id):
            raise LabError(404, "not_found", f"{kind} {entity_id} does not exist")


def verified_principal(state, header: str | None, method: str, path: str) -> Principal | None:
    """The caller named by a valid ``X-Lab-Identity`` for this service, method and path, or None.

    Each header is accepted once (its nonce is remembered): whoever verifies it must hand the principal on
    (the fast path for cached reads passes it to the route in the ASGI scope), never verify it twice.
    """
    identity = verify_identity(header, state.settings.identity_key, audience=state.service, method=method,
                               path=path, instance=state.instance_id, guard=state.identity_guard)
    if identity is None:
        return None
    customer_id = identity.get("customer_id")
    if not (isinstance(customer_id, str) and is_valid("customer", customer_id)):
        customer_id = None  # only the one spelling of a customer id can ever match a record's owner
    return Principal(identity["sub"], tuple(identity.get("roles", ())), customer_id)


async def caller(request: Request) -> Principal:
    # ``async`` although nothing here awaits: FastAPI runs a plain ``def`` dependency in a worker thread,
    # and that hop would cost more than the HMAC check itself on every request.
    # A principal in the scope was verified by the fast path in front (``cached_read.py``); only server-side
    # code writes the ASGI scope, a client cannot put one there.
    principal = request.scope.get("state", {}).get(PRINCIPAL)
    if principal is None:
        principal = verified_principal(request.app.state, request.headers.get(HEADER), request.method,
                                       request.scope["path"])
    if principal is None:
        raise LabError(401, "unauthenticated", "log in first (POST /api/auth/login) or send a valid identity")
    return principal


Caller = Annotated[Principal, Depends(caller)]


def peer_identity_header(settings, me: str, audience: str, method: str, path: str) -> dict[str, str]:
    """The header a service sends to call ``audience`` as itself (``service:<me>``, the system role), signed
    with the one key it holds for that call, for this one request."""
    key = settings.identity_key(me, audience)
    if key is None:
        raise LabError(500, "internal_error", f"the {me} service holds no key to call {audience}")
    identity = {"sub": f"service:{me}", "roles": ["system"]}
    return {HEADER: sign_identity(identity, key, issuer=me, audience=audience, method=method,
                                  path=path.split("?", 1)[0])}
