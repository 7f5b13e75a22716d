"""Responses that stream or break on purpose.

``_EventStream`` serves one connection to a run's events (heartbeats, rotation, and the
stream faults: cuts, duplicates, stalls); ``_LostResponse`` is the create whose answer is cut
short. That and an abrupt stream cut end the connection by raising ``_DropConnection``,
which ``_QuietDrops`` keeps out of uvicorn's error log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from langchain_coasty.sandbox.engine import Engine
from langchain_coasty.sandbox.faults import StreamFaults
from langchain_coasty.sandbox.records import SandboxRun

_SSE_BATCH = 256


class _DropConnection(Exception):
    """Raised after a response has started to make uvicorn close the TCP connection."""


class _QuietDrops(logging.Filter):
    """Keeps the connections the sandbox drops on purpose out of uvicorn's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DropConnection))


def _install_log_filter() -> None:
    """Add ``_QuietDrops`` to uvicorn's error logger, once."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


class _LostResponse(Response):
    """Starts a response with a Content-Length, sends part of it, then drops the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body[:10], "more_body": True})
        raise _DropConnection("create_lose_response fault")


class _EventStream(Response):
    """The SSE response for one connection to a run's events."""

    media_type = "text/event-stream"

    def __init__(self, engine: Engine, run: SandboxRun, after: int, faults: StreamFaults) -> None:
        super().__init__(
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type=self.media_type,
        )
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.engine = engine
        self.run = run
        self.after = after
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        state = {"disconnected": False, "finished": False}

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not state["finished"]:
                state["disconnected"] = True
                task.cancel()

        watcher = asyncio.get_running_loop().create_task(watch_disconnect())
        self.engine.counts["stream_connections"] += 1
        self.engine.open_streams += 1
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await self._pump(send)
            state["finished"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not (state["disconnected"] or self.engine.closing):
                raise
            task.uncancel()
        finally:
            state["finished"] = True
            self.engine.open_streams -= 1
            watcher.cancel()

    def _ends_at_pause(self, pos: int) -> bool:
        """Whether to end here: the run is paused, everything is sent, and the setting says so."""
        run = self.run
        return (
            self.engine.config.end_stream_at_pause
            and run.status == "awaiting_human"
            and pos >= len(run.frames)
        )

    async def _pump(self, send: Send) -> None:
        """Send frames until done, a rotation, a fault cut, or a reset; return to end cleanly."""
        engine, run, faults = self.engine, self.run, self.faults
        loop = asyncio.get_running_loop()
        pos = self.after
        if faults.duplicate and pos > 0:
            engine.faults.fire("stream_duplicate")
            pos = max(0, pos - faults.duplicate)
        sent = 0
        opened = loop.time()
        next_ping = opened + engine.config.heartbeat_interval
        stalled = False
        while True:
            if engine.closing or run.dropped:
                return
            now = loop.time()
            if now - opened >= engine.config.rotation_seconds:
                return
            available = len(run.frames)
            if pos < available:
                end = min(available, pos + _SSE_BATCH)
                if faults.cut_after is not None:
                    end = min(end, pos + faults.cut_after - sent)
                if faults.stall_after is not None and not stalled:
                    end = min(end, pos + faults.stall_after - sent)
                chunk = b"".join(run.frames[pos:end])
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += end - pos
                pos = end
                next_ping = loop.time() + engine.config.heartbeat_interval
                finished = run.closed and pos >= len(run.frames)
                if finished or self._ends_at_pause(pos):
                    return
                if faults.cut_after is not None and sent >= faults.cut_after:
                    if faults.cut_abrupt:
                        engine.faults.fire("stream_cut_abrupt")
                        raise _DropConnection("stream_cut fault")
                    engine.faults.fire("stream_cut_clean")
                    return
                if faults.stall_after is not None and not stalled and sent >= faults.stall_after:
                    stalled = True
                    engine.faults.fire("stream_stall")
                    await asyncio.sleep(faults.stall_seconds)
                    next_ping = loop.time() + engine.config.heartbeat_interval
                continue
            if run.closed or self._ends_at_pause(pos):
                return
            if now >= next_ping:
                await send({"type": "http.response.body", "body": b": ping\n", "more_body": True})
                next_ping = now + engine.config.heartbeat_interval
                continue
            wake = min(next_ping, opened + engine.config.rotation_seconds)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wake - now)):
                    await run.wait_changed()
