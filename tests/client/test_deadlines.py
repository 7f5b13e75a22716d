"""`timeout` bounds a whole attempt, not each read: a server that trickles bytes cannot hold a call.

httpx's timeouts apply to each read, so a server that sends one byte every 0.2 s would
keep a call waiting for as long as it likes. A real server on loopback does exactly that.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_coasty import APITimeoutError, AsyncCoastyClient, CoastyClient

BODY = b'{"id": "run-1", "object": "agent.run", "status": "running", "pad": "' + b"x" * 200 + b'"}'


class Trickler:
    """Answers every request with a 200 whose body comes one byte every 0.2 s."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent: list[int] = []
        self.stop = threading.Event()
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
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(BODY)}\r\n\r\n"
            )
            sent = 0
            try:
                conn.sendall(head.encode())
                for byte in BODY:
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
    trickler.stop.set()
    trickler.thread.join(5)
    assert trickler.sent and max(trickler.sent) < len(BODY)  # it gave up long before the end


@pytest.mark.timeout(30)
async def test_a_trickling_server_cannot_hold_an_async_call(trickler: Trickler) -> None:
    async with AsyncCoastyClient(**_options(trickler)) as client:
        with pytest.raises(APITimeoutError, match="whole response"):
            await client.runs.get("run-1")
