"""The error envelope: ``ApiError``, the tables that fill in its fields, and the handlers.

Every error answers ``{"error": {code, message, type, request_id, retryable,
retry_with_same_idempotency_key, retry_after?, suggestion?, details?}}``; ``type`` comes from
the status, ``retryable`` and ``suggestion`` from the code unless the raiser says otherwise.
With the ``error_flags`` setting off (or ``flags=False``), the two retry flags are left out.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from langchain_coasty.sandbox._http import _json, _request_id, _response
from langchain_coasty.sandbox.validation import InvalidInput, Problem

_ERROR_TYPES = {
    400: "validation_error",
    401: "auth_error",
    402: "billing_error",
    403: "auth_error",
    404: "not_found_error",
    405: "client_error",
    409: "state_error",
    413: "client_error",
    415: "client_error",
    421: "client_error",
    422: "validation_error",
    429: "rate_limit_error",
}
_RETRYABLE = frozenset(
    {
        "SERVICE_UNAVAILABLE",
        "RATE_LIMITED",
        "TOO_MANY_RUNS",
        "IDEMPOTENCY_IN_FLIGHT",
        "INTERNAL_ERROR",
        "DB_UNAVAILABLE",
        "UPSTREAM_ERROR",
        "UPSTREAM_TIMEOUT",
        "LLM_PROVIDER_RATE_LIMITED",
    }
)
_KEYED_CREATES = re.compile(
    r"/v1/(runs|machines|ground|predict|sessions|sessions/[^/]+/predict"
    r"|machines/[^/]+/actions(/batch)?)"
)
"""The reserve-and-replay routes: a retryable error may be retried with the same key."""
_SUGGESTIONS = {
    "INVALID_API_KEY": "Send X-API-Key: sk-coasty-test-<hex> (or Authorization: Bearer <key>).",
    "VALIDATION_ERROR": "Fix the field named in error.details and send the request again.",
    "NOT_FOUND": "Check the id; test-mode and live-mode resources are isolated.",
    "INVALID_STATE": "GET the run or machine to see its status before changing it.",
    "IDEMPOTENCY_KEY_REUSED": "Use a new Idempotency-Key for a different request body.",
    "IDEMPOTENCY_IN_FLIGHT": "Retry with the same Idempotency-Key, or GET /v1/idempotency/{key}.",
    "RATE_LIMITED": "Wait Retry-After seconds, then retry with the same Idempotency-Key.",
    "SERVICE_UNAVAILABLE": "Wait Retry-After seconds, then retry with the same Idempotency-Key.",
    "PAYLOAD_TOO_LARGE": "Send a smaller body.",
}


class ApiError(Exception):
    """An error answered in Coasty's envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retryable: bool | None = None,
        same_key: bool | None = None,
        retry_after: int | None = None,
        flags: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.flags = flags
        self.headers = headers
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retryable = retryable
        self.same_key = same_key
        self.retry_after = retry_after

    @classmethod
    def invalid(cls, problem: Problem) -> ApiError:
        return cls(422, problem.code, problem.message, details=problem.details())

    @classmethod
    def too_large(cls, size: int, limit: int) -> ApiError:
        """The 413 for a body over ``max_body_bytes`` (``/v1`` and the control plane alike)."""
        return cls(
            413,
            "PAYLOAD_TOO_LARGE",
            f"The request body is {size} bytes; the limit is {limit} bytes.",
            details={"field": "body", "limit": f"{limit} bytes"},
        )


def _error_body(request: Request, exc: ApiError) -> Response:
    """The envelope for ``exc``; fields the raiser left as None come from the tables."""
    path = request.url.path
    retryable = exc.retryable
    if retryable is None:
        retryable = exc.code in _RETRYABLE or exc.status >= 500
    same_key = exc.same_key
    if same_key is None:
        same_key = (
            retryable
            and request.method == "POST"
            and _KEYED_CREATES.fullmatch(path) is not None
            and request.headers.get("idempotency-key") is not None
        )
    error: dict[str, Any] = {
        "code": exc.code,
        "message": exc.message,
        "type": _ERROR_TYPES.get(exc.status, "server_error"),
        "request_id": _request_id(request),
    }
    flags = exc.flags
    if flags is None:
        engine = getattr(request.app.state, "engine", None) if "app" in request.scope else None
        flags = engine is None or engine.config.error_flags
    if flags:
        error["retryable"] = retryable
        error["retry_with_same_idempotency_key"] = same_key
    headers: dict[str, str] = dict(exc.headers or {})
    if exc.retry_after is not None:
        error["retry_after"] = exc.retry_after
        headers["Retry-After"] = str(exc.retry_after)
    if exc.code in _SUGGESTIONS:
        error["suggestion"] = _SUGGESTIONS[exc.code]
    if exc.details is not None:
        error["details"] = exc.details
    return _response(_json({"error": error}), exc.status, headers)


async def _handle_api_error(request: Request, exc: Exception) -> Response:
    """Answer an ``ApiError`` raised by a handler."""
    assert isinstance(exc, ApiError)
    return _error_body(request, exc)


def _refuse_host(request: Request) -> Response:
    """The 421 ``CoastyHeaders`` answers for a Host its ``HostPolicy`` does not allow."""
    host = request.headers.get("host", "")
    shown = repr(host) if len(host) <= 100 else f"of {len(host)} characters"
    error = ApiError(
        421,
        "HOST_NOT_ALLOWED",
        f"Host {shown} is not an address this sandbox serves on (DNS rebinding guard); "
        "allow it with allowed_hosts / --allowed-host.",
        details={"field": "Host", "limit": "a loopback host, or one in allowed_hosts"},
    )
    return _error_body(request, error)


async def _handle_invalid_input(request: Request, exc: Exception) -> Response:
    """Answer a query, header or body value that ``validation`` could not read."""
    assert isinstance(exc, InvalidInput)
    problem = exc.problem
    error = ApiError(exc.status, problem.code, problem.message, details=problem.details())
    return _error_body(request, error)


async def _handle_http_error(request: Request, exc: Exception) -> Response:
    """Answer Starlette's unknown-route and wrong-method errors in the envelope."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error = ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed here.")
    else:
        error = ApiError(
            exc.status_code, "NOT_FOUND", f"No route {request.method} {request.url.path}."
        )
    return _error_body(request, error)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    """Answer any other exception as a 500 INTERNAL_ERROR."""
    error = ApiError(500, "INTERNAL_ERROR", f"Unexpected sandbox error: {type(exc).__name__}.")
    return _error_body(request, error)
