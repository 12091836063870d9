"""How a service knows who is asking: an identity signed by whoever checked it, for one request only.

The gateway validates the session (in Redis) and forwards the caller's identity to the service in one
header, signed with HMAC-SHA256:

    X-Lab-Identity: v2.<base64url(JSON claims)>.<hex HMAC of "v2.<payload>">

The claims hold the identity (``sub``, ``roles``, ``customer_id``) and what it was issued *for*:

* ``iss`` / ``aud`` — who signed it and for which service. Each (issuer, audience) pair has its own key
  (``services/core/credentials.py``), so the policy service, which holds ``gateway->policy``, cannot make
  an identity that the claims service would accept; and a header addressed to policy is refused by claims;
* ``m`` / ``p`` — the method and the path the service will see: a header captured on ``GET /policies/X``
  is worth nothing on ``PUT /admin/knobs``;
* ``iat`` / ``exp`` — a lifetime of seconds (``LIFETIME_S``), not minutes;
* ``jti`` — a nonce the service refuses to see twice (``ReplayGuard``), and ``inst`` — the one instance it
  is for. Why in memory and not ``SET NX`` in Redis: a Redis round trip on every request would cost more
  than the whole gateway hop saves, and since the gateway binds each header to the instance it picked
  (``inst``), one instance's memory sees every use of that header. A header without ``inst`` (a peer's call,
  which goes by address) could be replayed once more on *another* instance of the same service, with the
  same method and path, within its few seconds — only by someone who captured it on the way;
* a **peer** (a service calling another as itself) may only assert its own service identity: from
  issuer ``claims`` only ``sub: service:claims`` is believed, never a customer or another service.

The lab's own tools (issuer ``labkit``, which holds the master secret) may send a header without ``m``,
``p`` and ``jti``, reusable for ``LABKIT_LIFETIME_S`` — notebooks time hundreds of direct requests with one —
but still only to the service it names in ``aud``.

Why not let every service look the session up in Redis itself? Every service would then need read access
to every session — the signed header keeps sessions readable by the gateway alone (lesson 04).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Callable

HEADER = "x-lab-identity"
VERSION = "v2"
LIFETIME_S = 15.0  # the gateway's and the peers' headers: one request, a few seconds of clock and queueing
LABKIT_LIFETIME_S = 60.0  # the lab's own tools may reuse one header this long (see above)
CLOCK_SKEW_S = 2.0
LABKIT, GATEWAY = "labkit", "gateway"

KeyOf = Callable[[str, str], "str | None"]  # (issuer, audience) -> key, or None when this process lacks it


def _mac(key: str, message: str) -> str:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_identity(identity: dict, key: str, *, issuer: str, audience: str, method: str | None = None,
                  path: str | None = None, instance: str | None = None, once: bool = True,
                  lifetime_s: float = LIFETIME_S, now: float | None = None) -> str:
    """The header for ``identity``, valid only at ``audience`` (and, when given, for that method, path and
    instance). ``once``: carry a nonce, so the service accepts it a single time."""
    now = time.time() if now is None else now
    claims = {**identity, "iss": issuer, "aud": audience, "iat": round(now, 3), "exp": round(now + lifetime_s, 3)}
    if method is not None:
        claims["m"] = method.upper()
    if path is not None:
        claims["p"] = path
    if instance is not None:
        claims["inst"] = instance
    if once:
        claims["jti"] = secrets.token_urlsafe(12)
    payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
    message = f"{VERSION}.{payload}"
    return f"{message}.{_mac(key, message)}"


class ReplayGuard:
    """The nonces (``jti``) this instance has accepted, each kept until its header expires."""

    def __init__(self, limit: int = 200_000):
        self.seen: dict[str, float] = {}
        self.limit = limit
        self._next_sweep = 0.0

    def first_time(self, jti: str, expires_at: float, now: float) -> bool:
        if now >= self._next_sweep or len(self.seen) >= self.limit:
            self.seen = {j: exp for j, exp in self.seen.items() if exp > now}
            self._next_sweep = now + 1.0
            if len(self.seen) >= self.limit:  # flooded with live nonces: refuse rather than forget one
                return False
        if jti in self.seen:
            return False
        self.seen[jti] = expires_at
        return True


def _claims(header: str) -> tuple[dict, str, str] | None:
    version, payload, mac = header.split(".")
    if version != VERSION:
        return None
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return (claims, f"{version}.{payload}", mac) if isinstance(claims, dict) else None


def verify_identity(header: str | None, key_of: KeyOf, *, audience: str, method: str, path: str,
                    instance: str | None = None, guard: ReplayGuard | None = None,
                    now: float | None = None) -> dict | None:
    """The identity in ``header`` if it was signed for *this* request, else None (forged, altered, for
    another service, method, path or instance, expired, seen before, or malformed)."""
    if not header or len(header) > 4096:
        return None
    now = time.time() if now is None else now
    try:
        parsed = _claims(header)
        if parsed is None:
            return None
        claims, message, mac = parsed
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or claims.get("aud") != audience:
            return None
        key = key_of(issuer, audience)
        if not key or not hmac.compare_digest(mac, _mac(key, message)):
            return None
        # Signed by someone who holds the key: now check what it was signed for.
        issued, expires = float(claims["iat"]), float(claims["exp"])
        longest = LABKIT_LIFETIME_S if issuer == LABKIT else LIFETIME_S
        if not (issued - CLOCK_SKEW_S <= now < expires) or expires - issued > longest:
            return None
        bound = ("m", "p", "jti")
        if issuer != LABKIT and not all(isinstance(claims.get(name), str) for name in bound):
            return None  # the gateway and the peers always bind a header to one request
        if "m" in claims and claims["m"] != method.upper():
            return None
        if "p" in claims and claims["p"] != path:
            return None
        if "inst" in claims and claims["inst"] != instance:
            return None
        if issuer not in (LABKIT, GATEWAY) and claims.get("sub") != f"service:{issuer}":
            return None  # a peer speaks only for itself
        if "jti" in claims and guard is not None and not guard.first_time(str(claims["jti"]), expires, now):
            return None
    except (ValueError, TypeError, KeyError):
        return None
    if not claims.get("sub"):
        return None
    return {k: v for k, v in claims.items() if k not in ("iss", "aud", "iat", "exp", "m", "p", "inst", "jti")} | {
        "iss": issuer}
