"""Real LangGraph agents (create_agent and StateGraph + ToolNode) driving Coasty on the sandbox."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.types import Command
from typing_extensions import TypedDict

from langchain_coasty import CoastyComputerTool, CoastyToolkit
from langchain_coasty._engine.progress import DELIVERED_RUNS

from .conftest import (
    Recorder,
    ScriptedChatModel,
    assert_exactly_once,
    call,
    last_tool_messages,
    tool_calls,
)

pytestmark = pytest.mark.usefixtures("framing")

LOGIN_TASK = "Log in to the bank portal and download the March statement"
PLAIN_TASK = "Open the notes app and write a shopping list"
TWO_PAUSES = [
    {
        "name": "two-pauses",
        "match": "wire transfer",
        "steps": 3,
        "pauses": [
            {"after_step": 1, "reason": "login", "question": "Which account should I use?"},
            {"after_step": 2, "reason": "approval", "question": "Approve the transfer?"},
        ],
        "result": {"transfer": "sent"},
    }
]


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def tool_node_graph(model: ScriptedChatModel, tools: list[Any], checkpointer: Any) -> Any:
    """A hand-built agent: model node, ToolNode, loop until no tool calls."""

    def agent(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: State) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)


def computer(sb: Any, **kwargs: Any) -> CoastyComputerTool:
    params: dict[str, Any] = {"api_key": sb.api_key, "base_url": sb.base_url}
    params.setdefault("machine_id", sb.machine_id)
    params.update(kwargs)
    return CoastyComputerTool(**params)


def config(thread: str, recorder: Recorder) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "callbacks": [recorder]}


def single_call_model(task: str) -> ScriptedChatModel:
    return ScriptedChatModel(
        script=[tool_calls(call("coasty_computer", "call_1", task=task)), AIMessage("done")]
    )


async def test_create_agent_happy_path(sb: Any, recorder: Recorder) -> None:
    agent = create_agent(
        single_call_model(PLAIN_TASK), [computer(sb)], checkpointer=InMemorySaver()
    )
    out = await agent.ainvoke({"messages": [HumanMessage("go")]}, config("t1", recorder))
    message = out["messages"][-2]
    assert isinstance(message, ToolMessage)
    assert message.status == "success"
    assert "succeeded" in message.content
    assert message.artifact.status == "succeeded"
    assert message.artifact.event_log[-1]["type"] == "done"
    counters = sb.counters()
    assert counters["runs_created"] == 1
    assert_exactly_once(recorder.by_run())
    assert recorder.hooks["done"] == 1
    assert recorder.hooks["step"] == message.artifact.steps_completed
    assert recorder.hooks["billing"] == message.artifact.steps_completed


ANSWERS: list[tuple[Any, str, str | None]] = [
    ("use the work account", "resume", "use the work account"),
    ({"decisions": [{"type": "respond", "message": "account 42"}]}, "resume", "account 42"),
    ({"decisions": [{"type": "approve"}]}, "resume", None),
    ({"action": "resume", "note": "go on"}, "resume", "go on"),
    ({"decisions": [{"type": "reject", "message": "not now"}]}, "cancel", None),
    ({"action": "cancel"}, "cancel", None),
    (
        {
            "decisions": [
                {
                    "type": "edit",
                    "edited_action": {
                        "name": "coasty_computer",
                        "args": {"answer": "account 7", "task": LOGIN_TASK},
                    },
                }
            ]
        },
        "resume",
        "account 7",
    ),
    ([{"type": "response", "args": "account 9"}], "resume", "account 9"),
    ([{"type": "accept", "args": None}], "resume", None),
    ([{"type": "ignore", "args": None}], "cancel", None),
]


@pytest.mark.parametrize(("answer", "action", "note"), ANSWERS)
async def test_create_agent_pause_becomes_interrupt(
    sb: Any, recorder: Recorder, answer: Any, action: str, note: str | None
) -> None:
    agent = create_agent(
        single_call_model(LOGIN_TASK), [computer(sb)], checkpointer=InMemorySaver()
    )
    cfg = config("t-pause", recorder)
    out = await agent.ainvoke({"messages": [HumanMessage("go")]}, cfg)

    (interrupt,) = out["__interrupt__"]
    request = interrupt.value
    assert request["action_requests"][0]["name"] == "coasty_computer"
    assert request["action_requests"][0]["args"] == {"answer": "", "task": LOGIN_TASK}
    assert "sign in" in request["action_requests"][0]["description"].lower()
    assert request["review_configs"][0]["allowed_decisions"] == [
        "approve",
        "edit",
        "reject",
        "respond",
    ]
    coasty = request["coasty"]
    assert coasty["machine_id"] == sb.machine_id
    assert coasty["question"] and coasty["reason"]
    assert coasty["cost_usd"] == coasty["credits_charged"] / 100
    # An interrupt is not a cancellation: the run waits on the server.
    assert sb.counters()["runs_by_status"]["awaiting_human"] == 1

    out = await agent.ainvoke(Command(resume={interrupt.id: answer}), cfg)
    (message,) = last_tool_messages(out["messages"][:-1])
    counters = sb.counters()
    assert counters["runs_created"] == 1
    assert counters["create_replays"] == 1
    if action == "resume":
        assert message.status == "success", message.content
        assert counters["resumes"] == 1
        resumed = [e for e in recorder.events if e["type"] == "resumed"]
        assert resumed[0]["data"].get("note") == note
    else:
        assert message.status == "error"
        assert "cancelled" in message.content
        assert counters["cancels"] == 1
    assert counters["runs_by_status"]["awaiting_human"] == 0
    assert_exactly_once(recorder.by_run())
    assert recorder.hooks["awaiting_human"] == 1
    assert recorder.hooks["done"] == 1


def test_tool_node_run_that_pauses_twice(sb: Any, recorder: Recorder) -> None:
    sb.load_scenarios(TWO_PAUSES)
    graph = tool_node_graph(
        single_call_model("Send the wire transfer to ACME"), [computer(sb)], InMemorySaver()
    )
    cfg = config("t-two", recorder)
    out = graph.invoke({"messages": [HumanMessage("go")]}, cfg)
    questions = []
    for answer in ("the work account", {"decisions": [{"type": "approve"}]}):
        (interrupt,) = out["__interrupt__"]
        questions.append(interrupt.value["coasty"]["question"])
        out = graph.invoke(Command(resume=answer), cfg)
    assert questions == ["Which account should I use?", "Approve the transfer?"]
    (message,) = last_tool_messages(out["messages"][:-1])
    assert message.status == "success"
    assert message.artifact.result == {"transfer": "sent"}
    counters = sb.counters()
    assert counters["runs_created"] == 1
    assert counters["create_replays"] == 2
    assert counters["resumes"] == 2
    assert_exactly_once(recorder.by_run())
    assert recorder.hooks["awaiting_human"] == 2


async def test_create_agent_run_that_pauses_twice(sb: Any, recorder: Recorder) -> None:
    sb.load_scenarios(TWO_PAUSES)
    agent = create_agent(
        single_call_model("Send the wire transfer to ACME"),
        [computer(sb)],
        checkpointer=InMemorySaver(),
    )
    cfg = config("t-two-async", recorder)
    out = await agent.ainvoke({"messages": [HumanMessage("go")]}, cfg)
    for answer in ("the work account", "yes"):
        (interrupt,) = out["__interrupt__"]
        out = await agent.ainvoke(Command(resume={interrupt.id: answer}), cfg)
    assert "__interrupt__" not in out
    (message,) = last_tool_messages(out["messages"][:-1])
    assert message.status == "success"
    counters = sb.counters()
    assert (counters["runs_created"], counters["resumes"]) == (1, 2)
    assert_exactly_once(recorder.by_run())


async def test_parallel_calls_on_two_machines_answered_by_interrupt_id(
    sb: Any, recorder: Recorder
) -> None:
    m1, m2 = sb.machine_ids[:2]
    model = ScriptedChatModel(
        script=[
            tool_calls(
                call("coasty_computer", "call_a", task=LOGIN_TASK, machine_id=m1),
                call("coasty_computer", "call_b", task="Pay the open invoice", machine_id=m2),
            ),
            AIMessage("both done"),
        ]
    )
    tool = computer(sb, machine_id=None)
    agent = create_agent(model, [tool], checkpointer=InMemorySaver())
    cfg = config("t-parallel", recorder)
    out = await agent.ainvoke({"messages": [HumanMessage("go")]}, cfg)
    interrupts = out["__interrupt__"]
    assert len(interrupts) == 2
    assert sb.counters()["runs_by_status"]["awaiting_human"] == 2
    notes = {i.id: f"answer for {i.value['coasty']['machine_id']}" for i in interrupts}
    run_of = {i.value["coasty"]["run_id"]: i.value["coasty"]["machine_id"] for i in interrupts}

    out = await agent.ainvoke(Command(resume=notes), cfg)
    messages = last_tool_messages(out["messages"][:-1])
    assert [m.status for m in messages] == ["success", "success"]
    assert {m.artifact.machine_id for m in messages} == {m1, m2}
    counters = sb.counters()
    assert counters["runs_created"] == 2
    assert counters["resumes"] == 2
    # Each run got the answer given to its own interrupt.
    for event in recorder.events:
        if event["type"] == "resumed":
            assert event["data"]["note"] == f"answer for {run_of[event['run_id']]}"
    assert_exactly_once(recorder.by_run())
    assert len(recorder.by_run()) == 2


def test_tool_node_sibling_of_a_paused_call_reattaches(sb: Any, recorder: Recorder) -> None:
    """A hand-built ToolNode re-executes the finished sibling: it must not run twice."""
    model = ScriptedChatModel(
        script=[
            tool_calls(
                call("coasty_computer", "call_login", task=LOGIN_TASK),
                call("coasty_computer", "call_plain", task=PLAIN_TASK),
            ),
            AIMessage("done"),
        ]
    )
    graph = tool_node_graph(model, [computer(sb)], InMemorySaver())
    cfg = config("t-sibling", recorder)
    out = graph.invoke({"messages": [HumanMessage("go")]}, cfg)
    assert len(out["__interrupt__"]) == 1
    out = graph.invoke(Command(resume="use the work account"), cfg)
    messages = last_tool_messages(out["messages"][:-1])
    assert [m.status for m in messages] == ["success", "success"]
    counters = sb.counters()
    assert counters["runs_created"] == 2
    assert counters["create_replays"] == 2
    assert_exactly_once(recorder.by_run())


def test_reexecution_in_a_fresh_process_replays_silently(sb: Any, recorder: Recorder) -> None:
    """Without this process's progress (another worker resumes), events are not re-delivered."""
    sb.load_scenarios(TWO_PAUSES)
    graph = tool_node_graph(
        single_call_model("Send the wire transfer to ACME"), [computer(sb)], InMemorySaver()
    )
    cfg = config("t-fresh", recorder)
    out = graph.invoke({"messages": [HumanMessage("go")]}, cfg)
    for answer in ("the work account", "yes"):
        DELIVERED_RUNS.clear()
        out = graph.invoke(Command(resume=answer), cfg)
    (message,) = last_tool_messages(out["messages"][:-1])
    assert message.status == "success"
    counters = sb.counters()
    assert (counters["runs_created"], counters["resumes"]) == (1, 2)
    assert_exactly_once(recorder.by_run())


