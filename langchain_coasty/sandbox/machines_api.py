"""The /v1 machine and billing handlers: check each request, call the fleet, answer.

The routes are listed in ``app``; machine state is the ``fleet``'s, keyed creates the
engine's. Auth, scripted faults and body reading are shared with the runs handlers (``api``).
"""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from langchain_coasty.sandbox._http import _json, _request_id, _response
from langchain_coasty.sandbox.api import _Api
from langchain_coasty.sandbox.engine import KeyInFlight, KeyReused
from langchain_coasty.sandbox.errors import ApiError
from langchain_coasty.sandbox.fleet import (
    RUNNING_CREDITS_PER_HOUR,
    STOPPED_CREDITS_PER_HOUR,
    TTL_MINUTES,
    MachineStateConflict,
    SandboxMachine,
)
from langchain_coasty.sandbox.records import iso
from langchain_coasty.sandbox.screens import HEIGHT, WIDTH
from langchain_coasty.sandbox.sse import _LostResponse
from langchain_coasty.sandbox.validation import (
    parse_count,
    validate_idempotency_key,
    validate_provision_request,
    validate_update_machine_request,
)

_BILLING_STATUSES = frozenset({"running", "starting", "stopping", "restarting", "stopped"})
_PRICING: dict[str, Any] = {
    "currency": "credits",
    "credit_value_usd": 0.01,
    "runtime_credits_per_hour": {
        "linux": {"running": RUNNING_CREDITS_PER_HOUR["linux"], "stopped": 1},
        "windows": {"running": RUNNING_CREDITS_PER_HOUR["windows"], "stopped": 1},
    },
    "stopped_credits_per_hour": STOPPED_CREDITS_PER_HOUR,
    "one_time": {"snapshot": 0},
    "billing_granularity": "second",
    "insufficient_funds": "suspend",
    "ttl_minutes": {"min": TTL_MINUTES[0], "max": TTL_MINUTES[1], "clear": 0},
}


