"""One error format for every service: ``{"error": {"code", "message", "field"}}``.

A client (or a learner reading a response in a notebook) always gets JSON that names the problem and,
for bad input, the field. Never a stack trace, never an HTML page.

This module is the framework-free half: the error type a route raises and the body it becomes. The
FastAPI exception handlers that turn it (and every other failure) into that body are installed by
``services/platform/error_handlers.py``.
"""

from __future__ import annotations

from pydantic import BaseModel


class LabError(Exception):
    """An error a route raises on purpose; ``services/platform/error_handlers.py`` turns it into the JSON format."""

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
