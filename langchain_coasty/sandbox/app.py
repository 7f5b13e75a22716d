"""The sandbox's ASGI app: Coasty's /v1 runs API plus a control plane, on Starlette.

Public API (auth: ``X-API-Key: sk-coasty-test-…`` / ``sk-coasty-live-…`` or
``Authorization: Bearer …``; test-mode and live-mode resources are isolated)::

    POST /v1/runs                  create a run (Idempotency-Key: reserve-and-replay)
    GET  /v1/runs                  list runs (?status=, ?limit=1..200), newest first
    GET  /v1/runs/{run_id}         one run
    GET  /v1/runs/{run_id}/events  SSE; resume with Last-Event-ID or ?after=
    POST /v1/runs/{run_id}/cancel  from queued, running or awaiting_human (else 409)
    POST /v1/runs/{run_id}/resume  from awaiting_human, body {"note": ...} optional (else 409)
    GET  /v1/idempotency/{key}     the stored result of a keyed create
    GET  /v1/health                no auth
    GET  /v1/machines              the pre-provisioned machines

Every response carries ``X-Coasty-Request-Id``, ``X-Coasty-Key-Kind`` and
``X-Coasty-Test-Mode``; creates also ``X-Credits-Charged: 0``. Errors use the documented
envelope ``{"error": {code, message, type, request_id, retryable,
retry_with_same_idempotency_key, retry_after?, suggestion?, details?}}``. Bodies over
``max_body_bytes`` (1 MiB by default) are a 413.

Control plane (JSON, no auth, loopback clients only)::

    POST   /_sandbox/reset       drop runs, counters, faults, custom scenarios; keep config
                                 (body {"config": true} also restores the starting config)
    GET    /_sandbox/counters    runs_created, create_calls, create_replays,
                                 stream_connections, open_streams, cancels, resumes,
                                 events_emitted, webhook_attempts, faults_fired{},
                                 runs_by_status{}
    GET    /_sandbox/config      current settings; POST with {pace, heartbeat_interval,
                                 rotation_seconds, webhook_retry_base, webhook_max_attempts,
                                 webhook_timeout, max_body_bytes} to change them
    GET    /_sandbox/scenarios   names of loaded scenarios; POST {"scenarios": [...],
                                 "replace": false} to add (format: ``scenarios`` module)
    GET    /_sandbox/faults      current faults; POST to set (format: ``faults`` module);
                                 DELETE to clear
    GET    /_sandbox/webhooks    webhook delivery attempts: url, status, error, event_id,
                                 event_type, run_id, attempt, delivered
    GET    /_sandbox/info        machine ids and settings

SSE frames: ``id: <seq>``, ``event: <type>``, ``data: {"seq", "type", "data", "ts"}``;
``: ping`` comments every ``heartbeat_interval`` seconds while idle; a connection is ended
cleanly after ``rotation_seconds``; ``done`` is the last event and the server closes after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langchain_coasty.sandbox.engine import (
    TERMINAL,
    CreateRefused,
    Engine,
    InvalidState,
    KeyInFlight,
    KeyReused,
    SandboxRun,
)
from langchain_coasty.sandbox.faults import StreamFaults, parse_fault_config
from langchain_coasty.sandbox.scenarios import parse_scenarios
from langchain_coasty.sandbox.validation import (
    RUN_STATUSES,
    Problem,
    validate_idempotency_key,
    validate_resume_request,
    validate_run_request,
)

_KEY_RE = re.compile(r"^sk-coasty-(test|live)-[A-Za-z0-9_]+$")
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_SSE_BATCH = 256

_ERROR_TYPES = {
    400: "validation_error",
    401: "auth_error",
    402: "billing_error",
    403: "auth_error",
    404: "not_found_error",
    405: "client_error",
    409: "state_error",
    413: "client_error",
    422: "validation_error",
    429: "rate_limit_error",
}
_RETRYABLE = frozenset(
    {
        "SERVICE_UNAVAILABLE",
        "RATE_LIMITED",
        "TOO_MANY_RUNS",
        "IDEMPOTENCY_IN_FLIGHT",
        "INTERNAL_ERROR",
        "DB_UNAVAILABLE",
        "UPSTREAM_ERROR",
        "UPSTREAM_TIMEOUT",
        "LLM_PROVIDER_RATE_LIMITED",
    }
)
_SUGGESTIONS = {
    "INVALID_API_KEY": "Send X-API-Key: sk-coasty-test-<hex> (or Authorization: Bearer <key>).",
    "VALIDATION_ERROR": "Fix the field named in error.details and send the request again.",
    "NOT_FOUND": "Check the id; test-mode and live-mode resources are isolated.",
    "INVALID_STATE": "GET the run to see its status before cancelling or resuming it.",
    "IDEMPOTENCY_KEY_REUSED": "Use a new Idempotency-Key for a different request body.",
    "IDEMPOTENCY_IN_FLIGHT": "Retry with the same Idempotency-Key, or GET /v1/idempotency/{key}.",
    "RATE_LIMITED": "Wait Retry-After seconds, then retry with the same Idempotency-Key.",
    "SERVICE_UNAVAILABLE": "Wait Retry-After seconds, then retry with the same Idempotency-Key.",
    "PAYLOAD_TOO_LARGE": "Send a smaller body.",
}
_REFUSALS = {
    "unavailable": (
        503,
        "SERVICE_UNAVAILABLE",
        "The run service is temporarily unavailable; nothing was created.",
    ),
    "rate_limited": (429, "RATE_LIMITED", "Too many requests; nothing was created."),
}


class ApiError(Exception):
    """An error answered in Coasty's envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retryable: bool | None = None,
        same_key: bool | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retryable = retryable
        self.same_key = same_key
        self.retry_after = retry_after

    @classmethod
    def invalid(cls, problem: Problem) -> ApiError:
        return cls(422, problem.code, problem.message, details=problem.details())


