"""What the sync and async clients share: configuration, parsing and every retry decision.

`_BaseClient` holds the configuration and the connection pools. `_RetryState` (one request),
`_CreateAttempts` (one idempotent create) and `_Recovery` (the lookup of a lost create) decide,
without doing I/O, what follows each attempt: the twins in `_client` only send, sleep and ask.
`_sleep` / `_asleep` are read at call time, so tests can swap in a fake clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar, overload

import httpx
from pydantic import SecretStr, ValidationError

from langchain_coasty._version import __version__
from langchain_coasty.client._cua_models import (
    ActionResult,
    BatchActionResult,
    GroundResult,
    Prediction,
    Session,
    SessionInfo,
    SessionMutation,
    SessionPrediction,
    SessionsPage,
)
from langchain_coasty.client._errors import (
    APIConnectionError,
    APITimeoutError,
    CoastyError,
    IdempotencyInFlightError,
    NotFoundError,
    make_status_error,
    status_error_from_response,
)
from langchain_coasty.client._machine_models import (
    BillingActiveResponse,
    LifecycleResponse,
    MachineConnection,
    MachinePricing,
    MachinesPage,
    MachineUpdate,
    ProvisionResult,
    Screenshot,
    _MachineEnvelope,
)
from langchain_coasty.client._models import (
    CreateResult,
    IdempotencyLookup,
    ModelsResponse,
    Run,
    RunsPage,
)
from langchain_coasty.client._params import (
    check_api_key,
    check_base_url,
    check_llm_headers,
    check_max_connections,
    check_seconds,
    invalid,
)
from langchain_coasty.client._pool import RunPools, _Http
from langchain_coasty.client._retry import RetryPolicy, never_reached_server

__all__ = ["DEFAULT_BASE_URL"]

logger = logging.getLogger("langchain_coasty.client")

DEFAULT_BASE_URL = "https://coasty.ai"
_Model = TypeVar(
    "_Model",
    Run,
    RunsPage,
    MachinesPage,
    IdempotencyLookup,
    ModelsResponse,
    ProvisionResult,
    _MachineEnvelope,
    MachineConnection,
    MachinePricing,
    LifecycleResponse,
    MachineUpdate,
    BillingActiveResponse,
    Screenshot,
    GroundResult,
    Prediction,
    SessionPrediction,
    Session,
    SessionInfo,
    SessionsPage,
    SessionMutation,
    ActionResult,
    BatchActionResult,
)
_Keyed = TypeVar(
    "_Keyed",
    GroundResult,
    Prediction,
    SessionPrediction,
    Session,
    ActionResult,
    BatchActionResult,
)
_Made = TypeVar(
    "_Made",
    Run,
    ProvisionResult,
    GroundResult,
    Prediction,
    SessionPrediction,
    Session,
    ActionResult,
    BatchActionResult,
)
_Result = TypeVar(
    "_Result",
    CreateResult,
    ProvisionResult,
    GroundResult,
    Prediction,
    SessionPrediction,
    Session,
    ActionResult,
    BatchActionResult,
)
_Resend = Literal["always", "unsent"]

_sleep = time.sleep
_asleep = asyncio.sleep


class _BadResponse(APIConnectionError):
    """A success status whose body is not what the API documents."""


_READ = httpx.ByteStream(b"")


def _unlink(response: httpx.Response) -> httpx.Response:
    """Break a closed response's reference cycle (httpx's body stream points back at it).

    Reference counting then frees the response and its headers at once, instead of leaving
    some 45 objects a response for the cyclic collector, whose passes stall the event loop
    when thousands of runs are in flight. The body was read (or dropped) before this.
    """
    if response.is_closed:
        response.stream = _READ
    return response


def _connection_error(exc: httpx.RequestError, what: str) -> APIConnectionError:
    """The error for a failed send or read; `what` says which call failed."""
    detail = f"{what}: {type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(detail)
    return APIConnectionError(detail)


def _parse(model: type[_Model], response: httpx.Response) -> _Model:
    try:
        body = response.json()
        if isinstance(body, dict) and not body.get("request_id"):
            body["request_id"] = response.headers.get("x-coasty-request-id")
        if model is Run and isinstance(body, dict):
            _credits_from_headers(body, response.headers)
        elif "usage" in model.model_fields and isinstance(body, dict) and "usage" not in body:
            _usage_from_headers(body, response.headers)
        return model.model_validate(body)
    except (ValueError, ValidationError, RecursionError) as exc:
        raise _unexpected_body(response, f"an unexpected {model.__name__} body") from exc


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    raw = headers.get(name, "").strip()
    return int(raw) if raw.isdigit() else None


def _credits_from_headers(body: dict[str, Any], headers: httpx.Headers) -> None:
    """Fill a run body's missing cost from X-Credits-Charged / X-Credits-Remaining."""
    charged = _header_int(headers, "x-credits-charged")
    if charged is not None:
        if body.get("credits_charged") is None:
            body["credits_charged"] = charged
        if body.get("cost_cents") is None:
            body["cost_cents"] = body["credits_charged"]  # 1 credit = 1 cent
    remaining = _header_int(headers, "x-credits-remaining")
    if remaining is not None and body.get("credits_remaining") is None:
        body["credits_remaining"] = remaining


