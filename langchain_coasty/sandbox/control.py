"""The /_sandbox control plane: reset, counters, config, scenarios, faults, webhooks, info,
machines and the clock.

JSON in and out, no auth, loopback clients only; writes only from the sandbox's own origin
(or one in ``allowed_hosts``) and only as JSON, which is what stops a web page from sending
one (a cross-site ``text/plain`` POST needs no preflight). The routes are listed in ``app``.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from langchain_coasty.sandbox._http import (
    HostPolicy,
    _json,
    _response,
    read_limited,
    split_authority,
)
from langchain_coasty.sandbox.engine import TERMINAL, Engine, InvalidState
from langchain_coasty.sandbox.errors import ApiError
from langchain_coasty.sandbox.faults import parse_fault_config
from langchain_coasty.sandbox.records import iso
from langchain_coasty.sandbox.scenarios import parse_scenarios
from langchain_coasty.sandbox.validation import load_json

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


class _Control:
    """Handlers for the /_sandbox control plane."""

    def __init__(self, engine: Engine, policy: HostPolicy | None = None) -> None:
        self.engine = engine
        self.policy = policy or HostPolicy()

    def _guard(self, request: Request) -> None:
        host = request.client.host if request.client else "127.0.0.1"
        if host not in _LOOPBACK and not host.startswith("127."):
            raise ApiError(403, "FORBIDDEN", "The sandbox control plane only answers loopback.")
        if request.method in ("GET", "HEAD"):
            return
        origin = request.headers.get("origin")
        if origin is not None and not self._same_origin(origin, request.headers.get("host")):
            shown = repr(origin) if len(origin) <= 100 else f"of {len(origin)} characters"
            raise ApiError(
                403,
                "FORBIDDEN",
                f"Origin {shown} may not change the sandbox: control-plane writes come from "
                "the sandbox's own origin or one in allowed_hosts.",
                details={"field": "Origin", "limit": "the sandbox's origin or allowed_hosts"},
            )
        content_type = request.headers.get("content-type")
        has_body = request.headers.get("content-length", "0") != "0" or (
            "transfer-encoding" in request.headers
        )
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if (content_type is not None or has_body) and media != "application/json":
            raise ApiError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "Control-plane bodies must be sent as Content-Type: application/json "
                f"(got {'none' if content_type is None else repr(content_type[:100])}).",
                details={"field": "Content-Type", "limit": "application/json"},
            )

    def _same_origin(self, origin: str, host: str | None) -> bool:
        """Whether ``origin`` is the sandbox's own (http + the request's Host) or allowed."""
        scheme, sep, authority = origin.partition("://")
        parsed = split_authority(authority) if sep else None
        if parsed is None:
            return False  # "null" (sandboxed frames, file pages) or malformed
        name, port = parsed
        port = port or _DEFAULT_PORTS.get(scheme.lower())
        own = split_authority(host) if host else None
        if own is not None and scheme == "http" and (own[0], own[1] or 80) == (name, port):
            return True
        return self.policy.configured(name, port)

    async def _body(self, request: Request) -> dict[str, Any]:
        limit = self.engine.config.max_body_bytes
        raw, size = await read_limited(request, limit)
        if size > limit:
            raise ApiError.too_large(size, limit)
        if not raw.strip():
            return {}
        data = load_json(raw)
        if not isinstance(data, dict):
            raise ApiError(422, "VALIDATION_ERROR", "Body must be a JSON object.")
        return data

    async def reset(self, request: Request) -> Response:
        self._guard(request)
        body = await self._body(request)
        self.engine.reset(restore_config=bool(body.get("config")))
        return _response(_json({"ok": True}))

    async def counters(self, request: Request) -> Response:
        self._guard(request)
        return _response(_json(self.engine.counters()))

    async def config(self, request: Request) -> Response:
        self._guard(request)
        if request.method == "POST":
            body = await self._body(request)
            for name, value in body.items():
                # NaN, infinities and ints past float range would pass update()'s >= 0 check.
                if isinstance(value, float | int) and not _finite(value):
                    raise ApiError(422, "VALIDATION_ERROR", f"{name} must be a finite number.")
            try:
                self.engine.config.update(body)
            except ValueError as exc:
                raise ApiError(422, "VALIDATION_ERROR", str(exc)) from exc
        return _response(_json(self.engine.config.to_dict()))

    async def scenarios(self, request: Request) -> Response:
        self._guard(request)
        engine = self.engine
        if request.method == "POST":
            body = await self._body(request)
            raw = body.get("scenarios", [])
            if not isinstance(raw, list):
                raise ApiError(422, "VALIDATION_ERROR", "scenarios must be a list.")
            try:
                parsed = parse_scenarios(raw)
            except ValueError as exc:
                raise ApiError(422, "VALIDATION_ERROR", str(exc)) from exc
            if body.get("replace"):
                engine.custom_scenarios.clear()
            engine.custom_scenarios.extend(parsed)
        names = [s.name for s in (*engine.base_scenarios, *engine.custom_scenarios)]
        return _response(_json({"scenarios": names}))

    async def faults(self, request: Request) -> Response:
        self._guard(request)
        injector = self.engine.faults
        if request.method == "DELETE":
            injector.clear()
        elif request.method == "POST":
            try:
                injector.set(parse_fault_config(await self._body(request), injector.default_seed))
            except ValueError as exc:
                raise ApiError(422, "VALIDATION_ERROR", str(exc)) from exc
        return _response(_json(injector.config.to_dict()))

    async def expire_pause(self, request: Request) -> Response:
        """End a paused run as its pause timeout would, without waiting for it."""
        self._guard(request)
        run = self.engine.runs.get(request.path_params["run_id"])
        if run is None:
            raise ApiError(404, "NOT_FOUND", "No such run.")
        try:
            self.engine.expire_pause(run)
        except InvalidState as exc:
            raise ApiError(409, "INVALID_STATE", str(exc)) from exc
        return _response(_json(run.to_json(None)))

    async def webhooks(self, request: Request) -> Response:
        self._guard(request)
        return _response(_json({"data": self.engine.webhooks.log}))

    async def info(self, request: Request) -> Response:
        self._guard(request)
        return _response(
            _json(
                {
                    "machine_ids": list(self.engine.machine_ids),
                    "config": self.engine.config.to_dict(),
                    "terminal_statuses": sorted(TERMINAL),
                }
            )
        )

    async def machines(self, request: Request) -> Response:
        """Every machine created since the reset, with how it ended."""
        self._guard(request)
        fleet = self.engine.fleet
        now = fleet.settle()
        return _response(_json({"data": [m.ledger_json(now) for m in fleet.created()]}))

    async def clock(self, request: Request) -> Response:
        """Sandbox time; ``{"advance_seconds": n}`` moves it forward (never back)."""
        self._guard(request)
        fleet = self.engine.fleet
        if request.method == "POST":
            body = await self._body(request)
            unknown = sorted(set(body) - {"advance_seconds"})
            seconds = body.get("advance_seconds")
            if (
                unknown
                or isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not _finite(seconds)
                or seconds < 0
            ):
                raise ApiError(
                    422,
                    "VALIDATION_ERROR",
                    'Send {"advance_seconds": <a finite number >= 0>} and nothing else.',
                    details={"field": "advance_seconds", "limit": "a finite number >= 0"},
                )
            fleet.clock.advance(float(seconds))
        now = fleet.settle()
        return _response(_json({"now": iso(now), "offset_seconds": fleet.clock.offset}))
