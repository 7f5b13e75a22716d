"""Every documented error status maps to its class, with request_id set (sandbox `errors` fault)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from langchain_coasty import (
    APIStatusError,
    AsyncCoastyClient,
    AuthenticationError,
    CoastyClient,
    ConflictError,
    IdempotencyInFlightError,
    IdempotencyKeyReusedError,
    InsufficientCreditsError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from langchain_coasty.client import BadRequestError

Fired = Callable[[], dict[str, int]]

DOCUMENTED: list[tuple[int, str, type[APIStatusError]]] = [
    (400, "VALIDATION_ERROR", BadRequestError),
    (401, "INVALID_API_KEY", AuthenticationError),
    (402, "INSUFFICIENT_CREDITS", InsufficientCreditsError),
    (403, "INSUFFICIENT_SCOPE", PermissionDeniedError),
    (404, "NOT_FOUND", NotFoundError),
    (409, "INVALID_STATE", ConflictError),
    (409, "IDEMPOTENCY_IN_FLIGHT", IdempotencyInFlightError),
    (413, "PAYLOAD_TOO_LARGE", PayloadTooLargeError),
    (422, "VALIDATION_ERROR", UnprocessableEntityError),
    (422, "IDEMPOTENCY_KEY_REUSED", IdempotencyKeyReusedError),
    (429, "RATE_LIMITED", RateLimitError),
    (500, "INTERNAL_ERROR", InternalServerError),
    (502, "UPSTREAM_ERROR", InternalServerError),
    (503, "SERVICE_UNAVAILABLE", InternalServerError),
    (504, "UPSTREAM_TIMEOUT", InternalServerError),
]
IDS = [f"{status}-{code}" for status, code, _ in DOCUMENTED]


@pytest.mark.parametrize(("status", "code", "cls"), DOCUMENTED, ids=IDS)
def test_documented_status_maps_to_its_class(
    sb: Any, fired: Fired, status: int, code: str, cls: type[APIStatusError]
) -> None:
    sb.inject(errors=[{"method": "GET", "path": "/v1/runs/{id}", "status": status, "code": code}])
    with (
        CoastyClient(api_key=sb.api_key, base_url=sb.base_url, max_retries=0) as client,
        pytest.raises(APIStatusError) as info,
    ):
        client.runs.get("00000000-0000-0000-0000-000000000000")
    error = info.value
    assert type(error) is cls
    assert (error.status_code, error.code) == (status, code)
    assert error.request_id and error.request_id.startswith("req_")
    assert error.message and error.type
    assert isinstance(error.retryable, bool)
    assert isinstance(error.retry_with_same_idempotency_key, bool)
    text = str(error)
    assert code in text and error.request_id in text and error.message in text
    assert sb.api_key not in text + repr(error)
    assert fired() == {"scripted_error": 1}


@pytest.mark.parametrize(("status", "code", "cls"), DOCUMENTED[:6], ids=IDS[:6])
async def test_async_client_maps_the_same_way(
    sb: Any, status: int, code: str, cls: type[APIStatusError]
) -> None:
    sb.inject(errors=[{"method": "POST", "path": "/v1/runs", "status": status, "code": code}])
    async with AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url, max_retries=0) as c:
        with pytest.raises(cls) as info:
            await c.runs.create(machine_id=sb.machine_id, task="Open the calculator")
    assert info.value.request_id and info.value.status_code == status


def test_retryable_scripted_error_is_retried_then_succeeds(
    client: CoastyClient, sb: Any, fired: Fired
) -> None:
    run = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
    sb.inject(
        errors=[
            {
                "method": "GET",
                "path": "/v1/runs/{id}",
                "status": 503,
                "code": "SERVICE_UNAVAILABLE",
                "retryable": True,
                "retry_after": 0,
                "times": 2,
            }
        ]
    )
    assert client.runs.get(run.id).id == run.id
    assert fired() == {"scripted_error": 2}


def test_real_server_errors(client: CoastyClient, sb: Any) -> None:
    with pytest.raises(NotFoundError) as not_found:
        client.runs.get("00000000-0000-0000-0000-000000000000")
    assert not_found.value.request_id
    run = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
    client.runs.wait(run.id)
    with pytest.raises(ConflictError) as conflict:
        client.runs.resume(run.id)
    assert conflict.value.status_code == 409 and conflict.value.request_id
    with (
        CoastyClient(api_key="sk-bogus-key", base_url=sb.base_url) as bad,
        pytest.raises(AuthenticationError) as auth,
    ):
        bad.runs.list()
    assert auth.value.request_id and "sk-bogus-key" not in str(auth.value)


def test_stream_stops_on_fatal_statuses(client: CoastyClient, sb: Any) -> None:
    with pytest.raises(NotFoundError):
        list(client.runs.events("00000000-0000-0000-0000-000000000000"))
    run = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
    with (
        CoastyClient(api_key="sk-bogus-key", base_url=sb.base_url) as bad,
        pytest.raises(AuthenticationError),
    ):
        list(bad.runs.events(run.id))
    sb.inject(
        errors=[{"method": "GET", "path": "/v1/runs/{id}/events", "status": 403, "code": "X"}]
    )
    with pytest.raises(PermissionDeniedError):
        list(client.runs.events(run.id))
