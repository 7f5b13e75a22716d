"""The client against the sandbox over loopback: the run lifecycle, idempotency, validation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from langchain_coasty import (
    APITimeoutError,
    AsyncCoastyClient,
    CoastyClient,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    Run,
    RunStatus,
)

pytestmark = pytest.mark.usefixtures("framing")


def test_create_stream_get_list(client: CoastyClient, sb: Any) -> None:
    result = client.runs.create_with_response(
        machine_id=sb.machine_id, task="Open the calculator", metadata={"ticket": "T-1"}
    )
    run = result.run
    assert isinstance(run, Run) and run.object == "agent.run"
    assert run.status is RunStatus.QUEUED and not run.is_terminal
    assert run.metadata == {"ticket": "T-1"}
    assert run.request_id and run.request_id.startswith("req_")
    assert result.replayed is False and result.idempotency_key

    events = list(client.runs.events(run.id))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "done" and events[-1].status == "succeeded"
    assert all(e.type != "done" for e in events[:-1])
    billing = [e for e in events if e.type == "billing"]
    assert billing and billing[-1].credits_charged == 5 * len(billing)

    final = client.runs.get(run.id)
    assert final.status is RunStatus.SUCCEEDED and final.is_terminal
    assert final.cost_usd == final.cost_cents / 100 > 0
    assert final.webhook_secret is None

    page = client.runs.list(status="succeeded", limit=5)
    assert [r.id for r in page.data] == [run.id] and page.has_more is False
    assert client.runs.list(status=RunStatus.RUNNING).data == []


def test_events_after_a_cursor_resume_there(client: CoastyClient, sb: Any) -> None:
    run = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
    full = list(client.runs.events(run.id))
    tail = list(client.runs.events(run.id, after=3))
    assert tail == full[3:]


def test_webhook_secret_is_returned_once_and_hidden(client: CoastyClient, sb: Any) -> None:
    run = client.runs.create(
        machine_id=sb.machine_id, task="Open the calculator", webhook_url="http://127.0.0.1:9/hook"
    )
    assert run.webhook_secret is not None and run.webhook_secret.get_secret_value()
    assert run.webhook_secret.get_secret_value() not in repr(run)
    assert client.runs.get(run.id).webhook_secret is None


def test_pause_resume_and_wait(client: CoastyClient, sb: Any) -> None:
    run = client.runs.create(machine_id=sb.machine_id, task="Log in with the password")
    with client.runs.events(run.id) as stream:
        for event in stream:
            if event.type == "awaiting_human":
                assert event.reason and event.question
                break
    paused = client.runs.get(run.id)
    assert paused.status is RunStatus.AWAITING_HUMAN and paused.awaiting_human_reason
    with pytest.raises(APITimeoutError):
        client.runs.wait(run.id, timeout=0.3)
    resumed = client.runs.resume(run.id, note="Logged in for you")
    assert resumed.status in (RunStatus.RUNNING, RunStatus.SUCCEEDED)
    final = client.runs.wait(run.id, timeout=10)
    assert final.status is RunStatus.SUCCEEDED
    notes = [e.note for e in client.runs.events(run.id) if e.type == "resumed"]
    assert notes == ["Logged in for you"]
    assert sb.counters()["resumes"] == 1


def test_cancel(client: CoastyClient, sb: Any) -> None:
    run = client.runs.create(machine_id=sb.machine_id, task="Approve the invoice")
    events = client.runs.events(run.id)
    for event in events:
        if event.type == "awaiting_human":
            break
    events.close()
    cancelled = client.runs.cancel(run.id)
    assert cancelled.status is RunStatus.CANCELLED
    assert client.runs.wait(run.id).status is RunStatus.CANCELLED
    assert sb.counters()["cancels"] == 1


def test_same_key_reattaches_and_a_different_body_is_refused(client: CoastyClient, sb: Any) -> None:
    key = "thread-1:ns:call_abc"
    first = client.runs.create_with_response(
        machine_id=sb.machine_id, task="Open the calculator", idempotency_key=key
    )
    again = client.runs.create_with_response(
        machine_id=sb.machine_id, task="Open the calculator", idempotency_key=key
    )
    assert (first.replayed, again.replayed) == (False, True)
    assert again.run.id == first.run.id
    lookup = client.idempotency.get(key)
    assert lookup.is_completed and lookup.result["id"] == first.run.id
    with pytest.raises(IdempotencyKeyReusedError) as info:
        client.runs.create(machine_id=sb.machine_id, task="Something else", idempotency_key=key)
    assert info.value.status_code == 422 and info.value.request_id
    counters = sb.counters()
    assert counters["runs_created"] == 1 and counters["create_replays"] == 1


def test_health_and_machines(client: CoastyClient, sb: Any) -> None:
    assert client.health()["status"] == "ok"
    machines = client.machines.list()
    assert [m.id for m in machines.data][:1] == [sb.machine_id] and len(machines.data) >= 4


BAD_CREATES: list[tuple[dict[str, Any], str, str]] = [
    ({"max_steps": 0}, "max_steps", "1..1000"),
    ({"max_steps": 1001}, "max_steps", "1..1000"),
    ({"max_steps": "5"}, "max_steps", "1..1000"),
    ({"task": "x" * 16001}, "task", "1..16000"),
    ({"task": ""}, "task", "1..16000"),
    ({"machine_id": "m" * 129}, "machine_id", "1..128"),
    ({"cua_version": "v2"}, "cua_version", "v1, v3, v4, v5"),
    ({"on_awaiting_human": "ask"}, "on_awaiting_human", "pause, fail, cancel"),
    ({"deadline_seconds": 86401}, "deadline_seconds", "1..86400"),
    ({"awaiting_human_timeout_seconds": 0}, "awaiting_human_timeout_seconds", "1..86400"),
    ({"instructions": "i" * 16001}, "instructions", "16000"),
    ({"system_prompt": "s" * 32001}, "system_prompt", "32000"),
    ({"webhook_url": "https://x/" + "a" * 2048}, "webhook_url", "2048"),
    ({"metadata": {str(i): i for i in range(51)}}, "metadata", "50 keys"),
    ({"llm": {"provider": "mistral"}}, "llm.provider", "managed, anthropic, openai"),
    ({"llm": {"provider": "openai", "model": ""}}, "llm.model", "1..512"),
    ({"llm": {"provider": "openai", "api_key": "sk-secret-1234567890"}}, "llm.api_key", "header"),
    ({"budget_cents": 100}, "budget_cents", "RunRequest accepts only"),
    ({"idempotency_key": "has space"}, "idempotency_key", "[A-Za-z0-9_-:]"),
    ({"idempotency_key": "k" * 129}, "idempotency_key", "1..128"),
]


@pytest.mark.parametrize(
    ("override", "field", "limit"), BAD_CREATES, ids=[b[1] for b in BAD_CREATES]
)
def test_bad_create_parameter_is_rejected_before_any_request(
    counted: CoastyClient,
    sent: list[httpx.Request],
    sb: Any,
    override: dict[str, Any],
    field: str,
    limit: str,
) -> None:
    client = counted
    before = sb.counters()
    kwargs: dict[str, Any] = {"machine_id": sb.machine_id, "task": "Open the calculator"}
    kwargs.update(override)
    with pytest.raises(InvalidRequestError) as info:
        client.runs.create(**kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert f"`{field}`" in str(info.value) and limit in str(info.value)
    assert "sk-secret" not in str(info.value)
    assert sb.counters() == before and sent == []


def test_other_bad_parameters_are_rejected_before_any_request(
    counted: CoastyClient, sent: list[httpx.Request], sb: Any
) -> None:
    client = counted
    run = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
    client.runs.wait(run.id)
    sent.clear()
    before = sb.counters()
    bad_calls = [
        (lambda: client.runs.resume(run.id, note="n" * 2001), "note"),
        (lambda: client.runs.list(limit=0), "limit"),
        (lambda: client.runs.list(limit=201), "limit"),
        (lambda: client.runs.list(status="paused"), "status"),
        (lambda: client.runs.get(""), "run_id"),
        (lambda: client.runs.events(run.id, after=-1), "after"),
        (lambda: client.idempotency.get("bad key!"), "idempotency_key"),
        (lambda: CoastyClient(api_key=sb.api_key, llm_api_key="x" * 20), "llm_provider"),
        (lambda: CoastyClient(api_key=sb.api_key, llm_provider="cohere"), "llm_provider"),
    ]
    for call, field in bad_calls:
        with pytest.raises(InvalidRequestError) as info:
            call()
        assert info.value.field == field, field
    assert sb.counters() == before and sent == []


async def test_async_lifecycle(aclient: AsyncCoastyClient, sb: Any) -> None:
    result = await aclient.runs.create_with_response(
        machine_id=sb.machine_id, task="Pay the invoice"
    )
    seen: list[str] = []
    async with aclient.runs.events(result.run.id) as stream:
        async for event in stream:
            seen.append(event.type)
            if event.type == "awaiting_human":
                resumed = await aclient.runs.resume(result.run.id, note="paid")
                assert resumed.status is RunStatus.RUNNING or resumed.is_terminal
    assert seen[-1] == "done" and "resumed" in seen
    final = await aclient.runs.wait(result.run.id, timeout=10)
    assert final.status is RunStatus.SUCCEEDED
    assert (await aclient.runs.get(result.run.id)).id == result.run.id
    assert [r.id for r in (await aclient.runs.list()).data] == [result.run.id]
    assert (await aclient.idempotency.get(result.idempotency_key)).is_completed
    assert (await aclient.health())["status"] == "ok"
    assert (await aclient.machines.list()).data


async def test_async_wait_times_out_and_cancel(aclient: AsyncCoastyClient, sb: Any) -> None:
    run = await aclient.runs.create(machine_id=sb.machine_id, task="Enter the OTP code")
    with pytest.raises(APITimeoutError):
        await aclient.runs.wait(run.id, timeout=0.3)
    assert (await aclient.runs.cancel(run.id)).status is RunStatus.CANCELLED


async def test_sync_client_works_inside_a_running_event_loop(sb: Any) -> None:
    asyncio.get_running_loop()
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        run = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
        assert client.runs.wait(run.id).status is RunStatus.SUCCEEDED


async def test_concurrent_create_with_one_key_waits_out_in_flight_and_makes_one_run(
    aclient: AsyncCoastyClient, sb: Any
) -> None:
    sb.inject(create_delay_seconds=0.3)
    key = "thread-9:call-1"
    first, second = await asyncio.gather(
        aclient.runs.create_with_response(
            machine_id=sb.machine_id, task="Open the calculator", idempotency_key=key
        ),
        aclient.runs.create_with_response(
            machine_id=sb.machine_id, task="Open the calculator", idempotency_key=key
        ),
    )
    assert first.run.id == second.run.id
    assert sorted([first.replayed, second.replayed]) == [False, True]
    counters = sb.counters()
    assert counters["runs_created"] == 1 and counters["create_calls"] >= 3


def test_byok_headers_are_sent_and_the_key_never_comes_back(sb: Any) -> None:
    llm_key = "sk-ant-byok-0123456789abcdef"
    with CoastyClient(
        api_key=sb.api_key,
        base_url=sb.base_url,
        llm_provider="anthropic",
        llm_api_key=llm_key,
        llm_model="claude-sonnet-4-6",
    ) as client:
        run = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
        assert run.llm is not None
        assert run.llm["provider"] == "anthropic" and run.llm["key_source"] == "header"
        assert run.llm["model"] == "claude-sonnet-4-6" and run.llm["key_fingerprint"]
        for text in (run.model_dump_json(), repr(run), repr(client), str(vars(client))):
            assert llm_key not in text and sb.api_key not in text
        body_llm = client.runs.create(
            machine_id=sb.machine_id, task="Open the notes", llm={"provider": "openai"}
        )
        assert body_llm.llm is not None and body_llm.llm["provider"] in ("openai", "anthropic")


def test_events_resumed_past_the_end_of_a_finished_run_end_at_once(
    client: CoastyClient, sb: Any
) -> None:
    run = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
    done = list(client.runs.events(run.id))[-1]
    assert done.type == "done"
    connections = sb.counters()["stream_connections"]
    stream = client.runs.events(run.id, after=done.seq)
    assert list(stream) == []
    assert stream.reconnects == 0
    assert sb.counters()["stream_connections"] == connections + 1
    assert [e.type for e in client.runs.events(run.id, after=done.seq - 1)] == ["done"]


async def test_async_events_resumed_past_the_end_end_at_once(
    aclient: AsyncCoastyClient, sb: Any
) -> None:
    run = await aclient.runs.create(machine_id=sb.machine_id, task="Open the calculator")
    seqs = [event.seq async for event in aclient.runs.events(run.id)]
    stream = aclient.runs.events(run.id, after=seqs[-1])
    assert [event async for event in stream] == []
    assert stream.reconnects == 0
