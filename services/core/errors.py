"""One error format for every service: ``{"error": {"code", "message", "field"}}``.

A client (or a learner reading a response in a notebook) always gets JSON that names the problem and,
for bad input, the field. Never a stack trace, never an HTML page.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .middleware import BodyTooLarge

log = logging.getLogger("lab.errors")


class LabError(Exception):
    """An error a route raises on purpose; the handler below turns it into the JSON format."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.extra = status, code, message, field, extra
        self.headers = headers


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The JSON every error answer has (declared in OpenAPI so clients and fuzzers know it)."""

    error: ErrorDetail


#: The error answers any /api route may give, declared once for the OpenAPI schema.
ERROR_RESPONSES = {status: {"model": ErrorBody, "description": text} for status, text in {
    400: "malformed request (the body could not be read as JSON)", 401: "no valid identity", 403: "role not allowed", 404: "no such entity (or not yours)",
    409: "conflicts with the entity's current state",
    412: "If-Match names a version the entity no longer has", 413: "body too large", 422: "invalid input",
    429: "too many requests", 503: "a service it depends on is unavailable"}.items()}


class VersionMismatch(LabError):
    """``If-Match`` named a version the entity no longer has: nothing was written (412, RFC 9110 13.1.1)."""

    def __init__(self, current_version: int, expected_version: int):
        super().__init__(412, "version_mismatch",
                         f'it is at version {current_version}, not {expected_version}: someone else changed it '
                         f'since you read it. Read it again (its ETag is "{current_version}") and reapply your '
                         "change", "If-Match", current_version=current_version)


def not_found(kind: str, entity_id: str) -> LabError:
    return LabError(404, "not_found", f"{kind} {entity_id} does not exist")


def error_body(code: str, message: str, field: str | None = None, **extra) -> dict:
    body = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return {"error": body}


def _field_of(location: tuple) -> str:
    """``("body", "premium_cents")`` -> ``premium_cents``; ``("query", "limit")`` -> ``limit``."""
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(location[-1] if location else "body")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LabError)
    async def _lab_error(_: Request, exc: LabError):
        return JSONResponse(error_body(exc.code, exc.message, exc.field, **exc.extra), status_code=exc.status,
                            headers=exc.headers)

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
