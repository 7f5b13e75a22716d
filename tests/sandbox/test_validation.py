"""RunRequest validation: every length, range and enum, unknown fields, sizes, headers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from langchain_coasty.sandbox import CoastySandbox

CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"machine_id": None}, "machine_id", "required"),
    ({"task": None}, "task", "required"),
    ({"machine_id": ""}, "machine_id", "1..128"),
    ({"machine_id": "m" * 129}, "machine_id", "1..128"),
    ({"task": ""}, "task", "1..16000"),
    ({"task": "t" * 16001}, "task", "1..16000"),
    ({"task": 5}, "task", "a string"),
    ({"cua_version": "v2"}, "cua_version", "one of v1, v3, v4, v5"),
    ({"instructions": "i" * 16001}, "instructions", "0..16000"),
    ({"system_prompt": "s" * 32001}, "system_prompt", "0..32000"),
    ({"max_steps": 0}, "max_steps", "1..1000"),
    ({"max_steps": 1001}, "max_steps", "1..1000"),
    ({"max_steps": "5"}, "max_steps", "1..1000"),
    ({"max_steps": True}, "max_steps", "1..1000"),
    ({"deadline_seconds": 0}, "deadline_seconds", "1..86400"),
    ({"deadline_seconds": 86401}, "deadline_seconds", "1..86400"),
    ({"on_awaiting_human": "ask"}, "on_awaiting_human", "one of pause, fail, cancel"),
    ({"awaiting_human_timeout_seconds": 0}, "awaiting_human_timeout_seconds", "1..86400"),
    ({"webhook_url": "http://example.com/hook"}, "webhook_url", "an https URL"),
    ({"webhook_url": "https://x/" + "a" * 2048}, "webhook_url", "0..2048"),
    ({"metadata": {f"k{i}": i for i in range(51)}}, "metadata", "at most 50 keys"),
    ({"metadata": [1]}, "metadata", "an object or null"),
    ({"budget_cents": 5}, "budget_cents", "not allowed"),
    ({"llm": {"provider": "managed", "api_key": "x"}}, "llm.api_key", "one of provider"),
    ({"llm": {"model": ""}}, "llm.model", "1..512"),
]


@pytest.mark.parametrize(("patch", "field", "limit"), CASES)
def test_invalid_run_requests_name_the_field_and_limit(
    api: httpx.Client, sb: CoastySandbox, patch: dict[str, Any], field: str, limit: str
) -> None:
    body: dict[str, Any] = {"machine_id": sb.machine_id, "task": "Open the pricing page"}
    body.update(patch)
    body = {k: v for k, v in body.items() if not (k in ("machine_id", "task") and v is None)}
    response = api.post("/v1/runs", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["type"] == "validation_error"
    assert error["retryable"] is False and error["retry_with_same_idempotency_key"] is False
    assert error["details"]["field"] == field
    assert error["details"]["limit"].startswith(limit)
    assert field in error["message"]
    assert error["suggestion"]
    assert sb.counters()["runs_created"] == 0


def test_nullable_fields_accept_null(api: httpx.Client, sb: CoastySandbox) -> None:
    body = {
        "machine_id": sb.machine_id,
        "task": "t",
        "instructions": None,
        "system_prompt": None,
        "model": None,
        "deadline_seconds": None,
        "awaiting_human_timeout_seconds": None,
        "webhook_url": None,
        "metadata": None,
    }
    assert api.post("/v1/runs", json=body).status_code == 200


def test_limits_are_inclusive(api: httpx.Client, sb: CoastySandbox) -> None:
    body = {
        "machine_id": sb.machine_id,
        "task": "t" * 16000,
        "max_steps": 1000,
        "deadline_seconds": 86400,
        "metadata": {f"k{i}": i for i in range(50)},
        "webhook_url": "http://localhost:1/hook",
    }
    assert api.post("/v1/runs", json=body).status_code == 200


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "semi;colon"])
def test_bad_idempotency_keys(api: httpx.Client, sb: CoastySandbox, key: str) -> None:
    response = api.post(
        "/v1/runs",
        json={"machine_id": sb.machine_id, "task": "t"},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "Idempotency-Key"
    assert api.get(f"/v1/idempotency/{'x' * 129}").status_code == 422


def test_longest_idempotency_key_is_fine(api: httpx.Client, sb: CoastySandbox) -> None:
    key = "A-z_0:" + "k" * 122
    response = api.post(
        "/v1/runs",
        json={"machine_id": sb.machine_id, "task": "t"},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 200


def test_not_json_is_400(api: httpx.Client) -> None:
    for content in (b"{not json", b""):
        response = api.post(
            "/v1/runs", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    response = api.post("/v1/runs", json=["a", "list"])
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "body"


def test_oversized_body_is_413(api: httpx.Client, sb: CoastySandbox) -> None:
    body = {"machine_id": sb.machine_id, "task": "t", "metadata": {"blob": "x" * 1_100_000}}
    response = api.post("/v1/runs", json=body)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "PAYLOAD_TOO_LARGE"
    assert error["retryable"] is False
    assert "1048576" in error["message"]
    assert sb.counters()["runs_created"] == 0


def test_resume_body_is_validated(api: httpx.Client, sb: CoastySandbox) -> None:
    run = api.post(
        "/v1/runs", json={"machine_id": sb.machine_id, "task": "Approve the invoice"}
    ).json()
    for body, field in (({"note": "n" * 2001}, "note"), ({"notes": "x"}, "notes"), ([1], "body")):
        response = api.post(f"/v1/runs/{run['id']}/resume", json=body)
        assert response.status_code == 422
        assert response.json()["error"]["details"]["field"] == field


def test_llm_headers_are_checked(api: httpx.Client, sb: CoastySandbox) -> None:
    body = {"machine_id": sb.machine_id, "task": "t"}
    response = api.post("/v1/runs", json=body, headers={"X-LLM-Api-Key": "k" * 20})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "LLM_PROVIDER_UNSUPPORTED"
    response = api.post("/v1/runs", json=body, headers={"X-LLM-Provider": "mistral"})
    assert response.json()["error"]["code"] == "LLM_PROVIDER_UNSUPPORTED"
    response = api.post(
        "/v1/runs", json=body, headers={"X-LLM-Provider": "openai", "X-LLM-Api-Key": "short"}
    )
    assert response.json()["error"]["details"]["field"] == "X-LLM-Api-Key"
    response = api.post("/v1/runs", json={**body, "llm": {"provider": "gemini"}})
    assert response.json()["error"]["code"] == "LLM_PROVIDER_UNSUPPORTED"
