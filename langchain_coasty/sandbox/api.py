"""The /v1 handlers: check each request, call the engine, translate its answer to HTTP.

The routes are listed in ``app``; run state, idempotency and the create faults are the
engine's. What stays here is HTTP: auth, scripted error faults, body limits, query and header
parsing, the BYOK headers, and the status, headers and messages of every answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from langchain_coasty.sandbox._http import (
    _api_key,
    _json,
    _key_kind,
    _request_id,
    _response,
    read_limited,
)
from langchain_coasty.sandbox.engine import (
    CreateRefused,
    Engine,
    InvalidState,
    KeyInFlight,
    KeyReused,
)
from langchain_coasty.sandbox.errors import ApiError
from langchain_coasty.sandbox.records import SandboxRun
from langchain_coasty.sandbox.sse import _EventStream, _LostResponse
from langchain_coasty.sandbox.validation import (
    CUA_VERSIONS,
    RUN_STATUSES,
    Problem,
    load_json,
    parse_count,
    validate_idempotency_key,
    validate_resume_request,
    validate_run_request,
)

_REFUSALS = {
    "unavailable": (
        503,
        "SERVICE_UNAVAILABLE",
        "The run service is temporarily unavailable; nothing was created.",
    ),
    "rate_limited": (429, "RATE_LIMITED", "Too many requests; nothing was created."),
}

_WALLET_CENTS = 100_000
_RATE_LIMIT = 600
_RATE_WINDOW = 60
_MODELS: dict[str, Any] = {
    "models": [{"id": "coasty-cua", "description": "Coasty's computer-use agent (sandbox)."}],
    "cua_versions": [
        {
            "id": version,
            "description": f"CUA {version} (sandbox).",
            "avg_step_time": "1s",
            "features": ["desktop", "browser"],
            "latest": version == CUA_VERSIONS[-1],
        }
        for version in CUA_VERSIONS
    ],
    "action_types": [
        "click",
        "double_click",
        "right_click",
        "type",
        "key_press",
        "scroll",
        "drag",
        "move",
        "wait",
        "screenshot",
    ],
}


class _Api:
    """Handlers for the /v1 routes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._rate_window = 0
        self._rate_used = 0

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
                flags=scripted.flags,
                headers=scripted.headers,
            )
        return kind

    def run_answer(self, body: bytes, headers: dict[str, str] | None = None) -> Response:
        """A run body; with ``credits_headers`` its cost moves from the body to the headers."""
        headers = dict(headers or {})
        if self.engine.config.credits_headers:
            data = json.loads(body)
            charged = int(data.pop("credits_charged", 0) or 0)
            data.pop("cost_cents", None)
            spent = sum(r.credits_charged for r in self.engine.runs.values())
            headers["X-Credits-Charged"] = str(charged)
            headers["X-Credits-Remaining"] = str(max(0, _WALLET_CENTS - spent))
            body = _json(data)
        return _response(body, headers=headers)

    def response_headers(
        self, scope: Scope, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """The Coasty headers of one response, as the settings shape them."""
        config = self.engine.config
        if not config.request_id_header:
            headers = [h for h in headers if h[0] != b"x-coasty-request-id"]
        if config.rate_limit_headers and str(scope.get("path", "")).startswith("/v1/"):
            now = time.time()
            window = int(now // _RATE_WINDOW)
            if window != self._rate_window:
                self._rate_window, self._rate_used = window, 0
            self._rate_used += 1
            remaining = max(0, _RATE_LIMIT - self._rate_used)
            reset = (window + 1) * _RATE_WINDOW
            headers = [
                *headers,
                (b"x-ratelimit-limit", str(_RATE_LIMIT).encode()),
                (b"x-ratelimit-remaining", str(remaining).encode()),
                (b"x-ratelimit-reset", str(reset).encode()),
            ]
        return headers

    async def read_body(self, request: Request) -> tuple[bytes, int]:
        """Drain the body, keeping at most max_body_bytes of it; return (kept, full size)."""
        return await read_limited(request, self.engine.config.max_body_bytes)

    def parse_json(self, raw: bytes, size: int, *, optional: bool = False) -> Any:
        limit = self.engine.config.max_body_bytes
        if size > limit:
            raise ApiError.too_large(size, limit)
        if not raw.strip():
            if optional:
                return None
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "The request body is empty; send a JSON object.",
                details={"field": "body", "limit": "a JSON object"},
            )
        return load_json(raw)

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
        if header_model is not None and not 1 <= len(header_model) <= 512:
            raise ApiError.invalid(
                Problem("X-LLM-Model", "1..512", "X-LLM-Model must be 1..512 characters long.")
            )
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
        """POST /v1/runs: check the request, let the engine create or replay, answer.

        The order of checks is observable: seeded refusals are drawn only for an
        authenticated, parseable request, and before the body is validated.
        """
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
        engine.last_create_body = body
        try:
            engine.admit_create()
        except CreateRefused as exc:
            status, code, message = _REFUSALS[exc.reason]
            raise ApiError(status, code, message, retry_after=exc.retry_after) from exc
        problem = validate_run_request(body)
        if problem:
            raise ApiError.invalid(problem)
        llm = self._llm_echo(request, body)
        machine = engine.fleet.visible(body["machine_id"], kind)
        if machine is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Machine {body['machine_id']!r} not found. List your machines with "
                f"GET /v1/machines (this sandbox has {', '.join(engine.machine_ids)}).",
                details={"field": "machine_id"},
            )
        if machine.status != "running":
            raise ApiError(
                409,
                "INVALID_STATE",
                f"Machine {machine.id} is {machine.status}; a run needs a running machine "
                "(start it with POST /v1/machines/{machine_id}/start, or wait for it to boot).",
                details={"field": "machine_id", "current_state": machine.status},
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
        return self.run_answer(created.body, headers)

    async def list_runs(self, request: Request) -> Response:
        kind = self.begin(request)
        status = request.query_params.get("status")
        if status is not None and status not in RUN_STATUSES:
            allowed = "one of " + ", ".join(RUN_STATUSES)
            raise ApiError.invalid(Problem("status", allowed, f"status must be {allowed}."))
        limit = parse_count("limit", request.query_params.get("limit", "20"), 1, 200)
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
        return self.run_answer(_json(run.to_json(_request_id(request))))

    async def stream_events(self, request: Request) -> Response:
        run = self.run_or_404(request, self.begin(request))
        after = 0
        for name, raw in (
            ("Last-Event-ID", request.headers.get("last-event-id")),
            ("after", request.query_params.get("after")),
        ):
            if raw is None or raw == "":
                continue
            after = max(after, parse_count(name, raw.strip(), 0))
        after = min(after, len(run.frames))
        faults = self.engine.faults.for_stream(reconnect=after > 0)
        return _EventStream(self.engine, run, after, faults)

    async def cancel_run(self, request: Request) -> Response:
        run = self.run_or_404(request, self.begin(request))
        try:
            self.engine.cancel(run)
        except InvalidState as exc:
            raise ApiError(409, "INVALID_STATE", str(exc)) from exc
        return self.run_answer(_json(run.to_json(_request_id(request))))

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
        return self.run_answer(_json(run.to_json(_request_id(request))))

    async def idempotency_lookup(self, request: Request) -> Response:
        if not self.engine.config.idempotency_lookup:
            raise HTTPException(404)  # answered like a route the server does not have
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

    async def list_models(self, request: Request) -> Response:
        """GET /v1/models: the model catalog (ModelsResponse)."""
        self.begin(request)
        return _response(_json(_MODELS))
