"""Pauses nobody answers, and the tool under LangChain 1.x middleware, against the sandbox.

The pause timeout (sent by default, expired through the sandbox's control plane instead of
waited for), the orphaned pause of Agent Chat UI's "type in the chat box instead" sequence,
and ``ToolRetryMiddleware`` / ``ToolCallLimitMiddleware`` / ``HumanInTheLoopMiddleware`` in
``create_agent``, each counted on the sandbox.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import (
    HumanInTheLoopMiddleware,
    ToolCallLimitMiddleware,
    ToolRetryMiddleware,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import ToolException
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_coasty import CoastyComputerTool, CoastyMiddleware
from langchain_coasty.middleware import (
    acancel_orphaned_pauses,
    cancel_orphaned_pauses,
    orphaned_tool_calls,
)

from .conftest import ScriptedChatModel, call, last_tool_messages, tool_calls

LOGIN_TASK = "Log in to the bank portal and download the March statement"
FAILING = [
    {
        "name": "no-pay-button",
        "match": "pay the invoice",
        "steps": 3,
        "fail": {"after_step": 2, "code": "ELEMENT_NOT_FOUND", "message": "No Pay button."},
    }
]
# What Agent Chat UI sends when the person types in the chat box while the card is shown.
STUB = "Successfully handled tool call."


def computer(sb: Any, **kwargs: Any) -> CoastyComputerTool:
    return CoastyComputerTool(
        api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id, **kwargs
    )


def planner(*turns: AIMessage) -> ScriptedChatModel:
    return ScriptedChatModel(script=[*turns, AIMessage("done")])


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def run_of(sb: Any, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{sb.base_url}/v1/runs/{run_id}", headers={"X-API-Key": sb.api_key})
    result: dict[str, Any] = response.json()
    return result


# -- the pause timeout -------------------------------------------------------------------


def test_runs_get_a_pause_timeout_by_default_and_none_waits_forever(sb: Any) -> None:
    for given, sent in (({}, 1800), ({"awaiting_human_timeout_seconds": 60}, 60)):
        agent = create_agent(
            planner(tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK))),
            [computer(sb, **given)],
            checkpointer=InMemorySaver(),
        )
        out = agent.invoke({"messages": [HumanMessage("go")]}, cfg(f"t-{sent}"))
        run_id = out["__interrupt__"][0].value["coasty"]["run_id"]
        assert run_of(sb, run_id)["awaiting_human_timeout_seconds"] == sent

    forever = computer(sb, awaiting_human_timeout_seconds=None, on_awaiting_human="return")
    message = forever.invoke(
        {"type": "tool_call", "id": "c", "name": forever.name, "args": {"task": LOGIN_TASK}}
    )
    assert run_of(sb, message.artifact.id)["awaiting_human_timeout_seconds"] is None
    with pytest.raises(ValueError, match="never expires"):
        sb.expire_pause(message.artifact.id)


@pytest.mark.parametrize("value", [0, 86401, True, 1.5])
def test_pause_timeout_is_validated_before_any_request(sb: Any, value: Any) -> None:
    with pytest.raises(ValueError, match=r"`awaiting_human_timeout_seconds`.*1\.\.86400"):
        computer(sb, awaiting_human_timeout_seconds=value)
    tool = computer(sb)
    tool.awaiting_human_timeout_seconds = value  # assigned after construction
    said = tool.invoke({"task": LOGIN_TASK})  # the tool error, as the planner reads it
    assert re.search(r"`awaiting_human_timeout_seconds`.*1\.\.86400", said), said
    assert sb.counters()["create_calls"] == 0


async def test_a_timed_out_pause_is_reported_when_the_thread_resumes(sb: Any) -> None:
    agent = create_agent(
        planner(tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK))),
        [computer(sb)],
        checkpointer=InMemorySaver(),
    )
    out = await agent.ainvoke({"messages": [HumanMessage("go")]}, cfg("t-expired"))
    (pause,) = out["__interrupt__"]
    sb.expire_pause(pause.value["coasty"]["run_id"])  # as 30 minutes of nobody would

    out = await agent.ainvoke(Command(resume={pause.id: "use the work account"}), cfg("t-expired"))
    (message,) = last_tool_messages(out["messages"][:-1])
    assert message.status == "error"
    assert "timed out waiting for a person" in message.content
    assert "an answer given now cannot reach it" in message.content
    counters = sb.counters()
    assert counters["runs_created"] == 1 and counters["resumes"] == 0
    assert {k: v for k, v in counters["runs_by_status"].items() if v} == {"timed_out": 1}


# -- the orphaned pause ------------------------------------------------------------------


def moved_on(out: dict[str, Any]) -> dict[str, Any]:
    """The new input Agent Chat UI sends: a stub ToolMessage per pending call, a new message."""
    ai = next(m for m in reversed(out["messages"]) if isinstance(m, AIMessage))
    stubs = [ToolMessage(STUB, tool_call_id=c["id"], name=c["name"]) for c in ai.tool_calls]
    return {"messages": [*stubs, HumanMessage([{"type": "text", "text": "never mind, stop"}])]}


@pytest.mark.parametrize("with_middleware", [True, False])
def test_moving_on_from_a_pause_cancels_its_run(sb: Any, with_middleware: bool) -> None:
    tool = computer(sb)
    agent = create_agent(
        planner(tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK))),
        [tool],
        middleware=[CoastyMiddleware(tool)] if with_middleware else [],
        checkpointer=InMemorySaver(),
    )
    out = agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-orphan"))
    assert out["__interrupt__"]
    out = agent.invoke(moved_on(out), cfg("t-orphan"))
    assert out["messages"][-1].content == "done"
    statuses = {k: v for k, v in sb.counters()["runs_by_status"].items() if v}
    if with_middleware:
        assert statuses == {"cancelled": 1}
        assert sb.counters()["cancels"] == 1
    else:  # what the middleware is for: the run waits for nobody
        assert statuses == {"awaiting_human": 1}


async def test_moving_on_cancels_only_the_abandoned_runs(sb: Any) -> None:
    """Two parallel pauses; another thread's pause and a handed-back pause stay."""
    tool = computer(sb)
    agent = create_agent(
        planner(
            tool_calls(
                call("coasty_computer", "a", task=LOGIN_TASK),
                call("coasty_computer", "b", task="Sign in to the CRM and export leads"),
            )
        ),
        [tool],
        middleware=[CoastyMiddleware(tool)],
        checkpointer=InMemorySaver(),
    )
    other = create_agent(
        planner(tool_calls(call("coasty_computer", "a", task=LOGIN_TASK))),
        [tool],
        checkpointer=InMemorySaver(),
    )
    kept = await other.ainvoke({"messages": [HumanMessage("go")]}, cfg("t-other"))
    out = await agent.ainvoke({"messages": [HumanMessage("go")]}, cfg("t-two"))
    assert len(out["__interrupt__"]) == 2
    await agent.ainvoke(moved_on(out), cfg("t-two"))
    counters = sb.counters()
    assert counters["cancels"] == 2
    assert counters["runs_by_status"]["awaiting_human"] == 1
    kept_run = kept["__interrupt__"][0].value["coasty"]["run_id"]
    assert run_of(sb, kept_run)["status"] == "awaiting_human"


