"""Helpers for driving the sandbox over real loopback HTTP with raw httpx + httpx-sse.

Every JSON body the API returns through ``api`` is validated against the trimmed published
schemas in ``tests/schemas`` (generated from the contract's components, descriptions and
defaults dropped); every SSE event read through ``read_events`` against RunEvent.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from httpx_sse import connect_sse

from langchain_coasty.sandbox import CoastySandbox, SandboxControl

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
_ROUTES = [
    ("GET", re.compile(r"^/v1/runs$"), "ListRunsResponse"),
    ("GET", re.compile(r"^/v1/idempotency/[^/]+$"), "IdempotencyLookupResponse"),
    ("GET", re.compile(r"^/v1/health$"), "HealthResponse"),
    ("GET", re.compile(r"^/v1/machines$"), "ListMachinesResponse"),
    ("POST", re.compile(r"^/v1/machines$"), "ProvisionResponse"),
    ("GET", re.compile(r"^/v1/machines/health$"), "HealthResponse"),
    ("GET", re.compile(r"^/v1/machines/pricing$"), "MachinePricingResponse"),
    ("GET", re.compile(r"^/v1/machines/[^/]+/connection$"), "ConnectionDetailsFull"),
    ("GET", re.compile(r"^/v1/machines/[^/]+/screenshot$"), "ScreenshotResponse"),
    ("POST", re.compile(r"^/v1/machines/[^/]+/(start|stop|restart)$"), "LifecycleResponse"),
    ("GET", re.compile(r"^/v1/machines/[^/]+$"), "GetMachineResponse"),
    ("PATCH", re.compile(r"^/v1/machines/[^/]+$"), "UpdateMachineResponse"),
    ("DELETE", re.compile(r"^/v1/machines/[^/]+$"), "LifecycleResponse"),
    ("GET", re.compile(r"^/v1/billing/active$"), "BillingActiveResponse"),
    ("POST", re.compile(r"^/v1/machines/[^/]+/actions$"), "ActionResultResponse"),
    ("POST", re.compile(r"^/v1/machines/[^/]+/actions/batch$"), "BatchActionResponse"),
    ("POST", re.compile(r"^/v1/ground$"), "GroundResponse"),
    ("POST", re.compile(r"^/v1/predict$"), "PredictResponse"),
    ("POST", re.compile(r"^/v1/sessions$"), "CreateSessionResponse"),
    ("GET", re.compile(r"^/v1/sessions$"), "ListSessionsResponse"),
    ("GET", re.compile(r"^/v1/sessions/[^/]+$"), "SessionInfoResponse"),
    ("DELETE", re.compile(r"^/v1/sessions/[^/]+$"), "SessionMutationResponse"),
    ("POST", re.compile(r"^/v1/sessions/[^/]+/reset$"), "SessionMutationResponse"),
    ("POST", re.compile(r"^/v1/sessions/[^/]+/predict$"), "SessionPredictResponse"),
    ("GET", re.compile(r"^/v1/models$"), "ModelsResponse"),
    ("*", re.compile(r"^/v1/runs(/[^/]+(/cancel|/resume)?)?$"), "RunResponse"),
]


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check(name: str, body: Any) -> Any:
    """Validate ``body`` against the published schema ``name``; return it."""
    _validator(name).validate(body)
    return body


def schema_for(method: str, path: str) -> str:
    for route_method, pattern, name in _ROUTES:
        if route_method in ("*", method) and pattern.match(path):
            return name
    raise AssertionError(f"no schema for {method} {path}")


def validate_response(response: httpx.Response) -> None:
    """httpx response hook: headers and body of every /v1 response follow the contract."""
    path = response.request.url.path
    if not path.startswith("/v1/"):
        return
    request_id = response.headers.get("x-coasty-request-id", "")
    assert re.fullmatch(r"req_[0-9a-f]+", request_id), request_id
    assert response.headers.get("x-coasty-key-kind") in ("test", "live")
    assert response.headers.get("x-coasty-test-mode") in ("true", "false")
    if "application/json" not in response.headers.get("content-type", ""):
        return
    response.read()
    body = response.json()
    if response.status_code >= 400:
        check("ApiError", body)
        assert body["error"]["request_id"] == request_id
    else:
        check(schema_for(response.request.method, path), body)


_SERVED = {"framing": "envelope"}
"""The event framing the sandbox serves in this test (set by the ``framing`` fixture)."""


@pytest.fixture(params=("envelope", "flat"))
def framing(request: pytest.FixtureRequest, sb: CoastySandbox) -> Iterator[str]:
    """Run the test once per event framing; ``event_json`` then expects that framing."""
    framing: str = request.param
    sb.configure(event_framing=framing)
    _SERVED["framing"] = framing
    yield framing
    _SERVED["framing"] = "envelope"


def event_json(data: str, event_id: str, event_type: str) -> dict[str, Any]:
    """Parse and check one SSE frame: RunEvent shape, id == seq, event == type, ts.

    In the flat framing the frame is the payload itself: the event is made of id, event, data.
    """
    if _SERVED["framing"] == "flat":
        payload = json.loads(data)
        assert isinstance(payload, dict) and "seq" not in payload, data
        return check("RunEvent", {"seq": int(event_id), "type": event_type, "data": payload})
    event = check("RunEvent", json.loads(data))
    assert str(event["seq"]) == event_id
    assert event["type"] == event_type
    assert isinstance(event["ts"], float)
    return event


def read_events(
    client: httpx.Client, run_id: str, *, after: int | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    """Read a run's event stream to its end (done, or the server closing it)."""
    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    events = []
    with connect_sse(client, "GET", f"/v1/runs/{run_id}/events", headers=headers, **kwargs) as es:
        assert es.response.status_code == 200
        assert es.response.headers["content-type"].startswith("text/event-stream")
        for sse in es.iter_sse():
            events.append(event_json(sse.data, sse.id, sse.event))
    return events


