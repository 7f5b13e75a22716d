"""The run engine against the sandbox set up the way Coasty's docs and cookbook behave."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_coasty import CoastyComputerTool, CoastyRunnable

from .conftest import ScriptedChatModel, call, tool_calls

pytestmark = pytest.mark.usefixtures("framing")

LOGIN_TASK = "Log in to the bank portal and download the March statement"


@pytest.mark.parametrize("detail", ["reason", "bare"])
async def test_a_pause_without_reason_or_question_takes_the_runs_reason(
    sb: Any, detail: str
) -> None:
    sb.configure(pause_event_detail=detail)
    tool = CoastyComputerTool(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)
    model = ScriptedChatModel(
        script=[tool_calls(call("coasty_computer", "call_1", task=LOGIN_TASK)), AIMessage("ok")]
    )
    agent = create_agent(model, [tool], checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "t-reason"}}
    out = await agent.ainvoke({"messages": [HumanMessage("go")]}, cfg)
    (interrupt,) = out["__interrupt__"]
    reason = interrupt.value["coasty"]["reason"]
    assert reason and "sign in" in reason.lower()
    assert reason in interrupt.value["action_requests"][0]["description"]
    out = await agent.ainvoke(Command(resume={interrupt.id: "done"}), cfg)
    assert out["messages"][-2].status == "success"


def test_a_policy_is_asked_with_the_runs_reason_when_the_event_has_none(sb: Any) -> None:
    sb.configure(pause_event_detail="bare")
    asked: list[dict[str, Any]] = []

    def approve(request: dict[str, Any]) -> str:
        asked.append(request)
        return "go on"

    runnable = CoastyRunnable(
        api_key=sb.api_key,
        base_url=sb.base_url,
        machine_id=sb.machine_id,
        on_awaiting_human=approve,
    )
    assert runnable.invoke(LOGIN_TASK).status == "succeeded"
    assert asked[0]["coasty"]["reason"] and asked[0]["coasty"]["steps_completed"] is not None