def test_a_pause_handed_back_to_the_planner_is_not_orphaned(sb: Any) -> None:
    tool = computer(sb, on_awaiting_human="return")
    agent = create_agent(
        planner(tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK))),
        [tool],
        middleware=[CoastyMiddleware(tool)],
        checkpointer=InMemorySaver(),
    )
    agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-return"))
    agent.invoke({"messages": [HumanMessage("and now?")]}, cfg("t-return"))
    assert sb.counters()["runs_by_status"]["awaiting_human"] == 1
    assert sb.counters()["cancels"] == 0


def test_orphaned_tool_calls_reads_the_last_turn_only() -> None:
    ai = tool_calls(call("coasty_computer", "x", task="t"), call("search", "y", q="q"))
    stub = ToolMessage(STUB, tool_call_id="x", name="coasty_computer")
    other = ToolMessage(STUB, tool_call_id="y", name="search")
    history: list[BaseMessage] = [HumanMessage("go"), ai, stub, other]
    assert orphaned_tool_calls(history) == ["x"]
    assert orphaned_tool_calls([*history, AIMessage("later")]) == []
    ours = ToolMessage("paused", tool_call_id="x", artifact={"id": "r", "status": "awaiting_human"})
    assert orphaned_tool_calls([HumanMessage("go"), ai, ours]) == []


async def test_hand_built_graphs_call_the_function(sb: Any) -> None:
    """``cancel_orphaned_pauses`` (and its async twin) on a thread's messages."""
    tool = computer(sb)
    agent = create_agent(
        planner(tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK))),
        [tool],
        checkpointer=InMemorySaver(),
    )
    out = await agent.ainvoke({"messages": [HumanMessage("go")]}, cfg("t-hand"))
    run_id = out["__interrupt__"][0].value["coasty"]["run_id"]
    history = [*out["messages"], *moved_on(out)["messages"]]
    client = tool.get_client()
    assert cancel_orphaned_pauses(history, client, thread_id="another-thread") == []
    assert await acancel_orphaned_pauses(history, tool.get_async_client(), thread_id="t-hand") == [
        run_id
    ]
    assert cancel_orphaned_pauses(history, client, thread_id="t-hand") == []  # already done
    assert run_of(sb, run_id)["status"] == "cancelled"


# -- LangChain's own middleware ----------------------------------------------------------


def test_tool_retry_middleware_reattaches_instead_of_a_second_run(sb: Any) -> None:
    sb.load_scenarios(FAILING)
    tool = computer(sb, handle_tool_error=False)
    agent = create_agent(
        planner(tool_calls(call("coasty_computer", "c1", task="Pay the invoice for March"))),
        [tool],
        middleware=[
            ToolRetryMiddleware(
                max_retries=2, retry_on=(ToolException,), initial_delay=0.0, jitter=False
            ),
            CoastyMiddleware(tool),
        ],
        checkpointer=InMemorySaver(),
    )
    out = agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-retry"))
    (message,) = last_tool_messages(out["messages"][:-1])
    assert message.status == "error"
    assert "failed after 3 attempts" in message.content
    assert "ELEMENT_NOT_FOUND" in message.content
    assert "rather than start a second one" in message.content
    counters = sb.counters()
    assert counters["create_calls"] == 3
    assert counters["runs_created"] == 1
    assert counters["create_replays"] == 2


