"""Idempotency-Key: replay, reuse with another body, in-flight retries, lookup by key."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from langchain_coasty.sandbox import CoastySandbox
from tests.sandbox.conftest import make_client, validate_response


def _body(sb: CoastySandbox, task: str = "Open the pricing page") -> dict[str, object]:
    return {"machine_id": sb.machine_id, "task": task, "webhook_url": "https://127.0.0.1:9/h"}


def test_same_key_and_body_replays_the_original(api: httpx.Client, sb: CoastySandbox) -> None:
    key = f"run-{uuid.uuid4()}"
    first = api.post("/v1/runs", json=_body(sb), headers={"Idempotency-Key": key})
    assert first.status_code == 200
    assert "x-coasty-idempotent-replay" not in first.headers
    second = api.post("/v1/runs", json=_body(sb), headers={"Idempotency-Key": key})
    assert second.status_code == 200
    assert second.headers["x-coasty-idempotent-replay"] == "true"
    assert second.headers["x-credits-charged"] == "0"
    assert second.content == first.content
    assert second.json()["webhook_secret"] == first.json()["webhook_secret"] is not None
    counters = sb.counters()
    assert counters["runs_created"] == 1
    assert counters["create_calls"] == 2 and counters["create_replays"] == 1


def test_key_order_in_the_body_does_not_matter(api: httpx.Client, sb: CoastySandbox) -> None:
    key = "order-test"
    api.post(
        "/v1/runs",
        json={"machine_id": sb.machine_id, "task": "t"},
        headers={"Idempotency-Key": key},
    )
    again = api.post(
        "/v1/runs",
        json={"task": "t", "machine_id": sb.machine_id},
        headers={"Idempotency-Key": key},
    )
    assert again.headers["x-coasty-idempotent-replay"] == "true"


def test_same_key_with_another_body_is_422(api: httpx.Client, sb: CoastySandbox) -> None:
    key = "reuse-me"
    api.post("/v1/runs", json=_body(sb), headers={"Idempotency-Key": key})
    response = api.post("/v1/runs", json=_body(sb, "Other task"), headers={"Idempotency-Key": key})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert error["retryable"] is False and error["retry_with_same_idempotency_key"] is False
    assert sb.counters()["runs_created"] == 1


def test_lookup_by_key(api: httpx.Client, sb: CoastySandbox) -> None:
    key = "lookup:1"
    created = api.post("/v1/runs", json=_body(sb), headers={"Idempotency-Key": key})
    found = api.get(f"/v1/idempotency/{key}").json()
    assert found["status"] == "completed"
    assert found["original_status"] == 200
    assert found["result"] == created.json()
    missing = api.get("/v1/idempotency/never-used")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"


def test_keys_are_isolated_between_test_and_live_mode(api: httpx.Client, sb: CoastySandbox) -> None:
    api.post("/v1/runs", json=_body(sb), headers={"Idempotency-Key": "shared"})
    with make_client(sb, headers={"X-API-Key": "sk-coasty-live-00ff"}) as live:
        assert live.get("/v1/idempotency/shared").status_code == 404
        fresh = live.post("/v1/runs", json=_body(sb), headers={"Idempotency-Key": "shared"})
        assert "x-coasty-idempotent-replay" not in fresh.headers
    assert sb.counters()["runs_created"] == 2


def test_unkeyed_creates_are_independent(api: httpx.Client, sb: CoastySandbox) -> None:
    a = api.post("/v1/runs", json=_body(sb)).json()
    b = api.post("/v1/runs", json=_body(sb)).json()
    assert a["id"] != b["id"]


async def test_retry_while_in_flight_is_409_then_replays(sb: CoastySandbox) -> None:
    sb.inject(create_delay_seconds=1.0)
    key = "slow-create"
    headers = {"X-API-Key": sb.api_key, "Idempotency-Key": key}
    hooks = {"response": [_async_validate]}
    async with httpx.AsyncClient(
        base_url=sb.base_url, headers=headers, timeout=10, event_hooks=hooks
    ) as client:
        original = asyncio.ensure_future(client.post("/v1/runs", json=_body(sb)))

        async def processing() -> bool:
            response = await client.get(f"/v1/idempotency/{key}")
            return response.status_code == 200 and response.json()["status"] == "processing"

        async with asyncio.timeout(5):
            while not await processing():
                pass
        lookup = (await client.get(f"/v1/idempotency/{key}")).json()
        assert lookup["result"] is None and lookup["original_status"] is None
        retry = await client.post("/v1/runs", json=_body(sb))
        assert retry.status_code == 409
        error = retry.json()["error"]
        assert error["code"] == "IDEMPOTENCY_IN_FLIGHT"
        assert error["retryable"] is True and error["retry_with_same_idempotency_key"] is True
        assert retry.headers["retry-after"] == "1"
        first = await original
        assert first.status_code == 200
        replay = await client.post("/v1/runs", json=_body(sb))
        assert replay.headers["x-coasty-idempotent-replay"] == "true"
        assert replay.json()["id"] == first.json()["id"]
    assert sb.counters()["runs_created"] == 1


async def _async_validate(response: httpx.Response) -> None:
    await response.aread()
    validate_response(response)