def make_client(sb: CoastySandbox, **kwargs: Any) -> httpx.Client:
    headers = {"X-API-Key": sb.api_key, **kwargs.pop("headers", {})}
    return httpx.Client(
        base_url=sb.base_url,
        headers=headers,
        timeout=kwargs.pop("timeout", 10.0),
        event_hooks={"response": [validate_response]},
        **kwargs,
    )


@pytest.fixture
def api(sb: CoastySandbox) -> Iterator[httpx.Client]:
    with make_client(sb) as client:
        yield client


def create(
    api: httpx.Client, machine_id: str, task: str = "Open the pricing page", **fields: Any
) -> dict[str, Any]:
    """POST /v1/runs and return the created run (asserting 200)."""
    headers = fields.pop("headers", {})
    response = api.post(
        "/v1/runs", json={"machine_id": machine_id, "task": task, **fields}, headers=headers
    )
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def events_until(
    client: httpx.Client, run_id: str, stop: str, *, after: int = 0
) -> list[dict[str, Any]]:
    """Read a run's stream until an event of type ``stop`` arrives, then hang up."""
    events = []
    with connect_sse(client, "GET", f"/v1/runs/{run_id}/events", params={"after": after}) as es:
        for sse in es.iter_sse():
            events.append(event_json(sse.data, sse.id, sse.event))
            if sse.event == stop:
                return events
    raise AssertionError(f"stream ended without {stop!r}: {types(events)}")


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    """Wait (bounded) for a condition observed over HTTP."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@contextlib.contextmanager
def sandbox_process(*args: str) -> Iterator[SandboxControl]:
    """Run ``coasty-sandbox`` in a child process on a free port; yield its control client."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_coasty.sandbox.cli", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+", first)
        assert match, first
        control = SandboxControl(match.group(0))
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{control.base_url}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
        yield control
        control.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
