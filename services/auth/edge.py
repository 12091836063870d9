"""The gateway's check on every /api request: which identity to forward, if any.

Two ways in: the ``lab_session`` cookie a login set (a person), or ``Authorization: Bearer <lab api key>``
(labkit, the tests, curl — the lab's system user; the key is derived from the lab's secret, see
``Settings.api_key``). Whatever identity a client sent itself in ``X-Lab-Identity`` is dropped: only the
gateway's own signature counts.
"""

from __future__ import annotations

import time
from http.cookies import SimpleCookie

from services.patterns import sessions
from services.patterns.identity import sign_identity

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
            "sid": session.id[:8]}


#: A signed identity stays valid for a minute (``identity.verify_identity``); reusing one for this long
#: saves signing the same identity again on every request of a busy caller.
REUSE_SIGNATURE_S = 10.0


def signed_header(state, identity: dict) -> str:
    """The signed ``X-Lab-Identity`` for ``identity``, reused for a few seconds per identity."""
    cache = getattr(state, "signed_identities", None)
    if cache is None:
        cache = state.signed_identities = {}
    cache_key = tuple(sorted((k, str(v)) for k, v in identity.items()))
    now = time.monotonic()
    cached = cache.get(cache_key)
    if cached and cached[0] > now:
        return cached[1]
    if len(cache) > 10_000:  # many distinct sessions: start over rather than grow without bound
        cache.clear()
    header = sign_identity(identity, state.settings.shared_secret())
    cache[cache_key] = (now + REUSE_SIGNATURE_S, header)
    return header
