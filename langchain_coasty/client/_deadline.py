"""One deadline for a whole sync attempt, status line and headers included.

httpx bounds each socket read, so a server that sends a byte now and then holds a sync call
for as long as it likes. The async client wraps an attempt in ``asyncio.timeout``; sync code
has no such thing, so its connections run on a network backend that caps every read and
write at the time left before the attempt's deadline (a context variable set around the
attempt). A caller-supplied ``http_client`` keeps its own backend: there only the body's
reads are checked against the deadline.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from langchain_coasty.client._base_client import _unlink

__all__ = ["bounded", "new_client", "overdue", "send_within"]

_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "coasty_attempt_deadline", default=None
)
"""(monotonic deadline, the timeout it came from) of the attempt running in this context."""


def overdue(timeout: float) -> httpx.ReadTimeout:
    """The error of an attempt that did not finish within its timeout."""
    return httpx.ReadTimeout(f"no whole response within the {timeout:g} s timeout")


@contextlib.contextmanager
def bounded(deadline: float, timeout: float) -> Iterator[None]:
    """Cap every socket operation of this context's sync requests at ``deadline``.

    Nested bounds keep the earlier deadline: a whole wait bounds each attempt inside it.
    """
    outer = _DEADLINE.get()
    keep = outer is not None and outer[0] <= deadline
    token = _DEADLINE.set(outer if keep else (deadline, timeout))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _capped(timeout: float | None) -> float | None:
    bound = _DEADLINE.get()
    if bound is None:
        return timeout
    remaining = bound[0] - time.monotonic()
    if remaining <= 0:
        raise httpcore.ReadTimeout(str(overdue(bound[1])))
    return remaining if timeout is None else min(timeout, remaining)


def _past_deadline() -> float | None:
    bound = _DEADLINE.get()
    return bound[1] if bound is not None and time.monotonic() >= bound[0] else None


class _Stream(httpcore.NetworkStream):
    """A connection whose reads and writes end at the attempt's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._stream.read(max_bytes, _capped(timeout))
        except httpcore.ReadTimeout:
            spent = _past_deadline()
            if spent is None:
                raise
            raise httpcore.ReadTimeout(str(overdue(spent))) from None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _capped(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, _capped(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's sync backend, with every connection's I/O capped at the deadline."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _capped(timeout), local_address, socket_options
        )
        return _Stream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._backend.connect_unix_socket(path, _capped(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def new_client(timeout: float, limits: httpx.Limits, verify: ssl.SSLContext) -> httpx.Client:
    """An ``httpx.Client`` whose direct connections honour the attempt deadline."""
    transport = httpx.HTTPTransport(limits=limits, verify=verify)
    pool = getattr(transport, "_pool", None)
    # httpx builds its pool without a way to pass a backend; where its layout differs, the
    # body-only check in `send_within` still applies.
    if isinstance(pool, httpcore.ConnectionPool) and hasattr(pool, "_network_backend"):
        pool._network_backend = _Backend()
    return httpx.Client(timeout=timeout, limits=limits, verify=verify, transport=transport)


def send_within(
    http: httpx.Client, timeout: float, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """One attempt whose response must arrive whole within ``timeout``."""
    deadline = time.monotonic() + timeout
    with bounded(deadline, timeout):
        request = http.build_request(method, url, timeout=timeout, **kwargs)
        response = http.send(request, stream=True)
        if isinstance(response.stream, httpx.SyncByteStream):
            response.stream = _Deadlined(response.stream, deadline, timeout)
        try:
            response.read()
        finally:
            response.close()
    return _unlink(response)


class _Deadlined(httpx.SyncByteStream):
    """A response body whose chunks must all arrive before a deadline."""

    def __init__(self, stream: httpx.SyncByteStream, deadline: float, timeout: float) -> None:
        self._stream, self._deadline, self._timeout = stream, deadline, timeout

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                raise overdue(self._timeout)
            yield chunk

    def close(self) -> None:
        self._stream.close()
