"""Seeded fault injection: refused / rate-limited / lost creates, stream cuts, duplicates,
stalls, and scripted error responses."""

from __future__ import annotations

import httpx
import pytest
from httpx_sse import connect_sse

from langchain_coasty.sandbox import CoastySandbox
from tests.sandbox.conftest import create, event_json, make_client, read_events

pytestmark = pytest.mark.usefixtures("framing")

BODY = {"task": "Open the pricing page"}


def _post(api: httpx.Client, sb: CoastySandbox, key: str | None = "k-1") -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return api.post("/v1/runs", json={**BODY, "machine_id": sb.machine_id}, headers=headers)


def test_refused_create_is_a_retryable_503(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.inject(create_refuse_rate=1.0, retry_after=2)
    response = _post(api, sb)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    error = response.json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE"
    assert error["retryable"] is True
    assert error["retry_with_same_idempotency_key"] is True
    assert error["retry_after"] == 2
    unkeyed = _post(api, sb, key=None).json()["error"]
    assert unkeyed["retryable"] is True and unkeyed["retry_with_same_idempotency_key"] is False
    counters = sb.counters()
    assert counters["runs_created"] == 0
    assert counters["faults_fired"]["create_refuse"] == 2
    sb.clear_faults()
    assert _post(api, sb).status_code == 200


def test_rate_limited_create_is_a_429_with_retry_after(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    sb.inject(create_rate_limit_rate=1.0, retry_after=1)
    response = _post(api, sb)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "RATE_LIMITED" and error["type"] == "rate_limit_error"
    assert error["retryable"] is True and error["retry_with_same_idempotency_key"] is True
    assert sb.counters()["runs_created"] == 0


def test_lost_response_creates_the_run_and_drops_the_connection(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    sb.inject(create_lose_response_rate=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        _post(api, sb, key="lost-1")
    assert sb.counters()["runs_created"] == 1
    assert sb.counters()["faults_fired"]["create_lose_response"] == 1
    lookup = api.get("/v1/idempotency/lost-1").json()
    assert lookup["status"] == "completed"
    sb.clear_faults()
    retry = _post(api, sb, key="lost-1")
    assert retry.headers["x-coasty-idempotent-replay"] == "true"
    assert retry.json() == lookup["result"]
    assert sb.counters()["runs_created"] == 1


def test_faults_are_reproducible_with_a_seed(api: httpx.Client, sb: CoastySandbox) -> None:
    def outcomes() -> list[int]:
        sb.inject(seed=42, create_refuse_rate=0.3, create_rate_limit_rate=0.3)
        return [_post(api, sb, key=None).status_code for _ in range(20)]

    first = outcomes()
    assert first == outcomes()
    assert {200, 429, 503} <= set(first)


def test_abrupt_cut_drops_the_tcp_connection(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id)
    full = read_events(api, run["id"])
    sb.inject(stream_cut_rate=1.0, stream_cut_max_frames=1, stream_cut_mode="abrupt")
    received = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        connect_sse(api, "GET", f"/v1/runs/{run['id']}/events") as es,
    ):
        for sse in es.iter_sse():
            received.append(event_json(sse.data, sse.id, sse.event))
    assert received == full[:1]
    assert sb.counters()["faults_fired"]["stream_cut_abrupt"] == 1


def test_clean_cut_ends_the_stream_normally_before_done(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    run = create(api, sb.machine_id)
    full = read_events(api, run["id"])
    sb.inject(seed=3, stream_cut_rate=1.0, stream_cut_max_frames=5, stream_cut_mode="clean")
    collected: list[dict[str, object]] = []
    connections = 0
    while not collected or collected[-1]["type"] != "done":
        connections += 1
        after = int(str(collected[-1]["seq"])) if collected else None
        part = read_events(api, run["id"], after=after)
        assert part, "a clean cut still sends at least one frame"
        collected.extend(part)
    assert collected == full
    assert connections > 1
    assert sb.counters()["faults_fired"]["stream_cut_clean"] == connections - 1


def test_duplicates_are_resent_on_reconnect(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id)
    full = read_events(api, run["id"])
    sb.inject(stream_duplicate_rate=1.0)
    again = read_events(api, run["id"], after=10)
    assert 1 <= 10 - again[0]["seq"] + 1 <= 3
    assert again == full[again[0]["seq"] - 1 :]
    assert read_events(api, run["id"], after=0) == full
    assert sb.counters()["faults_fired"]["stream_duplicate"] == 1


def test_stall_sends_nothing_for_a_while(sb: CoastySandbox) -> None:
    sb.configure(heartbeat_interval=0.01)
    with make_client(sb) as api:
        run = create(api, sb.machine_id)
        read_events(api, run["id"])
        sb.inject(stream_stall_rate=1.0, stream_cut_max_frames=1, stream_stall_seconds=3)
        received = []
        with (
            pytest.raises(httpx.ReadTimeout),
            connect_sse(
                api, "GET", f"/v1/runs/{run['id']}/events", timeout=httpx.Timeout(10, read=0.5)
            ) as es,
        ):
            for sse in es.iter_sse():
                received.append(sse.id)
        assert received == ["1"]
    assert sb.counters()["faults_fired"]["stream_stall"] == 1


def test_scripted_errors_fire_the_given_number_of_times(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    run = create(api, sb.machine_id)
    sb.inject(
        errors=[
            {"method": "GET", "path": "/v1/runs/{id}", "status": 404, "code": "NOT_FOUND"},
            {
                "method": "GET",
                "path": "/v1/runs",
                "status": 500,
                "code": "INTERNAL_ERROR",
                "times": 2,
            },
            {
                "method": "POST",
                "path": "/v1/runs",
                "status": 402,
                "code": "INSUFFICIENT_CREDITS",
                "message": "Need 5, have 2.",
            },
        ]
    )
    assert api.get(f"/v1/runs/{run['id']}").status_code == 404
    assert api.get(f"/v1/runs/{run['id']}").status_code == 200
    for _ in range(2):
        response = api.get("/v1/runs")
        assert response.status_code == 500
        assert response.json()["error"]["retryable"] is True
    assert api.get("/v1/runs").status_code == 200
    response = _post(api, sb)
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["message"] == "Need 5, have 2." and error["type"] == "billing_error"
    assert error["retryable"] is False
    assert sb.counters()["faults_fired"]["scripted_error"] == 4


def test_bad_fault_config_is_rejected(sb: CoastySandbox) -> None:
    for faults in ({"create_refuse_rate": 2}, {"nope": 1}, {"stream_cut_mode": "x"}):
        with pytest.raises(ValueError):
            sb.inject(**faults)
