"""Machine policies against the sandbox: provisioned when needed, reused, never left running.

Each test reads the sandbox's machine ledger (every machine ever created and its end
state) to check what the package left behind: nothing billing, one machine per thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import ValidationError

from langchain_coasty import (
    CoastyComputerTool,
    CoastyMachinePool,
    CoastyMiddleware,
    CoastyRunnable,
    MachinePerCall,
    MachinePerThread,
    MachineSpec,
    MachineStateError,
    release_thread_machine,
)
from langchain_coasty.machines.steps import _THREAD_MACHINES

from .conftest import Recorder, ScriptedChatModel, call, last_tool_messages, tool_calls

LOGIN_TASK = "Log in to the bank portal and download the March statement"
FAILING = [
    {
        "name": "no-pay-button",
        "match": "pay the invoice",
        "steps": 3,
        "fail": {"after_step": 2, "code": "ELEMENT_NOT_FOUND", "message": "No Pay button."},
    }
]


def tool(sb: Any, machine: Any, **kwargs: Any) -> CoastyComputerTool:
    return CoastyComputerTool(api_key=sb.api_key, base_url=sb.base_url, machine=machine, **kwargs)


def created(sb: Any) -> list[dict[str, Any]]:
    """The machines the package created (the ledger, without the sandbox's defaults)."""
    return [m for m in sb.machines() if (m.get("metadata") or {}).get("langchain_coasty") == "1"]


def as_call(call_id: str, task: str) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": "coasty_computer", "args": {"task": task}}


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def machine_events(recorder: Recorder) -> list[tuple[str, str]]:
    return [
        (e["data"]["phase"], e["machine_id"] or "")
        for e in recorder.events
        if e["type"] == "machine"
    ]


# -- one machine per call ------------------------------------------------------------------


def test_a_per_call_machine_is_provisioned_used_and_terminated(sb: Any) -> None:
    recorder = Recorder()
    computer = tool(sb, MachinePerCall(MachineSpec(ttl_minutes=30)))
    message = computer.invoke(
        {
            "type": "tool_call",
            "id": "c1",
            "name": "coasty_computer",
            "args": {"task": "Open the docs"},
        },
        {"callbacks": [recorder]},
    )
    [machine] = created(sb)
    assert machine["status"] == "terminated" and machine["end_reason"] == "deleted"
    assert machine["ttl_minutes"] == 30
    run = message.artifact
    assert run.machine_id == machine["id"]  # the run went to the provisioned machine
    assert run.machine.terminated and run.machine.policy == "call" and run.machine.provisioned
    assert f"Machine {machine['id']} was terminated" in message.content
    phases = [phase for phase, _ in machine_events(recorder)]
    assert phases == ["provisioned", "ready", "terminated"]
    assert {m for _, m in machine_events(recorder)} == {machine["id"]}


async def test_the_async_path_provisions_and_terminates_alike(sb: Any) -> None:
    computer = tool(sb, MachinePerCall())
    results = await asyncio.gather(
        *(computer.ainvoke({"task": f"Open page {i}"}) for i in range(3))
    )
    machines = created(sb)
    assert len(machines) == 3 and all(m["status"] == "terminated" for m in machines)
    assert all("was terminated" in text for text in results)


def test_a_failed_run_still_terminates_its_machine(sb: Any) -> None:
    sb.load_scenarios(FAILING)
    computer = tool(sb, MachinePerCall())
    text = computer.invoke({"task": "pay the invoice"})  # the planner reads the failure
    assert "No Pay button" in text
    [machine] = created(sb)
    assert machine["status"] == "terminated"


def test_an_error_while_following_terminates_the_machine(sb: Any) -> None:
    class Exploding(Recorder):
        raise_error = True

        def on_coasty_step(self, event: Any) -> None:
            raise RuntimeError("a bug in the handler")

    computer = tool(sb, MachinePerCall())
    with pytest.raises(RuntimeError, match="a bug in the handler"):
        computer.invoke({"task": "Open the docs"}, {"callbacks": [Exploding()]})
    assert [m["status"] for m in created(sb)] == ["terminated"]
    assert sb.live_machines() == [m for m in sb.live_machines() if m["id"].startswith("m-")]


async def test_a_cancelled_task_terminates_the_machine(sb: Any) -> None:
    sb.configure(pace=0.5)
    loop = asyncio.get_running_loop()
    stepping = asyncio.Event()

    class FirstStep(Recorder):
        def on_coasty_step(self, event: Any) -> None:
            loop.call_soon_threadsafe(stepping.set)

    computer = tool(sb, MachinePerCall())
    task = asyncio.ensure_future(
        computer.ainvoke({"task": "Open the docs then read the page"}, {"callbacks": [FirstStep()]})
    )
    await stepping.wait()  # the run is going on its machine
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [m["status"] for m in created(sb)] == ["terminated"]


def test_a_pause_keeps_the_machine_and_the_resumed_call_reuses_it(sb: Any) -> None:
    agent = create_agent(
        ScriptedChatModel(
            script=[tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK)), AIMessage("done")]
        ),
        [tool(sb, MachinePerCall(MachineSpec(ttl_minutes=20)))],
        checkpointer=InMemorySaver(),
    )
    out = agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-pause"))
    pause = out["__interrupt__"][0]
    [machine] = created(sb)
    assert machine["status"] == "running"  # the person may look at it
    # the lease now covers the 30-minute pause timeout
    assert sb.machines()[-1]["ttl_minutes"] >= 40
    out = agent.invoke(Command(resume={pause.id: "use the work account"}), cfg("t-pause"))
    [message] = last_tool_messages(out["messages"][:-1])
    assert message.artifact.status == "succeeded"
    [machine] = created(sb)  # still one: the re-executed call found its machine
    assert machine["status"] == "terminated"