def _resume_from_content(messages: list[BaseMessage], note: str) -> AIMessage:
    calls = []
    for i, message in enumerate(last_tool_messages(messages)):
        match = re.search(r'run_id="([^"]+)"', str(message.content))
        assert match, message.content
        calls.append(call("coasty_resume_run", f"resume_{i}", run_id=match.group(1), note=note))
    return tool_calls(*calls)


@pytest.mark.parametrize("parallel", [False, True])
async def test_return_mode_planner_answers_with_resume_tool(
    sb: Any, recorder: Recorder, parallel: bool
) -> None:
    m1, m2 = sb.machine_ids[:2]
    first = [call("coasty_computer", "call_a", task=LOGIN_TASK, machine_id=m1)]
    if parallel:
        first.append(call("coasty_computer", "call_b", task="Approve the budget", machine_id=m2))
    model = ScriptedChatModel(
        script=[
            tool_calls(*first),
            lambda messages: _resume_from_content(messages, "the code is 123456"),
            AIMessage("finished"),
        ]
    )
    toolkit = CoastyToolkit(api_key=sb.api_key, base_url=sb.base_url, on_awaiting_human="return")
    agent = create_agent(model, toolkit.get_tools(), checkpointer=InMemorySaver())
    out = await agent.ainvoke({"messages": [HumanMessage("go")]}, config("t-ret", recorder))
    assert "__interrupt__" not in out
    n = len(first)
    paused = [m for m in out["messages"] if isinstance(m, ToolMessage)][:n]
    assert all("coasty_resume_run" in m.content for m in paused)
    assert all(m.artifact.status == "awaiting_human" for m in paused)
    resumed = last_tool_messages(out["messages"][:-1])
    assert [m.name for m in resumed] == ["coasty_resume_run"] * n
    assert all("succeeded" in m.content for m in resumed)
    counters = sb.counters()
    assert counters["runs_created"] == n
    assert counters["resumes"] == n
    assert_exactly_once(recorder.by_run())
    assert recorder.hooks["done"] == n


