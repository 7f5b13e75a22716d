"""The one exception tree of the Coasty client.

```
CoastyError                         every error this package raises
├── InvalidRequestError (ValueError) rejected client-side, before any request is sent
├── MachineStateError               a waited-for machine reached error or terminated instead
├── APIConnectionError              no usable response (connect, read, protocol errors)
│   └── APITimeoutError             the request (or a local wait) timed out
│       └── IdleTimeoutError        no event on a run's stream within its idle_timeout
└── APIStatusError                  the server answered with an error envelope
    ├── BadRequestError             400
    ├── AuthenticationError         401
    ├── InsufficientCreditsError    402
    ├── PermissionDeniedError       403
    ├── NotFoundError               404
    ├── ConflictError               409 (INVALID_STATE, ...)
    │   ├── IdempotencyInFlightError  409 IDEMPOTENCY_IN_FLIGHT
    │   └── IdempotencyKeyReusedError 409 or 422 IDEMPOTENCY_KEY_REUSED (also a 422 error)
    ├── PayloadTooLargeError        413
    ├── UnprocessableEntityError    422 (VALIDATION_ERROR, ...)
    ├── RateLimitError              429
    └── InternalServerError         5xx, and UPSTREAM_* at any status (a 401 UPSTREAM_ERROR
                                    is the upstream failing, not a bad key)
```

The code decides before the status. `str(error)` names the code, the message, the suggestion
and the request id, so that a person or an LLM reading it knows what happened and what to do
next. An envelope without `retryable` / `retry_with_same_idempotency_key` (the prose docs'
shape) gets them from its code and status. `error.rate_limit` holds the x-ratelimit-* headers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CoastyError",
    "ConflictError",
    "IdempotencyInFlightError",
    "IdempotencyKeyReusedError",
    "IdleTimeoutError",
    "InsufficientCreditsError",
    "InternalServerError",
    "InvalidRequestError",
    "MachineStateError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "UnprocessableEntityError",
]


class CoastyError(Exception):
    """Base class of every error raised by the Coasty client."""

    request_id: str | None = None
    run_id: str | None = None
    """The run the error leaves in an unknown state, when there is one (recover it by id)."""
    idempotency_key: str | None = None
    """Key of a create that may have started a run (collect it with `idempotency.get`)."""
    machine_id: str | None = None
    """The machine the error is about, when there is one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(CoastyError, ValueError):
    """A parameter broke a documented limit; raised before anything is sent."""

    def __init__(self, message: str, *, field: str | None = None, limit: str | None = None):
        super().__init__(message)
        self.field = field
        self.limit = limit


class MachineStateError(CoastyError):
    """A machine being waited for reached a status it cannot leave on its own (error, ...)."""

    def __init__(self, message: str, *, machine_id: str, status: str) -> None:
        super().__init__(message)
        self.machine_id = machine_id
        self.status = status


class APIConnectionError(CoastyError):
    """No usable response: the connection failed, dropped or spoke broken HTTP."""

    def __init__(self, message: str = "Connection error while talking to Coasty.") -> None:
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """The request, or a bounded local wait, timed out."""

    def __init__(self, message: str = "Request to Coasty timed out.") -> None:
        super().__init__(message)


class IdleTimeoutError(APITimeoutError):
    """No event arrived on a run's event stream within the stream's ``idle_timeout``."""


