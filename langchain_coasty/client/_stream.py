"""The resumable, exactly-once, in-order run event stream (sync and async twins).

The reconnect and deadline bookkeeping both twins share (`_StreamBase`) and the two I/O
loops, kept together because they must be read side by side; what a frame means (both
framings, duplicates, phantoms) is the cursor's, in `_frames`.

One cursor (the last delivered `seq`) is all the state kept, so memory stays flat over any
number of events. A stream only ends at `done`: a clean EOF, a cut connection, a read timeout
or a garbled frame before it means "reconnect with Last-Event-ID", within a budget of
reconnects without progress that resets whenever a new event arrives.

A paused run's stream may end cleanly without `done` right after `awaiting_human` (Coasty's
cookbook mock does; the client is expected to resume, then reconnect). Such an end is not a
failure: while a look at the run (GET) says `awaiting_human`, the stream waits (growing
delays) and reconnects from the cursor, without spending its reconnect budget, until the
run was resumed or ended. It reconnects rather than only polling the status because the
status cannot tell this pause from the next one (a resumed run may pause again between two
looks); the stream itself can. So the caller, and the run engine above it, see one unbroken
stream whatever the server does at a pause; the engine's decisions about the pause stay in
its step generators. A clean end with nothing after the cursor on a finished run ends the
stream (`done` is behind the cursor).

Two local bounds, checked on every chunk read (heartbeats included), after each event and
between connections, and each capping the read timeout of the next connection so that a
silent socket cannot outlast them: a `deadline` (absolute, `runs.wait`) and an
`idle_timeout` (no event for that long, `IdleTimeoutError`; its deadline moves with every
event). A read started just before an
event moved the idle deadline ends within one read timeout, so the idle error comes at most
one `idle_timeout` late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from langchain_coasty.client._base_client import _connection_error, _unlink
from langchain_coasty.client._deadline import bounded
from langchain_coasty.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    CoastyError,
    IdleTimeoutError,
    status_error_from_response,
)
from langchain_coasty.client._frames import _BadFrame, _Cursor
from langchain_coasty.client._models import RunEvent, RunStatus
from langchain_coasty.client._retry import RetryPolicy
from langchain_coasty.client._sse import (
    MAX_FRAME_CHARS,
    FrameTooLarge,
    LineSplitter,
    SSEDecoder,
)

__all__ = ["AsyncEventStream", "EventStream", "StreamConfig"]

logger = logging.getLogger("langchain_coasty.client")

_FATAL_STATUSES = frozenset({401, 403, 404})
_TERMINAL = frozenset(s.value for s in RunStatus if s.is_terminal)


class _End:
    """The type of ``END``."""


END = _End()
"""What ``_after_status`` returns when the stream is over."""


@dataclass
class StreamConfig:
    """What an event stream needs from its client."""

    url: str
    headers: dict[str, str]
    timeout: httpx.Timeout
    policy: RetryPolicy
    secrets: tuple[str, ...] = field(default=(), repr=False)
    run_id: str | None = None
    max_frame_chars: int = MAX_FRAME_CHARS
    """The longest line, and the most data in one frame, the stream accepts."""


class _StreamBase:
    """Request building and failure bookkeeping shared by the sync and async streams."""

    def __init__(
        self,
        config: StreamConfig,
        after: int,
        deadline: float | None,
        idle_timeout: float | None = None,
    ) -> None:
        self._config = config
        self._cursor = _Cursor(after, config.run_id)
        self._deadline = deadline
        self._idle_timeout = idle_timeout
        self._idle_deadline: float | None = None
        self._failures = 0
        self._retry_after: float | None = None
        self._pause_polls = 0
        self.reconnects = 0
        """Connections opened after the first one (cuts, rotations, errors)."""

    @property
    def last_seq(self) -> int:
        """The `seq` of the last event delivered (the resume cursor)."""
        return self._cursor.last_seq

    def _request_args(self) -> dict[str, Any]:
        headers = {
            **self._config.headers,
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
        }
        if self.last_seq > 0:
            headers["Last-Event-ID"] = str(self.last_seq)
        timeout = self._config.timeout
        bounds = [d for d in (self._deadline, self._idle_deadline) if d is not None]
        if bounds:
            remaining = max(min(bounds) - time.monotonic(), 0.01)
            read = timeout.read if timeout.read is not None else remaining
            timeout = httpx.Timeout(
                connect=timeout.connect,
                read=min(read, remaining + 0.05),
                write=timeout.write,
                pool=timeout.pool,
            )
        return {"headers": headers, "timeout": timeout}

    def _open_deadline(self) -> float | None:
        """When the next connection must have its status line and headers, if ever."""
        bounds = [d for d in (self._deadline, self._idle_deadline) if d is not None]
        return min(bounds) if bounds else None

    def _check_deadline(self) -> None:
        if self._deadline is None and self._idle_deadline is None:
            return
        now = time.monotonic()
        if self._deadline is not None and now >= self._deadline:
            error = APITimeoutError(
                f"Gave up waiting for the events of run {self._config.run_id} after the "
                f"deadline (last seq {self.last_seq})."
            )
            error.run_id = self._config.run_id
            raise error
        if self._idle_deadline is not None and now >= self._idle_deadline:
            idle = IdleTimeoutError(
                f"No event from run {self._config.run_id} for {self._idle_timeout:g} s "
                f"(last seq {self.last_seq}); the run may still be going on the server."
            )
            idle.run_id = self._config.run_id
            raise idle

    def _too_large(self, exc: FrameTooLarge) -> APIConnectionError:
        """A frame past the bound: no reconnect (it would come again), a typed error instead."""
        run_id = self._config.run_id
        error = APIConnectionError(
            f"Event stream of run {run_id} sent {exc} (the bound is "
            f"{self._config.max_frame_chars}; last seq {self.last_seq}). The run itself may "
            "still be going on the server: look it up by its id."
        )
        error.run_id = run_id
        return error

    def _status_failure(self, response: httpx.Response) -> CoastyError:
        error = status_error_from_response(response, secrets=self._config.secrets)
        if error.status_code in _FATAL_STATUSES or not error.retryable:
            raise error
        self._retry_after = error.retry_after
        return error

    @staticmethod
    def _check_content_type(response: httpx.Response) -> CoastyError | None:
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            return APIConnectionError(f"expected an event stream, got {content_type!r}")
        return None

    def _failed(self, error: CoastyError) -> float:
        """Count a failed connection; return the delay before the next one, or raise."""
        self._check_deadline()
        self._failures += 1
        if self._failures > self._config.policy.stream_max_reconnects:
            run_id = self._config.run_id
            if isinstance(error, APIStatusError):
                error.run_id = run_id
                raise error
            gave_up = type(error)(
                f"Event stream of run {run_id} gave up after {self._failures - 1} reconnects "
                f"without a new event (last seq {self.last_seq}): {error}. The run itself may "
                "still be going on the server: look it up by its id."
            )
            gave_up.run_id = run_id
            raise gave_up
        delay = self._config.policy.stream_delay(self._failures, self._retry_after)
        self._retry_after = None
        self.reconnects += 1
        logger.debug(
            "Reconnecting event stream after seq %d in %.2f s: %s", self.last_seq, delay, error
        )
        return delay

    def _progress(self) -> None:
        self._failures = 0
        self._pause_polls = 0

    def _asks_status(self, frames: int) -> bool:
        """Whether a clean end before `done` needs the run's status: nothing came, or a pause."""
        return frames == 0 or self._cursor.last_type == "awaiting_human"

    def _after_status(self, status: str, frames: int) -> float | _End | None:
        """What a clean end before `done` means for a run in ``status``.

        `END`: `done` is already behind the cursor. A delay: the run is paused, reconnect
        after it (not a failure). None: reconnect, counted as a failed connection.
        """
        if status in _TERMINAL and frames == 0:
            return END
        if status != RunStatus.AWAITING_HUMAN:
            return None
        self._check_deadline()
        self._pause_polls += 1
        self.reconnects += 1
        delay = self._config.policy.pause_poll_delay(self._pause_polls)
        bounds = [d for d in (self._deadline, self._idle_deadline) if d is not None]
        if bounds:
            delay = min(delay, max(min(bounds) - time.monotonic(), 0.0) + 0.01)
        return delay

    def _awaited(self) -> None:
        """The caller asks for the next event: the idle clock starts now (not at the last one)."""
        if self._idle_timeout is not None:
            self._idle_deadline = time.monotonic() + self._idle_timeout


