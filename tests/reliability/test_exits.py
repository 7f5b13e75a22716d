"""Every way out of a followed run cancels it, except its end, an interrupt and an invalid answer.

Also a create cut short (Ctrl-C, task cancellation) is found by its idempotency key and
cancelled, and a cancel that fails never swallows the exception that is leaving.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from langchain_coasty import CoastyCallbackHandler, CoastyComputerTool, CoastyRunnable

SLOW = [{"name": "slow", "match": "slow crawl", "steps": 60, "pace": 0.05}]
SLOW_TASK = "Do a slow crawl of the archive"
PAUSING = "Log in with the password"


def _runnable(sb: Any, **kwargs: Any) -> CoastyRunnable:
    return CoastyRunnable(
        api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id, **kwargs
    )


def _settled(sb: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The counters once no run is queued or running (the server finishes a cancel itself)."""
    deadline = time.monotonic() + timeout
    while True:
        counters = sb.counters()
        by_status = counters["runs_by_status"]
        if by_status.get("running", 0) + by_status.get("queued", 0) == 0:
            return counters
        if time.monotonic() > deadline:
            return counters
        time.sleep(0.02)


class Boom(RuntimeError):
    pass


class RaisesOnStep(CoastyCallbackHandler):
    """A user's handler with a bug, surfaced because raise_error is on."""

    raise_error = True

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def on_coasty_step(self, event: Any) -> None:
        raise self.error


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_failing_callback_cancels_the_run(sb: Any, use_async: bool) -> None:
    sb.load_scenarios(SLOW)
    coasty = _runnable(sb)
    config: Any = {"callbacks": [RaisesOnStep(Boom("handler bug"))]}
    with pytest.raises(Boom):
        if use_async:
            await coasty.ainvoke(SLOW_TASK, config)
        else:
            await asyncio.to_thread(coasty.invoke, SLOW_TASK, config)
    counters = _settled(sb)
    assert counters["runs_by_status"].get("running", 0) == 0
    assert counters["runs_by_status"]["cancelled"] == 1
    assert counters["cancels"] == 1


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_failing_policy_cancels_the_run(sb: Any, use_async: bool) -> None:
    def approver(pause: Any) -> str:
        raise Boom("policy bug")

    coasty = _runnable(sb, on_awaiting_human=approver)
    with pytest.raises(Boom):
        if use_async:
            await coasty.ainvoke(PAUSING)
        else:
            await asyncio.to_thread(coasty.invoke, PAUSING)
    counters = _settled(sb)
    assert counters["runs_by_status"].get("awaiting_human", 0) == 0
    assert counters["runs_by_status"]["cancelled"] == 1


def test_a_tool_whose_callback_fails_leaves_nothing_running(sb: Any) -> None:
    sb.load_scenarios(SLOW)
    tool = CoastyComputerTool(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)
    with pytest.raises(Boom):
        tool.invoke({"task": SLOW_TASK}, {"callbacks": [RaisesOnStep(Boom("bug"))]})
    assert _settled(sb)["runs_by_status"]["cancelled"] == 1


async def test_cancelling_during_the_create_cancels_the_run_it_made(sb: Any) -> None:
    sb.load_scenarios(SLOW)
    sb.inject(create_delay_seconds=0.5)
    task = asyncio.create_task(_runnable(sb).ainvoke(SLOW_TASK))
    while sb.counters()["create_calls"] == 0:  # noqa: ASYNC110 (polls another process's state)
        await asyncio.sleep(0.01)  # the create is on the server and not yet answered
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    counters = await asyncio.to_thread(_settled, sb)
    assert counters["runs_created"] == 1
    assert counters["runs_by_status"]["cancelled"] == 1


def test_ctrl_c_during_the_create_cancels_the_run_it_made(sb: Any) -> None:
    sb.load_scenarios(SLOW)
    sb.inject(create_delay_seconds=0.5)
    coasty = _runnable(sb)
    main = threading.main_thread()
    assert threading.current_thread() is main

    import signal

    def press_ctrl_c() -> None:
        # Once the sandbox holds the create (its body read): the run is being made.
        while not sb.counters()["faults_fired"].get("create_delay"):
            time.sleep(0.01)
        signal.raise_signal(signal.SIGINT)  # delivered to the main thread, as a terminal would

    # Python's own Ctrl-C handler, even when the suite runs where SIGINT is ignored (a shell's
    # background job): the point is what the package does with the KeyboardInterrupt.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            coasty.invoke(SLOW_TASK)
    finally:
        presser.join()
        signal.signal(signal.SIGINT, previous)
    counters = _settled(sb)
    assert counters["runs_created"] == 1
    assert counters["runs_by_status"]["cancelled"] == 1


def test_a_failed_cancel_does_not_swallow_ctrl_c(sb: Any, caplog: pytest.LogCaptureFixture) -> None:
    sb.load_scenarios(SLOW)
    cancel_fails = {"method": "POST", "path": "/v1/runs/{id}/cancel", "status": 503}
    sb.inject(errors=[{**cancel_fails, "code": "SERVICE_UNAVAILABLE", "times": 1}])
    tool = CoastyComputerTool(
        api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id, max_retries=0
    )
    caplog.set_level(logging.WARNING, logger="langchain_coasty")
    with pytest.raises(KeyboardInterrupt) as info:
        tool.invoke({"task": SLOW_TASK}, {"callbacks": [RaisesOnStep(KeyboardInterrupt())]})
    (run_id,) = [r.id for r in tool.get_client().runs.list().data]
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert f"Cancelling Coasty run {run_id} failed" in notes
    assert f"client.runs.cancel({run_id!r})" in notes
    assert any(run_id in record.getMessage() for record in caplog.records)
    assert sb.counters()["runs_by_status"]["running"] == 1  # named, so it can be cancelled
    tool.get_client().runs.cancel(run_id)


def test_an_interrupt_and_an_invalid_answer_leave_the_run_waiting(sb: Any) -> None:
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    from tests.fakes import ScriptedChatModel, call

    tool = CoastyComputerTool(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)
    script = [
        AIMessage("", tool_calls=[call("coasty_computer", "c1", task=PAUSING)]),
        AIMessage("ok"),
    ]
    agent = create_agent(ScriptedChatModel(script=script), [tool], checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "waits"}}
    agent.invoke({"messages": [HumanMessage("go")]}, cfg)
    assert sb.counters()["runs_by_status"]["awaiting_human"] == 1
    with pytest.raises(ValueError):
        agent.invoke(Command(resume={"decisions": [{"type": "bogus"}]}), cfg)
    assert sb.counters()["runs_by_status"]["awaiting_human"] == 1
    assert sb.counters()["cancels"] == 0
