"""Malformed and hostile input: a 4xx envelope naming what was wrong, never a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from langchain_coasty.sandbox import CoastySandbox
from tests.sandbox.conftest import create, read_events


def refused(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """Assert an error envelope with ``status`` (naming ``field``); return its error."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["request_id"] == response.headers["x-coasty-request-id"]
    if field is not None:
        assert error["details"]["field"] == field, error
        assert error["details"]["limit"], error
    return error


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_control_plane_bodies_are_bounded(sb: CoastySandbox) -> None:
    sb.configure(max_body_bytes=1000)
    with httpx.Client(base_url=sb.base_url) as http:
        for path in ("reset", "config", "scenarios", "faults"):
            response = http.post(
                f"/_sandbox/{path}",
                content=b" " * 2_000_000,
                headers={"Content-Type": "application/json"},
            )
            error = refused(response, 413, "body")
            assert error["code"] == "PAYLOAD_TOO_LARGE"
            assert "1000 bytes" in error["message"]
    assert sb.info()["config"]["max_body_bytes"] == 1000


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_bodies_are_400(api: httpx.Client, sb: CoastySandbox, depth: int) -> None:
    run = create(api, sb.machine_id, task="Approve the invoice")
    nested_dict = b'{"a":' * depth + b"1" + b"}" * depth
    for path, body in (
        ("/v1/runs", deep(depth)),
        ("/v1/runs", nested_dict),
        (f"/v1/runs/{run['id']}/resume", deep(depth)),
        ("/_sandbox/faults", deep(depth)),
        ("/_sandbox/reset", nested_dict),
    ):
        response = api.post(path, content=body, headers={"Content-Type": "application/json"})
        error = refused(response, 400, "body")
        assert error["code"] == "VALIDATION_ERROR"
        assert "100 levels" in error["message"]


def test_nesting_up_to_the_bound_is_read(api: httpx.Client, sb: CoastySandbox) -> None:
    inner: Any = "x"
    for _ in range(98):  # metadata (1) + 98 + the body (1) = 100 levels
        inner = [inner]
    create(api, sb.machine_id, metadata={"deep": inner})
    body = {"machine_id": sb.machine_id, "task": "t", "metadata": {"deep": [inner]}}
    response = api.post("/v1/runs", json=body)
    refused(response, 400, "body")


@pytest.mark.parametrize("value", ["²", "٣", "1²", "9" * 5000, "0", "201", "-1", " 5"])
def test_bad_list_limits_are_422(api: httpx.Client, value: str) -> None:
    response = api.get("/v1/runs", params={"limit": value})
    error = refused(response, 422, "limit")
    assert error["details"]["limit"] == "1..200"
    assert len(error["message"]) < 200


@pytest.mark.parametrize("value", ["²", "٣", "9" * 21, "9" * 5000])
def test_bad_event_cursors_are_422(api: httpx.Client, sb: CoastySandbox, value: str) -> None:
    run = create(api, sb.machine_id)
    response = api.get(f"/v1/runs/{run['id']}/events", params={"after": value})
    refused(response, 422, "after")
    response = api.get(f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": value.encode()})
    error = refused(response, 422, "Last-Event-ID")
    assert "20 digits" in error["message"]


def test_a_long_cursor_within_the_bound_still_clamps(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id)
    assert read_events(api, run["id"])  # the run is done
    events = read_events(api, run["id"], after=int("9" * 20))
    assert events == []


@pytest.mark.parametrize(
    "content",
    [
        b'{"pace": NaN}',
        b'{"heartbeat_interval": Infinity}',
        b'{"max_body_bytes": 1e400}',
        b'{"pace": 1' + b"0" * 400 + b"}",
    ],
)
def test_config_refuses_non_finite_numbers(sb: CoastySandbox, content: bytes) -> None:
    before = sb.info()["config"]
    response = httpx.post(
        f"{sb.base_url}/_sandbox/config",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    error = refused(response, 422)
    assert "finite" in error["message"]
    assert sb.info()["config"] == before