class EventStream(_StreamBase):
    """Iterator of a run's events; ends after `done`. Close it (or use `with`) to stop early."""

    def __init__(
        self,
        http: httpx.Client,
        config: StreamConfig,
        *,
        after: int = 0,
        deadline: float | None = None,
        idle_timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        run_status: Callable[[], str] | None = None,
    ) -> None:
        super().__init__(config, after, deadline, idle_timeout)
        self._http = http
        self._sleep = sleep
        self._run_status = run_status
        self._iterator = self._iter_events()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> RunEvent:
        return next(self._iterator)

    def close(self) -> None:
        """Stop following the stream and release its connection."""
        self._iterator.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _open(self) -> Iterator[httpx.Response]:
        """Open one connection; a server trickling its headers cannot outlast the deadline."""
        args, deadline = self._request_args(), self._open_deadline()
        response: httpx.Response | None = None
        try:
            with contextlib.ExitStack() as stack:
                opening = self._http.stream("GET", self._config.url, **args)
                if deadline is None:
                    response = stack.enter_context(opening)
                else:
                    with bounded(deadline, max(deadline - time.monotonic(), 0.0)):
                        response = stack.enter_context(opening)
                yield response
        finally:
            if response is not None:
                _unlink(response)

    def _iter_events(self) -> Generator[RunEvent, None, None]:
        self._awaited()
        while True:
            self._check_deadline()
            error: CoastyError
            paused: float | None = None  # a paused run's stream ended: reconnect after this
            try:
                with self._open() as response:
                    if response.status_code != 200:
                        response.read()
                        error = self._status_failure(response)
                    else:
                        bad_type = self._check_content_type(response)
                        if bad_type is not None:
                            error = bad_type
                        else:
                            frames = 0
                            bound = self._config.max_frame_chars
                            lines, decoder = LineSplitter(bound), SSEDecoder(bound)
                            for text in response.iter_text():
                                self._check_deadline()  # also while a frame trickles in
                                for sse in decoder.feed(lines.feed(text)):
                                    frames += 1
                                    event = self._cursor.accept(sse)
                                    if event is None:
                                        continue
                                    self._progress()
                                    yield event
                                    if event.type == "done":
                                        return
                                    if self._idle_timeout is not None:
                                        self._awaited()
                                    self._check_deadline()
                            if self._run_status is not None and self._asks_status(frames):
                                after = self._after_status(self._run_status(), frames)
                                if after is END:
                                    return
                                paused = after if isinstance(after, float) else None
                            error = APIConnectionError("stream ended before the done event")
            except httpx.RequestError as exc:  # a cut connection or an undecodable body
                error = _connection_error(exc, "event stream interrupted")
            except FrameTooLarge as exc:
                raise self._too_large(exc) from None
            except _BadFrame as exc:
                error = APIConnectionError(f"garbled event frame: {exc}")
            if paused is not None:
                self._sleep(paused)
                continue
            delay = self._failed(error)
            if delay > 0:
                self._sleep(delay)


