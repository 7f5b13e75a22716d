"""`CoastyClient` and `AsyncCoastyClient`: construction, closing and the I/O loops.

The two clients are twins: the same resources and methods, one on `httpx.Client`, the
other on `httpx.AsyncClient`. Configuration and the retry decisions live in
`_base_client`, the resources in `_resources`; only the loops that send are written twice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx
from pydantic import SecretStr

from langchain_coasty.client import _base_client
from langchain_coasty.client._base_client import (
    _BadResponse,
    _BaseClient,
    _connection_error,
    _CreateAttempts,
    _note_possible_create,
    _parse,
    _Resend,
    _run_from_lookup,
)
from langchain_coasty.client._errors import (
    CoastyError,
    IdempotencyInFlightError,
    NotFoundError,
    status_error_from_response,
)
from langchain_coasty.client._models import CreateResult, Run
from langchain_coasty.client._resources import (
    AsyncIdempotency,
    AsyncMachines,
    AsyncRuns,
    Idempotency,
    Machines,
    Runs,
)
from langchain_coasty.client._retry import never_reached_server

__all__ = ["AsyncCoastyClient", "CoastyClient"]


class CoastyClient(_BaseClient[httpx.Client]):
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
            http_client=http_client,
            stream_read_timeout=stream_read_timeout,
            max_connections=max_connections,
            llm_api_key=llm_api_key,
            llm_provider=llm_provider,
            llm_model=llm_model,
            new_pool=lambda limits, ssl: httpx.Client(timeout=timeout, limits=limits, verify=ssl),
        )
        self.runs = Runs(self)
        self.idempotency = Idempotency(self)
        self.machines = Machines(self)

    def close(self) -> None:
        """Close the connection pools (not a caller-supplied `http_client`)."""
        if self._pools is not None:
            for pool in self._pools.close_all():
                pool.close()

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
                error: CoastyError = _connection_error(exc, f"{method} {path} failed")
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
            _base_client._sleep(delay)

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
                    else _connection_error(exc, "POST /v1/runs failed")
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
                    raise _note_possible_create(error, key)
                raise error
            delay = attempts.next_delay(retry_after)
            self._log_retry("POST", "/v1/runs", delay, attempts.retries, error)
            _base_client._sleep(delay)

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
                raise _note_possible_create(cause, key) from exc
            if lookup.is_completed:
                return _run_from_lookup(lookup, self._secrets)
            polls += 1
            if time.monotonic() >= deadline:
                return None  # still processing: a re-send with the same key attaches to it
            _base_client._sleep(min(0.1 * 2**polls, 2.0))


class AsyncCoastyClient(_BaseClient[httpx.AsyncClient]):
    """Asynchronous Coasty API client (on `httpx.AsyncClient`), the twin of `CoastyClient`.

    It takes the same options and has the same resources; its calls are awaited.
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
            http_client=http_client,
            stream_read_timeout=stream_read_timeout,
            max_connections=max_connections,
            llm_api_key=llm_api_key,
            llm_provider=llm_provider,
            llm_model=llm_model,
            new_pool=lambda limits, ssl: httpx.AsyncClient(
                timeout=timeout, limits=limits, verify=ssl
            ),
        )
        self.runs = AsyncRuns(self)
        self.idempotency = AsyncIdempotency(self)
        self.machines = AsyncMachines(self)

    async def close(self) -> None:
        """Close the connection pools (not a caller-supplied `http_client`)."""
        if self._pools is not None:
            for pool in self._pools.close_all():
                await pool.aclose()

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
                error: CoastyError = _connection_error(exc, f"{method} {path} failed")
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
            await _base_client._asleep(delay)

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
                    else _connection_error(exc, "POST /v1/runs failed")
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
                    raise _note_possible_create(error, key)
                raise error
            delay = attempts.next_delay(retry_after)
            self._log_retry("POST", "/v1/runs", delay, attempts.retries, error)
            await _base_client._asleep(delay)

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
                raise _note_possible_create(cause, key) from exc
            if lookup.is_completed:
                return _run_from_lookup(lookup, self._secrets)
            polls += 1
            if time.monotonic() >= deadline:
                return None
            await _base_client._asleep(min(0.1 * 2**polls, 2.0))