def _usage_from_headers(body: dict[str, Any], headers: httpx.Headers) -> None:
    """A body without `usage` takes its cost from X-Credits-Charged, when sent."""
    charged = _header_int(headers, "x-credits-charged")
    if charged is not None:
        body["usage"] = {"credits_charged": charged, "cost_cents": charged}


def _health(response: httpx.Response) -> dict[str, Any]:
    """The body of `GET /v1/health` (a JSON object; a bare value is kept as its status)."""
    try:
        body = response.json()
    except (ValueError, RecursionError) as exc:
        raise _unexpected_body(response, "a body that is not JSON") from exc
    return body if isinstance(body, dict) else {"status": body}


def _unexpected_body(response: httpx.Response, what: str) -> _BadResponse:
    """A success status with a body the API does not send: a captive portal, a proxy page."""
    try:
        call = f"{response.request.method} {response.request.url.path}"
    except RuntimeError:  # a response built without its request
        call = "The request"
    request_id = response.headers.get("x-coasty-request-id")
    error = _BadResponse(
        f"{call} returned {what} (HTTP {response.status_code}, "
        f"content-type {response.headers.get('content-type', 'none')!r}"
        + (f", request_id={request_id}" if request_id else "")
        + "): is a proxy or a captive portal in the way, or base_url wrong?"
    )
    error.request_id = request_id
    return error


@dataclass(frozen=True)
class _CreateKind(Generic[_Made, _Result]):
    """What one kind of keyed create posts to, what its answer holds, and the result made."""

    path: str
    noun: str
    model: type[_Made]
    finish: Callable[[_Made, str, bool], _Result]
    """(what the server answered, the key, whether it was a replay) -> the call's result."""
    again: str = "create"
    """The call that repeats this one (named in the error of a lost answer)."""

    def at(self, path: str) -> _CreateKind[_Made, _Result]:
        """The same kind of call, sent to ``path`` (a path with an id in it)."""
        return dataclasses.replace(self, path=path)


def _finish_run(run: Run, key: str, replayed: bool) -> CreateResult:
    return CreateResult(run=run, replayed=replayed, idempotency_key=key)


def _finish_machine(made: ProvisionResult, key: str, replayed: bool) -> ProvisionResult:
    return made.model_copy(update={"replayed": replayed, "idempotency_key": key})


def _finish_keyed(made: _Keyed, key: str, replayed: bool) -> _Keyed:
    return made.model_copy(update={"replayed": replayed, "idempotency_key": key})


