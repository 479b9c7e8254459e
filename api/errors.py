"""One error shape everywhere: application/problem+json (RFC 9457) with a stable ``code``."""
from __future__ import annotations

import logging
import math
import time
from typing import Any

from flask import Flask, Response, current_app, g, json
from werkzeug.exceptions import HTTPException

from wallet import errors as domain

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

_STATUS_OF = [  # most specific first
    (domain.Throttled, 429),
    (domain.Busy, 503),
    (domain.NotFound, 404),
    (domain.Unauthorized, 401),
    (domain.Forbidden, 403),
    (domain.Conflict, 409),
    (domain.Invalid, 422),
    (domain.Rejected, 422),
]

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "rate_limited", 500: "internal_error", 503: "unavailable",
}


def problem(status: int, code: str, title: str, detail: str | None = None,
            errors: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> Response:
    body: dict[str, Any] = {"type": f"https://loyalty.example/problems/{code}", "title": title,
                            "status": status, "detail": detail or title, "code": code}
    if errors:
        body["errors"] = errors
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs nests messages by location and field; clients want ``{"field.sub": ["message"]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[name] = list(value)
            else:
                out.update(_flatten(value, name))
    elif isinstance(messages, list):
        out[prefix or "_body"] = [str(m) for m in messages]
    else:
        out[prefix or "_body"] = [str(messages)]
    return out


def _retry_after() -> int:
    """Seconds until the limit that was hit resets (RFC 9110 Retry-After), at least 1."""
    limiter = current_app.extensions.get("loyalty.limiter")
    try:
        reset_at = limiter.current_limit.reset_at if limiter and limiter.current_limit else None
    except Exception:  # the storage may be unreachable; the header is advice, not a reason to fail
        reset_at = None
    return max(1, math.ceil(reset_at - time.time())) if reset_at else 60


def status_of(error: domain.DomainError) -> int:
    return next(status for cls, status in _STATUS_OF if isinstance(error, cls)) \
        if any(isinstance(error, cls) for cls, _ in _STATUS_OF) else 400


def register(app: Flask) -> None:
    @app.errorhandler(domain.DomainError)
    def _domain(error: domain.DomainError) -> Response:
        extra = {k: v for k, v in error.extra.items() if isinstance(v, (str, int, float, bool, list, dict))}
        headers = None
        if isinstance(error, (domain.InvalidToken, domain.TokenExpired)):
            headers = {"WWW-Authenticate": 'Bearer realm="loyalty", error="invalid_token"'}  # RFC 6750 section 3
        elif isinstance(error, domain.Unauthorized):
            headers = {"WWW-Authenticate": 'Bearer realm="loyalty"'}
        elif isinstance(error, (domain.Throttled, domain.Busy)):
            headers = {"Retry-After": str(error.retry_after)}
            g.retry_after = error.retry_after  # kept over flask-limiter's own header (api.operations)
        return problem(status_of(error), error.code, error.title, error.detail, error.errors, headers, **extra)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        if status < 400:  # a routing redirect (308 to the slashed URL) is not an error
            return error.get_response()
        data = getattr(error, "data", None) or {}
        messages = data.get("messages")
        code = _HTTP_CODES.get(status, "http_error")
        errors = None
        if messages:
            # webargs groups by location: {"json": {...}}; the location is noise for a client.
            if isinstance(messages, dict) and len(messages) == 1 and next(iter(messages)) in ("json", "query", "files", "form"):
                messages = next(iter(messages.values()))
            errors = _flatten(messages)
            if status == 400 and errors == {"_body": ["Invalid JSON body."]}:
                code = "malformed_json"
        headers = {}
        if status == 405 and error.get_response().headers.get("Allow"):
            headers["Allow"] = error.get_response().headers["Allow"]
        if status == 429:
            headers["Retry-After"] = str(_retry_after())
        detail = error.description if isinstance(error.description, str) else None
        if status == 422 and errors:
            detail = "Some fields are not valid: " + ", ".join(sorted(errors))
        return problem(status, code, error.name, detail, errors, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return problem(500, "internal_error", "Internal Server Error",
                       "Something went wrong on our side; nothing was changed. Please try again.")
