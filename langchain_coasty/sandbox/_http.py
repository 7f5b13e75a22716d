"""HTTP plumbing shared by the sandbox's handlers.

The ``CoastyHeaders`` middleware (request id, key kind, test mode on every response), API-key
parsing, and the JSON response helpers.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_KEY_RE = re.compile(r"^sk-coasty-(test|live)-[A-Za-z0-9_]+$")


def _key_kind(api_key: str | None) -> str | None:
    """``"test"`` or ``"live"`` for a well-formed Coasty key, else None."""
    match = _KEY_RE.fullmatch(api_key or "")
    return match.group(1) if match else None


def _api_key(headers: dict[str, str]) -> str | None:
    """The key sent as X-API-Key or as a Bearer token (``headers`` keyed in lower case)."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


class CoastyHeaders:
    """ASGI middleware: assigns the request id and adds the Coasty headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(12)}"
        scope.setdefault("state", {})["request_id"] = request_id
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        kind = _key_kind(_api_key(headers)) or "test"
        extra = [
            (b"x-coasty-request-id", request_id.encode()),
            (b"x-coasty-key-kind", kind.encode()),
            (b"x-coasty-test-mode", b"true" if kind == "test" else b"false"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _json(data: Any) -> bytes:
    """Compact JSON bytes, as the API sends them."""
    return json.dumps(data, separators=(",", ":")).encode()


def _response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response from ready-made bytes."""
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def read_limited(request: Request, limit: int) -> tuple[bytes, int]:
    """Drain the body, keeping at most ``limit`` bytes of it; return (kept, full size).

    Draining rather than stopping early lets the client finish sending and read the 413.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    return b"".join(chunks), size


def _request_id(request: Request) -> str:
    """The id ``CoastyHeaders`` gave this request."""
    return str(request.scope.get("state", {}).get("request_id", "req_unknown"))
