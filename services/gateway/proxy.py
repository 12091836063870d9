"""The gateway's reverse proxy: ``/api/<resource>/...`` -> the service that owns ``<resource>``.

``GET /api/policies/POL-000001?x=1`` reaches the policy service as ``GET /policies/POL-000001?x=1``:
path and query intact, method, body and headers passed on, status code and body returned untouched.
(The original Node lab stripped the prefix and answered 404 for every policy.)

On the way (lessons 03 and 05): the instance comes from the local view of the registry (``upstreams.py``)
through the service's balancer; ``X-Served-By`` names it. A request whose instance refuses the connection
is retried once on another instance (any method: a refused connection never reached a server), and an
idempotent one also when the connection broke mid-request. An optional per-client rate limit
(``services/patterns/ratelimit.py``, off by default) and a short-lived cache of GET answers about named
entities (``response_cache.py``, on by default) sit in front.

Why a raw ASGI handler in front of FastAPI, and aiohttp: this hop is on every request, so it must be
cheap. Sitting *outside* FastAPI (``ServiceSpec.front``), a proxied request skips routing, request
objects and every framework middleware; aiohttp's client costs about a third of a millisecond per hop
here, where httpx's async pool cost about 2 ms. Together the gateway adds about 0.45 ms at p50
(``benchmarks/gateway_hop.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from urllib.parse import quote_from_bytes, unquote, unquote_to_bytes

import aiohttp
from opentelemetry import trace
from yarl import URL

from services.auth.edge import identity_for, signed_header
from services.core.redis_client import REDIS_DOWN
from services.core.settings import ROUTES
from services.patterns.identity import HEADER as IDENTITY_HEADER
from services.platform.middleware import BodyTooLarge, header

from .response_cache import entities_in_body, entities_in_path, request_directives

log = logging.getLogger("lab.gateway")

# Headers that describe one connection, not the message: never forwarded (RFC 9110, 7.6.1).
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
              b"trailer", b"transfer-encoding", b"upgrade", b"host", b"content-length",
              b"authorization", b"cookie", b"x-lab-identity"}  # credentials stop at the gateway
# Headers the gateway's own server writes on the way out; the upstream's copies would be duplicates.
SET_BY_GATEWAY = HOP_BY_HOP | {b"date", b"server", b"x-trace-id"}  # (the trace id: the gateway's span's)


def _text_header(scope, name: bytes) -> str | None:
    value = header(scope, name)
    return value.decode("latin-1") if value is not None else None


# Never in a path we forward, in any case: an encoded slash or backslash (a separator the service would see
# and we would not), a backslash (some servers read it as a slash), a NUL.
_REFUSED_IN_PATH = (b"%2f", b"%5c", b"%00", b"\\", b"\x00")
# What stays literal in a forwarded path segment (RFC 3986 pchar); everything else is percent-encoded.
_SEGMENT_SAFE = "!$&'()*+,;=:@~"
# What stays literal in a forwarded query: the same, plus the query's own separators and existing escapes.
_QUERY_SAFE = _SEGMENT_SAFE + "/?%"


def split_api_path(raw_path: bytes) -> tuple[str | None, str]:
    """``/api/policies/POL-1`` -> (``policy``, ``/policies/POL-1``): the service and the path to send it.

    The path is decoded once and its dot segments resolved (``/api/policies/..%2f..`` climbs as far as any
    server would take it) *before* deciding where it goes, so what is forwarded is exactly what was
    checked: a path under ``/api/<resource>`` of a routed service, re-encoded (a ``%252e`` stays a literal
    ``%2e`` and is never decoded twice into a dot). Anything else -> (None, ""): an encoded slash or
    backslash, a NUL, or a path that left ``/api/<resource>`` — the service's ``/health`` and ``/admin``
    are not the gateway's to reach.
    """
    if any(refused in raw_path.lower() for refused in _REFUSED_IN_PATH):
        return None, ""
    segments: list[bytes] = []
    for segment in unquote_to_bytes(raw_path).split(b"/")[1:]:
        if segment == b"..":
            if segments:
                segments.pop()
        elif segment != b".":
            segments.append(segment)
    if len(segments) < 2 or segments[0] != b"api":
        return None, ""
    service = ROUTES.get(segments[1].decode("latin-1"))
    if service is None:
        return None, ""
    return service, "/" + "/".join(quote_from_bytes(segment, safe=_SEGMENT_SAFE) for segment in segments[1:])


async def send_json(send, status: int, body: dict, extra_headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": payload})


def gateway_error(code: str, message: str, service: str | None, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field, "service": service}}


IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
SAFE = {"GET", "HEAD", "OPTIONS"}  # methods that change nothing (RFC 9110, 9.2.1)


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class NoAnswer(Exception):
    """No instance gave an answer: the error the client gets instead."""

    def __init__(self, status: int, body: dict, headers: list | None = None):
        self.status, self.body, self.headers = status, body, headers or []


def _describe_choice(upstreams, service: str, target, attempt: int) -> None:
    """Lesson 10: the balancer's choice and the breaker it passed, on the gateway's span of this request
    (the last attempt's, when a refused connection was retried). Nothing is built for an unsampled request."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({"lab.upstream.service": service, "lab.upstream.instance": target.instance_id,
                             "lab.balancer": upstreams.balancers[service].name,
                             "lab.breaker.state": target.breaker.state, "lab.attempt": attempt})


