"""Event streams that fail oddly: a corrupt encoding reconnects, an endless frame is refused,
a trickling frame cannot outlast the stream's deadlines."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_coasty import (
    APIConnectionError,
    AsyncCoastyClient,
    CoastyClient,
    IdleTimeoutError,
)

KEY = "sk-coasty-test-x"
EVENTS = [
    {"seq": 1, "type": "status", "data": {"status": "running"}},
    {"seq": 2, "type": "step", "data": {"step": 1}},
    {"seq": 3, "type": "done", "data": {"status": "succeeded"}},
]


def sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"id: {e['seq']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


class Flaky:
    """First connection: a gzip-labelled body that is not gzip. Then the events, from the cursor."""

    def __init__(self) -> None:
        self.connections = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.connections += 1
        headers = {"content-type": "text/event-stream"}
        if self.connections == 1:
            headers["content-encoding"] = "gzip"
            return httpx.Response(200, headers=headers, content=b"not gzip at all")
        after = int(request.headers.get("last-event-id", "0"))
        return httpx.Response(200, headers=headers, content=sse(EVENTS[after:]))


async def test_a_corrupt_encoding_on_the_stream_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_coasty.client import _base_client

    monkeypatch.setattr(_base_client, "_sleep", lambda _: None)

    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr(_base_client, "_asleep", no_wait)
    flaky = Flaky()
    http = httpx.Client(transport=httpx.MockTransport(flaky))
    with CoastyClient(api_key=KEY, base_url="http://coasty.test", http_client=http) as client:
        assert [e.seq for e in client.runs.events("run-1")] == [1, 2, 3]
    assert flaky.connections == 2
    flaky = Flaky()
    ahttp = httpx.AsyncClient(transport=httpx.MockTransport(flaky))
    async with AsyncCoastyClient(
        api_key=KEY, base_url="http://coasty.test", http_client=ahttp
    ) as c:
        assert [e.seq async for e in c.runs.events("run-1")] == [1, 2, 3]
    assert flaky.connections == 2


def test_an_endless_frame_is_refused_with_the_run_named_and_no_reconnect() -> None:
    connections = 0

    def endless(request: httpx.Request) -> httpx.Response:
        nonlocal connections
        connections += 1

        def body() -> Iterator[bytes]:
            yield b"id: 1\ndata: "
            for _ in range(300):  # 19.6 MB of one data line, never ended
                yield b"x" * 65536

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    http = httpx.Client(transport=httpx.MockTransport(endless))
    client = CoastyClient(api_key=KEY, base_url="http://coasty.test", http_client=http)
    with client, pytest.raises(APIConnectionError) as info:
        list(client.runs.events("run-7"))
    assert info.value.run_id == "run-7"
    assert "line longer than" in str(info.value)
    assert connections == 1


class SlowFrame:
    """A real server whose event stream sends its first frame one byte every 0.2 s."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            try:
                for byte in sse(EVENTS[:1]):
                    if self.stop.wait(0.2):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                pass


@pytest.mark.timeout(30)
def test_a_trickling_frame_cannot_outlast_the_idle_timeout() -> None:
    server = SlowFrame()
    try:
        url = f"http://127.0.0.1:{server.port}"
        with CoastyClient(api_key=KEY, base_url=url) as client, pytest.raises(IdleTimeoutError):
            next(iter(client.runs.events("run-1", idle_timeout=1.0)))
    finally:
        server.stop.set()
        server.sock.close()