_RUN_CREATE = _CreateKind("/v1/runs", "run", Run, _finish_run)
_MACHINE_CREATE = _CreateKind(
    "/v1/machines", "machine", ProvisionResult, _finish_machine, "machines.create"
)
_GROUND = _CreateKind("/v1/ground", "grounding", GroundResult, _finish_keyed, "ground")
_PREDICT = _CreateKind("/v1/predict", "prediction", Prediction, _finish_keyed, "predict")
_SESSION_CREATE = _CreateKind("/v1/sessions", "session", Session, _finish_keyed, "sessions.create")
_SESSION_PREDICT = _CreateKind(
    "/v1/sessions/{id}/predict",
    "session step",
    SessionPrediction,
    _finish_keyed,
    "sessions.predict",
)
_ACTION = _CreateKind(
    "/v1/machines/{id}/actions", "action", ActionResult, _finish_keyed, "machines.actions"
)
_ACTION_BATCH = _CreateKind(
    "/v1/machines/{id}/actions/batch",
    "action batch",
    BatchActionResult,
    _finish_keyed,
    "machines.actions_batch",
)


def _note_possible_create(
    error: CoastyError, key: str, noun: str = "run", again: str = "create"
) -> CoastyError:
    """Add to `error` that its create may have made a run (or machine), and how to find it."""
    error.idempotency_key = key
    note = (
        f" The {noun} may have been created: collect it with client.idempotency.get({key!r}) "
        f"(or {again} again with the same idempotency_key) once Coasty answers."
    )
    if note not in error.message:
        error.message += note
        error.args = (error.message,)
    return error


def _made_from_lookup(
    lookup: IdempotencyLookup, secrets: tuple[str, ...], kind: _CreateKind[_Made, Any]
) -> _Made:
    status = lookup.original_status or 200
    if status >= 400:
        raise make_status_error(status, lookup.result, secrets=secrets)
    if not isinstance(lookup.result, dict):
        raise _BadResponse(f"The idempotency record holds no {kind.noun}.")
    body = dict(lookup.result)
    body.setdefault("request_id", lookup.request_id)
    try:
        return kind.model.model_validate(body)
    except ValidationError as exc:
        raise _BadResponse("The idempotency record holds an unexpected body.") from exc


@dataclass(frozen=True)
class _Retry:
    """Wait this many seconds, then try again."""

    delay: float


class _RetryState:
    """The retry decisions of one request: how long to wait before the next attempt, or raise."""

    def __init__(self, client: _BaseClient[Any], method: str, path: str, resend: _Resend) -> None:
        self._client = client
        self._call = f"{method} {path}"
        self._resend = resend
        self.retries = 0

    def after_transport_error(self, exc: httpx.RequestError) -> float:
        """The delay before re-sending; raises when the request may not or need not be re-sent."""
        error = _connection_error(exc, f"{self._call} failed")
        if not (self._resend == "always" or never_reached_server(exc)) or not self._can_retry():
            raise error from exc
        return self._backoff(error)

    def after_status_error(self, response: httpx.Response) -> float:
        """The delay before re-sending after an error response; raises when it is final."""
        error = status_error_from_response(response, secrets=self._client._secrets)
        if not (error.retryable and self._resend == "always") or not self._can_retry():
            raise error
        return self._backoff(error, error.retry_after)

    def _can_retry(self) -> bool:
        return self.retries < self._client.max_retries

    def _backoff(self, error: CoastyError, retry_after: float | None = None) -> float:
        self.retries += 1
        delay = self._client._policy.delay(self.retries, retry_after)
        logger.info(
            "Retrying %s in %.2f s (retry %d of %d): %s",
            self._call,
            delay,
            self.retries,
            self._client.max_retries,
            error,
        )
        return delay


