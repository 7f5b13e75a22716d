"""The /v1 handlers of the step-by-step endpoints: ground, predict, sessions, machine actions.

The routes are listed in ``app``; the agent and the sessions are in ``cua``, what actions do
to a machine's screen in ``desktop``, keyed calls and screens in the ``engine``. Ground,
predict, session create and predict, and actions are reserve-and-replay on their
``Idempotency-Key``: a replay answers the first body again and charges nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from langchain_coasty.sandbox import cua
from langchain_coasty.sandbox._http import _json, _request_id, _response, read_limited
from langchain_coasty.sandbox.api import _Api
from langchain_coasty.sandbox.desktop import execute
from langchain_coasty.sandbox.engine import KeyInFlight, KeyReused
from langchain_coasty.sandbox.errors import ApiError
from langchain_coasty.sandbox.fleet import SandboxMachine
from langchain_coasty.sandbox.sse import _LostResponse
from langchain_coasty.sandbox.validation import (
    Problem,
    load_json,
    validate_action_request,
    validate_batch_request,
    validate_ground_request,
    validate_idempotency_key,
    validate_predict_request,
    validate_session_predict_request,
    validate_session_request,
)

_FREE = {"credits_charged": 0, "cost_cents": 0, "breakdown": None, "billed": False}


class _CuaApi:
    """Handlers for /v1/ground, /v1/predict, /v1/sessions and machine actions."""

    def __init__(self, api: _Api) -> None:
        self.api = api
        self.engine = api.engine

    async def _read(
        self, request: Request, validate: Callable[[Any], Problem | None], *, images: bool = False
    ) -> tuple[str, str | None, Any]:
        """Read, authenticate and validate one call: (key kind, Idempotency-Key, body)."""
        config = self.engine.config
        limit = max(config.image_body_bytes, config.max_body_bytes) if images else None
        if limit is None:
            raw, size = await self.api.read_body(request)
        else:
            raw, size = await read_limited(request, limit)
            if size > limit:
                raise ApiError.too_large(size, limit)
        kind = self.api.begin(request)
        key = request.headers.get("idempotency-key")
        if key is not None:
            problem = validate_idempotency_key(key)
            if problem:
                raise ApiError.invalid(problem)
        if images and raw.strip():
            body = load_json(raw)
        else:
            body = self.api.parse_json(raw, size, optional=not images)
        if body is None:
            body = {}
        problem = validate(body)
        if problem:
            raise ApiError.invalid(problem)
        return kind, key, body

    async def _keyed(
        self,
        request: Request,
        kind: str,
        key: str | None,
        body: dict[str, Any],
        make: Callable[[], dict[str, Any]],
    ) -> Response:
        """Answer a keyed call: ``make`` once per key, a replay charging nothing."""
        request_id = _request_id(request)

        def made() -> bytes:
            answer = {"request_id": request_id, **make()}
            return _json(answer)

        try:
            created = await self.engine.submit_call(
                request.url.path, body, kind, key=key, request_id=request_id, make=made
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
        answer = json.loads(created.body)
        headers: dict[str, str] = {}
        if created.keyed:
            headers["Idempotency-Status"] = "completed"
        if created.replay:
            self.engine.counts["cua_replays"] += 1
            headers["X-Coasty-Idempotent-Replay"] = "true"
            headers["Idempotency-Replayed"] = "true"
            if "usage" in answer:
                answer["usage"] = {**answer["usage"], **_FREE}
        if "usage" in answer:
            headers["X-Credits-Charged"] = str(answer["usage"]["credits_charged"])
        if created.lose_response:
            return _LostResponse(_json(answer), headers=headers, media_type="application/json")
        return _response(_json(answer), headers=headers)

    @staticmethod
    def _measure(screenshot: str) -> tuple[int, int]:
        try:
            return cua.measure(screenshot)
        except cua.BadImage as exc:
            raise ApiError.invalid(exc.problem) from exc

    def _charge(self, kind: str, usage: dict[str, Any]) -> dict[str, Any]:
        self.engine.bill(kind, usage["credits_charged"])
        return usage

    # -- ground and predict ----------------------------------------------------------------

    async def ground(self, request: Request) -> Response:
        """POST /v1/ground: the element's center in the screen the screenshot shows."""
        kind, key, body = await self._read(request, validate_ground_request, images=True)
        real = self._measure(body["screenshot"])
        size = (body.get("screen_width") or real[0], body.get("screen_height") or real[1])

        def make() -> dict[str, Any]:
            self.engine.counts["ground_calls"] += 1
            x, y = cua.ground(body["element"], size)
            return {
                "x": x,
                "y": y,
                "screen_width": size[0],
                "screen_height": size[1],
                "usage": self._charge(kind, cua.ground_usage(kind, real)),
            }

        return await self._keyed(request, kind, key, body, make)

    async def predict(self, request: Request) -> Response:
        """POST /v1/predict: the next actions of the instruction's plan, after the trajectory."""
        kind, key, body = await self._read(request, validate_predict_request, images=True)
        real = self._measure(body["screenshot"])
        size = (body.get("screen_width") or real[0], body.get("screen_height") or real[1])
        version = body.get("cua_version", "v5")
        trajectory = body.get("trajectory", [])

        def make() -> dict[str, Any]:
            self.engine.counts["predict_calls"] += 1
            done = sum(
                1
                for step in trajectory
                for action in step.get("actions", [])
                if action["action_type"] not in ("done", "fail")
            )
            answer, _ = cua.predict(
                body["instruction"],
                done,
                size,
                max_actions=1 if version == "v1" else body.get("max_actions", 5),
                tools=body.get("tools"),
                include_reasoning=body.get("include_reasoning", True),
                include_raw_code=body.get("include_raw_code", True),
            )
            custom = bool(body.get("system_prompt") or body.get("instructions"))
            usage = cua.predict_usage(kind, version, real, len(trajectory), custom)
            return {
                **answer,
                "cua_version": version,
                "screen_width": size[0],
                "screen_height": size[1],
                "usage": self._charge(kind, usage),
            }

        return await self._keyed(request, kind, key, body, make)

    # -- sessions ----------------------------------------------------------------------------

    def _session_or_404(self, request: Request, kind: str) -> cua.CuaSession:
        session_id = request.path_params["session_id"]
        session = self.engine.sessions.visible(session_id, kind, self.engine.fleet.now())
        if session is None:
            raise ApiError(
                404,
                "SESSION_NOT_FOUND",
                f"No session {session_id!r} in {kind} mode: it expired (2 h idle), was "
                "deleted, or never existed. Create one with POST /v1/sessions.",
            )
        return session

    async def create_session(self, request: Request) -> Response:
        """POST /v1/sessions: a session keeping up to max_trajectory_length steps."""
        kind, key, body = await self._read(request, validate_session_request)

        def make() -> dict[str, Any]:
            engine = self.engine
            engine.counts["sessions_created"] += 1
            session = engine.sessions.create(body, kind, engine.fleet.now())
            usage = self._charge(kind, cua.usage(kind, base=1))
            session.total_credits_used += usage["credits_charged"]
            info = session.info()
            del info["step_count"], info["total_credits_used"]
            return {**info, "usage": usage}

        return await self._keyed(request, kind, key, body, make)

    async def list_sessions(self, request: Request) -> Response:
        kind = self.api.begin(request)
        sessions = self.engine.sessions.listed(kind, self.engine.fleet.now())
        return _response(
            _json({"sessions": [s.info() for s in sessions], "request_id": _request_id(request)})
        )

    async def get_session(self, request: Request) -> Response:
        session = self._session_or_404(request, self.api.begin(request))
        return _response(_json({**session.info(), "request_id": _request_id(request)}))

    async def delete_session(self, request: Request) -> Response:
        session = self._session_or_404(request, self.api.begin(request))
        self.engine.sessions.delete(session)
        return self._mutation(request, session)

    async def reset_session(self, request: Request) -> Response:
        session = self._session_or_404(request, self.api.begin(request))
        session.trajectory.clear()
        session.instruction, session.position = None, 0
        session.last_used = self.engine.fleet.now()
        return self._mutation(request, session)

    def _mutation(self, request: Request, session: cua.CuaSession) -> Response:
        body = {"status": "ok", "session_id": session.id, "request_id": _request_id(request)}
        return _response(_json(body))

    async def session_predict(self, request: Request) -> Response:
        """POST /v1/sessions/{id}/predict: the next step, kept in the session's trajectory."""
        kind, key, body = await self._read(request, validate_session_predict_request, images=True)
        session = self._session_or_404(request, kind)
        real = self._measure(body["screenshot"])

        def make() -> dict[str, Any]:
            engine = self.engine
            engine.counts["session_predict_calls"] += 1
            kept = len(session.trajectory)
            answer = session.step(
                body["instruction"],
                body.get("include_reasoning", True),
                body.get("include_raw_code", True),
            )
            session.last_used = engine.fleet.now()
            usage = cua.predict_usage(kind, session.cua_version, real, kept, session.custom_prompt)
            session.total_credits_used += self._charge(kind, usage)["credits_charged"]
            return {
                "session_id": session.id,
                "step": session.step_count,
                **answer,
                "cua_version": session.cua_version,
                "usage": usage,
            }

        return await self._keyed(request, kind, key, body, make)

    # -- machine actions ---------------------------------------------------------------------

    def _running_machine(self, request: Request, kind: str) -> SandboxMachine:
        machine_id = request.path_params["machine_id"]
        machine = self.engine.fleet.visible(machine_id, kind)
        if machine is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"No machine {machine_id!r} in {kind} mode; list machines with GET /v1/machines.",
            )
        if machine.status != "running":
            raise ApiError(
                409,
                "INVALID_STATE",
                f"Machine {machine.id} is {machine.status}; actions need a running machine.",
                details={"field": "machine_id", "current_state": machine.status},
            )
        return machine

    async def action(self, request: Request) -> Response:
        """POST /v1/machines/{id}/actions: run one command on the machine's screen."""
        kind, key, body = await self._read(request, validate_action_request)
        machine = self._running_machine(request, kind)

        def make() -> dict[str, Any]:
            self.engine.counts["actions_executed"] += 1
            return execute(machine.id, self.engine.screen(machine.id), body)

        return await self._keyed(request, kind, key, body, make)

    async def action_batch(self, request: Request) -> Response:
        """POST /v1/machines/{id}/actions/batch: steps in order; stop at a failure by default."""
        kind, key, body = await self._read(request, validate_batch_request)
        machine = self._running_machine(request, kind)
        stop = body.get("stop_on_error", True)

        def make() -> dict[str, Any]:
            state = self.engine.screen(machine.id)
            results: list[dict[str, Any]] = []
            for step in body["steps"]:
                self.engine.counts["actions_executed"] += 1
                result = execute(machine.id, state, step)
                result["request_id"] = _request_id(request)
                results.append(result)
                if stop and not result["success"]:
                    break
            failed = sum(1 for r in results if not r["success"])
            return {
                "machine_id": machine.id,
                "results": results,
                "completed_count": len(results) - failed,
                "failed_count": failed,
                "aborted": len(results) < len(body["steps"]),
            }

        return await self._keyed(request, kind, key, body, make)