class _DropConnection(Exception):
    """Raised after a response has started to make uvicorn close the TCP connection."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DropConnection))


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def _key_kind(api_key: str | None) -> str | None:
    match = _KEY_RE.fullmatch(api_key or "")
    return match.group(1) if match else None


def _api_key(headers: dict[str, str]) -> str | None:
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
    return json.dumps(data, separators=(",", ":")).encode()


def _response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "req_unknown"))


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
                if finished:
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
            if run.closed:
                return
            if now >= next_ping:
                await send({"type": "http.response.body", "body": b": ping\n", "more_body": True})
                next_ping = now + engine.config.heartbeat_interval
                continue
            wake = min(next_ping, opened + engine.config.rotation_seconds)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wake - now)):
                    await run.wait_changed()


class _Api:
    """Handlers for the /v1 routes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def begin(self, request: Request, *, auth: bool = True) -> str:
        """Authenticate and apply scripted error faults; return the key kind."""
        kind = "test"
        if auth:
            key = _api_key({k.lower(): v for k, v in request.headers.items()})
            if not key:
                raise ApiError(
                    401,
                    "INVALID_API_KEY",
                    "No API key: send X-API-Key: sk-coasty-test-... or Authorization: Bearer.",
                )
            found = _key_kind(key)
            if found is None:
                raise ApiError(
                    401,
                    "INVALID_API_KEY",
                    "The API key is invalid: keys look like sk-coasty-test-<hex> or "
                    "sk-coasty-live-<hex>.",
                )
            kind = found
        scripted = self.engine.faults.scripted_error(request.method, request.url.path)
        if scripted is not None:
            raise ApiError(
                scripted.status,
                scripted.code,
                scripted.message or f"Injected {scripted.code} (sandbox fault).",
                retryable=scripted.retryable,
                retry_after=scripted.retry_after,
            )
        return kind

    async def read_body(self, request: Request) -> tuple[bytes, int]:
        """Drain the body, keeping at most max_body_bytes of it; return (kept, full size)."""
        limit = self.engine.config.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
        return b"".join(chunks), size

    def parse_json(self, raw: bytes, size: int, *, optional: bool = False) -> Any:
        limit = self.engine.config.max_body_bytes
        if size > limit:
            raise ApiError(
                413,
                "PAYLOAD_TOO_LARGE",
                f"The request body is {size} bytes; the limit is {limit} bytes.",
                details={"field": "body", "limit": f"{limit} bytes"},
            )
        if not raw.strip():
            if optional:
                return None
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "The request body is empty; send a JSON object.",
                details={"field": "body", "limit": "a JSON object"},
            )
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"The request body is not valid JSON: {exc}.",
                details={"field": "body", "limit": "a JSON object"},
            ) from exc

    def run_or_404(self, request: Request, kind: str) -> SandboxRun:
        run_id = request.path_params["run_id"]
        run = self.engine.visible(run_id, kind)
        if run is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"No run {run_id!r} in {kind} mode; list runs with GET /v1/runs.",
            )
        return run

    def _llm_echo(self, request: Request, body: dict[str, Any]) -> dict[str, Any] | None:
        header_provider = request.headers.get("x-llm-provider")
        header_key = request.headers.get("x-llm-api-key")
        header_model = request.headers.get("x-llm-model")
        llm = body.get("llm") or {}
        if header_provider is not None and header_provider not in ("anthropic", "openai"):
            raise ApiError(
                422,
                "LLM_PROVIDER_UNSUPPORTED",
                "X-LLM-Provider must be one of anthropic, openai.",
                details={"field": "X-LLM-Provider", "limit": "one of anthropic, openai"},
            )
        provider = header_provider or llm.get("provider") or "managed"
        if header_key is not None:
            if not 16 <= len(header_key) <= 512:
                raise ApiError.invalid(
                    Problem(
                        "X-LLM-Api-Key",
                        "16..512",
                        "X-LLM-Api-Key must be 16..512 characters long.",
                    )
                )
            if provider == "managed":
                raise ApiError(
                    422,
                    "LLM_PROVIDER_UNSUPPORTED",
                    "X-LLM-Api-Key needs a provider: send X-LLM-Provider (anthropic | openai).",
                    details={"field": "X-LLM-Provider", "limit": "one of anthropic, openai"},
                )
        if provider == "managed":
            return None
        default_model = "claude-sonnet-4-6" if provider == "anthropic" else "gpt-4o"
        fingerprint = None
        if header_key is not None:
            fingerprint = "sha256:" + hashlib.sha256(header_key.encode()).hexdigest()[:12]
        return {
            "provider": provider,
            "model": header_model or llm.get("model") or default_model,
            "key_fingerprint": fingerprint,
            "key_source": "header" if header_key is not None else "stored",
            "key_scrubbed": False,
        }

    async def create_run(self, request: Request) -> Response:
        engine = self.engine
        engine.counts["create_calls"] += 1
        raw, size = await self.read_body(request)
        kind = self.begin(request)
        key = request.headers.get("idempotency-key")
        if key is not None:
            problem = validate_idempotency_key(key)
            if problem:
                raise ApiError.invalid(problem)
        body = self.parse_json(raw, size)
        try:
            engine.admit_create()
        except CreateRefused as exc:
            status, code, message = _REFUSALS[exc.reason]
            raise ApiError(status, code, message, retry_after=exc.retry_after) from exc
        problem = validate_run_request(body)
        if problem:
            raise ApiError.invalid(problem)
        llm = self._llm_echo(request, body)
        if body["machine_id"] not in engine.machine_ids:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Machine {body['machine_id']!r} not found. List your machines with "
                f"GET /v1/machines (this sandbox has {', '.join(engine.machine_ids)}).",
                details={"field": "machine_id"},
            )
        try:
            created = await engine.submit(
                body, kind, key=key, request_id=_request_id(request), llm=llm
            )
        except KeyReused as exc:
            raise ApiError(
                422,
                "IDEMPOTENCY_KEY_REUSED",
                f"Idempotency-Key {key!r} was already used with a different request body.",
                details={"field": "Idempotency-Key"},
            ) from exc
        except KeyInFlight as exc:
            raise ApiError(
                409,
                "IDEMPOTENCY_IN_FLIGHT",
                f"A request with Idempotency-Key {key!r} is still in flight.",
                retry_after=1,
            ) from exc
        if created.replay:
            headers = {
                "X-Coasty-Idempotent-Replay": "true",
                "Idempotency-Status": "completed",
                "X-Credits-Charged": "0",
            }
        else:
            headers = {"X-Credits-Charged": "0"}
            if created.keyed:
                headers["Idempotency-Status"] = "completed"
        if created.lose_response:
            return _LostResponse(created.body, headers=headers, media_type="application/json")
        return _response(created.body, headers=headers)

    async def list_runs(self, request: Request) -> Response:
        kind = self.begin(request)
        status = request.query_params.get("status")
        if status is not None and status not in RUN_STATUSES:
            allowed = "one of " + ", ".join(RUN_STATUSES)
            raise ApiError.invalid(Problem("status", allowed, f"status must be {allowed}."))
        raw_limit = request.query_params.get("limit", "20")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 200:
            raise ApiError.invalid(
                Problem(
                    "limit", "1..200", f"limit must be an integer in 1..200 (got {raw_limit!r})."
                )
            )
        limit = int(raw_limit)
        request_id = _request_id(request)
        matching = (
            r
            for r in reversed(self.engine.runs.values())
            if r.key_kind == kind and (status is None or r.status == status)
        )
        page: list[dict[str, Any]] = []
        has_more = False
        for run in matching:
            if len(page) == limit:
                has_more = True
                break
            page.append(run.to_json(request_id))
        return _response(
            _json({"object": "list", "data": page, "has_more": has_more, "request_id": request_id})
        )

    async def get_run(self, request: Request) -> Response:
        run = self.run_or_404(request, self.begin(request))
        return _response(_json(run.to_json(_request_id(request))))

    async def stream_events(self, request: Request) -> Response:
        run = self.run_or_404(request, self.begin(request))
        after = 0
        for name, raw in (
            ("Last-Event-ID", request.headers.get("last-event-id")),
            ("after", request.query_params.get("after")),
        ):
            if raw is None or raw == "":
                continue
            if not raw.strip().isdigit():
                raise ApiError.invalid(
                    Problem(name, ">= 0", f"{name} must be an integer >= 0 (got {raw!r}).")
                )
            after = max(after, int(raw))
        after = min(after, len(run.frames))
        faults = self.engine.faults.for_stream(reconnect=after > 0)
        return _EventStream(self.engine, run, after, faults)

    async def cancel_run(self, request: Request) -> Response:
        run = self.run_or_404(request, self.begin(request))
        try:
            self.engine.cancel(run)
        except InvalidState as exc:
            raise ApiError(409, "INVALID_STATE", str(exc)) from exc
        return _response(_json(run.to_json(_request_id(request))))

    async def resume_run(self, request: Request) -> Response:
        raw, size = await self.read_body(request)
        run = self.run_or_404(request, self.begin(request))
        body = self.parse_json(raw, size, optional=True)
        problem = validate_resume_request(body)
        if problem:
            raise ApiError.invalid(problem)
        note = body.get("note") if isinstance(body, dict) else None
        try:
            self.engine.resume(run, note)
        except InvalidState as exc:
            raise ApiError(409, "INVALID_STATE", str(exc)) from exc
        return _response(_json(run.to_json(_request_id(request))))

    async def idempotency_lookup(self, request: Request) -> Response:
        kind = self.begin(request)
        key = request.path_params["key"]
        problem = validate_idempotency_key(key)
        if problem:
            raise ApiError.invalid(problem)
        record = self.engine.idempotency_record(kind, key)
        if record is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"No request with Idempotency-Key {key!r} in {kind} mode in the last 24 h.",
            )
        completed = record.status == "completed" and record.body is not None
        return _response(
            _json(
                {
                    "status": record.status,
                    "request_id": _request_id(request),
                    "result": json.loads(record.body) if completed and record.body else None,
                    "original_status": record.original_status,
                }
            )
        )

    async def health(self, request: Request) -> Response:
        self.begin(request, auth=False)
        return _response(_json({"status": "ok", "api_version": "v1", "service": "coasty-sandbox"}))

    async def list_machines(self, request: Request) -> Response:
        self.begin(request)
        machines = [
            {
                "id": machine_id,
                "display_name": f"Sandbox desktop {i}",
                "status": "running",
                "os_type": "linux",
                "desktop_enabled": True,
                "cpu_cores": 2,
                "memory_gb": 4,
                "storage_gb": 20,
                "public_ip": None,
                "is_test": True,
                "created_at": None,
                "started_at": None,
                "auto_destroy_at": None,
                "ttl_minutes": None,
                "metadata": {"sandbox": "true"},
            }
            for i, machine_id in enumerate(self.engine.machine_ids, start=1)
        ]
        return _response(
            _json({"data": machines, "has_more": False, "request_id": _request_id(request)})
        )


