"""The step-by-step tools against the sandbox: plain calls, tool calls, and real agents."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_coasty import (
    CoastyActTool,
    CoastyGroundTool,
    CoastyMiddleware,
    CoastyNextActionTool,
    CoastyToolkit,
    MachinePerThread,
)
from langchain_coasty.client import ActionResult, BatchActionResult, CoastyClient, GroundResult
from langchain_coasty.sandbox.screens import ELEMENTS
from langchain_coasty.step_tools import SESSION_STATE_KEY, release_thread_session

from .conftest import ScriptedChatModel, call, tool_calls

MACHINE = "m-sandbox-1"


def center(name: str) -> tuple[int, int]:
    return next(e for e in ELEMENTS if e.name == name).center


def kit(sb: Any, **kwargs: Any) -> CoastyToolkit:
    return CoastyToolkit(
        api_key=sb.api_key, base_url=sb.base_url, machine_id=MACHINE, step_tools=True, **kwargs
    )


def step_tools(sb: Any, **kwargs: Any) -> list[Any]:
    return kit(sb, **kwargs).get_tools()[5:]


def screen_of(sb: Any, machine: str = MACHINE) -> str:
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        shot = client.machines.actions(machine, "screenshot").screenshot
    assert shot is not None
    return shot


def test_the_toolkit_has_the_step_tools_on_request(sb: Any) -> None:
    names = [t.name for t in kit(sb).get_tools()]
    assert names[5:] == ["coasty_ground", "coasty_act", "coasty_next_action"]
    assert len(CoastyToolkit(api_key=sb.api_key, base_url=sb.base_url).get_tools()) == 5


def test_ground_finds_the_element_on_the_machines_screen(sb: Any) -> None:
    ground, _, _ = step_tools(sb)
    assert isinstance(ground, CoastyGroundTool)
    text = ground.invoke({"element": "the Sign in button"})
    x, y = center("sign in button")
    assert f"x={x}, y={y}" in text and "1280x800" in text
    message = ground.invoke(
        {"type": "tool_call", "id": "g1", "name": "coasty_ground", "args": {"element": "docs"}}
    )
    assert isinstance(message.artifact, GroundResult)
    assert (message.artifact.x, message.artifact.y) == center("docs link")


def test_act_runs_a_batch_and_shows_the_new_screen(sb: Any) -> None:
    _, act, _ = step_tools(sb)
    before = screen_of(sb)
    x, y = center("search box")
    message = act.invoke(
        {
            "type": "tool_call",
            "id": "a1",
            "name": "coasty_act",
            "args": {
                "actions": [
                    {"action": "click", "params": {"x": x, "y": y}},
                    {"action_type": "type_text", "params": {"text": "pricing"}},
                    {"action": "key_press", "params": {"key": "enter"}},
                    {"action": "wait", "params": {"seconds": 0}},
                ],
                "return_screen": True,
            },
        }
    )
    assert isinstance(message.artifact, BatchActionResult)
    assert message.artifact.completed_count == 3
    text, image = message.content
    assert "click done" in text["text"] and "key_press done" in text["text"]
    assert image["type"] == "image" and image["mime_type"] == "image/jpeg"
    assert base64.b64decode(image["base64"]).startswith(b"\xff\xd8")  # a JPEG, as captured
    assert screen_of(sb) != before


def test_act_reports_failures_and_bad_actions(sb: Any) -> None:
    _, act, _ = step_tools(sb)
    outside = act.invoke({"actions": [{"action": "click", "params": {"x": 9000, "y": 1}}]})
    assert "FAILED" in outside and "outside" in outside
    for bad in ({"action": "click", "params": {}}, {"action": "teleport"}, {"action": "done"}):
        message = act.invoke(
            {"type": "tool_call", "id": "b", "name": "coasty_act", "args": {"actions": [bad]}}
        )
        assert message.status == "error" and "Invalid action" in message.text
    batch = act.invoke(
        {
            "actions": [
                {"action": "drag", "params": {"x1": 1, "y1": 2, "x2": 3, "y2": 4}},
                {"action": "scroll", "params": {"clicks": 2}},
            ]
        }
    )
    assert "drag done" in batch and "'direction': 'up'" in batch


def test_typing_without_a_graph_asks_for_one(sb: Any) -> None:
    _, act, _ = step_tools(sb, approve_text=True)
    message = act.invoke(
        {
            "type": "tool_call",
            "id": "t",
            "name": "coasty_act",
            "args": {"actions": [{"action": "type", "params": {"text": "secret"}}]},
        }
    )
    assert message.status == "error" and "approval" in message.text
    assert sb.counters()["actions_executed"] == 0


def test_next_action_outside_a_graph_keeps_its_session_on_the_tool(sb: Any) -> None:
    _, _, next_action = step_tools(sb)
    assert isinstance(next_action, CoastyNextActionTool)
    first = next_action.invoke({"instruction": "click the pricing link"})
    assert first.startswith("Step 1: Coasty proposes click")
    second = next_action.invoke({"instruction": "click the pricing link"})
    assert second.startswith("Coasty says the task is done (step 2)")
    assert sb.counters()["sessions_created"] == 1


def field(artifact: Any, name: str) -> Any:
    """A field of an artifact, as the object or as read back from a checkpoint (a dict)."""
    return artifact.get(name) if isinstance(artifact, dict) else getattr(artifact, name, None)


def planner(task: str) -> ScriptedChatModel:
    """Asks for the next actions, does them, until Coasty says done."""

    def step(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        n = len(messages)
        if not isinstance(last, ToolMessage) or last.name == "coasty_act":
            return tool_calls(call("coasty_next_action", f"n{n}", instruction=task))
        prediction = last.artifact
        if field(prediction, "status") != "continue":
            return AIMessage(content=f"Finished: {last.text}")
        actions = [
            {"action": field(a, "action_type"), "params": field(a, "params")}
            for a in field(prediction, "actions")
        ]
        return tool_calls(call("coasty_act", f"a{n}", actions=actions))

    return ScriptedChatModel(script=[step])


def agent_for(sb: Any, saver: InMemorySaver, task: str) -> Any:
    toolkit = kit(sb, approve_text=True)
    return create_agent(
        planner(task),
        toolkit.get_tools()[5:],
        middleware=[CoastyMiddleware(toolkit)],
        checkpointer=saver,
    )


def cfg(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def sessions(sb: Any) -> list[Any]:
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        return client.sessions.list().sessions


def test_a_planner_drives_the_machine_through_an_approval_and_a_new_process(sb: Any) -> None:
    saver = InMemorySaver()
    task = "Type 'ada@example.com' into the email field and press Sign in"
    out = agent_for(sb, saver, task).invoke({"messages": [HumanMessage(task)]}, cfg("t-step"))
    (pause,) = out["__interrupt__"]
    assert pause.value["action_requests"][0]["args"] == {"text": "ada@example.com"}
    assert pause.value["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]
    session_id = out[SESSION_STATE_KEY]
    assert session_id.startswith("ses_") and [s.session_id for s in sessions(sb)] == [session_id]
    typed_before = sb.counters()["actions_executed"]
    # Another process: new tools, middleware and agent, the same checkpoint.
    edit = {"type": "edit", "edited_action": {"name": "coasty_act", "args": {"text": "g@x.io"}}}
    again = agent_for(sb, saver, task)
    out = again.invoke(Command(resume={pause.id: {"decisions": [edit]}}), cfg("t-step"))
    assert "__interrupt__" not in out
    steps = [field(m.artifact, "step") for m in out["messages"] if m.name == "coasty_next_action"]
    assert steps == [1, 2, 3, 4]  # one session all along
    typed = [m.artifact for m in out["messages"] if m.name == "coasty_act"]
    assert [field(a, "command") for a in typed] == ["click", "type", "click"]
    assert isinstance(typed[-1], ActionResult)
    assert field(typed[1], "result") == {"typed": len("g@x.io")}
    # The type and the last click (screens come from the screenshot endpoint): the
    # re-executed tool call did not act twice.
    assert sb.counters()["actions_executed"] == typed_before + 2
    assert "Finished: Coasty says the task is done" in out["messages"][-1].text
    # The agent run ended: the session is deleted and forgotten.
    assert sessions(sb) == [] and out[SESSION_STATE_KEY] is None


def test_a_rejected_text_is_not_typed(sb: Any) -> None:
    saver = InMemorySaver()
    task = "Search for 'pricing'"
    agent = agent_for(sb, saver, task)
    out = agent.invoke({"messages": [HumanMessage(task)]}, cfg("t-reject"))
    (pause,) = out["__interrupt__"]
    executed = sb.counters()["actions_executed"]
    reject = {"decisions": [{"type": "reject", "message": "not now"}]}
    out = agent.invoke(Command(resume={pause.id: reject}), cfg("t-reject"))
    acts = [m.text for m in out["messages"] if m.name == "coasty_act"]
    assert acts[1] == "Nothing was done on m-sandbox-1: typing was rejected (not now)."
    # After the rejection: the next step's click, nothing typed.
    assert sb.counters()["actions_executed"] == executed + 1
    acted = [m.artifact for m in out["messages"] if m.name == "coasty_act" and m.artifact]
    assert all(field(a, "command") != "type" for a in acted)


async def test_the_async_agent_path(sb: Any) -> None:
    saver = InMemorySaver()
    task = "Search for 'docs'"
    agent = agent_for(sb, saver, task)
    out = await agent.ainvoke({"messages": [HumanMessage(task)]}, cfg("t-async"))
    (pause,) = out["__interrupt__"]
    out = await agent.ainvoke(
        Command(resume={pause.id: {"decisions": [{"type": "approve"}]}}), cfg("t-async")
    )
    assert "task is done" in out["messages"][-1].text
    assert sessions(sb) == []
    ground = CoastyGroundTool(api_key=sb.api_key, base_url=sb.base_url, machine_id=MACHINE)
    assert "x=" in await ground.ainvoke({"element": "search button"})
    act = CoastyActTool(api_key=sb.api_key, base_url=sb.base_url, machine_id=MACHINE)
    assert "screenshot done" in await act.ainvoke({"actions": [{"action": "screenshot"}]})


@pytest.mark.parametrize("name", ["coasty_ground", "coasty_act", "coasty_next_action"])
def test_tools_need_a_machine(sb: Any, name: str) -> None:
    toolkit = CoastyToolkit(api_key=sb.api_key, base_url=sb.base_url, step_tools=True)
    tool = next(t for t in toolkit.get_tools() if t.name == name)
    args = {"element": "x", "instruction": "x", "actions": [{"action": "screenshot"}]}
    schema_fields = tool.args_schema.model_fields
    given = {k: v for k, v in args.items() if k in schema_fields}
    message = tool.invoke({"type": "tool_call", "id": "m", "name": name, "args": given})
    assert message.status == "error" and "No machine" in message.text


def test_the_step_tools_use_the_threads_machine(sb: Any) -> None:
    toolkit = CoastyToolkit(
        api_key=sb.api_key, base_url=sb.base_url, machine=MachinePerThread(), step_tools=True
    )
    script = [
        tool_calls(call("coasty_ground", "g1", element="the search box")),
        tool_calls(call("coasty_act", "a1", actions=[{"action": "screenshot"}])),
        AIMessage(content="Looked."),
    ]
    agent = create_agent(
        ScriptedChatModel(script=script),
        toolkit.get_tools()[5:],
        middleware=[CoastyMiddleware(toolkit)],
        checkpointer=InMemorySaver(),
    )
    out = agent.invoke({"messages": [HumanMessage("look")]}, cfg("t-machine"))
    ground, act = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    (machine,) = sb.machines()
    assert machine["id"] in ground.text and machine["id"] in act.text
    assert machine["status"] == "terminated"  # released when the agent run ended


def test_release_forgets_a_session_it_cannot_delete(
    sb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url, max_retries=0) as client:
        session_id = client.sessions.create().session_id
        assert release_thread_session({}, client) is None
        sb.inject(
            errors=[
                {
                    "method": "DELETE",
                    "path": "/v1/sessions/{id}",
                    "status": 503,
                    "code": "SERVICE_UNAVAILABLE",
                    "times": 1,
                }
            ]
        )
        assert release_thread_session({SESSION_STATE_KEY: session_id}, client) == {
            SESSION_STATE_KEY: None
        }
        assert "Could not delete Coasty session" in caplog.text
        assert [s.session_id for s in client.sessions.list().sessions] == [session_id]
        assert release_thread_session({SESSION_STATE_KEY: session_id}, client) is not None
        assert client.sessions.list().sessions == []
        # Already gone: nothing to do, no error.
        assert release_thread_session({SESSION_STATE_KEY: session_id}, client) is not None
