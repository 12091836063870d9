"""The gateway's check on every /api request: which identity to forward, if any.

Two ways in: the ``lab_session`` cookie a login set (a person), or ``Authorization: Bearer <lab api key>``
(labkit, the tests, curl — the lab's system user; labkit derives the key and hands it to the gateway, see
``Settings.api_key``). Whatever identity a client sent itself in ``X-Lab-Identity`` is dropped: only the
gateway's own signature counts.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from services.patterns import sessions
from services.patterns.identity import GATEWAY, sign_identity

COOKIE = "lab_session"


def cookie_value(raw_cookie_header: str | None, name: str = COOKIE) -> str | None:
    if not raw_cookie_header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(raw_cookie_header)
    except Exception:  # noqa: BLE001 - a malformed cookie header is simply "no session"
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


async def identity_for(state, cookie_header: str | None, authorization: str | None) -> dict | None:
    settings = state.settings
    if authorization and authorization.lower().startswith("bearer "):
        if settings.is_api_key(authorization[7:].strip()):
            return {"sub": "labkit", "roles": ["system"]}
        return None
    session_id = cookie_value(cookie_header)
    if not session_id:
        return None
    session = await sessions.touch_session(state.redis, session_id, settings.session_idle_s)
    if session is None:
        return None
    return {"sub": session.user_id, "roles": list(session.roles), "customer_id": session.customer_id,
            "sid": session.digest[:8]}


def signed_header(state, identity: dict, service: str, method: str, path: str, instance: str | None) -> str:
    """The ``X-Lab-Identity`` for one request to one instance: signed with the key for that service only,
    bound to the method, the path the service will see, the instance (when the registry vouches for its id)
    and a nonce. Per request, not cached: an HMAC costs a few microseconds, and a header reused across
    requests is a header someone can replay."""
    key = state.settings.identity_key(GATEWAY, service)
    return sign_identity(identity, key, issuer=GATEWAY, audience=service, method=method, path=path,
                         instance=instance)
