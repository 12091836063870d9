"""Two small pure-ASGI middlewares every service runs.

Pure ASGI (not ``BaseHTTPMiddleware``) because they sit on the hot path of every request and the
proxy hop must stay cheap.

* ``RequestContext`` takes ``X-Request-ID`` from the request (or makes one), puts it on the response and
  writes one access log line with it, so one request can be followed through gateway and services.
* ``BodyLimit`` refuses bodies bigger than the limit with 413, before anything parses them — declared
  (``Content-Length``) or not (chunked: counted as it arrives).

Every value a client controls ends up in some log line. ``loggable`` renders a text as one visible line
of valid UTF-8, and the services' log formatter (``services/platform/app.py``) applies it to *every* message,
so no call site can forget: a ``%0a`` in a path does not start a forged line in the log, and a ``%ff``
does not write a byte that is not UTF-8.
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


def _escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, smuggled in by ``surrogateescape``
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def loggable(value: str | bytes, limit: int = 2048) -> str:
    """``value`` as one visible line of valid UTF-8: ``\\n`` for a newline, ``\\xff`` for a byte that is not
    UTF-8, ``\\\\`` for a backslash (so an escape a client typed cannot pass for one we wrote); cut at ``limit``.

    Characters that are not printable (controls, line and paragraph separators, bidi overrides) are
    escaped; letters of any script are kept.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if len(value) > limit:
        value = value[:limit] + "..."
    if value.isprintable() and "\\" not in value:  # the common case, checked in C
        return value
    return "".join(ch if ch.isprintable() and ch != "\\" else _escape(ch) for ch in value)


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
            # The path as the client sent it (still percent-encoded); the log formatter escapes what is left.
            raw_path = scope.get("raw_path")
            access_log.info(
                "%s %s %s %d %.2fms rid=%s", self.service, scope["method"],
                raw_path.decode("utf-8", "surrogateescape") if raw_path else scope["path"], status,
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
        received, answered, refused = 0, False, False

        async def counting_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not answered:  # answer 413 now: whatever the app makes of the exception is dropped
                        await self._refuse(send)
                        refused = True
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def guarded_send(message):
            nonlocal answered
            if refused:
                return  # the 413 went out already
            answered = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            # The app may have let our exception through, or turned it into another (an error handler's
            # 500): once the 413 is out, the request is over either way.
            if not refused:
                raise


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a body (chunked, no ``Content-Length``) grows past the limit; the
    413 has already been sent. Whoever reads bodies lets it through (the gateway's proxy does)."""

    def __init__(self, max_bytes: int):
        super().__init__(f"request body is larger than {max_bytes} bytes")