async def test_events_in_astream_events_and_custom_stream(sb: Any) -> None:
    agent = create_agent(
        single_call_model(PLAIN_TASK), [computer(sb)], checkpointer=InMemorySaver()
    )
    custom: list[dict[str, Any]] = []
    chains: list[dict[str, Any]] = []
    async for event in agent.astream_events(
        {"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": "ev"}}, version="v2"
    ):
        if event["event"] == "on_custom_event" and event["name"] == "coasty_event":
            custom.append(event["data"])
        if event["event"] == "on_chain_start" and event["name"] == "coasty_run":
            chains.append(event)
    assert custom and custom[-1]["type"] == "done"
    assert_exactly_once({custom[0]["run_id"]: [e["seq"] for e in custom]})
    assert "coasty" in chains[0]["tags"]
    assert chains[0]["metadata"]["coasty_run_id"] == custom[0]["run_id"]
    assert chains[0]["metadata"]["coasty_machine_id"] == sb.machine_id

    agent = create_agent(
        single_call_model(PLAIN_TASK), [computer(sb)], checkpointer=InMemorySaver()
    )
    chunks = [
        chunk
        async for chunk in agent.astream(
            {"messages": [HumanMessage("go")]},
            {"configurable": {"thread_id": "custom"}},
            stream_mode="custom",
        )
    ]
    parts = [chunk["coasty_event"] for chunk in chunks if "coasty_event" in chunk]
    assert parts[-1]["type"] == "done"
    # the screen at the end follows the run's events, under its own key
    assert chunks[-1]["coasty_screenshot"]["data"]["at"] == "end"
    assert {p["run_id"] for p in parts} == {parts[0]["run_id"]} != {custom[0]["run_id"]}
    assert_exactly_once({parts[0]["run_id"]: [p["seq"] for p in parts]})


