"""The resources of a client: `runs` and `idempotency`, sync and async side by side.

(`machines` and `billing` are in `_machines`.)

A resource checks its parameters, calls its client's request loop and parses the answer; it
holds no state but the client it belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx

from langchain_coasty.client import _base_client
from langchain_coasty.client._base_client import _parse
from langchain_coasty.client._deadline import bounded
from langchain_coasty.client._errors import APITimeoutError
from langchain_coasty.client._models import (
    CreateResult,
    IdempotencyLookup,
    Run,
    RunsPage,
    RunStatus,
)
from langchain_coasty.client._params import (
    RunRequest,
    check_after,
    check_idempotency_key,
    check_list_params,
    check_note,
    check_run_id,
    check_seconds,
    run_request,
    run_request_body,
)
from langchain_coasty.client._stream import AsyncEventStream, EventStream, StreamConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

    from langchain_coasty.client._base_client import _CreateKind, _Made, _Resend, _Result
    from langchain_coasty.client._machine_models import ProvisionResult
    from langchain_coasty.client._retry import RetryPolicy


class _ClientCore(Protocol):
    """What every resource reads from its client (both twins have it)."""

    timeout: float
    stream_read_timeout: float
    _policy: RetryPolicy

    @property
    def _secrets(self) -> tuple[str, ...]: ...
    def _url(self, path: str) -> str: ...
    def _headers(self) -> dict[str, str]: ...


class _SyncClient(_ClientCore, Protocol):
    """The sync client's I/O loops, as its resources call them."""

    def _pool(self, route: str) -> httpx.Client: ...
    def _create(self, body: dict[str, Any], key: str) -> CreateResult: ...
    def _provision(self, body: dict[str, Any], key: str) -> ProvisionResult: ...
    def _keyed_create(
        self, body: dict[str, Any], key: str, kind: _CreateKind[_Made, _Result]
    ) -> _Result: ...
    def _request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, Any] | None = None,
        resend: _Resend = "always",
        route: str | None = None,
    ) -> httpx.Response: ...


class _AsyncClient(_ClientCore, Protocol):
    """The async client's I/O loops, as its resources call them."""

    def _pool(self, route: str) -> httpx.AsyncClient: ...
    async def _create(self, body: dict[str, Any], key: str) -> CreateResult: ...
    async def _provision(self, body: dict[str, Any], key: str) -> ProvisionResult: ...
    async def _keyed_create(
        self, body: dict[str, Any], key: str, kind: _CreateKind[_Made, _Result]
    ) -> _Result: ...
    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, Any] | None = None,
        resend: _Resend = "always",
        route: str | None = None,
    ) -> httpx.Response: ...


__all__ = ["AsyncIdempotency", "AsyncRuns", "Idempotency", "Runs"]


def _run_path(run_id: str, suffix: str = "") -> str:
    return f"/v1/runs/{quote(check_run_id(run_id), safe='')}{suffix}"


def _stream_config(client: _ClientCore, run_id: str) -> StreamConfig:
    return StreamConfig(
        url=client._url(_run_path(run_id, "/events")),
        headers=client._headers(),
        timeout=httpx.Timeout(
            connect=client.timeout,
            read=client.stream_read_timeout,
            write=client.timeout,
            pool=client.timeout,
        ),
        policy=client._policy,
        secrets=client._secrets,
        run_id=run_id,
    )


class _Wait:
    """The deadline of one `runs.wait` call and the error both twins raise when it passes."""

    def __init__(self, run_id: str, timeout: float | None) -> None:
        check_seconds("timeout", timeout, optional=True)
        self.run_id = run_id
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def timed_out(self, last_seq: int) -> APITimeoutError:
        error = APITimeoutError(
            f"Run {self.run_id} did not finish within {self.timeout} s (last event seq "
            f"{last_seq}); the run goes on: wait for it again, or cancel it."
        )
        error.run_id = self.run_id
        return error


# --------------------------------------------------------------------------- sync


