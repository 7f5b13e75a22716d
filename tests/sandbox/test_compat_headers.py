"""The sandbox as the live API and prose docs behave: flag-less envelopes, missing request ids,
rate-limit and credits headers, scripted error headers, and ``GET /v1/models``.

Raw httpx without the contract hook, since these settings leave the published contract.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from langchain_coasty.sandbox import CoastySandbox


@pytest.fixture
def raw(sb: CoastySandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.base_url, headers={"X-API-Key": sb.api_key}) as client:
        yield client


def _create(raw: httpx.Client, sb: CoastySandbox) -> httpx.Response:
    return raw.post("/v1/runs", json={"machine_id": sb.machine_id, "task": "Open the calculator"})


def test_error_flags_off_drops_both_flags(raw: httpx.Client, sb: CoastySandbox) -> None:
    sb.configure(error_flags=False)
    error = raw.get("/v1/runs/nope").json()["error"]
    assert {"code", "message", "type", "request_id"} <= set(error)
    assert "retryable" not in error and "retry_with_same_idempotency_key" not in error


def test_a_scripted_error_can_drop_the_flags_and_add_headers(
    raw: httpx.Client, sb: CoastySandbox
) -> None:
    sb.inject(
        errors=[
            {
                "method": "GET",
                "path": "/v1/runs/{id}",
                "status": 429,
                "code": "RATE_LIMITED",
                "flags": False,
                "headers": {"x-ratelimit-reset": "9"},
            }
        ]
    )
    response = raw.get("/v1/runs/x")
    assert response.status_code == 429 and response.headers["x-ratelimit-reset"] == "9"
    assert "retryable" not in response.json()["error"]
    assert raw.get("/v1/runs/x").json()["error"]["retryable"] is False  # a plain 404 again
    with pytest.raises(ValueError, match="flags must be true or false"):
        sb.inject(errors=[{"path": "/v1/runs", "status": 429, "code": "X", "flags": "no"}])


def test_request_id_header_off(raw: httpx.Client, sb: CoastySandbox) -> None:
    assert "x-coasty-request-id" in raw.get("/v1/machines").headers
    sb.configure(request_id_header=False)
    response = raw.get("/v1/machines")
    assert "x-coasty-request-id" not in response.headers
    assert response.json()["request_id"].startswith("req_")


def test_rate_limit_headers(raw: httpx.Client, sb: CoastySandbox) -> None:
    assert "x-ratelimit-limit" not in raw.get("/v1/machines").headers
    sb.configure(rate_limit_headers=True)
    first, second = raw.get("/v1/machines").headers, raw.get("/v1/machines").headers
    limit = int(first["x-ratelimit-limit"])
    assert int(first["x-ratelimit-remaining"]) < limit
    assert int(second["x-ratelimit-remaining"]) <= int(first["x-ratelimit-remaining"])
    assert time.time() - 1 <= int(first["x-ratelimit-reset"]) <= time.time() + 61


def test_credits_headers_move_the_cost_out_of_the_body(
    raw: httpx.Client, sb: CoastySandbox
) -> None:
    sb.configure(credits_headers=True)
    created = _create(raw, sb)
    assert created.status_code == 200
    assert "credits_charged" not in created.json() and "cost_cents" not in created.json()
    assert created.headers["x-credits-charged"] == "0"
    got = raw.get(f"/v1/runs/{created.json()['id']}")
    assert "credits_charged" not in got.json()
    assert int(got.headers["x-credits-remaining"]) > 0


def test_models_follows_the_openapi(raw: httpx.Client, sb: CoastySandbox) -> None:
    body = raw.get("/v1/models").json()
    assert {"models", "cua_versions", "action_types"} <= set(body)
    assert all({"id", "description"} <= set(m) for m in body["models"])
    for version in body["cua_versions"]:
        assert {"id", "description", "avg_step_time", "features", "latest"} <= set(version)
    assert all(isinstance(a, str) for a in body["action_types"])
    assert httpx.get(f"{sb.base_url}/v1/models").status_code == 401


def test_the_last_create_body_is_recorded(raw: httpx.Client, sb: CoastySandbox) -> None:
    assert sb.counters()["last_create_body"] is None
    _create(raw, sb)
    assert sb.counters()["last_create_body"] == {
        "machine_id": sb.machine_id,
        "task": "Open the calculator",
    }