class _Recovery(Generic[_Made]):
    """A lookup by key of a create whose answer was lost, and when to poll it again."""

    def __init__(
        self, attempts: _CreateAttempts[_Made, Any], cause: CoastyError, *, final: bool
    ) -> None:
        self.key: str = attempts.key
        self.kind: _CreateKind[_Made, Any] = attempts.kind
        self.cause: CoastyError = cause
        self.final: bool = final
        """Whether the create gives up when the key is unknown (rather than re-sending)."""
        self._secrets = attempts.secrets
        self._deadline = time.monotonic() + attempts.policy.idempotency_wait
        self._polls = 0

    def raise_unless_unknown(self, exc: CoastyError) -> None:
        """A 404 means no run was created; any other failure leaves the outcome unknown."""
        if not isinstance(exc, NotFoundError):
            raise _note_possible_create(
                self.cause, self.key, self.kind.noun, self.kind.again
            ) from exc

    def after_record(self, lookup: IdempotencyLookup) -> _Made | _Retry | None:
        """What was made, a poll to make later, or None when the record stays `processing`."""
        if lookup.is_completed:
            return _made_from_lookup(lookup, self._secrets, self.kind)
        self._polls += 1
        if time.monotonic() >= self._deadline:
            return None  # a re-send with the same key attaches to the create in progress
        return _Retry(min(0.1 * 2**self._polls, 2.0))


class _CreateAttempts(_RetryState, Generic[_Made, _Result]):
    """The decisions of one logical create: re-sent only with its key, lost answers looked up."""

    @overload
    def __init__(self: _CreateAttempts[Run, CreateResult], client: _BaseClient[Any], key: str): ...
    @overload
    def __init__(
        self, client: _BaseClient[Any], key: str, kind: _CreateKind[_Made, _Result]
    ) -> None: ...
    def __init__(
        self, client: _BaseClient[Any], key: str, kind: _CreateKind[Any, Any] = _RUN_CREATE
    ) -> None:
        super().__init__(client, "POST", kind.path, "always")
        self.kind: _CreateKind[_Made, _Result] = kind
        self.key: str = key
        self.headers: dict[str, str] = client._create_headers(key)
        self.policy = client._policy
        self.secrets = client._secrets
        self.may_have_created = False
        """An earlier attempt of this call may have created the run."""

    def after_response(self, response: httpx.Response) -> _Result | _Retry | _Recovery[_Made]:
        """The result of a success (`_BadResponse` for a garbled one), or what to do next."""
        if response.is_success:
            said = response.headers.get("x-coasty-idempotent-replay", "").lower() == "true"
            made = _parse(self.kind.model, response)
            if isinstance(made, Run):
                self._client._routed(made, self.key)
            return self._result(made, replayed=said and not self.may_have_created)
        error = status_error_from_response(response, secrets=self.secrets)
        if error.status_code >= 500:
            self.may_have_created = True
        may_resend = error.retryable and error.retry_with_same_idempotency_key
        return self._next(error, may_resend, error.retry_after)

    def after_lost_answer(
        self, exc: httpx.RequestError | _BadResponse
    ) -> _Result | _Retry | _Recovery[_Made]:
        """Re-send what never reached the server; otherwise ask the server what happened."""
        if isinstance(exc, _BadResponse):
            error: CoastyError = exc
        else:
            error = _connection_error(exc, f"{self._call} failed")
            if never_reached_server(exc):
                return self._next(error, True, None)
        self.may_have_created = True
        return _Recovery(self, error, final=False)

    def after_recovery(
        self, made: _Made | None, recovery: _Recovery[_Made]
    ) -> _Result | _Retry | _Recovery[_Made]:
        """The recovered result, or, for an unknown key, a re-send (or the error when final)."""
        if made is not None:
            return self._result(made, replayed=not self.may_have_created)
        if recovery.final:
            raise _note_possible_create(recovery.cause, self.key, self.kind.noun, self.kind.again)
        return self._next(recovery.cause, True, None)

    def _next(
        self, error: CoastyError, may_resend: bool, retry_after: float | None
    ) -> _Result | _Retry | _Recovery[_Made]:
        if may_resend and self._can_retry():
            return _Retry(self._backoff(error, retry_after))
        if self.may_have_created or isinstance(error, IdempotencyInFlightError):
            return _Recovery(self, error, final=True)
        raise error

    def _result(self, made: _Made, *, replayed: bool) -> _Result:
        return self.kind.finish(made, self.key, replayed)