# -- one machine per thread ----------------------------------------------------------------


def test_a_thread_reuses_its_machine_and_the_middleware_releases_it(sb: Any) -> None:
    computer = tool(sb, MachinePerThread())
    agent = create_agent(
        ScriptedChatModel(
            script=[
                tool_calls(call("coasty_computer", "c1", task="Open the docs")),
                tool_calls(call("coasty_computer", "c2", task="Open the pricing page")),
                AIMessage("done"),
            ]
        ),
        [computer],
        middleware=[CoastyMiddleware(computer)],
        checkpointer=InMemorySaver(),
    )
    out = agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-thread"))
    runs = [m.artifact for m in out["messages"] if getattr(m, "artifact", None) is not None]
    [machine] = created(sb)
    assert [r.machine_id for r in runs] == [machine["id"], machine["id"]]
    assert runs[0].machine.provisioned and not runs[1].machine.provisioned
    assert (
        machine["status"] == "terminated"
        and machine["metadata"]["langchain_thread_id"] == "t-thread"
    )


def test_another_process_finds_the_threads_machine(sb: Any) -> None:
    def agent(call_id: str) -> Any:
        return create_agent(
            ScriptedChatModel(
                script=[
                    tool_calls(call("coasty_computer", call_id, task="Open the docs")),
                    AIMessage("done"),
                ]
            ),
            [tool(sb, MachinePerThread())],
            checkpointer=InMemorySaver(),
        )

    first = agent("c1").invoke({"messages": [HumanMessage("go")]}, cfg("t-proc"))
    _THREAD_MACHINES.clear()  # what a second process knows: nothing but the API
    second = agent("c2").invoke({"messages": [HumanMessage("go")]}, cfg("t-proc"))
    [one], [two] = (
        last_tool_messages(first["messages"][:-1]),
        last_tool_messages(second["messages"][:-1]),
    )
    assert one.artifact.machine_id == two.artifact.machine_id
    assert len(created(sb)) == 1 and created(sb)[0]["status"] == "running"
    usages = release_thread_machine("t-proc", tool(sb, None).get_client())
    assert [u.terminated for u in usages] == [True]
    assert [m["status"] for m in created(sb)] == ["terminated"]


def test_a_thread_machine_waiting_for_a_person_is_kept_at_the_end_of_the_agent_run(
    sb: Any,
) -> None:
    computer = tool(sb, MachinePerThread(), on_awaiting_human="return")
    agent = create_agent(
        ScriptedChatModel(
            script=[tool_calls(call("coasty_computer", "c1", task=LOGIN_TASK)), AIMessage("asked")]
        ),
        [computer],
        middleware=[CoastyMiddleware(computer)],
        checkpointer=InMemorySaver(),
    )
    agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-wait"))
    assert [m["status"] for m in created(sb)] == ["running"]  # the paused run needs it


def test_per_thread_outside_a_graph_is_refused_before_any_request(sb: Any) -> None:
    before = sb.counters()["machine_create_calls"]
    with pytest.raises(Exception, match="MachinePerThread needs a LangGraph thread"):
        tool(sb, MachinePerThread()).invoke({"task": "Open the docs"})
    assert sb.counters()["machine_create_calls"] == before


# -- the pool ------------------------------------------------------------------------------


