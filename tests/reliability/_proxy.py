"""A loopback TCP proxy that can take the server away: refuse, go silent, come back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from concurrent.futures import Future
from typing import Any, Literal

Mode = Literal["up", "down", "silent"]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream port, in its own thread and event loop.

    ``down()`` closes the listener and drops every connection (connection refused);
    ``silent()`` accepts connections and drops open ones' traffic without ever answering
    (a server that stopped responding); ``up()`` serves again on the same port.
    """

    def __init__(self, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        with socket.socket() as probe:
            probe.bind((host, 0))
            self.port: int = probe.getsockname()[1]
        self.mode: Mode = "down"
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._pipes: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=10)

    def start(self) -> TcpProxy:
        self._thread.start()
        self.up()
        return self

    def up(self) -> None:
        self._call(self._set("up"))

    def down(self) -> None:
        self._call(self._set("down"))

    def silent(self) -> None:
        self._call(self._set("silent"))

    def stop(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _set(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "down":
            if self._server is not None:
                self._server.close()
                self._server = None
            for client, upstream in list(self._pipes):
                client.transport.abort()
                if upstream is not None:
                    upstream.transport.abort()
            self._pipes.clear()
        elif self._server is None:
            self._server = await asyncio.start_server(
                self._accept, self.host, self.port, reuse_address=True
            )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None] = (writer, None)
        self._pipes.add(pair)
        try:
            if self.mode == "silent":
                while await reader.read(65536):
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
            self._pipes.discard(pair)
            pair = (writer, up_writer)
            self._pipes.add(pair)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except OSError:
            pass
        finally:
            self._pipes.discard(pair)
            for w in pair:
                if w is not None:
                    w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self.mode == "up":
                    writer.write(data)
                    await writer.drain()
            writer.write_eof()
