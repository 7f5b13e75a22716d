"""Chaos soak: LangGraph agents making Coasty tool calls while the sandbox injects every fault.

``make soak`` (or ``python -m tests.reliability.soak --calls 300``) runs 300 tool calls from
LangGraph agents against a sandbox on loopback that loses create responses, answers 503 and
429 with Retry-After, cuts streams abruptly and cleanly, resends frames, stalls without
heartbeats and rotates every stream connection each second. A third of the calls pause for
a person and are answered through interrupts (some answers reject, which cancels the run);
some calls are cancelled midway by cancelling their agent. Afterwards every run is compared
with the server's own record. The report asserts: runs created == tool calls, no event lost,
none duplicated, no run left non-terminal, every cancelled call cancelled on the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.types import Command
from typing_extensions import TypedDict

from langchain_coasty import AsyncCoastyClient, CoastyComputerTool
from langchain_coasty.callbacks import CoastyCallbackHandler, CoastyEventPayload
from langchain_coasty.sandbox.server import SandboxControl
from tests.fakes import ScriptedChatModel

FAULTS: dict[str, Any] = {
    "create_refuse_rate": 0.1,
    "create_lose_response_rate": 0.1,
    "create_rate_limit_rate": 0.1,
    "retry_after": 1,
    "stream_cut_rate": 0.3,
    "stream_cut_max_frames": 8,
    "stream_cut_mode": "random",
    "stream_duplicate_rate": 0.3,
    "stream_stall_rate": 0.1,
    "stream_stall_seconds": 2,
}
"""Every fault at once; stalls (2 s, no heartbeats) outlast the client's 1 s read timeout."""

SERVER = {"pace": 0.25, "heartbeat_interval": 0.2, "rotation_seconds": 1.0}
SLOW = [{"name": "slow", "match": "slow crawl", "steps": 200, "pace": 0.05}]
NON_TERMINAL = ("queued", "running", "awaiting_human")
Kind = Literal["plain", "pause", "reject", "cancel"]


@dataclass
class SoakSettings:
    """How big the soak is and how it is bounded."""

    calls: int = 300
    concurrency: int = 30
    seed: int = 7
    time_limit: float = 600.0
    cancel_share: float = 0.1
    reject_every: int = 5
    """Every n-th paused call is answered with a rejection (the run is cancelled)."""
    framing: Literal["envelope", "flat", "cookbook"] = "envelope"
    """How the sandbox streams: the OpenAPI's envelope, the docs' flat framing, or the
    cookbook mock (flat, and a paused run's stream ends without ``done``)."""


@dataclass
class Call:
    index: int
    kind: Kind

    @property
    def id(self) -> str:
        return f"call_{self.index}"

    @property
    def task(self) -> str:
        if self.kind == "cancel":
            return f"Do a slow crawl of archive number {self.index}"
        if self.kind == "plain":
            return f"Open the notes app and write shopping list number {self.index}"
        return f"Log in to the supplier portal and download statement number {self.index}"

    @property
    def expected(self) -> str:
        return "succeeded" if self.kind in ("plain", "pause") else "cancelled"


@dataclass
class Agent:
    name: str
    calls: list[Call]
    graph: Literal["create_agent", "tool_node"] = "create_agent"


@dataclass
class Outcome:
    """What the soak observed on the client side."""

    events: list[tuple[str, int, str]] = field(default_factory=list)
    messages: dict[str, ToolMessage] = field(default_factory=dict)
    interrupts: int = 0
    cancelled_midway: int = 0
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Collector(CoastyCallbackHandler):
    """Records every delivered event; optionally signals the first completed step."""

    run_inline = True

    def __init__(self, outcome: Outcome, on_step: Callable[[], None] | None = None) -> None:
        self.outcome = outcome
        self.on_step = on_step

    def on_coasty_event(self, event: CoastyEventPayload) -> None:
        with self.outcome.lock:
            self.outcome.events.append((event["run_id"], event["seq"], event["type"]))

    def on_coasty_step(self, event: CoastyEventPayload) -> None:
        if self.on_step is not None:
            self.on_step()


