"""CoastyRunnable and the toolkit tools on the sandbox, outside any graph."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langchain_core.tools import ToolException

from langchain_coasty import CoastyComputerTool, CoastyRunnable, CoastyToolkit, RunEvent
from langchain_coasty.callbacks import AsyncCoastyCallbackHandler

from .conftest import Recorder, assert_exactly_once

pytestmark = pytest.mark.usefixtures("framing")

LOGIN_TASK = "Sign in to the HR portal and book a day off"
PLAIN_TASK = "Open the calendar and list today's meetings"


def runnable(sb: Any, **kwargs: Any) -> CoastyRunnable:
    params: dict[str, Any] = {
        "api_key": sb.api_key,
        "base_url": sb.base_url,
        "machine_id": sb.machine_id,
    }
    params.update(kwargs)
    return CoastyRunnable(**params)


def test_invoke_returns_the_finished_run(sb: Any, recorder: Recorder) -> None:
    run = runnable(sb, max_steps=10).invoke(
        {"task": PLAIN_TASK, "metadata": {"ticket": "T-1"}}, {"callbacks": [recorder]}
    )
    assert run.status == "succeeded"
    assert run.result is not None
    assert run.metadata is not None
    assert run.metadata["ticket"] == "T-1"
    assert run.metadata["idempotency_key"].startswith("lc-")
    assert run.max_steps == 10
    assert_exactly_once(recorder.by_run())
    assert recorder.types()[-1] == "done"
    assert sb.counters()["runs_created"] == 1


async def test_ainvoke_with_an_async_handler(sb: Any, framing: str) -> None:
    seen: list[int] = []
    stamps: list[tuple[float, float]] = []

    class Collect(AsyncCoastyCallbackHandler):
        async def on_coasty_event(self, event: Any) -> None:
            seen.append(event["seq"])
            stamps.append((event["ts"], time.time()))

    started = time.time()
    run = await runnable(sb).ainvoke(PLAIN_TASK, {"callbacks": [Collect()]})
    assert run.status == "succeeded"
    assert seen == list(range(1, len(seen) + 1))
    assert seen
    # each payload carries when the server emitted the event (the envelope has the stamp)
    if framing == "envelope":
        assert all(started - 1 <= ts <= seen_at for ts, seen_at in stamps)
    else:
        assert {ts for ts, _ in stamps} == {None}


async def test_async_hooks_run_in_the_calls_own_task(sb: Any) -> None:
    # No task per event: every hook runs in the one task that follows the run.
    where: list[asyncio.Task[Any] | None] = []

    class Where(AsyncCoastyCallbackHandler):
        async def on_coasty_event(self, event: Any) -> None:
            where.append(asyncio.current_task())

    await runnable(sb).ainvoke(PLAIN_TASK, {"callbacks": [Where()]})
    assert len(where) > 3
    assert len(set(where)) == 1


def test_stream_yields_run_events(sb: Any) -> None:
    events = list(runnable(sb).stream(PLAIN_TASK))
    assert all(isinstance(e, RunEvent) for e in events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "done"


async def test_astream_yields_run_events(sb: Any) -> None:
    events = [e async for e in runnable(sb).astream(PLAIN_TASK)]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].status == "succeeded"


def test_batch_honours_max_concurrency(sb: Any) -> None:
    tasks = [f"{PLAIN_TASK} number {i}" for i in range(4)]
    runs = runnable(sb).batch(tasks, {"max_concurrency": 2})
    assert [r.task for r in runs] == tasks
    assert {r.status for r in runs} == {"succeeded"}
    assert sb.counters()["runs_created"] == 4


async def test_abatch(sb: Any) -> None:
    runs = await runnable(sb).abatch([PLAIN_TASK, LOGIN_TASK], {"max_concurrency": 2})
    assert [r.status for r in runs] == ["succeeded", "awaiting_human"]


def test_configurable_fields(sb: Any) -> None:
    from langchain_core.runnables import ConfigurableField

    configurable = runnable(sb).configurable_fields(
        max_steps=ConfigurableField(id="coasty_max_steps")
    )
    run = configurable.invoke(PLAIN_TASK, {"configurable": {"coasty_max_steps": 7}})
    assert run.max_steps == 7


def test_outside_a_graph_interrupt_falls_back_to_return(sb: Any) -> None:
    run = runnable(sb).invoke(LOGIN_TASK)
    assert run.status == "awaiting_human"
    assert run.stop_reason == "awaiting_human"
    assert "not inside a LangGraph graph" in run.stop_note


def test_callable_policy_answers_pauses(sb: Any, recorder: Recorder) -> None:
    requests: list[dict[str, Any]] = []

    def approver(request: dict[str, Any]) -> Any:
        requests.append(request)
        return {"decisions": [{"type": "respond", "message": "use the admin account"}]}

    run = runnable(sb, on_awaiting_human=approver).invoke(LOGIN_TASK, {"callbacks": [recorder]})
    assert run.status == "succeeded"
    assert requests[0]["coasty"]["run_id"] == run.id
    resumed = [e for e in recorder.events if e["type"] == "resumed"]
    assert resumed[0]["data"]["note"] == "use the admin account"
    assert_exactly_once(recorder.by_run())


async def test_async_callable_policy(sb: Any) -> None:
    async def reject(request: dict[str, Any]) -> Any:
        await asyncio.sleep(0)
        return {"action": "cancel"}

    run = await runnable(sb, on_awaiting_human=reject).ainvoke(LOGIN_TASK)
    assert run.status == "cancelled"
    assert run.stop_reason == "rejected"


def test_async_callable_policy_on_the_sync_path_is_an_error(sb: Any) -> None:
    async def approve(request: dict[str, Any]) -> Any:
        return "ok"

    with pytest.raises(TypeError, match="ainvoke"):
        runnable(sb, on_awaiting_human=approve).invoke(LOGIN_TASK)


def test_fail_policy_cancels_and_the_tool_reports_it(sb: Any) -> None:
    tool = CoastyComputerTool(
        api_key=sb.api_key,
        base_url=sb.base_url,
        machine_id=sb.machine_id,
        on_awaiting_human="fail",
    )
    message = tool.invoke(
        {"type": "tool_call", "id": "c1", "name": tool.name, "args": {"task": LOGIN_TASK}}
    )
    assert message.status == "error"
    assert "cancelled" in message.content
    assert "on_awaiting_human='fail'" in message.content
    assert sb.counters()["runs_by_status"]["cancelled"] == 1


@pytest.mark.parametrize("use_async", [False, True])
async def test_idle_timeout_cancels_a_silent_run(sb: Any, use_async: bool) -> None:
    sb.load_scenarios([{"match": "long haul", "steps": 100, "pace": 0.05}])
    sb.inject(stream_stall_rate=1.0, stream_stall_seconds=1)
    coasty = runnable(sb, idle_timeout=0.3)
    task = "A long haul task"
    run = await coasty.ainvoke(task) if use_async else coasty.invoke(task)
    assert run.status == "cancelled"
    assert run.stop_reason == "idle_timeout"
    assert sb.counters()["cancels"] == 1


async def test_api_errors_become_tool_errors_with_code_and_suggestion(sb: Any) -> None:
    sb.inject(
        errors=[
            {
                "method": "POST",
                "path": "/v1/runs",
                "status": 402,
                "code": "INSUFFICIENT_CREDITS",
                "times": 1,
            }
        ]
    )
    tool = CoastyComputerTool(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)
    message = await tool.ainvoke(
        {"type": "tool_call", "id": "c1", "name": tool.name, "args": {"task": PLAIN_TASK}}
    )
    assert message.status == "error"
    assert "INSUFFICIENT_CREDITS" in message.content
    assert "HTTP 402" in message.content


def test_failed_run_raises_tool_exception(sb: Any) -> None:
    sb.load_scenarios(
        [
            {
                "match": "broken",
                "steps": 3,
                "fail": {"after_step": 1, "code": "ELEMENT_NOT_FOUND", "message": "No Pay button."},
            }
        ]
    )
    raw = CoastyComputerTool(
        api_key=sb.api_key,
        base_url=sb.base_url,
        machine_id=sb.machine_id,
        handle_tool_error=False,
    )
    with pytest.raises(ToolException, match="ELEMENT_NOT_FOUND"):
        raw.invoke({"task": "A broken checkout"})
    tool = CoastyComputerTool(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)
    message = tool.invoke(
        {"type": "tool_call", "id": "c2", "name": tool.name, "args": {"task": "broken again"}}
    )
    assert message.status == "error"
    assert "failed" in message.content and "No Pay button." in message.content


@pytest.mark.parametrize("use_async", [False, True])
async def test_toolkit_get_resume_cancel(sb: Any, recorder: Recorder, use_async: bool) -> None:
    toolkit = CoastyToolkit(
        api_key=sb.api_key,
        base_url=sb.base_url,
        machine_id=sb.machine_id,
        on_awaiting_human="return",
    )
    computer, get_run, resume_run, cancel_run, _screenshot = toolkit.get_tools()
    cfg: Any = {"callbacks": [recorder]}

    async def call(tool: Any, args: dict[str, Any]) -> Any:
        tool_call = {"type": "tool_call", "id": "x", "name": tool.name, "args": args}
        return await tool.ainvoke(tool_call, cfg) if use_async else tool.invoke(tool_call, cfg)

    paused = await call(computer, {"task": LOGIN_TASK})
    run_id = paused.artifact.id
    assert "coasty_resume_run" in paused.content
    assert "awaiting_human" in (await call(get_run, {"run_id": run_id})).content
    done = await call(resume_run, {"run_id": run_id, "note": "the code is 42"})
    assert "succeeded" in done.content
    again = await call(resume_run, {"run_id": run_id})
    assert again.status == "error" and "not waiting" in again.content
    assert_exactly_once(recorder.by_run())

    second = await call(computer, {"task": f"{LOGIN_TASK} again"})
    cancelled = await call(cancel_run, {"run_id": second.artifact.id})
    assert "Cancelled" in cancelled.content and "cancelled" in cancelled.content
    assert sb.counters()["runs_created"] == 2


def test_leaving_a_stream_early_cancels_the_run(sb: Any) -> None:
    sb.load_scenarios([{"match": "endless", "steps": 100, "pace": 0.05}])
    stream = runnable(sb).stream("An endless chore")
    for event in stream:
        if event.type == "step":
            break
    stream.close()  # type: ignore[attr-defined]
    counters = sb.counters()
    assert counters["runs_by_status"]["running"] == 0
    assert counters["runs_by_status"]["cancelled"] == 1


async def test_leaving_an_async_stream_early_cancels_the_run(sb: Any) -> None:
    sb.load_scenarios([{"match": "endless", "steps": 100, "pace": 0.05}])
    stream = runnable(sb).astream("An endless chore")
    async for event in stream:
        if event.type == "step":
            break
    await stream.aclose()  # type: ignore[attr-defined]
    counters = sb.counters()
    assert counters["runs_by_status"]["running"] == 0
    assert counters["runs_by_status"]["cancelled"] == 1
