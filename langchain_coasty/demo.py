"""The `make demo` command line: a LangGraph planner delegates a desktop task to Coasty.

See `EPILOG` for the environment variables; ``python -m langchain_coasty.demo --help`` for
the options. The pieces it is built from are in ``langchain_coasty.examples``.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from langchain_coasty.callbacks import coasty_payload
from langchain_coasty.examples import (
    DEFAULT_TASK,
    SYSTEM_PROMPT,
    ProgressDisplay,
    ScriptedPlanner,
    chat_model_from_env,
    coasty_target,
)
from langchain_coasty.human import question_of

DESCRIPTION = (
    "A LangGraph planner agent delegates a desktop task to Coasty through CoastyComputerTool, "
    "shows the run live, asks you the Coasty agent's question (answered for you with --yes or "
    "without a terminal), and prints the planner's answer and the run's cost."
)
EPILOG = """environment:
  COASTY_API_KEY + COASTY_BASE_URL  use the real Coasty (machine: --machine or
                                    COASTY_MACHINE_ID); otherwise a local sandbox
  OPENAI_API_KEY                    plan with ChatOpenAI (pip install langchain-openai;
                                    OPENAI_MODEL, default gpt-4o-mini)
  ANTHROPIC_API_KEY                 plan with ChatAnthropic (pip install langchain-anthropic;
                                    ANTHROPIC_MODEL, default claude-haiku-4-5)
  neither                           a scripted planner (a LangChain fake chat model)
"""


def answer_from_text(text: str) -> dict[str, Any]:
    """Turn what the person typed into an interrupt answer (empty approves, 'cancel' rejects)."""
    text = text.strip()
    if text.lower() in {"n", "no", "cancel", "reject", "stop"}:
        return {"decisions": [{"type": "reject", "message": "Cancelled at the terminal."}]}
    if not text:
        return {"decisions": [{"type": "approve"}]}
    return {"decisions": [{"type": "respond", "message": text}]}


AUTO_ANSWER: dict[str, Any] = {
    "decisions": [{"type": "respond", "message": "Approved automatically (non-interactive demo)."}]
}


def ask_person(question: str, read: Callable[[str], str] = input) -> dict[str, Any]:
    """Ask the person at the terminal and return their answer."""
    print(f"\nThe Coasty agent asks: {question}")
    try:
        text = read("Your answer (Enter approves, 'cancel' stops the run): ")
    except EOFError:
        text = ""
    return answer_from_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and return the process exit code."""
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command, StreamMode

    from langchain_coasty.machines import MachinePerThread, MachineSpec
    from langchain_coasty.middleware import CoastyMiddleware
    from langchain_coasty.tools import CoastyComputerTool

    parser = argparse.ArgumentParser(
        prog="python -m langchain_coasty.demo",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", default=DEFAULT_TASK, help="what the Coasty agent should do")
    parser.add_argument(
        "--machine",
        default=None,
        help="Coasty machine id (default on the sandbox: provision one for the thread)",
    )
    parser.add_argument(
        "--pace", type=float, default=0.5, help="sandbox seconds per step (0 = instant)"
    )
    parser.add_argument("--max-steps", type=int, default=20, help="step budget of the run")
    parser.add_argument("--yes", action="store_true", help="answer the agent's question for me")
    args = parser.parse_args(argv)
    interactive = sys.stdin.isatty() and not args.yes

    model, planner_line = chat_model_from_env()
    print(f"Planner: {planner_line}")
    with coasty_target(args.pace, args.machine) as target:
        provision = target.sandbox and args.machine is None
        if provision:
            print(f"Coasty:  {target.label}, a machine provisioned for this thread")
            where: dict[str, Any] = {
                "machine": MachinePerThread(MachineSpec(ttl_minutes=60, ready_timeout=120))
            }
        else:
            print(f"Coasty:  {target.label}, machine {target.machine_id}")
            where = {"machine_id": target.machine_id}
        print(f"Task:    {args.task}")
        tool = CoastyComputerTool(
            api_key=target.api_key,
            base_url=target.base_url,
            max_steps=args.max_steps,
            on_awaiting_human="interrupt",
            **where,
        )
        agent = create_agent(
            model or ScriptedPlanner(),
            tools=[tool],
            system_prompt=SYSTEM_PROMPT,
            middleware=[CoastyMiddleware(tool)],  # releases the thread's machine at the end
            checkpointer=InMemorySaver(),
        )
        config: RunnableConfig = {"configurable": {"thread_id": f"demo-{uuid.uuid4().hex[:8]}"}}
        display = ProgressDisplay(live=sys.stdout.isatty(), max_steps=args.max_steps)
        graph_input: Any = {"messages": [HumanMessage(args.task)]}
        while True:
            interrupts: list[Any] = []
            modes: list[StreamMode] = ["updates", "custom"]
            for mode, chunk in agent.stream(graph_input, config, stream_mode=modes):
                if mode == "custom" and (event := coasty_payload(chunk)) is not None:
                    if event["type"] == "machine":
                        display.finish_line()
                        print(_machine_line(event["data"]))
                    else:
                        display.on_event(event)
                elif mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
                    interrupts.extend(chunk["__interrupt__"])
            display.finish_line()
            if not interrupts:
                break
            answers = {}
            for item in interrupts:
                question = question_of(item.value)
                if interactive:
                    answers[item.id] = ask_person(question)
                else:
                    print(f"The Coasty agent asks: {question}")
                    print(f"Answer (automatic): {AUTO_ANSWER['decisions'][0]['message']}")
                    answers[item.id] = AUTO_ANSWER
            graph_input = Command(resume=answers)
        messages = agent.get_state(config).values["messages"]
        final = messages[-1].text if messages else ""
        print(f"\nPlanner's answer: {final}")
        print(_cost_line(messages, display))
    return 0


def _machine_line(data: dict[str, Any]) -> str:
    """One line per machine event: provisioned, ready, reused, terminated (with its cost)."""
    phase, machine_id = data.get("phase"), data.get("machine_id")
    if phase == "provisioned":
        return f"Machine: provisioned {machine_id} for this thread (60-minute lease)"
    if phase == "reused":
        return f"Machine: {machine_id} reused by the resumed call (same thread)"
    if phase == "ready":
        return f"Machine: {machine_id} is running"
    if phase == "terminated":
        cost = data.get("cost_usd")
        shown = "" if cost is None else f", it cost ${cost:.2f}"
        return f"Machine: {machine_id} terminated at the end of the agent run{shown}"
    return f"Machine: {machine_id} {phase}"


def _cost_line(messages: list[BaseMessage], display: ProgressDisplay) -> str:
    """The run's outcome and cost, from the tool's Run artifact when there is one."""
    for message in reversed(messages):
        run = getattr(message, "artifact", None) if isinstance(message, ToolMessage) else None
        if run is not None and hasattr(run, "cost_usd"):
            status = getattr(run.status, "value", run.status)
            return (
                f"Run {run.id}: {status}, {run.steps_completed} steps, "
                f"{run.credits_charged} credits = ${run.cost_usd:.2f}"
            )
    return (
        f"Run {display.run_id or '?'}: {display.status}, {display.step} steps, "
        f"{display.credits} credits = ${display.cost_usd:.2f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
