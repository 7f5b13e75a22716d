"""`CoastyClient` and `AsyncCoastyClient`: HTTP, retries, idempotent creates, resources.

The two clients are twins: the same resources and methods, one on `httpx.Client`, the
other on `httpx.AsyncClient`. Shared request building and response parsing live in
`_BaseClient`; only the I/O loops are written twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError

from langchain_coasty._version import __version__
from langchain_coasty.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    CoastyError,
    IdempotencyInFlightError,
    NotFoundError,
    make_status_error,
    status_error_from_response,
)
from langchain_coasty.client._models import (
    CreateResult,
    IdempotencyLookup,
    MachinesPage,
    Run,
    RunsPage,
    RunStatus,
)
from langchain_coasty.client._params import (
    build_run_request,
    check_after,
    check_api_key,
    check_idempotency_key,
    check_limit,
    check_list_params,
    check_llm_headers,
    check_max_connections,
    check_note,
    check_run_id,
    check_seconds,
    invalid,
)
from langchain_coasty.client._pool import RunPools
from langchain_coasty.client._retry import RetryPolicy, never_reached_server
from langchain_coasty.client._stream import AsyncEventStream, EventStream, StreamConfig

__all__ = ["AsyncCoastyClient", "CoastyClient"]

logger = logging.getLogger("langchain_coasty.client")

DEFAULT_BASE_URL = "https://coasty.ai"
_Model = TypeVar("_Model", Run, RunsPage, MachinesPage, IdempotencyLookup)
_Resend = Literal["always", "unsent"]

# Module-level so tests can swap in a fake clock without touching the sandbox's.
_sleep = time.sleep
_asleep = asyncio.sleep


class _BadResponse(APIConnectionError):
    """A success status whose body is not what the API documents."""


def _connection_error(exc: httpx.TransportError, method: str, path: str) -> APIConnectionError:
    detail = f"{method} {path} failed: {type(exc).__name__}: {exc}"
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


def _maybe_created(error: CoastyError, key: str) -> CoastyError:
    """Say that a create whose outcome is unknown may have started a run, and how to find it."""
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


class _BaseClient:
    """Configuration, headers and secrets shared by the sync and async clients."""

    lc_secrets: ClassVar[dict[str, str]] = {"api_key": "COASTY_API_KEY"}

    def __init__(
        self,
        api_key: str | SecretStr | None,
        base_url: str | None,
        *,
        timeout: float,
        max_retries: int,
        stream_read_timeout: float,
        max_connections: int | None,
        llm_api_key: str | SecretStr | None,
        llm_provider: str | None,
        llm_model: str | None,
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

    def _stream_config(self, run_id: str) -> StreamConfig:
        return StreamConfig(
            url=self._url(f"/v1/runs/{quote(check_run_id(run_id), safe='')}/events"),
            headers=self._headers(),
            timeout=httpx.Timeout(
                connect=self.timeout,
                read=self.stream_read_timeout,
                write=self.timeout,
                pool=self.timeout,
            ),
            policy=self._policy,
            secrets=self._secrets,
            run_id=run_id,
        )

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


def _run_path(run_id: str, suffix: str = "") -> str:
    return f"/v1/runs/{quote(check_run_id(run_id), safe='')}{suffix}"


# --------------------------------------------------------------------------- sync


class CoastyClient(_BaseClient):
    """Synchronous Coasty API client (on `httpx.Client`).

    `max_connections` (default 4096, None for no limit) sizes the connections: each open
    event stream holds one, so keep it above the number of runs followed at once. Runs are
    spread over small pools (about 32 connections each, opened on first use) so that many
    concurrent streams do not slow every request down.
    `stream_read_timeout` (default 60 s) is the longest silence tolerated on an event
    stream before reconnecting; keep it well above the server's heartbeat interval (15 s).
    With your own `http_client`, its pool limits apply instead and it is not closed here.
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        http_client: httpx.Client | None = None,
        stream_read_timeout: float = 60.0,
        max_connections: int | None = 4096,
        llm_api_key: str | SecretStr | None = None,
        llm_provider: str | None = None,
        llm_model: str | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            stream_read_timeout=stream_read_timeout,
            max_connections=max_connections,
            llm_api_key=llm_api_key,
            llm_provider=llm_provider,
            llm_model=llm_model,
        )
        self._pools: RunPools[httpx.Client] | None = None
        if http_client is None:
            self._pools = RunPools(
                max_connections,
                self._limits(),
                lambda limits, ssl: httpx.Client(timeout=timeout, limits=limits, verify=ssl),
            )
            http_client = self._pools.general
        self._http = http_client
        self.runs = Runs(self)
        self.idempotency = Idempotency(self)
        self.machines = Machines(self)

    def close(self) -> None:
        """Close the connection pool (not a caller-supplied `http_client`)."""
        if self._pools is not None:
            for pool in self._pools.close_all():
                pool.close()

    def _pool(self, route: str) -> httpx.Client:
        """The connection pool for every request of one run (by run id or idempotency key)."""
        return self._http if self._pools is None else self._pools.for_key(route)

    def _routed(self, run: Run, key: str) -> Run:
        if self._pools is not None:
            self._pools.remember(run.id, key)
        return run

    def __enter__(self) -> CoastyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def health(self) -> dict[str, Any]:
        """`GET /v1/health`."""
        response = self._request("GET", "/v1/health")
        body = response.json()
        return body if isinstance(body, dict) else {"status": body}

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, Any] | None = None,
        resend: _Resend = "always",
        route: str | None = None,
    ) -> httpx.Response:
        """Send with retries; `resend="unsent"` re-sends only what never reached the server."""
        http = self._http if route is None else self._pool(route)
        retries = 0
        while True:
            try:
                response = http.request(
                    method,
                    self._url(path),
                    json=json,
                    params=params,
                    headers=self._headers(),
                    timeout=self.timeout,
                )
            except httpx.TransportError as exc:
                error: CoastyError = _connection_error(exc, method, path)
                if retries >= self.max_retries or not (
                    resend == "always" or never_reached_server(exc)
                ):
                    raise error from exc
                retries += 1
                delay = self._policy.delay(retries)
            else:
                if response.is_success:
                    return response
                status_error = status_error_from_response(response, secrets=self._secrets)
                if retries >= self.max_retries or not (
                    status_error.retryable and resend == "always"
                ):
                    raise status_error
                retries += 1
                delay = self._policy.delay(retries, status_error.retry_after)
                error = status_error
            self._log_retry(method, path, delay, retries, error)
            _sleep(delay)

    def _create(self, body: dict[str, Any], key: str) -> CreateResult:
        """One logical create: re-sent only with the same key, lost results recovered."""
        headers = self._create_headers(key)
        attempts = _CreateAttempts(self._policy, self.max_retries)
        while True:
            retry_after: float | None = None
            try:
                response = self._pool(key).post(
                    self._url("/v1/runs"), json=body, headers=headers, timeout=self.timeout
                )
                if response.is_success:
                    replayed = attempts.replayed(response)
                    return CreateResult(
                        run=self._routed(_parse(Run, response), key),
                        replayed=replayed,
                        idempotency_key=key,
                    )
            except (httpx.TransportError, _BadResponse) as exc:
                error: CoastyError = (
                    exc
                    if isinstance(exc, _BadResponse)
                    else _connection_error(exc, "POST", "/v1/runs")
                )
                if isinstance(exc, httpx.TransportError) and never_reached_server(exc):
                    may_resend = True
                else:
                    # The request was sent and the answer lost: ask the server what happened.
                    attempts.ours_may_exist = True
                    run = self._recover(key, error)
                    if run is not None:
                        return CreateResult(run=run, replayed=False, idempotency_key=key)
                    may_resend = True  # no record of the key: it never took effect
            else:
                status_error = status_error_from_response(response, secrets=self._secrets)
                may_resend = attempts.on_status_error(status_error)
                retry_after = status_error.retry_after
                error = status_error
            if not may_resend or not attempts.can_retry():
                if attempts.ours_may_exist or isinstance(error, IdempotencyInFlightError):
                    run = self._recover(key, error)
                    if run is not None:
                        return CreateResult(
                            run=run, replayed=not attempts.ours_may_exist, idempotency_key=key
                        )
                    raise _maybe_created(error, key)
                raise error
            delay = attempts.next_delay(retry_after)
            self._log_retry("POST", "/v1/runs", delay, attempts.retries, error)
            _sleep(delay)

    def _recover(self, key: str, cause: CoastyError) -> Run | None:
        """Collect a create's result by key: the Run, or None when the key is unknown."""
        deadline = time.monotonic() + self._policy.idempotency_wait
        polls = 0
        while True:
            try:
                lookup = self.idempotency.get(key)
            except NotFoundError:
                return None
            except CoastyError as exc:
                raise _maybe_created(cause, key) from exc
            if lookup.is_completed:
                return _run_from_lookup(lookup, self._secrets)
            polls += 1
            if time.monotonic() >= deadline:
                return None  # still processing: a re-send with the same key attaches to it
            _sleep(min(0.1 * 2**polls, 2.0))


