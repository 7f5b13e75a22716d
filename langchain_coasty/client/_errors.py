"""The one exception tree of the Coasty client.

```
CoastyError                         every error this package raises
├── InvalidRequestError (ValueError) rejected client-side, before any request is sent
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
    │   └── IdempotencyInFlightError  409 IDEMPOTENCY_IN_FLIGHT
    ├── PayloadTooLargeError        413
    ├── UnprocessableEntityError    422 (VALIDATION_ERROR, ...)
    │   └── IdempotencyKeyReusedError 422 IDEMPOTENCY_KEY_REUSED
    ├── RateLimitError              429
    └── InternalServerError         5xx
```

`str(error)` names the code, the message, the suggestion and the request id, so that
a person or an LLM reading it knows what happened and what to do next.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
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
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
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

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(CoastyError, ValueError):
    """A parameter broke a documented limit; raised before anything is sent."""

    def __init__(self, message: str, *, field: str | None = None, limit: str | None = None):
        super().__init__(message)
        self.field = field
        self.limit = limit


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
    ) -> None:
        super().__init__(message)
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


class IdempotencyKeyReusedError(UnprocessableEntityError):
    """422 IDEMPOTENCY_KEY_REUSED: the key was used before with a different body."""


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


def _error_class(status_code: int, code: str) -> type[APIStatusError]:
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
        retryable = bool(envelope.get("retryable", False))
        same_key = bool(envelope.get("retry_with_same_idempotency_key", False))
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