class ProxyMiddleware:
    """Handles ``/api/...`` itself; everything else (``/health``, ``/docs``, ``/services``, ``/api/auth``) goes
    to FastAPI. It sits in front of FastAPI, not inside it: a proxied request pays for no framework layer."""

    def __init__(self, app, *, state):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/api/") or scope["path"].startswith("/api/auth/"):
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = True
            await send(message)
        try:
            await self._proxy(scope, receive, tracking_send)
        except BodyTooLarge:
            raise  # BodyLimit has answered 413 already
        except Exception:  # noqa: BLE001 - outside FastAPI nothing else turns a bug into a JSON 500
            log.exception("gateway: unexpected error on %s %s", scope["method"], scope["path"])
            if not started:
                await send_json(send, 500, gateway_error("internal_error", "the gateway failed on this request; "
                                                         "see the gateway log (labkit logs gateway)", None))

    async def _proxy(self, scope, receive, send):
        state = self.state
        try:
            identity = await identity_for(state, _text_header(scope, b"cookie"),
                                          _text_header(scope, b"authorization"))
        except REDIS_DOWN:
            return await send_json(send, 503, gateway_error(
                "session_store_unavailable", "sessions cannot be checked while Redis is unreachable; retry shortly",
                None), [(b"retry-after", b"1")])
        if identity is None:
            return await send_json(send, 401, gateway_error(
                "unauthenticated", "log in first: POST /api/auth/login (or send the lab's API key as a Bearer token)",
                None))
        service, upstream_path = split_api_path(scope.get("raw_path") or scope["path"].encode())
        if service is None:
            return await send_json(send, 404, gateway_error(
                "no_route", "no service serves this path; try /api/customers, /api/policies or /api/claims",
                None))
        if state.rate_limiter is not None and not await self._within_rate_limit(state, identity, send):
            return
        method = scope["method"]
        query = scope.get("query_string") or b""
        full_path = upstream_path + ("?" + quote_from_bytes(query, safe=_QUERY_SAFE) if query else "")
        cache = state.response_cache
        named = entities_in_path(upstream_path) if cache.enabled else []  # the entities this URL is about
        cache_state = self._cache_state(cache, scope, method, named)
        if cache_state == b"MISS":
            cached = cache.get(identity["sub"], full_path)
            if cached is not None:
                age = str(int(time.monotonic() - cached.stored_at)).encode()
                await send({"type": "http.response.start", "status": cached.status,
                            "headers": cached.headers + [(b"age", age)]})
                return await send({"type": "http.response.body", "body": cached.body})
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k not in HOP_BY_HOP}
        headers["x-request-id"] = scope["state"]["request_id"]
        client = scope.get("client")
        if client:
            headers["x-forwarded-for"] = client[0]
        body = await read_body(receive)
        try:
            status, out, content = await self._forward(state, service, method, full_path, headers, body,
                                                       identity, upstream_path)
        except NoAnswer as failed:
            return await send_json(send, failed.status, failed.body, failed.headers)
        if cache_state in (b"MISS", b"REFRESH") and status == 200:
            cache.put(identity["sub"], full_path, named, status, out, content)
        elif cache.enabled and method not in SAFE and status < 400:
            # Read-your-writes: once the service accepted it, the write drops at once every kept answer
            # about an entity it names, in its path or its answer (a new claim names its policy and customer).
            cache.drop_entities({*named, *entities_in_body(content)})
        if cache_state:
            out = [*out, (b"x-gateway-cache", cache_state)]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": content})

    @staticmethod
    def _cache_state(cache, scope, method: str, named: list[str]) -> bytes | None:
        """What the response cache does for this request: ``MISS`` (look it up, keep the answer),
        ``REFRESH`` (``no-cache``: ask the service, keep its answer), ``BYPASS`` (``no-store``), or None
        (cache off, not a GET, or its URL ``named`` no entity)."""
        if not (cache.enabled and method == "GET" and named):
            return None
        directives = request_directives(header(scope, b"cache-control"))
        if "no-store" in directives or "no-cache" in directives:
            cache.bypassed += 1
            return b"BYPASS" if "no-store" in directives else b"REFRESH"
        return b"MISS"

    async def _forward(self, state, service: str, method: str, full_path: str, headers: dict, body: bytes,
                       identity: dict, path: str):
        """Send to one instance, failing over once: (status, headers, body), or NoAnswer. Each attempt
        carries an identity signed for that instance alone (``services/auth/edge.py``)."""
        upstreams = state.upstreams
        tried = None
        for attempt in (1, 2):
            target = upstreams.pick(service, exclude=tried)
            if target is None:
                if tried is not None:
                    break  # no second instance to fail over to: report the first failure below
                raise NoAnswer(503, gateway_error("no_instance", f"no healthy instance of the {service} service",
                                                  service), [(b"retry-after", b"1")])
            # Replaces anything the client sent (``x-lab-identity`` is never forwarded, see HOP_BY_HOP).
            # Signed for the path as the service will read it: its server decodes what we send, once.
            headers[IDENTITY_HEADER] = signed_header(state, identity, service, method, unquote(path),
                                                     target.instance_id if target.registered else None)
            _describe_choice(upstreams, service, target, attempt)
            upstreams.on_sent(target)
            try:
                # encoded=True: sent exactly as checked above (no second decoding, no re-normalising).
                url = URL(target.base_url + full_path, encoded=True)
                async with state.upstream_session.request(method, url, data=body or None,
                                                          headers=headers, allow_redirects=False) as response:
                    content = await response.read()
                    status, raw_headers = response.status, response.raw_headers
            except asyncio.TimeoutError:
                upstreams.on_failure(target, "timeout", connection_failed=False)
                raise NoAnswer(504, gateway_error("upstream_timeout", f"the {service} service "
                                                  f"({target.instance_id}) did not answer in time", service))
            except aiohttp.ClientError as exc:
                refused = isinstance(exc, aiohttp.ClientConnectorError)
                upstreams.on_failure(target, type(exc).__name__, connection_failed=True)
                log.warning("upstream %s (%s) failed on attempt %d: %r", service, target.instance_id, attempt, exc)
                failure = (target, exc)
                if refused or method in IDEMPOTENT:
                    tried = target
                    continue
                break
            upstreams.on_answer(target, status)
            out = [(k.lower(), v) for k, v in raw_headers if k.lower() not in SET_BY_GATEWAY]
            out.append((b"content-length", str(len(content)).encode()))
            out.append((b"x-served-by", target.instance_id.encode()))
            return status, out, content
        target, exc = failure
        raise NoAnswer(502, gateway_error("upstream_unavailable", f"the {service} service at {target.base_url} "
                                          f"is unavailable ({type(exc).__name__})", service))

    async def _within_rate_limit(self, state, identity: dict, send) -> bool:
        try:
            decision = await state.rate_limiter.check(identity["sub"])
        except REDIS_DOWN:
            return True  # fail open: an outage of the limiter must not become an outage of the API
        if decision.allowed:
            return True
        state.refusals["rate_limited"] += 1
        await send_json(send, 429, gateway_error(
            "rate_limited", f"more than {state.rate_limiter.limit} requests in "
            f"{state.rate_limiter.window_ms / 1000:g} s; retry after {decision.retry_after_s} s", None),
            [(b"retry-after", str(decision.retry_after_s).encode())])
        return False