class _MachinesApi:
    """Handlers for /v1/machines and /v1/billing/active."""

    def __init__(self, api: _Api) -> None:
        self.api = api
        self.engine = api.engine
        self.fleet = api.engine.fleet

    def machine_or_404(self, request: Request, kind: str) -> SandboxMachine:
        machine_id = request.path_params["machine_id"]
        machine = self.fleet.visible(machine_id, kind)
        if machine is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"No machine {machine_id!r} in {kind} mode; list machines with GET /v1/machines.",
            )
        return machine

    def _record(self, machine: SandboxMachine) -> dict[str, Any]:
        return machine.to_json(self.fleet.now(), billing=True)

    async def create(self, request: Request) -> Response:
        """POST /v1/machines: validate, provision (or replay the key's first answer)."""
        engine = self.engine
        engine.counts["machine_create_calls"] += 1
        raw, size = await self.api.read_body(request)
        kind = self.api.begin(request)
        key = request.headers.get("idempotency-key")
        if key is not None:
            problem = validate_idempotency_key(key)
            if problem:
                raise ApiError.invalid(problem)
        body = self.api.parse_json(raw, size)
        problem = validate_provision_request(body)
        if problem:
            raise ApiError.invalid(problem)
        try:
            created = await engine.submit_machine(
                body, kind, key=key, request_id=_request_id(request)
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
        headers = {"X-Credits-Charged": "0"}
        if created.keyed:
            headers["Idempotency-Status"] = "completed"
        if created.replay:
            headers["X-Coasty-Idempotent-Replay"] = "true"
        if created.lose_response:
            return _LostResponse(created.body, headers=headers, media_type="application/json")
        return _response(created.body, headers=headers)

    async def list(self, request: Request) -> Response:
        kind = self.api.begin(request)
        limit = parse_count("limit", request.query_params.get("limit", "50"), 1, 200)
        machines = self.fleet.listed(kind)
        page = [self._record(m) for m in machines[:limit]]
        return _response(
            _json(
                {
                    "data": page,
                    "has_more": len(machines) > limit,
                    "request_id": _request_id(request),
                }
            )
        )

    async def get(self, request: Request) -> Response:
        machine = self.machine_or_404(request, self.api.begin(request))
        return _response(
            _json({"machine": self._record(machine), "request_id": _request_id(request)})
        )

    async def delete(self, request: Request) -> Response:
        machine = self.machine_or_404(request, self.api.begin(request))
        self.fleet.terminate(machine)
        return self._lifecycle(request, machine, "Machine terminated; billing stopped.")

    async def update(self, request: Request) -> Response:
        raw, size = await self.api.read_body(request)
        machine = self.machine_or_404(request, self.api.begin(request))
        body = self.api.parse_json(raw, size)
        problem = validate_update_machine_request(body)
        if problem:
            raise ApiError.invalid(problem)
        try:
            self.fleet.set_lease(machine, int(body["ttl_minutes"]))
        except MachineStateConflict as exc:
            raise ApiError(409, "INVALID_STATE", str(exc)) from exc
        return _response(
            _json(
                {
                    "machine_id": machine.id,
                    "ttl_minutes": machine.ttl_minutes,
                    "auto_destroy_at": self._record(machine)["auto_destroy_at"],
                    "request_id": _request_id(request),
                }
            )
        )

    async def start(self, request: Request) -> Response:
        return await self._change(request, "start", "Start requested.")

    async def stop(self, request: Request) -> Response:
        return await self._change(request, "stop", "Stop requested; stopped machines bill 1/h.")

    async def restart(self, request: Request) -> Response:
        return await self._change(request, "restart", "Restart requested.")

    async def _change(self, request: Request, action: str, message: str) -> Response:
        machine = self.machine_or_404(request, self.api.begin(request))
        try:
            getattr(self.fleet, action)(machine)
        except MachineStateConflict as exc:
            raise ApiError(409, "INVALID_STATE", str(exc)) from exc
        return self._lifecycle(request, machine, message)

    def _lifecycle(self, request: Request, machine: SandboxMachine, message: str) -> Response:
        return _response(
            _json(
                {
                    "machine_id": machine.id,
                    "status": machine.status,
                    "message": message,
                    "request_id": _request_id(request),
                }
            )
        )

    async def connection(self, request: Request) -> Response:
        """GET /v1/machines/{id}/connection: the credentials, never cached."""
        machine = self.machine_or_404(request, self.api.begin(request))
        if machine.status == "terminated":
            raise ApiError(
                409, "INVALID_STATE", f"Machine {machine.id} is terminated; it has no connection."
            )
        body = {**machine.connection_json(), "request_id": _request_id(request)}
        return _response(_json(body), headers={"Cache-Control": "no-store"})

    async def screenshot(self, request: Request) -> Response:
        """GET /v1/machines/{id}/screenshot: the screen now, as base64 JPEG (ScreenResponse)."""
        machine = self.machine_or_404(request, self.api.begin(request))
        if machine.status == "terminated":
            raise ApiError(
                409, "INVALID_STATE", f"Machine {machine.id} is terminated; it has no screen."
            )
        image = self.engine.capture(machine)
        body = {
            "machine_id": machine.id,
            "image_b64": base64.b64encode(image).decode("ascii"),
            "mime_type": "image/jpeg",
            "width": WIDTH,
            "height": HEIGHT,
            "captured_at": iso(self.fleet.now()),
            "request_id": _request_id(request),
        }
        return _response(_json(body), headers={"Cache-Control": "no-store"})

    async def pricing(self, request: Request) -> Response:
        self.api.begin(request)
        return _response(_json({"pricing": _PRICING, "request_id": _request_id(request)}))

    async def health(self, request: Request) -> Response:
        self.api.begin(request, auth=False)
        return _response(
            _json({"status": "ok", "api_version": "v1", "service": "coasty-sandbox-machines"})
        )

    async def billing_active(self, request: Request) -> Response:
        """GET /v1/billing/active: every created machine metering now, and the summed rate."""
        kind = self.api.begin(request)
        now = self.fleet.settle()
        active = []
        for machine in self.fleet.created():
            if machine.key_kind != kind or machine.status not in _BILLING_STATUSES:
                continue
            billing = machine.billing_json(now)
            active.append(
                {
                    "machine_id": machine.id,
                    "display_name": machine.display_name,
                    "status": machine.status,
                    "os_type": machine.os_type,
                    "rate_cents_per_hour": machine.rate(),
                    "running_credits_per_hour": billing["running_credits_per_hour"],
                    "stopped_credits_per_hour": billing["stopped_credits_per_hour"],
                    "accrued_cents": billing["accrued_cents"],
                    "since": billing["since"],
                    "total_credits_billed": billing["total_credits_billed"],
                    "suspended_for_billing": False,
                    "auto_destroy_at": billing["auto_destroy_at"],
                    "ttl_minutes": machine.ttl_minutes,
                }
            )
        return _response(
            _json(
                {
                    "active": active,
                    "current_run_rate_cents_per_hour": sum(
                        a["rate_cents_per_hour"] for a in active
                    ),
                    "request_id": _request_id(request),
                }
            )
        )
