"""How a service knows who is asking: an identity signed by whoever checked it.

The gateway validates the session (in Redis) and forwards the caller's identity to the service in one
header, signed with HMAC-SHA256 under a secret only the lab's own processes share:

    X-Lab-Identity: v1.<base64url(JSON identity)>.<unix time>.<hex HMAC of "v1.<payload>.<time>">

A service verifies the signature and the age before it believes a word of it. A client that talks to a
service directly cannot forge the header without the secret; an old header stops working after
``max_age_s`` (so a captured one is of little use). Why not let every service look the session up in Redis
itself? It would work too, but every service would then need read access to every session — the signed
header keeps sessions readable by the gateway alone (see the ACLs in lesson 04).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

HEADER = "x-lab-identity"
VERSION = "v1"


def _mac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_identity(identity: dict, secret: str, now: float | None = None) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(identity, separators=(",", ":")).encode()).decode().rstrip("=")
    stamp = str(int(time.time() if now is None else now))
    message = f"{VERSION}.{payload}.{stamp}"
    return f"{message}.{_mac(secret, message)}"


def verify_identity(header: str | None, secret: str, max_age_s: float = 60, now: float | None = None) -> dict | None:
    """The identity in a header this lab signed recently, or None (forged, altered, stale or malformed)."""
    if not header or not secret or len(header) > 4096:
        return None
    try:
        version, payload, stamp, mac = header.split(".")
        if version != VERSION or not hmac.compare_digest(mac, _mac(secret, f"{version}.{payload}.{stamp}")):
            return None
        if abs((time.time() if now is None else now) - int(stamp)) > max_age_s:
            return None
        identity = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return None
    return identity if isinstance(identity, dict) and identity.get("sub") else None