def test_sync_custom_stream_and_pause(sb: Any) -> None:
    graph = tool_node_graph(single_call_model(LOGIN_TASK), [computer(sb)], InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "sync-custom"}}
    first = list(graph.stream({"messages": [HumanMessage("go")]}, cfg, stream_mode="custom"))
    assert first[-2]["coasty_event"]["type"] == "awaiting_human"
    shot = first[-1]["coasty_screenshot"]  # the screen at the pause, with its seq
    assert shot["data"]["at"] == "pause" and shot["seq"] == first[-2]["coasty_event"]["seq"]
    second = list(graph.stream(Command(resume="ok"), cfg, stream_mode="custom"))
    assert second.pop()["coasty_screenshot"]["data"]["at"] == "end"
    first.pop()
    seqs = [p["coasty_event"]["seq"] for p in first + second]
    assert seqs == list(range(1, len(seqs) + 1))
    assert second[0]["coasty_event"]["type"] == "resumed"
    assert second[-1]["coasty_event"]["type"] == "done"


async def test_without_checkpointer_a_pause_says_what_to_do(sb: Any) -> None:
    agent = create_agent(single_call_model(LOGIN_TASK), [computer(sb)])
    with pytest.raises(RuntimeError, match="checkpointer"):
        await agent.ainvoke({"messages": [HumanMessage("go")]})
    assert sb.counters()["runs_by_status"]["cancelled"] == 1


