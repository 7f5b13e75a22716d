"""The sandbox's ASGI app: Coasty's /v1 runs API plus a control plane, on Starlette.

Public API (auth: ``X-API-Key: sk-coasty-test-…`` / ``sk-coasty-live-…`` or
``Authorization: Bearer …``; test-mode and live-mode resources are isolated)::

    POST /v1/runs                  create a run (Idempotency-Key: reserve-and-replay)
    GET  /v1/runs                  list runs (?status=, ?limit=1..200), newest first
    GET  /v1/runs/{run_id}         one run
    GET  /v1/runs/{run_id}/events  SSE; resume with Last-Event-ID or ?after=
    POST /v1/runs/{run_id}/cancel  from queued, running or awaiting_human (else 409)
    POST /v1/runs/{run_id}/resume  from awaiting_human, body {"note": ...} optional (else 409)
    GET  /v1/idempotency/{key}     the stored result of a keyed create (a 404 for every key,
                                   like a route that does not exist, with the setting
                                   idempotency_lookup=false)
    GET  /v1/health                no auth
    POST /v1/machines              provision (Idempotency-Key: reserve-and-replay); the
                                   machine boots creating -> provisioning -> starting ->
                                   running, one machine_phase_seconds each (module fleet)
    GET  /v1/machines              the pre-provisioned machines, then live created ones
    GET  /v1/machines/health       no auth
    GET  /v1/machines/pricing      the rate card (5/h Linux, 9/h Windows running, 1/h stopped)
    GET  /v1/machines/{id}         one machine (terminated ones stay readable)
    PATCH /v1/machines/{id}        {"ttl_minutes": 0 | 5..10080}: clear or set the lease
    DELETE /v1/machines/{id}       terminate (a second DELETE changes nothing)
    POST /v1/machines/{id}/start   from stopped; /stop and /restart from running (else 409)
    GET  /v1/machines/{id}/connection  SSH key + VNC password (Cache-Control: no-store)
    GET  /v1/machines/{id}/screenshot  the screen now (base64 JPEG, 1280x800): it follows
                                   the runs' steps, dims under a banner at a pause, is black
                                   while the machine is not running (module screens)
    GET  /v1/billing/active        created machines metering now and their summed rate
                                   (the sandbox meters test-mode machines too)
    POST /v1/machines/{id}/actions one command on a running machine's screen (keyed);
                                   /actions/batch: up to 50, stop_on_error (module desktop)
    POST /v1/ground                an element's (x, y) in the screenshot's real size (keyed)
    POST /v1/predict               the next actions of an instruction after a trajectory
    POST /v1/sessions              a session (keyed); GET lists them; GET/DELETE
                                   /v1/sessions/{id}; POST .../predict (keyed), .../reset;
                                   2 h idle TTL on the sandbox clock (module cua)
    GET  /v1/models                the model catalog

A run on a machine that exists but is not running is a 409 INVALID_STATE. Created machines
have ids ``mch_test_<hex>`` for test keys and UUIDs for live keys; the pre-provisioned ones
(``m-sandbox-1``, ...) are shared by both, always start running and bill nothing.
Ground, predict and sessions bill live keys per call (``usage``, ``X-Credits-Charged``, the
``cua_credits_*`` counters); test keys and replays are free (``billed: false``).

Every response carries ``X-Coasty-Request-Id``, ``X-Coasty-Key-Kind`` and
``X-Coasty-Test-Mode``; creates also ``X-Credits-Charged: 0``. Errors use the documented
envelope ``{"error": {code, message, type, request_id, retryable,
retry_with_same_idempotency_key, retry_after?, suggestion?, details?}}``. Bodies over
``max_body_bytes`` (1 MiB by default) are a 413.

Every route answers only a ``Host`` that is a loopback name (any port), the address the
connection came in on, or one of ``allowed_hosts`` (else 421 ``HOST_NOT_ALLOWED``), so a web
page on a DNS-rebound name cannot read or drive the sandbox.

Control plane (JSON, no auth, loopback clients only; a write with a body must be
``Content-Type: application/json`` (else 415), and a write whose ``Origin`` is not the
sandbox itself or in ``allowed_hosts`` is a 403, so a cross-site form or fetch cannot drive
it; bodies are bounded by ``max_body_bytes`` like /v1)::

    POST   /_sandbox/reset       drop runs, counters, faults, custom scenarios; keep config
                                 (body {"config": true} also restores the starting config)
    GET    /_sandbox/counters    runs_created, create_calls, create_replays,
                                 stream_connections, open_streams, cancels, resumes,
                                 events_emitted, webhook_attempts, faults_fired{},
                                 runs_by_status{}
    GET    /_sandbox/config      current settings; POST with {pace, heartbeat_interval,
                                 rotation_seconds, webhook_retry_base, webhook_max_attempts,
                                 webhook_timeout, max_body_bytes, webhook_body
                                 ("envelope" | "flat"), idempotency_lookup (bool),
                                 event_framing ("envelope" | "flat"),
                                 end_stream_at_pause (bool), pause_event_detail} to change
                                 them
    GET    /_sandbox/scenarios   names of loaded scenarios; POST {"scenarios": [...],
                                 "replace": false} to add (format: ``scenarios`` module)
    GET    /_sandbox/faults      current faults; POST to set (format: ``faults`` module);
                                 DELETE to clear
    POST   /_sandbox/runs/{id}/expire-pause
                                 end a paused run now as its awaiting_human_timeout_seconds
                                 would (``timed_out``, an ``error`` event
                                 AWAITING_HUMAN_TIMEOUT, then ``done``); 409 when the run is
                                 not paused or its pause never expires
    GET    /_sandbox/webhooks    webhook delivery attempts: url, status, error, event_id,
                                 event_type, run_id, attempt, delivered
    GET    /_sandbox/info        machine ids and settings
    GET    /_sandbox/machines    every machine created since the reset, oldest first, with
                                 its end state: status, terminated_at, end_reason
                                 ("deleted" | "ttl_expired" | null), total_credits_billed
    GET    /_sandbox/clock       sandbox time; POST {"advance_seconds": n} moves it forward
                                 (boots, leases and metering follow; reset rewinds it)

SSE frames: ``id: <seq>``, ``event: <type>``, ``data: {"seq", "type", "data", "ts"}``
(setting ``event_framing: "flat"``: ``data:`` carries the event's payload itself, as in
Coasty's docs);
``: ping`` comments every ``heartbeat_interval`` seconds while idle; a connection is ended
cleanly after ``rotation_seconds``; ``done`` is the last event and the server closes after it
(setting ``end_stream_at_pause``: also after an ``awaiting_human``, as Coasty's cookbook mock).

This module builds the app and lists every route. The handlers are in ``api`` (/v1) and
``control`` (/_sandbox), the error envelope in ``errors``, the SSE and fault responses in
``sse``, the headers middleware in ``_http``, and all state in ``engine``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from langchain_coasty.sandbox._http import CoastyHeaders, HostPolicy
from langchain_coasty.sandbox.api import _Api
from langchain_coasty.sandbox.control import _Control
from langchain_coasty.sandbox.cua_api import _CuaApi
from langchain_coasty.sandbox.engine import Engine
from langchain_coasty.sandbox.errors import (
    ApiError,
    _handle_api_error,
    _handle_http_error,
    _handle_invalid_input,
    _handle_unexpected,
    _refuse_host,
)
from langchain_coasty.sandbox.machines_api import _MachinesApi
from langchain_coasty.sandbox.sse import _install_log_filter
from langchain_coasty.sandbox.validation import InvalidInput

__all__ = ["ApiError", "CoastyHeaders", "create_app"]


def create_app(
    engine: Engine | None = None,
    on_startup: Callable[[], None] | None = None,
    *,
    allowed_hosts: Sequence[str] = (),
) -> Starlette:
    """Build the sandbox app around ``engine`` (a fresh one by default).

    ``allowed_hosts``: Host names (``name`` or ``name:port``; ``*`` for any) to answer besides
    loopback names and the address a connection came in on; see ``_http.HostPolicy``.
    """
    engine = engine or Engine()
    policy = HostPolicy(allowed_hosts)
    api = _Api(engine)
    machines = _MachinesApi(api)
    control = _Control(engine, policy)
    cua = _CuaApi(api)
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
        Route("/v1/machines", machines.create, methods=["POST"]),
        Route("/v1/machines", machines.list, methods=["GET"]),
        Route("/v1/machines/health", machines.health, methods=["GET"]),
        Route("/v1/machines/pricing", machines.pricing, methods=["GET"]),
        Route("/v1/machines/{machine_id}", machines.get, methods=["GET"]),
        Route("/v1/machines/{machine_id}", machines.update, methods=["PATCH"]),
        Route("/v1/machines/{machine_id}", machines.delete, methods=["DELETE"]),
        Route("/v1/machines/{machine_id}/start", machines.start, methods=["POST"]),
        Route("/v1/machines/{machine_id}/stop", machines.stop, methods=["POST"]),
        Route("/v1/machines/{machine_id}/restart", machines.restart, methods=["POST"]),
        Route("/v1/machines/{machine_id}/connection", machines.connection, methods=["GET"]),
        Route("/v1/machines/{machine_id}/screenshot", machines.screenshot, methods=["GET"]),
        Route("/v1/billing/active", machines.billing_active, methods=["GET"]),
        Route("/v1/machines/{machine_id}/actions", cua.action, methods=["POST"]),
        Route("/v1/machines/{machine_id}/actions/batch", cua.action_batch, methods=["POST"]),
        Route("/v1/ground", cua.ground, methods=["POST"]),
        Route("/v1/predict", cua.predict, methods=["POST"]),
        Route("/v1/sessions", cua.create_session, methods=["POST"]),
        Route("/v1/sessions", cua.list_sessions, methods=["GET"]),
        Route("/v1/sessions/{session_id}", cua.get_session, methods=["GET"]),
        Route("/v1/sessions/{session_id}", cua.delete_session, methods=["DELETE"]),
        Route("/v1/sessions/{session_id}/predict", cua.session_predict, methods=["POST"]),
        Route("/v1/sessions/{session_id}/reset", cua.reset_session, methods=["POST"]),
        Route("/v1/models", api.list_models, methods=["GET"]),
        Route("/_sandbox/reset", control.reset, methods=["POST"]),
        Route("/_sandbox/counters", control.counters, methods=["GET"]),
        Route("/_sandbox/config", control.config, methods=["GET", "POST"]),
        Route("/_sandbox/scenarios", control.scenarios, methods=["GET", "POST"]),
        Route("/_sandbox/faults", control.faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/runs/{run_id}/expire-pause", control.expire_pause, methods=["POST"]),
        Route("/_sandbox/webhooks", control.webhooks, methods=["GET"]),
        Route("/_sandbox/info", control.info, methods=["GET"]),
        Route("/_sandbox/machines", control.machines, methods=["GET"]),
        Route("/_sandbox/clock", control.clock, methods=["GET", "POST"]),
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
        InvalidInput: _handle_invalid_input,
        HTTPException: _handle_http_error,
        Exception: _handle_unexpected,
    }
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(CoastyHeaders, policy=policy, refuse=_refuse_host, hook=api.response_headers)
        ],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.engine = engine
    return app
