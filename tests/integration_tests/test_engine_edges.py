"""Engine behaviour at its edges, on the sandbox: names, shared clients, closed loops, locks."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from langchain_coasty import CoastyComputerTool, CoastyToolkit, aresume_from_webhook
from langchain_coasty.durable import thread_lock

from .conftest import ScriptedChatModel, call, tool_calls

pytestmark = pytest.mark.usefixtures("framing")

LOGIN_TASK = "Log in to the bank portal and download the March statement"


async def test_a_renamed_tool_pauses_under_its_own_name(sb: Any) -> None:
    tool = CoastyComputerTool(
        name="desktop", api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id
    )
    model = ScriptedChatModel(
        script=[tool_calls(call("desktop", "c1", task=LOGIN_TASK)), AIMessage("ok")]
    )
    agent = create_agent(model, [tool], checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "renamed"}}
    out = await agent.ainvoke({"messages": [HumanMessage("go")]}, cfg)
    (pause,) = out["__interrupt__"]
    assert pause.value["action_requests"][0]["name"] == "desktop"
    assert pause.value["review_configs"][0]["action_name"] == "desktop"
    out = await agent.ainvoke(Command(resume={pause.id: "use the vault account"}), cfg)
    assert "succeeded" in out["messages"][-2].content


async def test_a_toolkit_shares_one_async_client_across_its_tools(sb: Any) -> None:
    toolkit = CoastyToolkit(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)
    tools = toolkit.get_tools()
    clients = {id(tool.get_async_client()) for tool in tools}  # type: ignore[attr-defined]
    assert len(clients) == 1
    assert toolkit.get_async_client() is tools[0].get_async_client()  # type: ignore[attr-defined]
    run = await tools[0].ainvoke({"task": "Open the notes app"})
    assert "succeeded" in run


def test_an_async_client_is_closed_when_its_loop_shuts_down(sb: Any) -> None:
    tool = CoastyComputerTool(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)

    async def use() -> Any:
        await tool.ainvoke({"task": "Open the notes app"})
        client = tool.get_async_client()
        assert not client.is_closed
        return client

    first = asyncio.run(use())
    assert first.is_closed
    second = asyncio.run(use())  # a new loop gets a new client, which works
    assert second is not first and second.is_closed


class _Waiting(TypedDict):
    woken: Annotated[list[Any], operator.add]


def _waiting_graph() -> Any:
    def wait(state: _Waiting) -> dict[str, Any]:
        return {"woken": [interrupt({"type": "coasty_wait", "run_id": "run-lock"})]}

    graph = StateGraph(_Waiting)
    graph.add_node("wait", wait)
    graph.add_edge(START, "wait")
    return graph.compile(checkpointer=InMemorySaver())


async def test_a_cancelled_wait_for_the_thread_lock_leaves_the_thread_usable() -> None:
    graph = _waiting_graph()
    cfg: Any = {"configurable": {"thread_id": "t-lock"}}
    await graph.ainvoke({"woken": []}, cfg)
    event = {
        "id": "evt_1",
        "type": "run.succeeded",
        "created": 0,
        "data": {"id": "run-lock", "status": "succeeded", "metadata": {}},
    }
    lock = thread_lock("t-lock")
    lock.acquire()  # another resume of the thread is under way
    try:
        waiting = asyncio.create_task(aresume_from_webhook(graph, event, config=cfg))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        lock.release()
    outcome = await asyncio.wait_for(aresume_from_webhook(graph, event, config=cfg), 10)
    assert outcome.status == "resumed"
    assert not lock.locked()
    assert (await graph.aget_state(cfg)).values["woken"][0]["id"] == "evt_1"
