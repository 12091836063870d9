"""The gateway's reverse proxy: ``/api/<resource>/...`` -> the service that owns ``<resource>``.

``GET /api/policies/POL-000001?x=1`` reaches the policy service as ``GET /policies/POL-000001?x=1``:
path and query intact, method, body and headers passed on, status code and body returned untouched.
(The original Node lab stripped the prefix and answered 404 for every policy.)

Why a raw ASGI middleware and aiohttp: this hop is on every request, so it must be cheap. Going around
FastAPI's routing and request objects, and using aiohttp's client (about 0.5 ms per hop here, where
httpx's async pool cost about 2 ms), keeps the gateway near the speed of the services behind it.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from services.auth.edge import identity_for, signed_header
from services.core.redis_client import REDIS_DOWN
from services.core.settings import ROUTES
from services.patterns.identity import HEADER as IDENTITY_HEADER

log = logging.getLogger("lab.gateway")

# Headers that describe one connection, not the message: never forwarded (RFC 9110, 7.6.1).
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
              b"trailer", b"transfer-encoding", b"upgrade", b"host", b"content-length",
              b"authorization", b"cookie", b"x-lab-identity"}  # credentials stop at the gateway
# Headers the gateway's own server writes on the way out; the upstream's copies would be duplicates.
SET_BY_GATEWAY = HOP_BY_HOP | {b"date", b"server"}


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def split_api_path(path: str) -> tuple[str | None, str]:
    """``/api/policies/POL-1`` -> (``policy``, ``/policies/POL-1``); unknown resource -> (None, path)."""
    upstream_path = path[len("/api"):]
    resource = upstream_path.split("/", 2)[1] if upstream_path.count("/") >= 1 else ""
    return ROUTES.get(resource), upstream_path


async def send_json(send, status: int, body: dict, extra_headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": payload})


def gateway_error(code: str, message: str, service: str | None) -> dict:
    return {"error": {"code": code, "message": message, "service": service}}


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class ProxyMiddleware:
    """Handles ``/api/...`` itself; everything else (``/health``, ``/docs``, ``/services``) goes to FastAPI."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/api/") or scope["path"].startswith("/api/auth/"):
            return await self.app(scope, receive, send)
        state = scope["app"].state
        try:
            identity = await identity_for(state, _header(scope, b"cookie"), _header(scope, b"authorization"))
        except REDIS_DOWN:
            return await send_json(send, 503, gateway_error(
                "session_store_unavailable", "sessions cannot be checked while Redis is unreachable; retry shortly",
                None), [(b"retry-after", b"1")])
        if identity is None:
            return await send_json(send, 401, gateway_error(
                "unauthenticated", "log in first: POST /api/auth/login (or send the lab's API key as a Bearer token)",
                None))
        service, upstream_path = split_api_path(scope["path"])
        if service is None:
            return await send_json(send, 404, gateway_error(
                "no_route", f"no service serves {scope['path']}; try /api/customers, /api/policies or /api/claims",
                None))
        target = state.upstreams.pick(service)
        if target is None:
            return await send_json(send, 503, gateway_error(
                "no_instance", f"no healthy instance of the {service} service", service))
        url = target.base_url + upstream_path
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k not in HOP_BY_HOP}
        headers["x-request-id"] = scope["state"]["request_id"]
        headers[IDENTITY_HEADER] = signed_header(state, identity)  # replaces anything the client sent
        client = scope.get("client")
        if client:
            headers["x-forwarded-for"] = client[0]
        body = await read_body(receive)
        try:
            async with state.upstream_session.request(scope["method"], url, data=body or None, headers=headers,
                                                      allow_redirects=False) as response:
                content = await response.read()
                status, raw_headers = response.status, response.raw_headers
        except asyncio.TimeoutError:
            return await send_json(send, 504, gateway_error(
                "upstream_timeout", f"the {service} service did not answer in time", service))
        except aiohttp.ClientError as exc:
            log.warning("upstream %s failed: %r", url, exc)
            return await send_json(send, 502, gateway_error(
                "upstream_unavailable", f"the {service} service at {target.base_url} is unavailable "
                f"({type(exc).__name__})", service))
        out = [(k.lower(), v) for k, v in raw_headers if k.lower() not in SET_BY_GATEWAY]
        out.append((b"content-length", str(len(content)).encode()))
        out.append((b"x-served-by", target.instance_id.encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": content})
