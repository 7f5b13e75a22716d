"""`CoastyClient` and `AsyncCoastyClient`: construction, closing and the I/O loops.

The two clients are twins: the same resources and methods, one on `httpx.Client`, the
other on `httpx.AsyncClient`. Configuration and the retry decisions live in
`_base_client`, the resources in `_resources`; only the loops that send are written twice.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from langchain_coasty.client import _base_client
from langchain_coasty.client._base_client import (
    _GROUND,
    _MACHINE_CREATE,
    _PREDICT,
    _RUN_CREATE,
    _BadResponse,
    _BaseClient,
    _CreateAttempts,
    _CreateKind,
    _health,
    _Made,
    _parse,
    _Recovery,
    _Resend,
    _Result,
    _Retry,
    _RetryState,
)
from langchain_coasty.client._cua import AsyncSessions, Sessions
from langchain_coasty.client._cua_models import GroundResult, Prediction
from langchain_coasty.client._cua_params import ScreenshotInput, ground_body, predict_body
from langchain_coasty.client._deadline import new_client, overdue, send_within
from langchain_coasty.client._errors import CoastyError
from langchain_coasty.client._machine_models import ProvisionResult
from langchain_coasty.client._machines import AsyncBilling, AsyncMachines, Billing, Machines
from langchain_coasty.client._models import CreateResult, ModelsResponse
from langchain_coasty.client._params import LlmConfig, check_idempotency_key
from langchain_coasty.client._resources import AsyncIdempotency, AsyncRuns, Idempotency, Runs

__all__ = ["AsyncCoastyClient", "CoastyClient"]


class CoastyClient(_BaseClient[httpx.Client]):
    """Synchronous Coasty API client (on `httpx.Client`).

    `max_connections` (default 4096, None for no limit) sizes the connections: each open
    event stream holds one, so keep it above the number of runs followed at once. Runs are
    spread over small pools (about 32 connections each, opened on first use) so that many
    concurrent streams do not slow every request down.
    `timeout` (default 30 s) is the longest one attempt of a request may take, from sending
    it to having the whole response; retries get a fresh one.
    `stream_read_timeout` (default 60 s) is the longest silence tolerated on an event
    stream before reconnecting; keep it well above the server's heartbeat interval (15 s).
    With your own `http_client`, its pool limits apply instead and it is not closed here
    (`timeout` then bounds the response body's reads; its headers are bounded per read).
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
            new_pool=lambda limits, ssl: new_client(timeout, limits, ssl),
        )
        self.runs = Runs(self)
        self.idempotency = Idempotency(self)
        self.machines = Machines(self)
        self.billing = Billing(self)
        self.sessions = Sessions(self)

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
        return _health(response)

    def models(self) -> ModelsResponse:
        """`GET /v1/models`: the models, CUA versions and action types this key may use."""
        return _parse(ModelsResponse, self._request("GET", "/v1/models"))

    def ground(
        self,
        screenshot: ScreenshotInput,
        element: str,
        *,
        screen_width: int | None = None,
        screen_height: int | None = None,
        idempotency_key: str | None = None,
    ) -> GroundResult:
        """Where a described element is on a screenshot (`POST /v1/ground`, ~3 credits)."""
        body = ground_body(
            screenshot, element, screen_width=screen_width, screen_height=screen_height
        )
        return self._keyed_create(body, check_idempotency_key(idempotency_key), _GROUND)

    def predict(
        self,
        screenshot: ScreenshotInput,
        instruction: str,
        *,
        cua_version: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        instructions: str | None = None,
        screen_width: int | None = None,
        screen_height: int | None = None,
        trajectory: Sequence[Mapping[str, Any]] | None = None,
        max_actions: int | None = None,
        tools: Sequence[str] | None = None,
        include_reasoning: bool | None = None,
        include_raw_code: bool | None = None,
        llm: LlmConfig | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Prediction:
        """The next actions for a screenshot and an instruction (`POST /v1/predict`, stateless)."""
        body = predict_body(
            screenshot,
            instruction,
            cua_version=cua_version,
            model=model,
            system_prompt=system_prompt,
            instructions=instructions,
            screen_width=screen_width,
            screen_height=screen_height,
            trajectory=trajectory,
            max_actions=max_actions,
            tools=None if tools is None else list(tools),
            include_reasoning=include_reasoning,
            include_raw_code=include_raw_code,
            llm=llm,
        )
        return self._keyed_create(body, check_idempotency_key(idempotency_key), _PREDICT)

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
        retry = _RetryState(self, method, path, resend)
        while True:
            try:
                response = send_within(
                    http,
                    self.timeout,
                    method,
                    self._url(path),
                    json=json,
                    params=params,
                    headers=self._headers(),
                )
            except httpx.RequestError as exc:  # a transport failure or an undecodable body
                delay = retry.after_transport_error(exc)
            else:
                if response.is_success:
                    return response
                delay = retry.after_status_error(response)
            _base_client._sleep(delay)

    def _create(self, body: dict[str, Any], key: str) -> CreateResult:
        """One logical run create: re-sent only with the same key, lost results recovered."""
        return self._keyed_create(body, key, _RUN_CREATE)

    def _provision(self, body: dict[str, Any], key: str) -> ProvisionResult:
        """One logical machine create, with the same guarantees as `_create`."""
        return self._keyed_create(body, key, _MACHINE_CREATE)

    def _keyed_create(
        self, body: dict[str, Any], key: str, kind: _CreateKind[_Made, _Result]
    ) -> _Result:
        """The loop of one keyed create (a run or a machine), its decisions in `_CreateAttempts`."""
        attempts = _CreateAttempts(self, key, kind)
        while True:
            step: _Result | _Retry | _Recovery[_Made]
            try:
                response = self._pool(key).post(
                    self._url(kind.path), json=body, headers=attempts.headers, timeout=self.timeout
                )
                step = attempts.after_response(_base_client._unlink(response))
            except (httpx.RequestError, _BadResponse) as exc:
                step = attempts.after_lost_answer(exc)
            while isinstance(step, _Recovery):
                step = attempts.after_recovery(self._recover(step), step)
            if not isinstance(step, _Retry):
                return step
            _base_client._sleep(step.delay)

    def _recover(self, recovery: _Recovery[_Made]) -> _Made | None:
        """Collect a lost create's result by key: what was made, or None when nothing (yet)."""
        while True:
            try:
                lookup = self.idempotency.get(recovery.key)
            except CoastyError as exc:
                recovery.raise_unless_unknown(exc)
                return None
            step = recovery.after_record(lookup)
            if not isinstance(step, _Retry):
                return step
            _base_client._sleep(step.delay)


class AsyncCoastyClient(_BaseClient[httpx.AsyncClient]):
    """Asynchronous Coasty API client (on `httpx.AsyncClient`), the twin of `CoastyClient`.

    It takes the same options and has the same resources; its calls are awaited.
    `http_backend="aiohttp"` (the `[aiohttp]` extra) sends through aiohttp's connection pool
    (`httpx-aiohttp`'s transport) instead of httpcore's, for many concurrent streams.
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
        http_backend: Literal["httpx", "aiohttp"] = "httpx",
    ) -> None:
        if http_backend not in ("httpx", "aiohttp"):
            raise ValueError(f"http_backend must be 'httpx' or 'aiohttp', not {http_backend!r}")
        new_pool = _aiohttp_pool(timeout) if http_backend == "aiohttp" else None
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
            new_pool=new_pool
            or (lambda limits, ssl: httpx.AsyncClient(timeout=timeout, limits=limits, verify=ssl)),
        )
        self.http_backend = http_backend
        self.runs = AsyncRuns(self)
        self.idempotency = AsyncIdempotency(self)
        self.machines = AsyncMachines(self)
        self.billing = AsyncBilling(self)
        self.sessions = AsyncSessions(self)

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
        return _health(response)

    async def models(self) -> ModelsResponse:
        """`GET /v1/models`: the models, CUA versions and action types this key may use."""
        return _parse(ModelsResponse, await self._request("GET", "/v1/models"))

    async def ground(
        self,
        screenshot: ScreenshotInput,
        element: str,
        *,
        screen_width: int | None = None,
        screen_height: int | None = None,
        idempotency_key: str | None = None,
    ) -> GroundResult:
        """Where a described element is on a screenshot (`POST /v1/ground`, ~3 credits)."""
        body = ground_body(
            screenshot, element, screen_width=screen_width, screen_height=screen_height
        )
        return await self._keyed_create(body, check_idempotency_key(idempotency_key), _GROUND)

    async def predict(
        self,
        screenshot: ScreenshotInput,
        instruction: str,
        *,
        cua_version: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        instructions: str | None = None,
        screen_width: int | None = None,
        screen_height: int | None = None,
        trajectory: Sequence[Mapping[str, Any]] | None = None,
        max_actions: int | None = None,
        tools: Sequence[str] | None = None,
        include_reasoning: bool | None = None,
        include_raw_code: bool | None = None,
        llm: LlmConfig | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Prediction:
        """The next actions for a screenshot and an instruction (`POST /v1/predict`, stateless)."""
        body = predict_body(
            screenshot,
            instruction,
            cua_version=cua_version,
            model=model,
            system_prompt=system_prompt,
            instructions=instructions,
            screen_width=screen_width,
            screen_height=screen_height,
            trajectory=trajectory,
            max_actions=max_actions,
            tools=None if tools is None else list(tools),
            include_reasoning=include_reasoning,
            include_raw_code=include_raw_code,
            llm=llm,
        )
        return await self._keyed_create(body, check_idempotency_key(idempotency_key), _PREDICT)

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
        retry = _RetryState(self, method, path, resend)
        while True:
            try:
                async with asyncio.timeout(self.timeout):  # the whole attempt, not each read
                    response = await http.request(
                        method,
                        self._url(path),
                        json=json,
                        params=params,
                        headers=self._headers(),
                        timeout=self.timeout,
                    )
            except TimeoutError:
                delay = retry.after_transport_error(overdue(self.timeout))
            except httpx.RequestError as exc:  # a transport failure or an undecodable body
                delay = retry.after_transport_error(exc)
            else:
                _base_client._unlink(response)
                if response.is_success:
                    return response
                delay = retry.after_status_error(response)
            await _base_client._asleep(delay)

    async def _create(self, body: dict[str, Any], key: str) -> CreateResult:
        """One logical run create: re-sent only with the same key, lost results recovered."""
        return await self._keyed_create(body, key, _RUN_CREATE)

    async def _provision(self, body: dict[str, Any], key: str) -> ProvisionResult:
        """One logical machine create, with the same guarantees as `_create`."""
        return await self._keyed_create(body, key, _MACHINE_CREATE)

    async def _keyed_create(
        self, body: dict[str, Any], key: str, kind: _CreateKind[_Made, _Result]
    ) -> _Result:
        """The loop of one keyed create (a run or a machine), its decisions in `_CreateAttempts`."""
        attempts = _CreateAttempts(self, key, kind)
        while True:
            step: _Result | _Retry | _Recovery[_Made]
            try:
                response = await self._pool(key).post(
                    self._url(kind.path), json=body, headers=attempts.headers, timeout=self.timeout
                )
                step = attempts.after_response(_base_client._unlink(response))
            except (httpx.RequestError, _BadResponse) as exc:
                step = attempts.after_lost_answer(exc)
            while isinstance(step, _Recovery):
                step = attempts.after_recovery(await self._recover(step), step)
            if not isinstance(step, _Retry):
                return step
            await _base_client._asleep(step.delay)

    async def _recover(self, recovery: _Recovery[_Made]) -> _Made | None:
        """Collect a lost create's result by key: what was made, or None when nothing (yet)."""
        while True:
            try:
                lookup = await self.idempotency.get(recovery.key)
            except CoastyError as exc:
                recovery.raise_unless_unknown(exc)
                return None
            step = recovery.after_record(lookup)
            if not isinstance(step, _Retry):
                return step
            await _base_client._asleep(step.delay)


def _aiohttp_pool(timeout: float) -> Callable[[httpx.Limits, ssl.SSLContext], httpx.AsyncClient]:
    """Pools on aiohttp's transport (the `[aiohttp]` extra), checked when the client is built."""
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError as exc:
        raise ImportError(
            'http_backend="aiohttp" needs the aiohttp extra: '
            'pip install "langchain-coasty[aiohttp]"'
        ) from exc

    def new_pool(limits: httpx.Limits, verify: ssl.SSLContext) -> httpx.AsyncClient:
        transport = AiohttpTransport(limits=limits, verify=verify)
        return httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)

    return new_pool
