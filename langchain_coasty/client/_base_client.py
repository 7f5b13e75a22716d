"""What the sync and async clients share: configuration, headers, parsing, retry decisions.

`_BaseClient` holds the configuration and the connection pools; the helpers around it parse
responses, build the one connection error of the package and note a create whose outcome is
unknown. `_sleep` / `_asleep` are read at call time, so tests can swap in a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Callable
from typing import ClassVar, Generic, Literal, TypeVar

import httpx
from pydantic import SecretStr, ValidationError

from langchain_coasty._version import __version__
from langchain_coasty.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    CoastyError,
    make_status_error,
)
from langchain_coasty.client._models import IdempotencyLookup, MachinesPage, Run, RunsPage
from langchain_coasty.client._params import (
    check_api_key,
    check_llm_headers,
    check_max_connections,
    check_seconds,
    invalid,
)
from langchain_coasty.client._pool import RunPools, _Http
from langchain_coasty.client._retry import RetryPolicy

__all__ = ["DEFAULT_BASE_URL"]

logger = logging.getLogger("langchain_coasty.client")

DEFAULT_BASE_URL = "https://coasty.ai"
_Model = TypeVar("_Model", Run, RunsPage, MachinesPage, IdempotencyLookup)
_Resend = Literal["always", "unsent"]

_sleep = time.sleep
_asleep = asyncio.sleep


class _BadResponse(APIConnectionError):
    """A success status whose body is not what the API documents."""


def _connection_error(exc: httpx.TransportError, what: str) -> APIConnectionError:
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
        return model.model_validate(body)
    except (ValueError, ValidationError) as exc:
        raise _BadResponse(
            f"Coasty returned an unexpected {model.__name__} body "
            f"(HTTP {response.status_code}, request_id="
            f"{response.headers.get('x-coasty-request-id', 'unknown')})."
        ) from exc


def _note_possible_create(error: CoastyError, key: str) -> CoastyError:
    """Add to `error` that its create may have started a run, and how to find it."""
    error.idempotency_key = key
    note = (
        f" The run may have been created: collect it with client.idempotency.get({key!r}) "
        "(or create again with the same idempotency_key) once Coasty answers."
    )
    if note not in error.message:
        error.message += note
        error.args = (error.message,)
    return error


def _run_from_lookup(lookup: IdempotencyLookup, secrets: tuple[str, ...]) -> Run:
    status = lookup.original_status or 200
    if status >= 400:
        raise make_status_error(status, lookup.result, secrets=secrets)
    if not isinstance(lookup.result, dict):
        raise _BadResponse("The idempotency record holds no run.")
    body = dict(lookup.result)
    body.setdefault("request_id", lookup.request_id)
    try:
        return Run.model_validate(body)
    except ValidationError as exc:
        raise _BadResponse("The idempotency record holds an unexpected body.") from exc


class _CreateAttempts:
    """Bookkeeping of one logical create across its attempts."""

    def __init__(self, policy: RetryPolicy, max_retries: int) -> None:
        self.policy = policy
        self.max_retries = max_retries
        self.retries = 0
        self.ours_may_exist = False
        """An earlier attempt of this call may have created the run."""

    def replayed(self, response: httpx.Response) -> bool:
        said = response.headers.get("x-coasty-idempotent-replay", "").lower() == "true"
        return said and not self.ours_may_exist

    def on_status_error(self, error: APIStatusError) -> bool:
        """Whether the POST may be re-sent after this error response."""
        if error.status_code >= 500:
            self.ours_may_exist = True
        return error.retryable and error.retry_with_same_idempotency_key

    def can_retry(self) -> bool:
        return self.retries < self.max_retries

    def next_delay(self, retry_after: float | None) -> float:
        self.retries += 1
        return self.policy.delay(self.retries, retry_after)


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
        self.base_url = (base_url or os.environ.get("COASTY_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
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

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _pool(self, route: str) -> _Http:
        """The connection pool for every request of one run (by run id or idempotency key)."""
        return self._http if self._pools is None else self._pools.for_key(route)

    def _routed(self, run: Run, key: str) -> Run:
        if self._pools is not None:
            self._pools.remember(run.id, key)
        return run

    def _log_retry(self, method: str, path: str, delay: float, retry: int, why: object) -> None:
        logger.info(
            "Retrying %s %s in %.2f s (retry %d of %d): %s",
            method,
            path,
            delay,
            retry,
            self.max_retries,
            why,
        )