class Runs:
    """`client.runs`: create, get, list, events, cancel, resume, wait."""

    def __init__(self, client: _SyncClient) -> None:
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
        request = run_request({"machine_id": machine_id, "task": task, **fields})
        return self.create_request(request, idempotency_key=idempotency_key)

    def create_request(
        self, request: RunRequest, *, idempotency_key: str | None = None
    ) -> CreateResult:
        """Like `create_with_response`, for a `RunRequest` from `run_request` (not re-validated)."""
        body = run_request_body(request)
        return self._client._create(body, check_idempotency_key(idempotency_key))

    def get(self, run_id: str) -> Run:
        """`GET /v1/runs/{run_id}`."""
        return _parse(Run, self._client._request("GET", _run_path(run_id), route=run_id))

    def list(self, status: RunStatus | str | None = None, limit: int = 20) -> RunsPage:
        """`GET /v1/runs`, newest first."""
        params = check_list_params(status, limit)
        return _parse(RunsPage, self._client._request("GET", "/v1/runs", params=params))

    def events(
        self, run_id: str, after: int = 0, *, idle_timeout: float | None = None
    ) -> EventStream:
        """Follow a run's events, exactly once and in order, until `done`.

        With `idle_timeout`, `IdleTimeoutError` when no event comes for that many seconds.
        """
        check_seconds("idle_timeout", idle_timeout, optional=True)
        return self._stream(run_id, after=after, idle_timeout=idle_timeout)

    def _stream(
        self,
        run_id: str,
        *,
        after: int = 0,
        deadline: float | None = None,
        idle_timeout: float | None = None,
    ) -> EventStream:
        """The stream of `events` and `wait`, which also gives it a deadline."""
        config = _stream_config(self._client, run_id)  # checks run_id before a pool hashes it
        return EventStream(
            self._client._pool(run_id),
            config,
            after=check_after(after),
            deadline=deadline,
            idle_timeout=idle_timeout,
            sleep=_base_client._sleep,
            run_status=lambda: self.get(run_id).status,
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
        wait = _Wait(run_id, timeout)
        stream: EventStream | None = None
        try:
            # The deadline caps every socket read of the gets and the stream inside it.
            with contextlib.ExitStack() as bound:
                if wait.deadline is not None and timeout is not None:
                    bound.enter_context(bounded(wait.deadline, timeout))
                run = self.get(run_id)
                if run.is_terminal:
                    return run
                with self._stream(run_id, deadline=wait.deadline) as stream:
                    for _event in stream:
                        pass
                return self.get(run_id)
        except APITimeoutError:
            if not wait.expired():
                raise
            raise wait.timed_out(0 if stream is None else stream.last_seq) from None


class Idempotency:
    """`client.idempotency`: collect a lost result by its Idempotency-Key."""

    def __init__(self, client: _SyncClient) -> None:
        self._client = client

    def get(self, key: str) -> IdempotencyLookup:
        """`GET /v1/idempotency/{key}`; NotFoundError for an unknown or expired key."""
        path = f"/v1/idempotency/{quote(check_idempotency_key(key), safe='')}"
        return _parse(IdempotencyLookup, self._client._request("GET", path, route=key))


# -------------------------------------------------------------------------- async


class AsyncRuns:
    """`client.runs` of the async client."""

    def __init__(self, client: _AsyncClient) -> None:
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
        request = run_request({"machine_id": machine_id, "task": task, **fields})
        return await self.create_request(request, idempotency_key=idempotency_key)

    async def create_request(
        self, request: RunRequest, *, idempotency_key: str | None = None
    ) -> CreateResult:
        """Like `create_with_response`, for a `RunRequest` from `run_request` (not re-validated)."""
        body = run_request_body(request)
        return await self._client._create(body, check_idempotency_key(idempotency_key))

    async def get(self, run_id: str) -> Run:
        """`GET /v1/runs/{run_id}`."""
        return _parse(Run, await self._client._request("GET", _run_path(run_id), route=run_id))

    async def list(self, status: RunStatus | str | None = None, limit: int = 20) -> RunsPage:
        """`GET /v1/runs`, newest first."""
        params = check_list_params(status, limit)
        return _parse(RunsPage, await self._client._request("GET", "/v1/runs", params=params))

    def events(
        self, run_id: str, after: int = 0, *, idle_timeout: float | None = None
    ) -> AsyncEventStream:
        """Follow a run's events, exactly once and in order, until `done` (see `Runs.events`)."""
        check_seconds("idle_timeout", idle_timeout, optional=True)
        return self._stream(run_id, after=after, idle_timeout=idle_timeout)

    def _stream(
        self,
        run_id: str,
        *,
        after: int = 0,
        deadline: float | None = None,
        idle_timeout: float | None = None,
    ) -> AsyncEventStream:
        """The stream of `events` and `wait`, which also gives it a deadline."""
        config = _stream_config(self._client, run_id)  # checks run_id before a pool hashes it

        async def run_status() -> str:
            return (await self.get(run_id)).status

        return AsyncEventStream(
            self._client._pool(run_id),
            config,
            after=check_after(after),
            deadline=deadline,
            idle_timeout=idle_timeout,
            sleep=_base_client._asleep,
            run_status=run_status,
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
        wait = _Wait(run_id, timeout)
        stream: AsyncEventStream | None = None
        try:
            async with asyncio.timeout(timeout):
                run = await self.get(run_id)
                if run.is_terminal:
                    return run
                async with self._stream(run_id, deadline=wait.deadline) as stream:
                    async for _event in stream:
                        pass
                return await self.get(run_id)
        except (TimeoutError, APITimeoutError) as exc:
            if isinstance(exc, APITimeoutError) and not wait.expired():
                raise
            raise wait.timed_out(0 if stream is None else stream.last_seq) from None


class AsyncIdempotency:
    """`client.idempotency` of the async client."""

    def __init__(self, client: _AsyncClient) -> None:
        self._client = client

    async def get(self, key: str) -> IdempotencyLookup:
        """`GET /v1/idempotency/{key}`; NotFoundError for an unknown or expired key."""
        path = f"/v1/idempotency/{quote(check_idempotency_key(key), safe='')}"
        return _parse(IdempotencyLookup, await self._client._request("GET", path, route=key))