class Runs:
    """`client.runs`: create, get, list, events, cancel, resume, wait."""

    def __init__(self, client: CoastyClient) -> None:
        self._client = client

    def create(
        self, *, machine_id: str, task: str, idempotency_key: str | None = None, **fields: Any
    ) -> Run:
        """Start a run (`POST /v1/runs`); retries never start a second one."""
        return self.create_with_response(
            machine_id=machine_id, task=task, idempotency_key=idempotency_key, **fields
        ).run

    def create_with_response(
        self, *, machine_id: str, task: str, idempotency_key: str | None = None, **fields: Any
    ) -> CreateResult:
        """Like `create`, also telling whether the run already existed under this key."""
        body = build_run_request({"machine_id": machine_id, "task": task, **fields})
        key = check_idempotency_key(idempotency_key)
        return self._client._create(body, key)

    def get(self, run_id: str) -> Run:
        """`GET /v1/runs/{run_id}`."""
        return _parse(Run, self._client._request("GET", _run_path(run_id), route=run_id))

    def list(self, status: RunStatus | str | None = None, limit: int = 20) -> RunsPage:
        """`GET /v1/runs`, newest first."""
        params = check_list_params(status, limit)
        return _parse(RunsPage, self._client._request("GET", "/v1/runs", params=params))

    def events(self, run_id: str, after: int = 0) -> EventStream:
        """Follow a run's events, exactly once and in order, until `done`."""
        return EventStream(
            self._client._pool(run_id),
            self._client._stream_config(run_id),
            after=check_after(after),
            sleep=_sleep,
            finished=lambda: self.get(run_id).is_terminal,
        )

    def cancel(self, run_id: str) -> Run:
        """`POST /v1/runs/{run_id}/cancel` (from queued, running or awaiting_human)."""
        path = _run_path(run_id, "/cancel")
        return _parse(Run, self._client._request("POST", path, resend="unsent", route=run_id))

    def resume(self, run_id: str, note: str | None = None) -> Run:
        """`POST /v1/runs/{run_id}/resume` from awaiting_human, with an optional note."""
        body = check_note(note)
        path = _run_path(run_id, "/resume")
        return _parse(
            Run, self._client._request("POST", path, json=body, resend="unsent", route=run_id)
        )

    def wait(self, run_id: str, timeout: float | None = None) -> Run:
        """Follow the run until it is terminal and return it; `APITimeoutError` after `timeout`."""
        check_seconds("timeout", timeout, optional=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        run = self.get(run_id)
        if run.is_terminal:
            return run
        stream = EventStream(
            self._client._pool(run_id),
            self._client._stream_config(run_id),
            deadline=deadline,
            sleep=_sleep,
        )
        with stream:
            for _event in stream:
                pass
        return self.get(run_id)


class Idempotency:
    """`client.idempotency`: collect a lost result by its Idempotency-Key."""

    def __init__(self, client: CoastyClient) -> None:
        self._client = client

    def get(self, key: str) -> IdempotencyLookup:
        """`GET /v1/idempotency/{key}`; NotFoundError for an unknown or expired key."""
        path = f"/v1/idempotency/{quote(check_idempotency_key(key), safe='')}"
        return _parse(IdempotencyLookup, self._client._request("GET", path, route=key))


class Machines:
    """`client.machines`: the machines runs can target."""

    def __init__(self, client: CoastyClient) -> None:
        self._client = client

    def list(self, limit: int = 50) -> MachinesPage:
        """`GET /v1/machines`."""
        params = {"limit": check_limit(limit)}
        response = self._client._request("GET", "/v1/machines", params=params)
        return _parse(MachinesPage, response)


# -------------------------------------------------------------------------- async


class AsyncCoastyClient(_BaseClient):
    """Asynchronous Coasty API client (on `httpx.AsyncClient`), the twin of `CoastyClient`.

    `max_connections` (default 4096, None for no limit) sizes the connections: each open
    event stream holds one, so keep it above the number of runs followed at once. Runs are
    spread over small pools (about 32 connections each, opened on first use) so that many
    concurrent streams do not slow every request down.
    `stream_read_timeout` (default 60 s) is the longest silence tolerated on an event
    stream before reconnecting; keep it well above the server's heartbeat interval (15 s).
    With your own `http_client`, its pool limits apply instead and it is not closed here.
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        http_client: httpx.AsyncClient | None = None,
        stream_read_timeout: float = 60.0,
        max_connections: int | None = 4096,
        llm_api_key: str | SecretStr | None = None,
        llm_provider: str | None = None,
        llm_model: str | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            stream_read_timeout=stream_read_timeout,
            max_connections=max_connections,
            llm_api_key=llm_api_key,
            llm_provider=llm_provider,
            llm_model=llm_model,
        )
        self._pools: RunPools[httpx.AsyncClient] | None = None
        if http_client is None:
            self._pools = RunPools(
                max_connections,
                self._limits(),
                lambda limits, ssl: httpx.AsyncClient(timeout=timeout, limits=limits, verify=ssl),
            )
            http_client = self._pools.general
        self._http = http_client
        self.runs = AsyncRuns(self)
        self.idempotency = AsyncIdempotency(self)
        self.machines = AsyncMachines(self)

    async def close(self) -> None:
        """Close the connection pool (not a caller-supplied `http_client`)."""
        if self._pools is not None:
            for pool in self._pools.close_all():
                await pool.aclose()

    def _pool(self, route: str) -> httpx.AsyncClient:
        """The connection pool for every request of one run (by run id or idempotency key)."""
        return self._http if self._pools is None else self._pools.for_key(route)

    def _routed(self, run: Run, key: str) -> Run:
        if self._pools is not None:
            self._pools.remember(run.id, key)
        return run

    async def __aenter__(self) -> AsyncCoastyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def health(self) -> dict[str, Any]:
        """`GET /v1/health`."""
        response = await self._request("GET", "/v1/health")
        body = response.json()
        return body if isinstance(body, dict) else {"status": body}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, Any] | None = None,
        resend: _Resend = "always",
        route: str | None = None,
    ) -> httpx.Response:
        """Send with retries; `resend="unsent"` re-sends only what never reached the server."""
        http = self._http if route is None else self._pool(route)
        retries = 0
        while True:
            try:
                response = await http.request(
                    method,
                    self._url(path),
                    json=json,
                    params=params,
                    headers=self._headers(),
                    timeout=self.timeout,
                )
            except httpx.TransportError as exc:
                error: CoastyError = _connection_error(exc, method, path)
                if retries >= self.max_retries or not (
                    resend == "always" or never_reached_server(exc)
                ):
                    raise error from exc
                retries += 1
                delay = self._policy.delay(retries)
            else:
                if response.is_success:
                    return response
                status_error = status_error_from_response(response, secrets=self._secrets)
                if retries >= self.max_retries or not (
                    status_error.retryable and resend == "always"
                ):
                    raise status_error
                retries += 1
                delay = self._policy.delay(retries, status_error.retry_after)
                error = status_error
            self._log_retry(method, path, delay, retries, error)
            await _asleep(delay)

    async def _create(self, body: dict[str, Any], key: str) -> CreateResult:
        """One logical create: re-sent only with the same key, lost results recovered."""
        headers = self._create_headers(key)
        attempts = _CreateAttempts(self._policy, self.max_retries)
        while True:
            retry_after: float | None = None
            try:
                response = await self._pool(key).post(
                    self._url("/v1/runs"), json=body, headers=headers, timeout=self.timeout
                )
                if response.is_success:
                    replayed = attempts.replayed(response)
                    return CreateResult(
                        run=self._routed(_parse(Run, response), key),
                        replayed=replayed,
                        idempotency_key=key,
                    )
            except (httpx.TransportError, _BadResponse) as exc:
                error: CoastyError = (
                    exc
                    if isinstance(exc, _BadResponse)
                    else _connection_error(exc, "POST", "/v1/runs")
                )
                if isinstance(exc, httpx.TransportError) and never_reached_server(exc):
                    may_resend = True
                else:
                    attempts.ours_may_exist = True
                    run = await self._recover(key, error)
                    if run is not None:
                        return CreateResult(run=run, replayed=False, idempotency_key=key)
                    may_resend = True
            else:
                status_error = status_error_from_response(response, secrets=self._secrets)
                may_resend = attempts.on_status_error(status_error)
                retry_after = status_error.retry_after
                error = status_error
            if not may_resend or not attempts.can_retry():
                if attempts.ours_may_exist or isinstance(error, IdempotencyInFlightError):
                    run = await self._recover(key, error)
                    if run is not None:
                        return CreateResult(
                            run=run, replayed=not attempts.ours_may_exist, idempotency_key=key
                        )
                    raise _maybe_created(error, key)
                raise error
            delay = attempts.next_delay(retry_after)
            self._log_retry("POST", "/v1/runs", delay, attempts.retries, error)
            await _asleep(delay)

    async def _recover(self, key: str, cause: CoastyError) -> Run | None:
        """Collect a create's result by key: the Run, or None when the key is unknown."""
        deadline = time.monotonic() + self._policy.idempotency_wait
        polls = 0
        while True:
            try:
                lookup = await self.idempotency.get(key)
            except NotFoundError:
                return None
            except CoastyError as exc:
                raise _maybe_created(cause, key) from exc
            if lookup.is_completed:
                return _run_from_lookup(lookup, self._secrets)
            polls += 1
            if time.monotonic() >= deadline:
                return None
            await _asleep(min(0.1 * 2**polls, 2.0))


class AsyncRuns:
    """`client.runs` of the async client."""

    def __init__(self, client: AsyncCoastyClient) -> None:
        self._client = client

    async def create(
        self, *, machine_id: str, task: str, idempotency_key: str | None = None, **fields: Any
    ) -> Run:
        """Start a run (`POST /v1/runs`); retries never start a second one."""
        result = await self.create_with_response(
            machine_id=machine_id, task=task, idempotency_key=idempotency_key, **fields
        )
        return result.run

    async def create_with_response(
        self, *, machine_id: str, task: str, idempotency_key: str | None = None, **fields: Any
    ) -> CreateResult:
        """Like `create`, also telling whether the run already existed under this key."""
        body = build_run_request({"machine_id": machine_id, "task": task, **fields})
        key = check_idempotency_key(idempotency_key)
        return await self._client._create(body, key)

    async def get(self, run_id: str) -> Run:
        """`GET /v1/runs/{run_id}`."""
        return _parse(Run, await self._client._request("GET", _run_path(run_id), route=run_id))

    async def list(self, status: RunStatus | str | None = None, limit: int = 20) -> RunsPage:
        """`GET /v1/runs`, newest first."""
        params = check_list_params(status, limit)
        return _parse(RunsPage, await self._client._request("GET", "/v1/runs", params=params))

    def events(self, run_id: str, after: int = 0) -> AsyncEventStream:
        """Follow a run's events, exactly once and in order, until `done`."""

        async def finished() -> bool:
            return (await self.get(run_id)).is_terminal

        return AsyncEventStream(
            self._client._pool(run_id),
            self._client._stream_config(run_id),
            after=check_after(after),
            sleep=_asleep,
            finished=finished,
        )

    async def cancel(self, run_id: str) -> Run:
        """`POST /v1/runs/{run_id}/cancel` (from queued, running or awaiting_human)."""
        path = _run_path(run_id, "/cancel")
        return _parse(Run, await self._client._request("POST", path, resend="unsent", route=run_id))

    async def resume(self, run_id: str, note: str | None = None) -> Run:
        """`POST /v1/runs/{run_id}/resume` from awaiting_human, with an optional note."""
        body = check_note(note)
        path = _run_path(run_id, "/resume")
        return _parse(
            Run, await self._client._request("POST", path, json=body, resend="unsent", route=run_id)
        )

    async def wait(self, run_id: str, timeout: float | None = None) -> Run:  # noqa: ASYNC109
        """Follow the run until it is terminal and return it; `APITimeoutError` after `timeout`."""
        check_seconds("timeout", timeout, optional=True)
        try:
            async with asyncio.timeout(timeout):
                run = await self.get(run_id)
                if run.is_terminal:
                    return run
                async with self.events(run_id) as stream:
                    async for _event in stream:
                        pass
                return await self.get(run_id)
        except TimeoutError:
            raise APITimeoutError(f"Run {run_id} did not finish within {timeout} s.") from None


class AsyncIdempotency:
    """`client.idempotency` of the async client."""

    def __init__(self, client: AsyncCoastyClient) -> None:
        self._client = client

    async def get(self, key: str) -> IdempotencyLookup:
        """`GET /v1/idempotency/{key}`; NotFoundError for an unknown or expired key."""
        path = f"/v1/idempotency/{quote(check_idempotency_key(key), safe='')}"
        return _parse(IdempotencyLookup, await self._client._request("GET", path, route=key))


class AsyncMachines:
    """`client.machines` of the async client."""

    def __init__(self, client: AsyncCoastyClient) -> None:
        self._client = client

    async def list(self, limit: int = 50) -> MachinesPage:
        """`GET /v1/machines`."""
        params = {"limit": check_limit(limit)}
        response = await self._client._request("GET", "/v1/machines", params=params)
        return _parse(MachinesPage, response)
