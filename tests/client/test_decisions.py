"""The retry and recovery decisions shared by both clients, driven without any I/O."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_coasty import (
    APIConnectionError,
    CoastyClient,
    IdempotencyInFlightError,
    InternalServerError,
)
from langchain_coasty.client import CreateResult, IdempotencyLookup, Run
from langchain_coasty.client._base_client import _CreateAttempts, _Recovery, _Retry, _RetryState
from langchain_coasty.client._errors import APIStatusError, status_error_from_response

KEY = "sk-coasty-test-0123456789abcdef"
RUN = {"id": "run-1", "object": "agent.run", "status": "queued"}
POST = httpx.Request("POST", "http://coasty.test/v1/runs")


def no_io(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a decision sent {request.method} {request.url}")


@pytest.fixture
def client() -> Iterator[CoastyClient]:
    http = httpx.Client(transport=httpx.MockTransport(no_io))
    with http, CoastyClient(api_key=KEY, base_url="http://coasty.test", http_client=http) as c:
        yield c


def error(status: int, code: str, **fields: Any) -> httpx.Response:
    body = {"code": code, "message": f"{code} happened", "request_id": "req_1", **fields}
    return httpx.Response(status, json={"error": body}, request=POST)


def test_a_request_retries_what_it_may_and_raises_the_last_error(client: CoastyClient) -> None:
    retry = _RetryState(client, "GET", "/v1/runs", "always")
    busy = error(503, "SERVICE_UNAVAILABLE", retryable=True, retry_after=1.5)
    assert retry.after_status_error(busy) == 1.5
    assert 0 < retry.after_transport_error(httpx.ReadError("reset", request=POST)) <= 8
    with pytest.raises(InternalServerError):
        retry.after_status_error(busy)  # max_retries=2 spent
    unsent_only = _RetryState(client, "POST", "/v1/runs/r/cancel", "unsent")
    assert unsent_only.after_transport_error(httpx.ConnectError("refused", request=POST)) > 0
    with pytest.raises(APIConnectionError, match="POST /v1/runs/r/cancel failed: ReadError"):
        unsent_only.after_transport_error(httpx.ReadError("reset", request=POST))


def test_a_create_whose_answer_is_lost_looks_the_key_up_before_resending(
    client: CoastyClient,
) -> None:
    attempts = _CreateAttempts(client, "key-1")
    assert attempts.headers["Idempotency-Key"] == "key-1"
    step = attempts.after_lost_answer(httpx.ReadTimeout("slow", request=POST))
    assert isinstance(step, _Recovery) and not step.final
    step = attempts.after_recovery(None, step)  # unknown key: the POST never took effect
    assert isinstance(step, _Retry)
    failed = {"retryable": True, "retry_with_same_idempotency_key": True}
    step = attempts.after_response(error(500, "INTERNAL", **failed))
    assert isinstance(step, _Retry)
    step = attempts.after_response(error(500, "INTERNAL", **failed))
    assert isinstance(step, _Recovery) and step.final  # retries spent, a run may exist
    with pytest.raises(InternalServerError) as info:
        attempts.after_recovery(None, step)
    assert info.value.idempotency_key == "key-1"
    assert "client.idempotency.get('key-1')" in str(info.value)


def test_a_recovered_create_is_a_replay_only_when_no_attempt_of_ours_may_have_made_it(
    client: CoastyClient,
) -> None:
    lost = _CreateAttempts(client, "key-2")
    recovery = lost.after_lost_answer(httpx.RemoteProtocolError("cut", request=POST))
    assert isinstance(recovery, _Recovery)
    found = lost.after_recovery(recovered(recovery), recovery)
    assert isinstance(found, CreateResult) and found.replayed is False

    in_flight = _CreateAttempts(client, "key-3")
    step = in_flight.after_response(error(409, "IDEMPOTENCY_IN_FLIGHT"))
    assert isinstance(step, _Recovery) and step.final
    assert isinstance(step.cause, IdempotencyInFlightError)
    found = in_flight.after_recovery(recovered(step), step)
    assert isinstance(found, CreateResult) and found.replayed is True
    assert found.idempotency_key == "key-3" and found.run.id == "run-1"


def test_a_lookup_polls_a_processing_record_with_growing_waits(client: CoastyClient) -> None:
    attempts = _CreateAttempts(client, "key-4")
    recovery = attempts.after_lost_answer(httpx.ReadError("reset", request=POST))
    assert isinstance(recovery, _Recovery)
    processing = IdempotencyLookup(status="processing")
    waits = [recovery.after_record(processing) for _ in range(5)]
    assert all(isinstance(w, _Retry) for w in waits)
    delays = [w.delay for w in waits if isinstance(w, _Retry)]
    assert delays == sorted(delays) and delays[-1] == 2.0
    recovery.raise_unless_unknown(status_error(404, "NOT_FOUND"))  # an unknown key: no run
    with pytest.raises(APIConnectionError) as info:
        recovery.raise_unless_unknown(status_error(401, "INVALID_API_KEY"))
    assert info.value.idempotency_key == "key-4"


def recovered(recovery: _Recovery) -> Run:
    """The run a completed idempotency record hands back."""
    record = IdempotencyLookup(status="completed", result=RUN, original_status=201)
    run = recovery.after_record(record)
    assert isinstance(run, Run)
    return run


def status_error(status: int, code: str) -> APIStatusError:
    return status_error_from_response(error(status, code))
