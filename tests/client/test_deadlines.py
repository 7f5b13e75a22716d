"""`timeout` bounds a whole attempt, not each read: a server that trickles bytes cannot hold a call.

httpx's timeouts apply to each read, so a server that sends one byte every 0.2 s would
keep a call waiting for as long as it likes. A real server on loopback does exactly that,
either with the body (headers sent at once) or with the status line and headers themselves.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_coasty import APITimeoutError, AsyncCoastyClient, CoastyClient, IdleTimeoutError

BODY = b'{"id": "run-1", "object": "agent.run", "status": "running", "pad": "' + b"x" * 200 + b'"}'


class Trickler:
    """Answers every request with a 200 whose body (or, with `head`, all of it) trickles in."""

    def __init__(self, *, head: bool = False, content_type: str = "application/json") -> None:
        self.head = head
        self.content_type = content_type
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent: list[int] = []
        self.stop = threading.Event()
        self.answers: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by the fixture
            answer = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            self.answers.append(answer)
            answer.start()

    def finish(self) -> None:
        """Stop serving and wait until every answer has recorded what it sent."""
        self.stop.set()
        self.thread.join(5)
        for answer in list(self.answers):
            answer.join(5)

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {len(BODY)}\r\nX-Pad: {'p' * 200}\r\n\r\n"
            ).encode()
            at_once, trickled = (b"", head + BODY) if self.head else (head, BODY)
            sent = 0
            try:
                conn.sendall(at_once)
                for byte in trickled:
                    if self.stop.wait(0.2):
                        break
                    conn.sendall(bytes([byte]))
                    sent += 1
            except OSError:
                pass  # the client gave up and closed: what the test wants
            self.sent.append(sent)


@pytest.fixture
def trickler() -> Iterator[Trickler]:
    server = Trickler()
    yield server
    server.stop.set()
    server.sock.close()


def _options(trickler: Trickler) -> dict[str, Any]:
    url = f"http://127.0.0.1:{trickler.port}"
    return {"api_key": "sk-coasty-test-x", "base_url": url, "timeout": 1.0, "max_retries": 0}


@pytest.mark.timeout(30)
def test_a_trickling_server_cannot_hold_a_sync_call(trickler: Trickler) -> None:
    with (
        CoastyClient(**_options(trickler)) as client,
        pytest.raises(APITimeoutError, match="whole"),
    ):
        client.runs.get("run-1")
    trickler.finish()
    assert trickler.sent and max(trickler.sent) < len(BODY)  # it gave up long before the end


@pytest.fixture
def head_trickler() -> Iterator[Trickler]:
    server = Trickler(head=True)
    yield server
    server.stop.set()
    server.sock.close()


@pytest.mark.timeout(30)
def test_trickled_headers_cannot_hold_a_sync_call(head_trickler: Trickler) -> None:
    with (
        CoastyClient(**_options(head_trickler)) as client,
        pytest.raises(APITimeoutError, match="whole response within the 1 s"),
    ):
        client.runs.get("run-1")
    head_trickler.finish()
    assert head_trickler.sent and max(head_trickler.sent) < 60  # headers unfinished: ~5 bytes/s


@pytest.mark.timeout(30)
async def test_trickled_headers_cannot_hold_an_async_call(head_trickler: Trickler) -> None:
    async with AsyncCoastyClient(**_options(head_trickler)) as client:
        with pytest.raises(APITimeoutError, match="whole response"):
            await client.runs.get("run-1")


@pytest.mark.timeout(30)
def test_trickled_headers_cannot_hold_a_sync_wait(head_trickler: Trickler) -> None:
    started = time.monotonic()
    with (
        CoastyClient(**{**_options(head_trickler), "timeout": 20.0}) as client,
        pytest.raises(APITimeoutError),
    ):
        client.runs.wait("run-1", timeout=1.5)
    assert time.monotonic() - started < 5  # the wait's deadline, not the 20 s attempt


@pytest.mark.timeout(30)
async def test_trickled_headers_cannot_hold_an_async_wait(head_trickler: Trickler) -> None:
    started = time.monotonic()
    async with AsyncCoastyClient(**{**_options(head_trickler), "timeout": 20.0}) as client:
        with pytest.raises(APITimeoutError):
            await client.runs.wait("run-1", timeout=1.5)
    assert time.monotonic() - started < 5


@pytest.mark.timeout(30)
@pytest.mark.parametrize("use_async", [False, True])
async def test_trickled_stream_headers_cannot_outlast_the_idle_timeout(
    head_trickler: Trickler, use_async: bool
) -> None:
    options = {**_options(head_trickler), "stream_read_timeout": 5.0}
    with pytest.raises(IdleTimeoutError):
        if use_async:
            async with AsyncCoastyClient(**options) as aclient:
                async for _ in aclient.runs.events("run-1", idle_timeout=1.0):
                    pass
        else:
            with CoastyClient(**options) as client:
                for _ in client.runs.events("run-1", idle_timeout=1.0):
                    pass


@pytest.mark.timeout(30)
async def test_a_trickling_server_cannot_hold_an_async_call(trickler: Trickler) -> None:
    async with AsyncCoastyClient(**_options(trickler)) as client:
        with pytest.raises(APITimeoutError, match="whole response"):
            await client.runs.get("run-1")