class _Control:
    """Handlers for the /_sandbox control plane."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def _guard(request: Request) -> None:
        host = request.client.host if request.client else "127.0.0.1"
        if host not in _LOOPBACK and not host.startswith("127."):
            raise ApiError(403, "FORBIDDEN", "The sandbox control plane only answers loopback.")

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "VALIDATION_ERROR", f"Body is not valid JSON: {exc}") from exc
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
            try:
                self.engine.config.update(await self._body(request))
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


def _error_body(request: Request, exc: ApiError) -> Response:
    path = request.url.path
    retryable = exc.retryable
    if retryable is None:
        retryable = exc.code in _RETRYABLE or exc.status >= 500
    same_key = exc.same_key
    if same_key is None:
        same_key = (
            retryable
            and request.method == "POST"
            and path == "/v1/runs"
            and request.headers.get("idempotency-key") is not None
        )
    error: dict[str, Any] = {
        "code": exc.code,
        "message": exc.message,
        "type": _ERROR_TYPES.get(exc.status, "server_error"),
        "request_id": _request_id(request),
        "retryable": retryable,
        "retry_with_same_idempotency_key": same_key,
    }
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        error["retry_after"] = exc.retry_after
        headers["Retry-After"] = str(exc.retry_after)
    if exc.code in _SUGGESTIONS:
        error["suggestion"] = _SUGGESTIONS[exc.code]
    if exc.details is not None:
        error["details"] = exc.details
    return _response(_json({"error": error}), exc.status, headers)


async def _handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error_body(request, exc)


async def _handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error = ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed here.")
    else:
        error = ApiError(
            exc.status_code, "NOT_FOUND", f"No route {request.method} {request.url.path}."
        )
    return _error_body(request, error)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    error = ApiError(500, "INTERNAL_ERROR", f"Unexpected sandbox error: {type(exc).__name__}.")
    return _error_body(request, error)


def create_app(
    engine: Engine | None = None, on_startup: Callable[[], None] | None = None
) -> Starlette:
    """Build the sandbox app around ``engine`` (a fresh one by default)."""
    engine = engine or Engine()
    api = _Api(engine)
    control = _Control(engine)
    _install_log_filter()

    routes = [
        Route("/v1/runs", api.create_run, methods=["POST"]),
        Route("/v1/runs", api.list_runs, methods=["GET"]),
        Route("/v1/runs/{run_id}", api.get_run, methods=["GET"]),
        Route("/v1/runs/{run_id}/events", api.stream_events, methods=["GET"]),
        Route("/v1/runs/{run_id}/cancel", api.cancel_run, methods=["POST"]),
        Route("/v1/runs/{run_id}/resume", api.resume_run, methods=["POST"]),
        Route("/v1/idempotency/{key}", api.idempotency_lookup, methods=["GET"]),
        Route("/v1/health", api.health, methods=["GET"]),
        Route("/v1/machines", api.list_machines, methods=["GET"]),
        Route("/_sandbox/reset", control.reset, methods=["POST"]),
        Route("/_sandbox/counters", control.counters, methods=["GET"]),
        Route("/_sandbox/config", control.config, methods=["GET", "POST"]),
        Route("/_sandbox/scenarios", control.scenarios, methods=["GET", "POST"]),
        Route("/_sandbox/faults", control.faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/webhooks", control.webhooks, methods=["GET"]),
        Route("/_sandbox/info", control.info, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine.closing = False
        if on_startup is not None:
            on_startup()
        yield
        await engine.aclose()

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        ApiError: _handle_api_error,
        HTTPException: _handle_http_error,
        Exception: _handle_unexpected,
    }
    app = Starlette(
        routes=routes,
        middleware=[Middleware(CoastyHeaders)],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.engine = engine
    return app
