"""Planner agent: a LangGraph agent delegates a desktop task to Coasty and answers its question.

The demo (``make demo``) in one sitting. ``create_agent`` gets ``CoastyComputerTool``; the run's
events reach us through a ``CoastyCallbackHandler`` (the LangChain callbacks channel); when
the Coasty agent pauses in ``awaiting_human`` the tool raises a LangGraph interrupt, we answer
it with ``Command(resume=...)``, and the same run carries on.

Run it (local sandbox unless COASTY_API_KEY and COASTY_BASE_URL are set; a real planner
when OPENAI_API_KEY or ANTHROPIC_API_KEY is set and its LangChain package is installed)::

    python cookbook/planner_agent/planner_agent.py ["your task"]
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_coasty import CoastyCallbackHandler, CoastyComputerTool
from langchain_coasty.examples import (
    DEFAULT_TASK,
    ScriptedPlanner,
    chat_model_from_env,
    coasty_target,
)


class PrintProgress(CoastyCallbackHandler):
    """Prints the run's progress from its events."""

    def on_coasty_status(self, event: Any) -> None:
        print(f"  status: {event['data'].get('status')}")

    def on_coasty_step(self, event: Any) -> None:
        data = event["data"]
        print(
            f"  step {data.get('steps_completed')}/{data.get('max_steps')}: {data.get('summary')}"
        )

    def on_coasty_billing(self, event: Any) -> None:
        print(f"  credits so far: {event['data'].get('credits_charged')}")


def answer(pause: dict[str, Any]) -> Any:
    """Answer the Coasty agent's question: ask at a terminal, otherwise approve."""
    question = pause["coasty"]["question"]
    print(f"\nCoasty asks: {question}")
    if sys.stdin.isatty():
        note = input("Your answer (Enter approves, 'cancel' stops the run): ").strip()
        if note.lower() == "cancel":
            return {"decisions": [{"type": "reject"}]}
        return note or {"decisions": [{"type": "approve"}]}
    print("No terminal: approving.")
    return "Approved (no terminal attached)."


def main(task: str = DEFAULT_TASK) -> str:
    model, which = chat_model_from_env()
    print(f"Planner: {which}")
    with coasty_target(pace=0.2) as target:
        tool = CoastyComputerTool(
            api_key=target.api_key,
            base_url=target.base_url,
            machine_id=target.machine_id,
            max_steps=20,
            on_awaiting_human="interrupt",  # the default: pauses become graph interrupts
        )
        agent = create_agent(model or ScriptedPlanner(), [tool], checkpointer=InMemorySaver())
        config = {
            "configurable": {"thread_id": uuid.uuid4().hex},
            "callbacks": [PrintProgress()],
        }
        graph_input: Any = {"messages": [HumanMessage(task)]}
        while graph_input is not None:  # once per pause, plus the first run
            result = agent.invoke(graph_input, config)
            pauses = result.get("__interrupt__", [])
            graph_input = (
                Command(resume={p.id: answer(p.value) for p in pauses}) if pauses else None
            )
        final = str(result["messages"][-1].text)
        print(f"\nPlanner: {final}")
        return final


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or DEFAULT_TASK)