def test_tool_retry_middleware_reattaches_to_a_run_still_going(sb: Any) -> None:
    """The first attempt fails and cannot cancel its run: the retry follows that same run."""
    sb.inject(
        errors=[
            {
                "method": "GET",
                "path": "/v1/runs/{id}/events",
                "status": 400,
                "code": "BAD_REQUEST",
                "retryable": False,
                "times": 1,
            },
            {
                "method": "POST",
                "path": "/v1/runs/{id}/cancel",
                "status": 500,
                "code": "INTERNAL_ERROR",
                "retryable": False,
                "times": 1,
            },
        ]
    )
    tool = computer(sb, handle_tool_error=False)
    agent = create_agent(
        planner(tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK))),
        [tool],
        middleware=[
            ToolRetryMiddleware(
                max_retries=2, retry_on=(ToolException,), initial_delay=0.0, jitter=False
            ),
            CoastyMiddleware(tool),
        ],
        checkpointer=InMemorySaver(),
    )
    out = agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-retry-live"))
    (pause,) = out["__interrupt__"]  # the retry reattached and met the run's pause
    out = agent.invoke(Command(resume={pause.id: "the work account"}), cfg("t-retry-live"))
    (message,) = last_tool_messages(out["messages"][:-1])
    assert message.status == "success", message.content
    assert message.artifact.id == pause.value["coasty"]["run_id"]
    counters = sb.counters()
    assert sum(counters["faults_fired"].values()) == 2, counters["faults_fired"]  # both fired
    assert counters["runs_created"] == 1 and counters["create_replays"] >= 1
    assert counters["cancels"] == 0 and counters["resumes"] == 1


def test_tool_call_limit_middleware_stops_a_second_run(sb: Any) -> None:
    agent = create_agent(
        planner(
            tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK)),
            tool_calls(call("coasty_computer", "c2", task="Open the notes app")),
        ),
        [computer(sb)],
        middleware=[
            ToolCallLimitMiddleware(tool_name="coasty_computer", thread_limit=1),
            CoastyMiddleware(),
        ],
        checkpointer=InMemorySaver(),
    )
    out = agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-limit"))
    (pause,) = out["__interrupt__"]
    out = agent.invoke(Command(resume={pause.id: "use the work account"}), cfg("t-limit"))
    tools = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert tools[0].status == "success", tools[0].content
    assert len(tools) == 2, [t.content for t in tools]
    assert tools[1].status == "error" and "limit" in tools[1].content.lower(), tools[1].content
    counters = sb.counters()
    assert counters["runs_created"] == 1 and counters["resumes"] == 1


def test_hitl_middleware_then_our_pause(sb: Any) -> None:
    """LangChain's review before the tool runs, then the Coasty agent's own pause inside it."""
    agent = create_agent(
        planner(tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK))),
        [computer(sb)],
        middleware=[
            HumanInTheLoopMiddleware(interrupt_on={"coasty_computer": True}),
            CoastyMiddleware(),
        ],
        checkpointer=InMemorySaver(),
    )
    out = agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-hitl"))
    (review,) = out["__interrupt__"]
    assert "coasty" not in review.value  # LangChain's own review: nothing started yet
    assert sb.counters()["runs_created"] == 0

    out = agent.invoke(Command(resume={"decisions": [{"type": "approve"}]}), cfg("t-hitl"))
    (pause,) = out["__interrupt__"]
    assert pause.value["coasty"]["question"]
    edit = {
        "decisions": [
            {
                "type": "edit",
                "edited_action": {
                    "name": "coasty_computer",
                    "args": {"answer": "the work account", "task": LOGIN_TASK},
                },
            }
        ]
    }
    out = agent.invoke(Command(resume={pause.id: edit}), cfg("t-hitl"))
    (message,) = last_tool_messages(out["messages"][:-1])
    assert message.status == "success", message.content
    counters = sb.counters()
    assert counters["runs_created"] == 1 and counters["resumes"] == 1
    resumed = [e for e in message.artifact.event_log if e["type"] == "resumed"]
    assert len(resumed) == 1


def test_hitl_middleware_reject_starts_no_run(sb: Any) -> None:
    agent = create_agent(
        planner(tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK))),
        [computer(sb)],
        middleware=[
            HumanInTheLoopMiddleware(interrupt_on={"coasty_computer": True}),
            CoastyMiddleware(),
        ],
        checkpointer=InMemorySaver(),
    )
    agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-hitl-no"))
    decision = {"decisions": [{"type": "reject", "message": "not today"}]}
    out = agent.invoke(Command(resume=decision), cfg("t-hitl-no"))
    assert out["messages"][-1].content == "done"
    assert sb.counters()["runs_created"] == 0
