"""How the sandbox is served: uvicorn's HTTP/1.1 with a bound on a request's head.

h11 refuses a request line plus headers over its incomplete-event size, but uvicorn's
faster httptools protocol buffers a head of any size (a 10 MB header is read whole). The
sandbox bounds the head on either protocol and answers 431 past the bound (httptools holds
at most the bound plus one read of 64 KiB before the refusal).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import uvicorn

__all__ = ["MAX_HEAD_BYTES", "server_config"]

MAX_HEAD_BYTES = 64 * 1024
"""The longest request line plus headers the sandbox reads (browsers send a few KB)."""


def _refusal() -> bytes:
    request_id = f"req_{secrets.token_hex(12)}"
    body = json.dumps(
        {
            "error": {
                "request_id": request_id,
                "code": "HEADERS_TOO_LARGE",
                "message": f"Request line and headers exceed {MAX_HEAD_BYTES} bytes.",
                "type": "invalid_request_error",
                "retryable": False,
                "retry_with_same_idempotency_key": False,
                "details": {"field": "headers", "limit": MAX_HEAD_BYTES},
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        f"content-type: application/json\r\nx-coasty-request-id: {request_id}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def _protocol() -> type[asyncio.Protocol] | str:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: h11, bounded by its incomplete-event size
        return "h11"

    class BoundedHead(HttpToolsProtocol):
        """httptools, refusing a head past `MAX_HEAD_BYTES` before buffering more of it."""

        _head_bytes = 0
        _in_head = True

        def data_received(self, data: bytes) -> None:
            if not self._in_head:
                super().data_received(data)
                return
            self._head_bytes += len(data)
            super().data_received(data)  # may end the head: then the rest was body
            over = self._in_head and self._head_bytes > MAX_HEAD_BYTES
            if over and not self.transport.is_closing():
                self.transport.write(_refusal())
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head, self._head_bytes = True, 0
            super().on_message_complete()

    return BoundedHead


def server_config(app: Any, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration of a sandbox (CLI and in-process alike)."""
    return uvicorn.Config(
        app,
        http=_protocol(),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_keep_alive=30,
        backlog=4096,
        **options,
    )