SLOW = [{"name": "slow", "match": "slow crawl", "steps": 200, "pace": 0.05}]


async def test_cancelling_the_agent_cancels_the_run(sb: Any) -> None:
    sb.load_scenarios(SLOW)
    started = threading.Event()

    class FirstStep(Recorder):
        def on_coasty_step(self, event: Any) -> None:
            started.set()

    agent = create_agent(
        single_call_model("Do a slow crawl of the archive"),
        [computer(sb)],
        checkpointer=InMemorySaver(),
    )
    task = asyncio.create_task(
        agent.ainvoke(
            {"messages": [HumanMessage("go")]},
            {"configurable": {"thread_id": "cancel"}, "callbacks": [FirstStep()]},
        )
    )
    assert await asyncio.to_thread(started.wait, 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    counters = sb.counters()
    assert counters["runs_created"] == 1
    assert counters["runs_by_status"]["running"] == 0
    assert counters["runs_by_status"]["cancelled"] == 1


def test_keyboard_interrupt_cancels_the_run(sb: Any) -> None:
    sb.load_scenarios(SLOW)

    class CtrlC(Recorder):
        raise_error = True

        def on_coasty_step(self, event: Any) -> None:
            raise KeyboardInterrupt

    graph = tool_node_graph(
        single_call_model("Do a slow crawl of the archive"), [computer(sb)], InMemorySaver()
    )
    with pytest.raises(KeyboardInterrupt):
        graph.invoke(
            {"messages": [HumanMessage("go")]},
            {"configurable": {"thread_id": "ctrl-c"}, "callbacks": [CtrlC()]},
        )
    counters = sb.counters()
    assert counters["runs_by_status"]["running"] == 0
    assert counters["runs_by_status"]["cancelled"] == 1


def test_cost_budget_stops_the_run_and_says_why(sb: Any, recorder: Recorder) -> None:
    sb.load_scenarios([{"match": "metered", "steps": 40, "pace": 0.02}])
    graph = tool_node_graph(
        single_call_model("A metered task"), [computer(sb, max_cost_usd=0.07)], InMemorySaver()
    )
    out = graph.invoke({"messages": [HumanMessage("go")]}, config("budget", recorder))
    (message,) = last_tool_messages(out["messages"][:-1])
    assert "stopped: cost budget $0.07 exceeded" in message.content
    assert message.artifact.status == "cancelled"
    assert message.artifact.stop_reason == "budget_exceeded"
    assert sb.counters()["cancels"] == 1
    assert_exactly_once(recorder.by_run())


def test_an_invalid_answer_is_rejected_and_can_be_given_again(sb: Any, recorder: Recorder) -> None:
    import pydantic

    agent = create_agent(
        single_call_model(LOGIN_TASK), [computer(sb)], checkpointer=InMemorySaver()
    )
    cfg = config("t-bad-answer", recorder)
    agent.invoke({"messages": [HumanMessage("go")]}, cfg)
    with pytest.raises(pydantic.ValidationError, match="decisions"):
        agent.invoke(Command(resume={"decisions": [{"type": "bogus"}]}), cfg)
    assert agent.get_state(cfg).interrupts
    out = agent.invoke(Command(resume="use the work account"), cfg)
    (message,) = last_tool_messages(out["messages"][:-1])
    assert message.status == "success"
    counters = sb.counters()
    assert (counters["runs_created"], counters["resumes"]) == (1, 1)
    assert_exactly_once(recorder.by_run())