@dataclass(frozen=True)
class RateLimit:
    """The rate-limit headers of a response (None where a header is missing or garbled)."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    """`x-ratelimit-reset` as sent: a Unix time, or (below 10^9) seconds from now."""
    reset_after: float | None = None
    """Seconds from the response until the window resets."""

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> RateLimit | None:
        """The rate limit a response announces, or None when it sends no such header."""
        values = [_header_number(headers, name) for name in ("limit", "remaining", "reset")]
        if all(v is None for v in values):
            return None
        limit, remaining, reset = values
        reset_after = None
        if reset is not None:
            reset_after = max(0.0, reset - time.time()) if reset >= 1e9 else reset
        return cls(
            limit=int(limit) if limit is not None else None,
            remaining=int(remaining) if remaining is not None else None,
            reset=reset,
            reset_after=reset_after,
        )


def _header_number(headers: httpx.Headers, name: str) -> float | None:
    raw = headers.get(f"x-ratelimit-{name}") or headers.get(f"ratelimit-{name}")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 and value != float("inf") else None


class APIStatusError(CoastyError):
    """The server answered with an error status and the documented error envelope."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str,
        type: str | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        retry_with_same_idempotency_key: bool = False,
        retry_after: float | None = None,
        suggestion: str | None = None,
        details: dict[str, Any] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        super().__init__(message)
        self.rate_limit = rate_limit
        self.status_code = status_code
        self.code = code
        self.type = type
        self.request_id = request_id
        self.retryable = retryable
        self.retry_with_same_idempotency_key = retry_with_same_idempotency_key
        self.retry_after = retry_after
        self.suggestion = suggestion
        self.details = details

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        if self.suggestion:
            text += f" Suggestion: {self.suggestion}"
        text += f" (HTTP {self.status_code}, request_id={self.request_id or 'unknown'})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, code={self.code!r}, "
            f"request_id={self.request_id!r})"
        )


class BadRequestError(APIStatusError):
    """400: the request was malformed."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, invalid or revoked."""


class InsufficientCreditsError(APIStatusError):
    """402: the wallet cannot afford the operation."""


class PermissionDeniedError(APIStatusError):
    """403: the key lacks the scope, or the plan lacks the feature."""


class NotFoundError(APIStatusError):
    """404: unknown, expired or mode-isolated resource."""


class ConflictError(APIStatusError):
    """409: the resource state conflicts with the operation (e.g. resume a running run)."""


class IdempotencyInFlightError(ConflictError):
    """409 IDEMPOTENCY_IN_FLIGHT: the original request with this key is still running."""


class PayloadTooLargeError(APIStatusError):
    """413: the request body exceeds the endpoint limit."""


class UnprocessableEntityError(APIStatusError):
    """422: the values violate the endpoint contract."""


class IdempotencyKeyReusedError(UnprocessableEntityError, ConflictError):
    """IDEMPOTENCY_KEY_REUSED (422 or 409): the key was used before with a different body."""


class RateLimitError(APIStatusError):
    """429: rate or concurrency limit hit; honour `retry_after`."""


class InternalServerError(APIStatusError):
    """5xx: a server-side or upstream failure."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}
_BY_CODE: dict[str, type[APIStatusError]] = {
    "IDEMPOTENCY_IN_FLIGHT": IdempotencyInFlightError,
    "IDEMPOTENCY_KEY_REUSED": IdempotencyKeyReusedError,
}


_KEY_REUSED_STATUSES = frozenset({409, 422})
_TRANSIENT = frozenset(
    {
        "INTERNAL_ERROR",
        "DB_UNAVAILABLE",
        "SERVICE_UNAVAILABLE",
        "PREDICTION_FAILED",
        "RATE_LIMITED",
        "TOO_MANY_RUNS",
        "IDEMPOTENCY_IN_FLIGHT",
        "LLM_PROVIDER_RATE_LIMITED",
    }
)
"""Codes that the OpenAPI's `retryable` lists as transient (with UPSTREAM_* and *_FAILED)."""
_SAME_KEY = frozenset(
    {
        "RATE_LIMITED",
        "TOO_MANY_RUNS",
        "SERVICE_UNAVAILABLE",
        "LLM_PROVIDER_RATE_LIMITED",
    }
)
"""Codes refused before any work, whose create may be re-sent with its key when no flag says.

(IDEMPOTENCY_IN_FLIGHT without flags is not re-sent: the create looks its key up instead.)
"""
_FEATURE_HINT = (
    " The account's plan does not offer this (e.g. that cua_version or model): list what it "
    "offers with client.models()."
)


