"""HTTP plumbing shared by the sandbox's handlers.

The ``CoastyHeaders`` middleware (request id, key kind, test mode on every response, and the
Host check against DNS rebinding), API-key parsing, Host and Origin parsing, body reading and
the JSON response helpers.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HeaderHook = Callable[[Scope, list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]]
"""Shapes the Coasty headers of one response (drop some, add others) from the settings."""

_KEY_RE = re.compile(r"^sk-coasty-(test|live)-[A-Za-z0-9_]+$")
_AUTHORITY_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^\[\]:/@\s]+)(?::([0-9]{1,5}))?$")


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


def split_authority(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` (a Host header, or an Origin without its scheme) as (host, port).

    The host is lower-cased and unbracketed; None when the value is not an authority.
    """
    match = _AUTHORITY_RE.fullmatch(value.strip())
    if match is None:
        return None
    host, port = match.group(1).lower(), match.group(2)
    if port is not None and int(port) > 65535:
        return None
    return host.strip("[]"), int(port) if port else None


def _is_loopback(host: str) -> bool:
    """``localhost`` or a loopback or unspecified IP literal (never a name like 127.x.evil)."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


class HostPolicy:
    """Which ``Host`` values the sandbox answers (a page on a DNS-rebound name must not).

    Loopback hosts (``localhost``, ``127.0.0.1``, ``[::1]``, ``0.0.0.0``) on any port, the
    address the connection came in on, and each ``allowed_hosts`` entry: ``name`` (any
    port), ``name:port``, or ``*`` for any Host.
    """

    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        self.any = False
        self.names: set[str] = set()
        self.authorities: set[tuple[str, int | None]] = set()
        for entry in allowed_hosts:
            if entry.strip() == "*":
                self.any = True
                continue
            parsed = split_authority(entry)
            if parsed is None:
                raise ValueError(f"allowed_hosts: {entry!r} is not a host or host:port")
            if parsed[1] is None:
                self.names.add(parsed[0])
            else:
                self.authorities.add(parsed)

    def configured(self, host: str, port: int | None) -> bool:
        """Whether ``allowed_hosts`` names this host (and port)."""
        return self.any or host in self.names or (host, port) in self.authorities

    def allows(self, value: str, server_host: Any, server_port: Any) -> bool:
        """Whether a request with ``Host: value``, on a connection to that address, is answered."""
        if self.any:
            return True
        parsed = split_authority(value)
        if parsed is None:
            return False
        host, port = parsed
        # Any port: a rebinding page sends its own name, never a loopback literal, and port
        # forwards and proxies (ssh -L, docker -p) change the port the client sees.
        if _is_loopback(host):
            return True
        if host == str(server_host).lower() and (port or 80) == server_port:
            return True
        return self.configured(host, port)


class CoastyHeaders:
    """ASGI middleware: assigns the request id, adds the Coasty headers to every response,
    and answers a ``Host`` that ``policy`` does not allow with ``refuse`` (``errors``' 421)."""

    def __init__(
        self,
        app: ASGIApp,
        policy: HostPolicy | None = None,
        refuse: Callable[[Request], Response] | None = None,
        hook: HeaderHook | None = None,
    ) -> None:
        self.app = app
        self.hook = hook
        self.policy = policy or HostPolicy()
        self.refuse = refuse or (lambda _request: Response("Host not allowed", 421))

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
        if self.hook is not None:
            extra = self.hook(scope, extra)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = list(message.get("headers", []))
                present = {name.lower() for name, _ in own}
                message["headers"] = [*own, *(h for h in extra if h[0] not in present)]
            await send(message)

        host = headers.get("host")
        server = scope.get("server") or (None, None)
        # No Host at all (HTTP/1.0) is served: browsers always send one.
        if host is not None and not self.policy.allows(host, *server):
            response = self.refuse(Request(scope))
            await response(scope, receive, send_with_headers)
            return
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
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
    except ClientDisconnect:
        # The client went away mid-body (a Ctrl-C): nothing was done; nobody reads the answer.
        raise HTTPException(400, "The client closed the request.") from None
    return b"".join(chunks), size


def _request_id(request: Request) -> str:
    """The id ``CoastyHeaders`` gave this request."""
    return str(request.scope.get("state", {}).get("request_id", "req_unknown"))