class AsyncEventStream(_StreamBase):
    """Async iterator of a run's events; ends after `done`. `aclose()` or `async with` stops it."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: StreamConfig,
        *,
        after: int = 0,
        deadline: float | None = None,
        idle_timeout: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        run_status: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        super().__init__(config, after, deadline, idle_timeout)
        self._http = http
        self._sleep = sleep
        self._run_status = run_status
        self._iterator = self._iter_events()

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> RunEvent:
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        """Stop following the stream and release its connection."""
        await self._iterator.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[httpx.Response]:
        """Open one connection; a server trickling its headers cannot outlast the deadline."""
        args, deadline = self._request_args(), self._open_deadline()
        response: httpx.Response | None = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                opening = self._http.stream("GET", self._config.url, **args)
                if deadline is None:
                    response = await stack.enter_async_context(opening)
                else:
                    try:
                        async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                            response = await stack.enter_async_context(opening)
                    except TimeoutError:
                        raise httpx.ReadTimeout(
                            "no status line and headers before the deadline"
                        ) from None
                yield response
        finally:
            if response is not None:
                _unlink(response)

    async def _iter_events(self) -> AsyncGenerator[RunEvent, None]:
        self._awaited()
        while True:
            self._check_deadline()
            error: CoastyError
            paused: float | None = None  # a paused run's stream ended: reconnect after this
            try:
                async with self._open() as response:
                    if response.status_code != 200:
                        await response.aread()
                        error = self._status_failure(response)
                    else:
                        bad_type = self._check_content_type(response)
                        if bad_type is not None:
                            error = bad_type
                        else:
                            chunks = response.aiter_text()
                            count = 0
                            bound = self._config.max_frame_chars
                            lines, decoder = LineSplitter(bound), SSEDecoder(bound)
                            try:
                                async for text in chunks:
                                    self._check_deadline()  # also while a frame trickles in
                                    for sse in decoder.feed(lines.feed(text)):
                                        count += 1
                                        event = self._cursor.accept(sse)
                                        if event is None:
                                            continue
                                        self._progress()
                                        yield event
                                        if event.type == "done":
                                            return
                                        if self._idle_timeout is not None:
                                            self._awaited()
                                        self._check_deadline()
                            finally:
                                await chunks.aclose()  # type: ignore[attr-defined]
                            if self._run_status is not None and self._asks_status(count):
                                status = await self._run_status()
                                after = self._after_status(status, count)
                                if after is END:
                                    return
                                paused = after if isinstance(after, float) else None
                            error = APIConnectionError("stream ended before the done event")
            except httpx.RequestError as exc:  # a cut connection or an undecodable body
                error = _connection_error(exc, "event stream interrupted")
            except FrameTooLarge as exc:
                raise self._too_large(exc) from None
            except _BadFrame as exc:
                error = APIConnectionError(f"garbled event frame: {exc}")
            if paused is not None:
                await self._sleep(paused)
                continue
            delay = self._failed(error)
            if delay > 0:
                await self._sleep(delay)