def _implied_retryable(status_code: int, code: str) -> bool:
    """`retryable` for an envelope without it: transient codes, 429 and 5xx."""
    if code == "BILLING_UNAVAILABLE":
        return False  # refund uncertainty: never retried on a guess
    if code in _TRANSIENT or code.startswith("UPSTREAM_") or code.endswith("_FAILED"):
        return True
    return status_code == 429 or status_code >= 500


def _error_class(status_code: int, code: str) -> type[APIStatusError]:
    if code == "IDEMPOTENCY_KEY_REUSED" and status_code in _KEY_REUSED_STATUSES:
        return IdempotencyKeyReusedError
    if code.startswith("UPSTREAM_"):
        return InternalServerError
    cls = _BY_CODE.get(code)
    if cls is not None and cls.__mro__[1] is _BY_STATUS.get(status_code):
        return cls
    if status_code >= 500:
        return InternalServerError
    return _BY_STATUS.get(status_code, APIStatusError)


def _parse_retry_after(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            return None  # an HTTP date: rare; the exponential backoff applies instead
        return seconds if seconds >= 0 else None
    return None


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def make_status_error(
    status_code: int,
    body: object,
    headers: httpx.Headers | None = None,
    *,
    secrets: Iterable[str] = (),
) -> APIStatusError:
    """Build the typed error for an error response, from its envelope when it has one."""
    headers = headers if headers is not None else httpx.Headers()
    envelope = body.get("error") if isinstance(body, dict) else None
    secrets = tuple(secrets)
    header_retry_after = _parse_retry_after(headers.get("retry-after"))
    if isinstance(envelope, dict):
        code = str(envelope.get("code") or f"HTTP_{status_code}")
        message = str(envelope.get("message") or "")
        flag = envelope.get("retryable")
        retryable = bool(flag) if flag is not None else _implied_retryable(status_code, code)
        flag = envelope.get("retry_with_same_idempotency_key")
        same_key = bool(flag) if flag is not None else retryable and code in _SAME_KEY
        retry_after = _parse_retry_after(envelope.get("retry_after"))
        suggestion = envelope.get("suggestion")
        details = envelope.get("details")
        err_type = envelope.get("type")
        request_id = envelope.get("request_id") or headers.get("x-coasty-request-id")
    else:
        # No envelope (e.g. a proxy's HTML page): transient-looking statuses may be retried,
        # but a POST is never re-sent on this guess.
        code = f"HTTP_{status_code}"
        message = f"Coasty returned HTTP {status_code} without an error envelope."
        retryable = status_code == 429 or status_code >= 500
        same_key = False
        retry_after = None
        suggestion = None
        details = None
        err_type = None
        request_id = headers.get("x-coasty-request-id")
    if retry_after is None:
        retry_after = header_retry_after
    rate_limit = RateLimit.from_headers(headers)
    if (
        retry_after is None
        and status_code == 429
        and rate_limit is not None
        and rate_limit.remaining in (None, 0)
    ):
        retry_after = rate_limit.reset_after  # no Retry-After: wait for the window to reset
    if code == "FEATURE_NOT_AVAILABLE" and "client.models()" not in message:
        message += _FEATURE_HINT
    cls = _error_class(status_code, code)
    return cls(
        _redact(message, secrets),
        status_code=status_code,
        code=code,
        type=str(err_type) if err_type is not None else None,
        request_id=str(request_id) if request_id else None,
        retryable=retryable,
        retry_with_same_idempotency_key=same_key,
        retry_after=retry_after,
        suggestion=_redact(str(suggestion), secrets) if suggestion else None,
        details=details if isinstance(details, dict) else None,
        rate_limit=rate_limit,
    )


def status_error_from_response(
    response: httpx.Response, *, secrets: Iterable[str] = ()
) -> APIStatusError:
    """Build the typed error for an (already read) httpx error response."""
    try:
        body: object = json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        body = None
    return make_status_error(response.status_code, body, response.headers, secrets=secrets)
