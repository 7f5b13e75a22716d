"""Client behaviour a real server cannot produce on demand, driven through httpx.MockTransport."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from langchain_coasty import (
    APIConnectionError,
    AsyncCoastyClient,
    CoastyClient,
    CoastyError,
    InternalServerError,
    RateLimitError,
    RunStatus,
)
from langchain_coasty._version import __version__

KEY = "sk-coasty-test-0123456789abcdef"
LLM_KEY = "sk-ant-provider-secret-0123456789"
RUN = {"id": "run-1", "object": "agent.run", "status": "queued", "machine_id": "m-1", "task": "t"}

Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, **kwargs: Any) -> CoastyClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return CoastyClient(api_key=KEY, base_url="http://coasty.test", http_client=http, **kwargs)


def envelope(status: int, code: str, **fields: Any) -> httpx.Response:
    error = {
        "code": code,
        "message": fields.pop("message", f"{code} happened"),
        "type": "server_error",
        "request_id": "req_abc123",
        "retryable": False,
        "retry_with_same_idempotency_key": False,
        **fields,
    }
    headers = {"X-Coasty-Request-Id": "req_abc123"}
    if "retry_after" in error and error["retry_after"] is not None:
        headers["Retry-After"] = str(error["retry_after"])
    return httpx.Response(status, json={"error": error}, headers=headers)


def sse(*frames: dict[str, Any] | str) -> bytes:
    out = []
    for frame in frames:
        if isinstance(frame, str):
            out.append(frame)
        else:
            out.append(f"id: {frame['seq']}\nevent: {frame['type']}\ndata: {json.dumps(frame)}\n\n")
    return "".join(out).encode()


def ev(seq: int, type_: str = "text", **data: Any) -> dict[str, Any]:
    return {"seq": seq, "type": type_, "data": data, "ts": 1.0}


# ----------------------------------------------------------------- configuration


def test_missing_api_key_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COASTY_API_KEY", raising=False)
    with pytest.raises(CoastyError, match="COASTY_API_KEY"):
        CoastyClient()
    with pytest.raises(CoastyError, match="COASTY_API_KEY"):
        AsyncCoastyClient()


def test_key_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COASTY_API_KEY", KEY)
    monkeypatch.delenv("COASTY_BASE_URL", raising=False)
    with CoastyClient() as client:
        assert client.api_key.get_secret_value() == KEY
        assert client.base_url == "https://coasty.ai"
    monkeypatch.setenv("COASTY_BASE_URL", "http://127.0.0.1:9/")
    with CoastyClient() as client:
        assert client.base_url == "http://127.0.0.1:9"


def test_secrets_stay_out_of_repr_and_header_dumps() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=RUN)

    client = make_client(handler, llm_provider="anthropic", llm_api_key=LLM_KEY)
    client.runs.create(machine_id="m-1", task="t")
    for text in (repr(client), str(vars(client)), repr(client.api_key)):
        assert KEY not in text and LLM_KEY not in text
    assert KEY not in repr(seen[0].headers)  # sent as Authorization, which httpx masks
    assert "**" in repr(client.api_key) and "**" in repr(client.llm_api_key)
    assert seen[0].headers["user-agent"] == f"langchain-coasty/{__version__}"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert seen[0].headers["x-llm-provider"] == "anthropic"
    assert seen[0].headers["x-llm-api-key"] == LLM_KEY
    assert seen[0].headers["idempotency-key"]


def test_connection_pool_is_sized_for_many_streams() -> None:
    with CoastyClient(api_key=KEY, base_url="http://coasty.test") as client:
        pool = client._http._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 4096
    with CoastyClient(api_key=KEY, base_url="http://coasty.test", max_connections=300) as client:
        assert client._http._transport._pool._max_connections == 300  # type: ignore[attr-defined]


def test_caller_supplied_http_client_is_not_closed() -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=RUN)))
    with CoastyClient(api_key=KEY, base_url="http://coasty.test", http_client=http) as client:
        assert client.runs.get("run-1").status is RunStatus.QUEUED
    assert not http.is_closed


# ----------------------------------------------------------------------- retries


def test_get_retries_with_exponential_jittered_backoff(sleeps: list[float]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 3:
            return envelope(500, "INTERNAL_ERROR", retryable=True)
        return httpx.Response(200, json=RUN)

    client = make_client(handler, max_retries=3)
    assert client.runs.get("run-1").id == "run-1"
    assert calls == 4
    assert len(sleeps) == 3
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0 and 1.0 <= sleeps[2] <= 2.0


def test_retry_after_is_honoured_and_capped(sleeps: list[float]) -> None:
    answers = iter(
        [
            envelope(429, "RATE_LIMITED", retryable=True, retry_after=3),
            envelope(429, "RATE_LIMITED", retryable=True, retry_after=3600),
            httpx.Response(200, json=RUN),
        ]
    )
    client = make_client(lambda r: next(answers))
    client.runs.get("run-1")
    assert sleeps == [3.0, 60.0]


def test_retries_stop_after_max_retries_with_the_typed_error(sleeps: list[float]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return envelope(429, "RATE_LIMITED", retryable=True, retry_after=0)

    with pytest.raises(RateLimitError) as info:
        make_client(handler, max_retries=2).runs.get("run-1")
    assert calls == 3
    assert info.value.request_id == "req_abc123" and info.value.retry_after == 0


def test_non_retryable_error_is_not_retried(sleeps: list[float]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return envelope(500, "INTERNAL_ERROR", retryable=False)

    with pytest.raises(InternalServerError):
        make_client(handler).runs.get("run-1")
    assert calls == 1 and sleeps == []


def test_error_without_envelope_is_typed_but_a_post_is_not_resent(sleeps: list[float]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502, text="<html>Bad gateway</html>")

    with pytest.raises(InternalServerError) as info:
        make_client(handler).runs.cancel("run-1")
    assert calls == 1
    assert info.value.code == "HTTP_502"


def test_post_is_resent_when_the_connection_was_never_made(sleeps: list[float]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={**RUN, "status": "cancelled"})

    assert make_client(handler).runs.cancel("run-1").status is RunStatus.CANCELLED
    assert calls == 2


def test_unkeyed_post_is_not_resent_after_it_may_have_arrived(sleeps: list[float]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadError("connection reset", request=request)

    with pytest.raises(APIConnectionError, match="ReadError"):
        make_client(handler).runs.resume("run-1", note="done")
    assert calls == 1


def test_create_waits_while_the_idempotency_record_is_processing(sleeps: list[float]) -> None:
    posts: list[str] = []
    lookups = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal lookups
        if request.method == "POST":
            posts.append(request.headers["idempotency-key"])
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        lookups += 1
        if lookups < 3:
            return httpx.Response(200, json={"status": "processing", "request_id": "req_1"})
        return httpx.Response(
            200,
            json={
                "status": "completed",
                "request_id": "req_1",
                "result": RUN,
                "original_status": 200,
            },
        )

    result = make_client(handler).runs.create_with_response(machine_id="m-1", task="t")
    assert result.run.id == "run-1" and result.replayed is False
    assert len(posts) == 1 and lookups == 3
    assert result.idempotency_key == posts[0]


def test_create_resends_with_the_same_key_when_the_record_is_unknown(sleeps: list[float]) -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return envelope(404, "NOT_FOUND")
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json=RUN)

    client = make_client(handler)
    run = client.runs.create(machine_id="m-1", task="t", idempotency_key="graph:thread-1:call-7")
    assert run.id == "run-1"
    assert keys == ["graph:thread-1:call-7"] * 2


def test_lost_create_whose_lookup_also_fails_raises_the_connection_error(
    sleeps: list[float],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset", request=request)

    with pytest.raises(APIConnectionError, match="POST /v1/runs"):
        make_client(handler).runs.create(machine_id="m-1", task="t")


def test_secrets_are_scrubbed_from_error_text_and_logs(
    sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    answers = iter(
        [
            envelope(503, "SERVICE_UNAVAILABLE", retryable=True, retry_after=0),
            envelope(401, "INVALID_API_KEY", message=f"Key {KEY} is revoked", suggestion=KEY),
        ]
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CoastyError) as info:
        make_client(lambda r: next(answers)).runs.get("run-1")
    text = str(info.value) + repr(info.value) + info.value.message
    assert KEY not in text and "***" in text
    assert caplog.records and all(KEY not in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------ stream


def stream_client(connections: list[bytes | Exception], seen: list[httpx.Request]) -> CoastyClient:
    answers: Iterator[bytes | Exception] = iter(connections)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(200, content=answer, headers={"content-type": "text/event-stream"})

    return make_client(handler)


def test_stream_skips_phantoms_heartbeats_and_duplicates_and_passes_unknown_types(
    sleeps: list[float],
) -> None:
    seen: list[httpx.Request] = []
    first = sse(ev(1, "status", status="running"), ": ping\n\n", ev(2, "novel", x=1), ": ping\n\n")
    second = sse(
        ev(1), ev(2), ": ping\n\n", ev(3, "step", step=1), ev(5, "done", status="succeeded")
    )
    client = stream_client([first, second], seen)
    events = list(client.runs.events("run-1"))
    assert [(e.seq, e.type) for e in events] == [
        (1, "status"),
        (2, "novel"),
        (3, "step"),
        (5, "done"),
    ]
    assert events[1].data == {"x": 1} and events[1].status is None
    assert "last-event-id" not in seen[0].headers
    assert seen[1].headers["last-event-id"] == "2"
    assert sleeps == []  # the first reconnect is immediate


def test_garbled_frame_reconnects_from_the_cursor(sleeps: list[float]) -> None:
    seen: list[httpx.Request] = []
    first = sse(ev(1), "id: 2\nevent: text\ndata: {not json\n\n")
    second = sse(ev(2, "done", status="failed"))
    events = list(stream_client([first, second], seen).runs.events("run-1", after=0))
    assert [e.seq for e in events] == [1, 2] and events[-1].status == "failed"
    assert seen[1].headers["last-event-id"] == "1"


def test_stream_gives_up_after_its_reconnect_budget_without_progress(sleeps: list[float]) -> None:
    seen: list[httpx.Request] = []
    cut = httpx.ReadError("reset")
    client = stream_client([sse(ev(1)), *[cut] * 8], seen)
    with pytest.raises(APIConnectionError, match="8 reconnects"):
        list(client.runs.events("run-1"))
    # One clean EOF (immediate reconnect), then 8 cuts: 7 growing, capped waits.
    assert len(seen) == 9
    assert len(sleeps) == 7 and 0.1 <= sleeps[0] <= 0.25 and max(sleeps) <= 5.0


def test_stream_budget_resets_after_progress(sleeps: list[float]) -> None:
    seen: list[httpx.Request] = []
    cut = httpx.RemoteProtocolError("incomplete chunked read")
    connections: list[bytes | Exception] = []
    for seq in range(1, 6):
        connections += [cut] * 6 + [sse(ev(seq))]
    connections.append(sse(ev(6, "done")))
    events = list(stream_client(connections, seen).runs.events("run-1"))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]


async def test_async_stream_matches_the_sync_one(sleeps: list[float]) -> None:
    answers = iter([sse(ev(1), ": ping\n\n", ev(1)), sse(ev(2, "done", status="cancelled"))])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, content=next(answers), headers={"content-type": "text/event-stream"}
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = AsyncCoastyClient(api_key=KEY, base_url="http://coasty.test", http_client=http)
    async with client, client.runs.events("run-1") as stream:
        events = [e async for e in stream]
    assert [e.seq for e in events] == [1, 2]
    assert seen[1].headers["last-event-id"] == "1"