def test_a_pool_lends_its_machines_one_call_at_a_time_and_terminates_them(sb: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    computer = tool(sb, None)
    with CoastyMachinePool(2, settings=computer) as pool:
        assert len(created(sb)) == 2 and all(m["status"] == "running" for m in created(sb))
        pooled = tool(sb, pool)
        with ThreadPoolExecutor(4) as workers:
            messages = list(
                workers.map(lambda i: pooled.invoke(as_call(f"c{i}", f"Open {i}")), range(4))
            )
        runs = [m.artifact for m in messages]
        assert {r.machine_id for r in runs} <= set(pool.machine_ids)
        assert all(r.machine.policy == "pool" for r in runs)
    assert [m["status"] for m in created(sb)] == ["terminated", "terminated"]


async def test_an_async_pool_runs_more_calls_than_machines(sb: Any) -> None:
    computer = tool(sb, None)
    async with CoastyMachinePool(2, settings=computer) as pool:
        pooled = tool(sb, pool)
        texts = await asyncio.gather(
            *(pooled.ainvoke({"task": f"Open page {i}"}) for i in range(5))
        )
        assert all("returned to the pool" in t for t in texts)
        assert len(created(sb)) == 2
    assert [m["status"] for m in created(sb)] == ["terminated", "terminated"]


def test_a_pool_that_fails_to_provision_terminates_what_it_made(sb: Any) -> None:
    sb.inject(seed=1, machine_provision_fail_rate=0.5)
    with pytest.raises(MachineStateError), CoastyMachinePool(6, settings=tool(sb, None)):
        pass
    assert created(sb) and all(m["status"] in ("terminated", "error") for m in created(sb))
    assert not [m for m in created(sb) if m["status"] == "running"]


# -- the runnable, and bad input -----------------------------------------------------------


def test_the_runnable_takes_a_machine_policy(sb: Any) -> None:
    coasty = CoastyRunnable(api_key=sb.api_key, base_url=sb.base_url, machine=MachinePerCall())
    run = coasty.invoke("Open the docs")
    assert run.status == "succeeded" and run.machine is not None and run.machine.terminated
    assert [m["status"] for m in created(sb)] == ["terminated"]


@pytest.mark.parametrize(
    ("spec", "field", "limit"),
    [
        ({"ttl_minutes": 4}, "ttl_minutes", "5"),
        ({"ttl_minutes": 10_081}, "ttl_minutes", "10080"),
        ({"memory_gb": 65}, "memory_gb", "64"),
        ({"metadata": {f"k{i}": "v" for i in range(14)}}, "metadata", "13"),
        ({"ready_timeout": 0}, "ready_timeout", "86400"),
    ],
)
def test_bad_specs_name_the_field_and_the_limit(
    sb: Any, spec: dict[str, Any], field: str, limit: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        MachineSpec(**spec)
    assert field in str(caught.value) and limit in str(caught.value)
    assert sb.counters()["machine_create_calls"] == 0


def test_bad_task_input_provisions_nothing(sb: Any) -> None:
    text = tool(sb, MachinePerCall()).invoke({"task": ""})
    assert "task" in text
    assert sb.counters()["machine_create_calls"] == 0


def test_a_machine_policy_is_checked(sb: Any) -> None:
    with pytest.raises(ValidationError, match="MachinePerThread"):
        tool(sb, {"kind": "thread"})
    assert httpx.get(f"{sb.base_url}/v1/health").status_code == 200


@pytest.mark.parametrize("policy", [MachinePerCall(), MachinePerThread()])
def test_a_machine_that_never_comes_up_is_terminated_and_named(sb: Any, policy: Any) -> None:
    sb.inject(machine_provision_fail_rate=1.0)
    agent = create_agent(
        ScriptedChatModel(
            script=[
                tool_calls(call("coasty_computer", "c1", task="Open the docs")),
                AIMessage("ok"),
            ]
        ),
        [tool(sb, policy)],
        checkpointer=InMemorySaver(),
    )
    out = agent.invoke({"messages": [HumanMessage("go")]}, cfg("t-broken"))
    [message] = last_tool_messages(out["messages"][:-1])
    [machine] = created(sb)
    assert machine["id"] in message.content and "error" in message.content
    assert machine["status"] == "terminated"
    assert sb.counters()["runs_created"] == 0


def test_ctrl_c_while_following_terminates_the_machine(sb: Any) -> None:
    class CtrlC(Recorder):
        raise_error = True

        def on_coasty_step(self, event: Any) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tool(sb, MachinePerCall()).invoke({"task": "Open the docs"}, {"callbacks": [CtrlC()]})
    assert [m["status"] for m in created(sb)] == ["terminated"]


@pytest.mark.parametrize("use_async", [False, True])
async def test_parallel_calls_of_one_thread_share_one_machine(sb: Any, use_async: bool) -> None:
    computer = tool(sb, MachinePerThread())
    agent = create_agent(
        ScriptedChatModel(
            script=[
                tool_calls(
                    call("coasty_computer", "p1", task="Open the docs"),
                    call("coasty_computer", "p2", task="Open the pricing page"),
                    call("coasty_computer", "p3", task="Open the blog"),
                ),
                AIMessage("done"),
            ]
        ),
        [computer],
        checkpointer=InMemorySaver(),
    )
    start = {"messages": [HumanMessage("go")]}
    out = (
        await agent.ainvoke(start, cfg("t-par")) if use_async else agent.invoke(start, cfg("t-par"))
    )
    runs = [m.artifact for m in last_tool_messages(out["messages"][:-1])]
    [machine] = created(sb)
    assert len(runs) == 3 and {r.machine_id for r in runs} == {machine["id"]}
