"""``/api/auth``: log in, log out, who am I, my sessions, log out everywhere. Served by the gateway.

The cookie is ``HttpOnly`` (scripts cannot read it), ``SameSite=Lax`` (not sent on cross-site
sub-requests) and ``Secure`` when the request came over https. Login always issues a *new* session id and
ends the one the browser came with — so an id planted before login (fixation) is worthless after it.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.core.errors import LabError
from services.patterns import login_guard, sessions
from services.patterns.passwords import hash_password, verify_password
from services.platform.state import RedisDep, SettingsDep

from .edge import COOKIE, cookie_value
from .users import find_user

router = APIRouter(prefix="/api/auth", tags=["auth"])
_DUMMY_HASH = hash_password("not-a-real-password")  # verify against it for unknown users: same timing


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _set_cookie(request: Request, response: Response, session_id: str, max_age: float) -> None:
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(COOKIE, session_id, max_age=int(max_age), httponly=True, samesite="lax", secure=secure,
                        path="/")


async def _current(request: Request) -> sessions.Session | None:
    state = request.app.state
    session_id = cookie_value(request.headers.get("cookie"))
    if not session_id:
        return None
    return await sessions.touch_session(state.redis, session_id, state.settings.session_idle_s)


async def _require_session(request: Request) -> sessions.Session:
    session = await _current(request)
    if session is None:
        raise LabError(401, "unauthenticated", "no valid session: log in with POST /api/auth/login")
    return session


@router.post("/login")
async def login(body: LoginIn, request: Request, response: Response) -> dict:
    state, settings = request.app.state, request.app.state.settings
    client = _client_address(request)
    # Counted before the password is checked, atomically (see login_guard): however many guesses arrive
    # at once, at most the limit of them are ever checked in a window.
    lockout = await login_guard.reserve_attempt(state.redis, body.username, client,
                                                settings.login_max_failures_account,
                                                settings.login_max_failures_client, settings.login_window_s)
    if lockout.locked:
        state.refusals["logins_locked_out"] += 1
        raise LabError(429, "too_many_attempts",
                       f"too many failed logins for this {lockout.scope}; try again in {lockout.retry_after_s} s",
                       "username" if lockout.scope == "account" else None,
                       headers={"Retry-After": str(lockout.retry_after_s)}, retry_after_s=lockout.retry_after_s)
    user = find_user(state.user_db, body.username)
    # scrypt takes ~40 ms of CPU on purpose: run it in a thread so the gateway's event loop keeps serving
    # every other request meanwhile.
    stored = user["password_hash"] if user else _DUMMY_HASH
    if not await asyncio.to_thread(verify_password, body.password, stored) or user is None:
        state.refusals["logins_failed"] += 1
        raise LabError(401, "invalid_credentials", "unknown username or wrong password", "password")
    await login_guard.release_attempt(state.redis, body.username, client)
    previous = await _current(request)
    if previous is not None:  # rotate: never keep the id the browser arrived with
        await sessions.destroy_session(state.redis, previous.id, previous.user_id)
    session = await sessions.create_session(state.redis, user, settings.session_idle_s, settings.session_absolute_s)
    _set_cookie(request, response, session.id, settings.session_absolute_s)
    return {"user": session.public()}


@router.post("/logout", status_code=204)
async def logout(request: Request, redis: RedisDep) -> Response:
    session = await _current(request)
    if session is not None:
        await sessions.destroy_session(redis, session.id, session.user_id)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/me")
async def me(request: Request, settings: SettingsDep) -> dict:
    session = await _require_session(request)
    return {"user": session.public(), "idle_timeout_s": settings.session_idle_s}


@router.get("/sessions")
async def my_sessions(request: Request, redis: RedisDep) -> dict:
    """Every live session of the logged-in user, each named by the start of its digest (never its id: an id
    is a credential, and the gateway keeps only digests)."""
    current = await _require_session(request)
    listed = await sessions.list_sessions(redis, current.user_id)
    return {"sessions": [{"id": s.digest[:8], "current": s.digest == current.digest, "created_at": s.created_at,
                          "last_seen": s.last_seen, "expires_at": s.expires_at} for s in listed]}


@router.delete("/sessions")
async def log_out_everywhere(request: Request, redis: RedisDep) -> dict:
    current = await _require_session(request)
    ended = await sessions.destroy_all_sessions(redis, current.user_id)
    return {"ended": ended}
