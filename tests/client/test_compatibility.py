"""The client against the sandbox set up the way Coasty's docs, cookbook and live API behave."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent

from langchain_coasty import (
    AsyncCoastyClient,
    CoastyClient,
    CoastyComputerTool,
    InvalidRequestError,
    RunStatus,
)
from langchain_coasty.client._stream import _Cursor

# ------------------------------------------------------------------------- base URL


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_with_or_without_v1_reaches_the_api(sb: Any, suffix: str) -> None:
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url + suffix) as client:
        assert client.base_url == sb.base_url
        run = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
        assert client.runs.wait(run.id, timeout=10).status is RunStatus.SUCCEEDED


async def test_the_documented_environment_value_works_for_the_async_client_and_the_tool(
    sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COASTY_API_KEY", sb.api_key)
    monkeypatch.setenv("COASTY_BASE_URL", f"{sb.base_url}/v1")
    async with AsyncCoastyClient() as client:
        assert (await client.health())["status"] == "ok"
    tool = CoastyComputerTool(machine_id=sb.machine_id)
    result = await tool.ainvoke({"task": "Open the calculator"})
    assert "succeeded" in str(result)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("https://coasty.ai/v1\n", "whitespace"),
        (" https://coasty.ai", "whitespace"),
        ("https://coasty .ai", "whitespace"),
        ("coasty.ai/v1", "scheme"),
        ("ftp://coasty.ai", "scheme"),
        ("https://", "scheme"),
        ("https://coasty.ai/v1?key=1", "query"),
        ("https://coasty.ai\x00", "control"),
    ],
)
def test_a_bad_base_url_is_refused_before_any_request(value: str, problem: str) -> None:
    def no_network(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    http = httpx.Client(transport=httpx.MockTransport(no_network))
    for make in (
        lambda: CoastyClient(api_key="sk-coasty-test-abc", base_url=value, http_client=http),
        lambda: AsyncCoastyClient(api_key="sk-coasty-test-abc", base_url=value),
    ):
        with pytest.raises(InvalidRequestError, match="base_url") as info:
            make()
        assert info.value.field == "base_url" and problem in str(info.value)


# --------------------------------------------------------------------- event framing


def _frame(seq: str, event: str, data: object) -> ServerSentEvent:
    return ServerSentEvent(event=event, data=json.dumps(data), id=seq)


def test_each_frame_is_read_in_its_own_framing() -> None:
    cursor = _Cursor(after=0)
    envelope = _frame("1", "status", {"seq": 1, "type": "status", "data": {"status": "running"}})
    flat = _frame("2", "tool_call", {"step": 1, "action_type": "click", "params": {"x": 1}})
    flat_empty = _frame("3", "resumed", {})
    flat_scalar = _frame("4", "text", "hello")
    events = [cursor.accept(f) for f in (envelope, flat, flat_empty, flat_scalar)]
    assert [(e.seq, e.type, e.data) for e in events if e is not None] == [
        (1, "status", {"status": "running"}),
        (2, "tool_call", {"step": 1, "action_type": "click", "params": {"x": 1}}),
        (3, "resumed", {}),
        (4, "text", {"value": "hello"}),
    ]
    assert cursor.accept(flat) is None and cursor.duplicates == 1
    with pytest.raises(Exception, match="integer seq"):
        cursor.accept(_frame("", "status", {"status": "running"}))


def test_a_contradicting_envelope_loses_nothing_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="langchain_coasty.client")
    cursor = _Cursor(after=0, run_id="run-x")
    first = cursor.accept(_frame("1", "tool_result", {"seq": 1, "type": "step", "data": {"a": 1}}))
    second = cursor.accept(_frame("9", "step", {"seq": 2, "type": "step", "data": {"b": 2}}))
    assert first is not None and second is not None
    assert (first.seq, first.type, first.data) == (1, "step", {"a": 1})
    assert first.model_extra == {"sse_event": "tool_result"}
    assert (second.seq, second.data, second.model_extra) == (2, {"b": 2}, {"sse_id": "9"})
    assert cursor.contradictions == 2
    warnings = [r for r in caplog.records if "contradicts" in r.getMessage()]
    assert len(warnings) == 1 and "run-x" in warnings[0].getMessage()


async def test_flat_events_reach_callbacks_and_the_custom_stream_with_their_payload(
    sb: Any,
) -> None:
    from langchain_coasty.callbacks import CoastyCallbackHandler, CoastyEventPayload

    sb.configure(event_framing="flat")
    seen: list[CoastyEventPayload] = []

    class Handler(CoastyCallbackHandler):
        def on_coasty_event(self, event: CoastyEventPayload) -> None:
            seen.append(event)

    tool = CoastyComputerTool(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)
    await tool.ainvoke({"task": "Open the calculator"}, {"callbacks": [Handler()]})
    steps = [e for e in seen if e["type"] == "step"]
    assert steps and all(e["data"].get("summary") for e in steps)
    assert seen[-1]["type"] == "done" and seen[-1]["data"]["status"] == "succeeded"


# ------------------------------------------------------------- a stream that ends at a pause


def _paused_server(polls_paused: int) -> tuple[httpx.MockTransport, dict[str, int]]:
    """A Coasty whose stream ends after `awaiting_human` and stays empty until the resume.

    The run stays paused for `polls_paused` GETs (more than the reconnect budget), then runs.
    """
    seen = {"gets": 0, "streams": 0}
    pause = (
        'id: 1\nevent: status\ndata: {"status":"awaiting_human"}\n\n'
        'id: 2\nevent: awaiting_human\ndata: {"reason":"2FA"}\n\n'
    )
    rest = 'id: 3\nevent: resumed\ndata: {}\n\nid: 4\nevent: done\ndata: {"status":"succeeded"}\n\n'

    def handler(request: httpx.Request) -> httpx.Response:
        paused = seen["gets"] < polls_paused
        if request.url.path.endswith("/events"):
            seen["streams"] += 1
            after = request.headers.get("last-event-id")
            body = pause if after is None else ("" if paused else rest)
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
        seen["gets"] += 1
        status = "awaiting_human" if paused else "running"
        return httpx.Response(200, json={"id": "run-1", "status": status, "object": "agent.run"})

    return httpx.MockTransport(handler), seen


def test_a_stream_that_ends_at_a_pause_waits_for_the_resume_without_spending_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import langchain_coasty.client._base_client as base

    sleeps: list[float] = []
    monkeypatch.setattr(base, "_sleep", sleeps.append)
    transport, seen = _paused_server(polls_paused=20)
    http = httpx.Client(transport=transport)
    client = CoastyClient(api_key="sk-coasty-test-abc", base_url="http://c.test", http_client=http)
    events = list(client.runs.events("run-1"))
    assert [e.type for e in events] == ["status", "awaiting_human", "resumed", "done"]
    # 20 looks at the paused run, each followed by a wait and a reconnect; no budget spent.
    assert seen == {"gets": 20, "streams": 21}
    assert len(sleeps) == 20 and max(sleeps) <= 5.0


async def test_the_async_stream_waits_out_a_pause_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    import langchain_coasty.client._base_client as base

    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)

    monkeypatch.setattr(base, "_asleep", fake_sleep)
    transport, seen = _paused_server(polls_paused=12)
    http = httpx.AsyncClient(transport=transport)
    client = AsyncCoastyClient(
        api_key="sk-coasty-test-abc", base_url="http://c.test", http_client=http
    )
    async with client.runs.events("run-1") as stream:
        types = [e.type async for e in stream]
    assert types == ["status", "awaiting_human", "resumed", "done"]
    assert seen == {"gets": 12, "streams": 13} and len(sleeps) == 12


@pytest.mark.parametrize("framing", ["envelope", "flat"])
def test_wait_follows_a_run_whose_stream_ends_at_its_pause(sb: Any, framing: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.sandbox.conftest import wait_until

    sb.configure(event_framing=framing, end_stream_at_pause=True)
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        run = client.runs.create(machine_id=sb.machine_id, task="Log in with the password")
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(client.runs.wait, run.id, 30)

            def paused_and_stream_ended() -> bool:
                counters = sb.counters()
                return counters["stream_connections"] == 1 and counters["open_streams"] == 0

            wait_until(paused_and_stream_ended)
            assert client.runs.get(run.id).awaiting_human_reason
            client.runs.resume(run.id, note="done by hand")
            assert waiting.result().status is RunStatus.SUCCEEDED


# ------------------------------------------------------------------------- run fields


def test_run_reads_the_documented_result_and_error_fields_typed(
    client: CoastyClient, sb: Any
) -> None:
    result = {"passed": True, "status": "completed", "summary": "Exported 3 invoices"}
    sb.load_scenarios(
        [
            {"match": "^Export", "steps": 1, "result": result},
            {
                "match": "^Break",
                "steps": 1,
                "fail": {"after_step": 1, "code": "E_X", "message": "m"},
            },
        ]
    )
    ok = client.runs.wait(client.runs.create(machine_id=sb.machine_id, task="Export").id)
    assert (ok.passed, ok.summary, ok.error_code, ok.error_message) == (
        True,
        "Exported 3 invoices",
        None,
        None,
    )
    assert ok.result is not None and ok.result["passed"] is True  # still a dict
    assert ok.model_dump(mode="json")["result"] == result
    assert ok.finished_at and ok.awaiting_human_since is None
    failed = client.runs.wait(client.runs.create(machine_id=sb.machine_id, task="Break").id)
    assert (failed.passed, failed.error_code, failed.error_message) == (None, "E_X", "m")
    assert failed.error == {"code": "E_X", "message": "m"}
