"""The exception handlers that give every service one error format (``services/core/errors.py``).

Installed on each app by ``create_app``: a ``LabError``, a validation failure, an HTTP error, a body
that grew too large, Redis being unreachable, and any unexpected exception all answer
``{"error": {"code", "message", "field"}}`` — never a stack trace, never an HTML page.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.core.errors import LabError, error_body

from .middleware import BodyTooLarge

log = logging.getLogger("lab.errors")


def _field_of(location: tuple) -> str:
    """``("body", "premium_cents")`` -> ``premium_cents``; ``("query", "limit")`` -> ``limit``."""
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(location[-1] if location else "body")


def lab_error_response(exc: LabError) -> JSONResponse:
    """The answer to a ``LabError``, wherever it is raised (a route, or the fast path in front of FastAPI)."""
    return JSONResponse(error_body(exc.code, exc.message, exc.field, **exc.extra), status_code=exc.status,
                        headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LabError)
    async def _lab_error(_: Request, exc: LabError):
        return lab_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        details = [{"field": _field_of(tuple(e.get("loc", ()))), "problem": e.get("msg", "")} for e in errors]
        return JSONResponse(
            error_body("invalid_input", first.get("msg", "invalid request"), _field_of(tuple(first.get("loc", ()))),
                       details=details[:20]),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed",
                413: "body_too_large"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(_: Request, exc: BodyTooLarge):
        """A chunked body grew past the limit while being read; ``BodyLimit`` has already answered 413."""
        return JSONResponse(error_body("body_too_large", str(exc), "body"), status_code=413)

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _redis_down(request: Request, exc: Exception):
        """Code that cannot work without Redis (sessions, logins) says so; it does not pretend to be a bug."""
        log.warning("Redis unavailable on %s %s: %r", request.method, request.url.path, exc)
        return JSONResponse(error_body("redis_unavailable", "Redis is unreachable right now; retry shortly"),
                            status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "the service failed; see its log"), status_code=500)
