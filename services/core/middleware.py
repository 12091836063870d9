"""Two small pure-ASGI middlewares every service runs.

Pure ASGI (not ``BaseHTTPMiddleware``) because they sit on the hot path of every request and the
proxy hop must stay cheap.

* ``RequestContext`` takes ``X-Request-ID`` from the request (or makes one), puts it on the response and
  writes one access log line with it, so one request can be followed through gateway and services.
* ``BodyLimit`` refuses bodies bigger than the limit with 413, before anything parses them.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import time

access_log = logging.getLogger("lab.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def header(scope, name: bytes) -> bytes | None:
    """The raw value of one request header in an ASGI scope (names are lower-case bytes), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


class RequestContext:
    def __init__(self, app, service: str):
        self.app, self.service = app, service
        # A random prefix per process and a counter: unique across instances and restarts, without asking
        # the OS for fresh randomness on every request (a uuid4 would).
        self._prefix, self._count = secrets.token_hex(6), itertools.count(1)

    def new_request_id(self) -> str:
        return f"{self._prefix}{next(self._count):08x}"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = header(scope, b"x-request-id")
        request_id = incoming.decode("latin-1") if incoming else ""
        if not _SAFE_REQUEST_ID.match(request_id):
            request_id = self.new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "%s %s %s %d %.2fms rid=%s", self.service, scope["method"], scope["path"], status,
                (time.perf_counter() - started) * 1000, request_id,
            )


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _refuse(self, send):
        body = json.dumps({"error": {"code": "body_too_large",
                                     "message": f"request body is larger than {self.max_bytes} bytes",
                                     "field": "body"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await self._refuse(send)


class _BodyTooLarge(Exception):
    pass
