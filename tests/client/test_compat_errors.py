"""Errors and headers as the live API and the prose docs send them, against the sandbox.

The code decides before the status; envelopes without the retry flags are retried from their
code and status; rate-limit and credits headers are read; a missing request id is fine.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from langchain_coasty.client import (
    AsyncCoastyClient,
    AuthenticationError,
    CoastyClient,
    ConflictError,
    IdempotencyKeyReusedError,
    InternalServerError,
    ModelsResponse,
    PermissionDeniedError,
    RateLimit,
    RateLimitError,
    RunStatus,
)

NIL = "00000000-0000-0000-0000-000000000000"


def scripted(method: str, path: str, status: int, code: str, **extra: Any) -> dict[str, Any]:
    return {"method": method, "path": path, "status": status, "code": code, **extra}


def new_run(client: CoastyClient, sb: Any, **fields: Any) -> str:
    return client.runs.create(machine_id=sb.machine_id, task="Open the calculator", **fields).id


# ------------------------------------------------------------- 6: the code decides


def test_a_401_upstream_error_is_a_retryable_server_error_not_a_bad_key(
    sb: Any, client: CoastyClient, sleeps: list[float]
) -> None:
    run_id = new_run(client, sb)
    sb.inject(errors=[scripted("GET", "/v1/runs/{id}", 401, "UPSTREAM_ERROR", times=3)])
    with (
        CoastyClient(api_key=sb.api_key, base_url=sb.base_url, max_retries=0) as once,
        pytest.raises(InternalServerError) as info,
    ):
        once.runs.get(run_id)
    assert not isinstance(info.value, AuthenticationError)
    assert info.value.status_code == 401 and info.value.retryable
    assert client.runs.get(run_id).id == run_id  # the two left are retried through
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [409, 422])
def test_idempotency_key_reused_is_the_same_error_as_409_or_422(
    sb: Any, client: CoastyClient, status: int
) -> None:
    sb.inject(errors=[scripted("POST", "/v1/runs", status, "IDEMPOTENCY_KEY_REUSED")])
    with pytest.raises(IdempotencyKeyReusedError) as info:
        new_run(client, sb, idempotency_key="reused-key-0001")
    assert isinstance(info.value, ConflictError) and info.value.status_code == status


def test_feature_not_available_says_so_and_points_at_models(sb: Any, client: CoastyClient) -> None:
    message = "cua_version v5 is not available on your plan."
    sb.inject(errors=[scripted("POST", "/v1/runs", 403, "FEATURE_NOT_AVAILABLE", message=message)])
    with pytest.raises(PermissionDeniedError) as info:
        new_run(client, sb, cua_version="v5")
    text = str(info.value)
    assert "FEATURE_NOT_AVAILABLE" in text and message in text and "client.models()" in text


def test_models_lists_the_catalog_and_retries_like_any_get(
    sb: Any, client: CoastyClient, sleeps: list[float]
) -> None:
    sb.inject(errors=[scripted("GET", "/v1/models", 503, "SERVICE_UNAVAILABLE", retry_after=1)])
    models = client.models()
    assert isinstance(models, ModelsResponse) and sleeps == [1]
    assert models.models and models.action_types
    versions = [v.id for v in models.cua_versions]
    assert "v5" in versions and sum(v.latest for v in models.cua_versions) == 1


async def test_async_models(sb: Any, aclient: AsyncCoastyClient, sleeps: list[float]) -> None:
    sb.inject(errors=[scripted("GET", "/v1/models", 429, "RATE_LIMITED", retry_after=2)])
    models = await aclient.models()
    assert sleeps == [2] and any(v.latest for v in models.cua_versions)


def test_a_create_sends_cua_version_only_when_set(sb: Any, client: CoastyClient) -> None:
    new_run(client, sb)
    assert "cua_version" not in sb.counters()["last_create_body"]
    new_run(client, sb, cua_version="v4")
    assert sb.counters()["last_create_body"]["cua_version"] == "v4"


# ------------------------------------------------- 7: envelopes without retry flags


def test_a_rate_limited_create_without_flags_is_resent_with_its_key(
    sb: Any, client: CoastyClient, sleeps: list[float]
) -> None:
    sb.configure(error_flags=False)
    sb.inject(errors=[scripted("POST", "/v1/runs", 429, "RATE_LIMITED", retry_after=3)])
    result = client.runs.create_with_response(
        machine_id=sb.machine_id, task="Open the calculator", idempotency_key="flagless-0001"
    )
    assert result.idempotency_key == "flagless-0001" and not result.replayed
    assert sleeps == [3]
    counters = sb.counters()
    assert (counters["create_calls"], counters["runs_created"]) == (2, 1)


def test_a_flagless_server_error_on_create_is_looked_up_not_resent(
    sb: Any, client: CoastyClient, sleeps: list[float]
) -> None:
    sb.configure(error_flags=False)
    sb.inject(errors=[scripted("POST", "/v1/runs", 500, "INTERNAL_ERROR")])
    with pytest.raises(InternalServerError) as info:
        new_run(client, sb)
    assert info.value.idempotency_key is not None  # says how to collect a run it may have made
    assert sb.counters()["create_calls"] == 1


@pytest.mark.parametrize(("status", "code"), [(429, "RATE_LIMITED"), (503, "SERVICE_UNAVAILABLE")])
def test_a_flagless_transient_get_is_retried(
    sb: Any, client: CoastyClient, sleeps: list[float], status: int, code: str
) -> None:
    run_id = new_run(client, sb)
    sb.inject(errors=[scripted("GET", "/v1/runs/{id}", status, code, flags=False)])
    assert client.runs.get(run_id).id == run_id
    assert len(sleeps) == 1


def test_a_flagless_deterministic_error_is_not_retried(
    sb: Any, client: CoastyClient, sleeps: list[float]
) -> None:
    sb.configure(error_flags=False)
    sb.inject(errors=[scripted("GET", "/v1/runs/{id}", 503, "BILLING_UNAVAILABLE", times=3)])
    with pytest.raises(InternalServerError) as info:
        client.runs.get(NIL)
    assert not info.value.retryable and sleeps == []


def test_a_flagless_rate_limited_event_stream_reconnects(
    sb: Any, client: CoastyClient, sleeps: list[float]
) -> None:
    run_id = new_run(client, sb)
    sb.configure(error_flags=False)
    sb.inject(errors=[scripted("GET", "/v1/runs/{id}/events", 429, "RATE_LIMITED", retry_after=1)])
    with client.runs.events(run_id) as stream:
        types = [event.type for event in stream]
    assert types[-1] == "done" and 1 in sleeps
    assert client.runs.get(run_id).status == RunStatus.SUCCEEDED


# ------------------------------------------------------------------- 8: headers


def test_no_request_id_header_is_fine_everywhere(sb: Any, client: CoastyClient) -> None:
    sb.configure(request_id_header=False)
    run_id = new_run(client, sb)
    assert client.runs.get(run_id).request_id  # from the body
    assert client.models().cua_versions
    assert client.machines.list().data
    sb.inject(errors=[scripted("GET", "/v1/runs/{id}", 404, "NOT_FOUND")])
    with pytest.raises(Exception) as info:
        client.runs.get(run_id)
    assert "NOT_FOUND" in str(info.value)


def test_a_429_without_retry_after_waits_for_the_rate_limit_reset_in_seconds(
    sb: Any, client: CoastyClient, sleeps: list[float]
) -> None:
    run_id = new_run(client, sb)
    headers = {"x-ratelimit-limit": "10", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "7"}
    sb.inject(errors=[scripted("GET", "/v1/runs/{id}", 429, "RATE_LIMITED", headers=headers)])
    with (
        CoastyClient(api_key=sb.api_key, base_url=sb.base_url, max_retries=0) as once,
        pytest.raises(RateLimitError) as info,
    ):
        once.runs.get(run_id)
    assert info.value.rate_limit == RateLimit(limit=10, remaining=0, reset=7, reset_after=7)
    assert info.value.retry_after == 7
    sb.inject(errors=[scripted("GET", "/v1/runs/{id}", 429, "RATE_LIMITED", headers=headers)])
    assert client.runs.get(run_id).id == run_id
    assert sleeps == [7]


def test_a_429_waits_for_an_epoch_rate_limit_reset(
    sb: Any, client: CoastyClient, sleeps: list[float]
) -> None:
    sb.configure(rate_limit_headers=True)
    run_id = new_run(client, sb)
    empty = {"x-ratelimit-remaining": "0"}
    sb.inject(errors=[scripted("GET", "/v1/runs/{id}", 429, "RATE_LIMITED", headers=empty)])
    before = time.time()
    with (
        CoastyClient(api_key=sb.api_key, base_url=sb.base_url, max_retries=0) as once,
        pytest.raises(RateLimitError) as info,
    ):
        once.runs.get(run_id)
    limit = info.value.rate_limit
    assert limit is not None and limit.limit and limit.remaining == 0
    assert limit.reset is not None and limit.reset > before  # a Unix time
    assert limit.reset_after is not None and 0 <= limit.reset_after <= 60
    sb.inject(errors=[scripted("GET", "/v1/runs/{id}", 429, "RATE_LIMITED", headers=empty)])
    client.runs.get(run_id)
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 60


def test_credits_headers_give_the_run_its_cost_when_the_body_has_none(
    sb: Any, client: CoastyClient
) -> None:
    run_id = new_run(client, sb)
    done = client.runs.wait(run_id, timeout=30)
    assert done.credits_charged > 0 and done.credits_remaining is None
    sb.configure(credits_headers=True)
    from_headers = client.runs.get(run_id)
    assert "credits_charged" not in (from_headers.model_extra or {})
    assert from_headers.credits_charged == done.credits_charged
    assert from_headers.cost_cents == done.cost_cents
    assert from_headers.credits_remaining is not None and from_headers.credits_remaining > 0