class _BaseClient(Generic[_Http]):
    """Configuration, headers, secrets and connection pools of either client."""

    lc_secrets: ClassVar[dict[str, str]] = {"api_key": "COASTY_API_KEY"}

    def __init__(
        self,
        api_key: str | SecretStr | None,
        base_url: str | None,
        *,
        timeout: float,
        max_retries: int,
        http_client: _Http | None,
        stream_read_timeout: float,
        max_connections: int | None,
        llm_api_key: str | SecretStr | None,
        llm_provider: str | None,
        llm_model: str | None,
        new_pool: Callable[[httpx.Limits, ssl.SSLContext], _Http],
    ) -> None:
        if api_key is None:
            api_key = os.environ.get("COASTY_API_KEY") or None
        if api_key is None:
            raise CoastyError(
                "No Coasty API key: pass api_key=... or set the COASTY_API_KEY environment "
                "variable (sk-coasty-live-... or a free sk-coasty-test-... key)."
            )
        self.api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        check_api_key(self.api_key.get_secret_value())
        self.base_url = check_base_url(
            base_url or os.environ.get("COASTY_BASE_URL") or DEFAULT_BASE_URL
        )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise invalid("max_retries", max_retries)
        check_seconds("timeout", timeout)
        check_seconds("stream_read_timeout", stream_read_timeout)
        check_max_connections(max_connections)
        self.timeout = timeout
        self.max_retries = max_retries
        self.stream_read_timeout = stream_read_timeout
        self.max_connections = max_connections
        llm_key = (
            llm_api_key.get_secret_value() if isinstance(llm_api_key, SecretStr) else llm_api_key
        )
        check_llm_headers(llm_provider, llm_key, llm_model)
        self.llm_api_key = SecretStr(llm_key) if llm_key is not None else None
        self.llm_provider = llm_provider
        self.llm_model = llm_model
        self._policy = RetryPolicy()
        self._pools: RunPools[_Http] | None = None
        if http_client is None:
            self._pools = RunPools(max_connections, self._limits(), new_pool)
            http_client = self._pools.general
        self._http: _Http = http_client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, max_retries={self.max_retries})"

    @property
    def _secrets(self) -> tuple[str, ...]:
        values = [self.api_key.get_secret_value()]
        if self.llm_api_key is not None:
            values.append(self.llm_api_key.get_secret_value())
        return tuple(values)

    def _headers(self) -> dict[str, str]:
        # Authorization (not X-API-Key) so that httpx masks the key in any header repr.
        return {
            "Authorization": f"Bearer {self.api_key.get_secret_value()}",
            "User-Agent": f"langchain-coasty/{__version__}",
            "Accept": "application/json",
        }

    def _create_headers(self, key: str) -> dict[str, str]:
        """Headers of a create: auth, the Idempotency-Key and any BYOK X-LLM-* headers."""
        llm_key = self.llm_api_key.get_secret_value() if self.llm_api_key else None
        return {
            **self._headers(),
            **check_llm_headers(self.llm_provider, llm_key, self.llm_model),
            "Idempotency-Key": key,
        }

    def _limits(self) -> httpx.Limits:
        keepalive = None if self.max_connections is None else min(self.max_connections, 100)
        return httpx.Limits(
            max_connections=self.max_connections, max_keepalive_connections=keepalive
        )

    def options(self) -> dict[str, Any]:
        """Keyword arguments that build another client configured like this one (its twin)."""
        return {
            "api_key": self.api_key,
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "stream_read_timeout": self.stream_read_timeout,
            "max_connections": self.max_connections,
            "llm_api_key": self.llm_api_key,
            "llm_provider": self.llm_provider,
            "llm_model": self.llm_model,
        }

    @property
    def is_closed(self) -> bool:
        """Whether the client's connections are closed (``close()`` was called)."""
        return bool(self._http.is_closed)

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _pool(self, route: str) -> _Http:
        """The connection pool for every request of one run (by run id or idempotency key)."""
        return self._http if self._pools is None else self._pools.for_key(route)

    def _routed(self, run: Run, key: str) -> Run:
        if self._pools is not None:
            self._pools.remember(run.id, key)
        return run
