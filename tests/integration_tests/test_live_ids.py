"""No id format is assumed: a sandbox that mints ids like the live API (run_..., mch_test_...)."""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_coasty import CoastyComputerTool, CoastyToolkit
from langchain_coasty.sandbox import CoastySandbox

from .conftest import ScriptedChatModel, call, tool_calls

LOGIN_TASK = "Log in to the bank portal and download the March statement"


async def test_a_pause_and_the_run_tools_work_with_live_style_ids() -> None:
    with CoastySandbox(id_style="live") as sb:
        assert sb.machine_id.startswith("mch_test_")
        tool = CoastyComputerTool(
            api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id
        )
        model = ScriptedChatModel(
            script=[tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK)), AIMessage("ok")]
        )
        agent = create_agent(model, [tool], checkpointer=InMemorySaver())
        cfg: Any = {"configurable": {"thread_id": "live-ids"}}
        out = await agent.ainvoke({"messages": [HumanMessage("go")]}, cfg)
        (pause,) = out["__interrupt__"]
        run_id = pause.value["coasty"]["run_id"]
        assert run_id.startswith("run_") and "-" not in run_id
        out = await agent.ainvoke(Command(resume={pause.id: "the vault account"}), cfg)
        artifact = out["messages"][-2].artifact
        assert artifact.id == run_id and artifact.status == "succeeded"
        get_run = CoastyToolkit(
            api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id
        ).get_tools()[1]
        assert run_id in get_run.invoke({"run_id": run_id})