class _State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _tool_node_graph(model: ScriptedChatModel, tool: CoastyComputerTool) -> Any:
    def agent(state: _State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: _State) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    graph = StateGraph(_State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([tool]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=InMemorySaver())


def plan(settings: SoakSettings) -> list[Agent]:
    """Split the calls into kinds and group them into agents (one to two calls each)."""
    n = settings.calls
    n_cancel = max(1, round(n * settings.cancel_share))
    n_pause = max(1, n // 3)
    kinds: list[Kind] = ["cancel"] * n_cancel
    every = settings.reject_every
    kinds += ["reject" if i % every == every - 1 else "pause" for i in range(n_pause)]
    kinds += ["plain"] * (n - len(kinds))
    calls = [Call(i, kind) for i, kind in enumerate(kinds)]
    cancel = [c for c in calls if c.kind == "cancel"]
    paused = [c for c in calls if c.kind in ("pause", "reject")]
    plain = [c for c in calls if c.kind == "plain"]
    agents = [Agent(f"cancel-{c.index}", [c]) for c in cancel]
    # A hand-built ToolNode re-executes the finished sibling of a paused call: it must reattach.
    for _ in range(min(len(plain), max(1, len(paused) // 4))):
        pair = [paused.pop(), plain.pop()]
        agents.append(Agent(f"mixed-{pair[0].index}", pair, graph="tool_node"))
    for group in (paused, plain):
        for i in range(0, len(group), 2):
            agents.append(Agent(f"agent-{group[i].index}", group[i : i + 2]))
    return agents


async def _drive(agent: Agent, tool: CoastyComputerTool, outcome: Outcome) -> None:
    model = ScriptedChatModel(
        script=[
            AIMessage(
                content="",
                tool_calls=[
                    {"name": tool.name, "args": {"task": c.task}, "id": c.id, "type": "tool_call"}
                    for c in agent.calls
                ],
            ),
            AIMessage(content="done"),
        ]
    )
    graph = (
        _tool_node_graph(model, tool)
        if agent.graph == "tool_node"
        else create_agent(model, [tool], checkpointer=InMemorySaver())
    )
    by_task = {c.task: c for c in agent.calls}
    loop = asyncio.get_running_loop()
    stepped = asyncio.Event()
    cancel = agent.calls[0].kind == "cancel"
    collector = _Collector(
        outcome, (lambda: loop.call_soon_threadsafe(stepped.set)) if cancel else None
    )
    config: Any = {"configurable": {"thread_id": agent.name}, "callbacks": [collector]}
    if cancel:
        task = asyncio.create_task(graph.ainvoke({"messages": [HumanMessage("go")]}, config))
        try:
            await asyncio.wait_for(stepped.wait(), 60)
        except TimeoutError:
            outcome.problems.append(f"{agent.name}: no step within 60 s")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        outcome.cancelled_midway += 1
        return
    out = await graph.ainvoke({"messages": [HumanMessage("go")]}, config)
    for _ in range(len(agent.calls) + 2):
        interrupts = out.get("__interrupt__") or []
        if not interrupts:
            break
        answers: dict[str, Any] = {}
        for interrupt in interrupts:
            call = by_task[interrupt.value["action_requests"][0]["args"]["task"]]
            answers[interrupt.id] = (
                {"decisions": [{"type": "reject", "message": "not today"}]}
                if call.kind == "reject"
                else f"use the account for statement {call.index}"
            )
        outcome.interrupts += len(interrupts)
        out = await graph.ainvoke(Command(resume=answers), config)
    if out.get("__interrupt__"):
        outcome.problems.append(f"{agent.name}: still interrupted after every answer")
    for message in out["messages"]:
        if isinstance(message, ToolMessage) and message.tool_call_id in {c.id for c in agent.calls}:
            outcome.messages[message.tool_call_id] = message


async def _verify(
    settings: SoakSettings,
    agents: list[Agent],
    outcome: Outcome,
    client: AsyncCoastyClient,
    control: SandboxControl,
) -> dict[str, Any]:
    control.clear_faults()
    counters = control.counters()
    calls = {c.task: c for a in agents for c in a.calls}
    delivered: dict[str, list[int]] = {}
    for run_id, seq, _type in outcome.events:
        delivered.setdefault(run_id, []).append(seq)
    problems = list(outcome.problems)
    gate = asyncio.Semaphore(32)

    async def server_view(run_id: str) -> tuple[str, Any, list[int]]:
        async with gate:
            run = await client.runs.get(run_id)
            async with client.runs.events(run_id) as stream:
                seqs = [event.seq async for event in stream]
            return run_id, run, seqs

    views = await asyncio.gather(*(server_view(r) for r in delivered))
    lost = duplicated = 0
    run_of_call: dict[str, str] = {}
    cancelled_ok = cancelled_expected = 0
    for run_id, run, server_seqs in views:
        call = calls.get(run.task)
        if call is None:
            problems.append(f"run {run_id} does not belong to any tool call")
            continue
        if call.id in run_of_call:
            problems.append(f"{call.id} has two runs: {run_of_call[call.id]} and {run_id}")
        run_of_call[call.id] = run_id
        seqs = delivered[run_id]
        duplicated += len(seqs) - len(set(seqs))
        if seqs != sorted(seqs):
            problems.append(f"{call.id}: events out of order")
        expected = server_seqs if call.kind != "cancel" else list(range(1, max(seqs) + 1))
        missing = set(expected) - set(seqs)
        lost += len(missing)
        if run.status.value != call.expected:
            problems.append(f"{call.id}: run {run_id} is {run.status.value}, not {call.expected}")
        if call.expected == "cancelled":
            cancelled_expected += 1
            cancelled_ok += run.status.value == "cancelled"
        if call.kind != "cancel":
            message = outcome.messages.get(call.id)
            want = "success" if call.expected == "succeeded" else "error"
            if message is None or message.status != want:
                problems.append(f"{call.id}: tool message {message!r} is not a {want}")
    for call in calls.values():
        if call.id not in run_of_call:
            message = outcome.messages.get(call.id)
            content = message.content if message is not None else "no tool message"
            problems.append(f"{call.id} ({call.kind}): no event delivered; {content!r:.300}")
    non_terminal = sum(counters["runs_by_status"][s] for s in NON_TERMINAL)
    report = {
        "tool_calls": len(calls),
        "agents": len(agents),
        "paused_calls": sum(c.kind in ("pause", "reject") for c in calls.values()),
        "interrupts_answered": outcome.interrupts,
        "rejected_by_the_person": sum(c.kind == "reject" for c in calls.values()),
        "cancelled_midway": outcome.cancelled_midway,
        "runs_created": counters["runs_created"],
        "create_calls": counters["create_calls"],
        "create_replays": counters["create_replays"],
        "stream_connections": counters["stream_connections"],
        "events_emitted": counters["events_emitted"],
        "events_delivered": len(outcome.events),
        "events_lost": lost,
        "events_duplicated": duplicated,
        "runs_non_terminal": non_terminal,
        "cancelled_on_server": f"{cancelled_ok}/{cancelled_expected}",
        "faults_fired": counters["faults_fired"],
        "framing": settings.framing,
    }
    if counters["runs_created"] != len(calls):
        problems.append(f"runs created {counters['runs_created']} != tool calls {len(calls)}")
    if lost or duplicated or non_terminal or cancelled_ok != cancelled_expected:
        problems.append("lost, duplicated, non-terminal or uncancelled runs (see figures)")
    report["problems"] = problems
    return report


async def run_soak(
    base_url: str, api_key: str, settings: SoakSettings | None = None
) -> dict[str, Any]:
    """Run the soak against a sandbox at ``base_url`` and return its report."""
    settings = settings or SoakSettings()
    control = SandboxControl(base_url)
    control.reset(config=True)
    framing = {"event_framing": "flat", "end_stream_at_pause": True}
    if settings.framing != "cookbook":
        framing = {"event_framing": settings.framing}
    control.configure(**SERVER, **framing)
    control.load_scenarios(SLOW)
    machine = control.info()["machine_ids"][0]
    client = AsyncCoastyClient(
        api_key=api_key, base_url=base_url, timeout=10.0, max_retries=6, stream_read_timeout=1.0
    )
    tool = CoastyComputerTool(async_client=client, machine_id=machine, max_steps=500)
    agents = plan(settings)
    outcome = Outcome()
    gate = asyncio.Semaphore(settings.concurrency)
    started = time.monotonic()

    async def one(agent: Agent) -> None:
        async with gate:
            try:
                await _drive(agent, tool, outcome)
            except Exception as exc:  # a soak failure to report, not to hide
                outcome.problems.append(f"{agent.name}: {type(exc).__name__}: {exc}")

    control.inject(seed=settings.seed, **FAULTS)
    try:
        async with asyncio.timeout(settings.time_limit):
            await asyncio.gather(*(one(a) for a in agents))
        elapsed = time.monotonic() - started
        report = await _verify(settings, agents, outcome, client, control)
    finally:
        control.clear_faults()
        await client.close()
        control.close()
    report["seconds"] = round(elapsed, 1)
    return report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def sandbox_process() -> Iterator[str]:
    """A sandbox in a separate process on a free loopback port; yields its base URL."""
    port = _free_port()
    args = [sys.executable, "-m", "langchain_coasty.sandbox.cli", "--port", str(port)]
    proc = subprocess.Popen(
        [*args, "--pace", "0", "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                SandboxControl(base_url).counters()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the sandbox process did not start") from None
                time.sleep(0.05)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument(
        "--framing",
        choices=("envelope", "flat", "cookbook"),
        default="envelope",
        help="how the sandbox streams (envelope: the OpenAPI; flat: Coasty's docs; cookbook: "
        "flat, and a paused run's stream ends without done)",
    )
    parser.add_argument(
        "--in-process", action="store_true", help="sandbox in a thread, not a process"
    )
    args = parser.parse_args(argv)
    settings = SoakSettings(
        calls=args.calls,
        concurrency=args.concurrency,
        seed=args.seed,
        time_limit=args.time_limit,
        framing=args.framing,
    )
    api_key = os.environ.get("COASTY_SOAK_KEY", "sk-coasty-test-soak")
    if args.in_process:
        from langchain_coasty.sandbox import CoastySandbox

        with CoastySandbox() as sb:
            report = asyncio.run(run_soak(sb.base_url, sb.api_key, settings))
    else:
        with sandbox_process() as base_url:
            report = asyncio.run(run_soak(base_url, api_key, settings))
    print(json.dumps(report, indent=2))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
