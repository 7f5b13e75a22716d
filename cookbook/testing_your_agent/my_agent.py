"""The agent under test: an expense assistant that hands portal work to Coasty.

Stands in for your own agent. `build_agent` wires a chat model to ``CoastyComputerTool``;
`run_until_done` drives one request to the end, answering each of the Coasty agent's
questions with a callable (a person in production, a canned answer in tests).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_coasty import CoastyComputerTool
from langchain_coasty.callbacks import coasty_payload
from langchain_coasty.examples import ScriptedPlanner
from langchain_coasty.human import question_of

SYSTEM_PROMPT = "You file expense reports. Use coasty_computer for anything in a web portal."


@dataclass
class Outcome:
    """What one request produced: the final answer, the questions asked, the run's events."""

    final_answer: str
    questions: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def build_agent(
    *, api_key: str, base_url: str, machine_id: str, model: BaseChatModel | None = None
) -> Any:
    """The expense agent; with no model it uses a scripted fake chat model."""
    tool = CoastyComputerTool(
        api_key=api_key,
        base_url=base_url,
        machine_id=machine_id,
        max_steps=10,
        on_awaiting_human="interrupt",
    )
    return create_agent(
        model or ScriptedPlanner(),
        tools=[tool],
        system_prompt=SYSTEM_PROMPT,
        checkpointer=InMemorySaver(),
    )


def run_until_done(agent: Any, request: str, answer: Callable[[str], Any]) -> Outcome:
    """Run `request` to the end, answering every pause with `answer(question)`."""
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    outcome = Outcome(final_answer="")
    graph_input: Any = {"messages": [HumanMessage(request)]}
    while graph_input is not None:
        answers: dict[str, Any] = {}
        for mode, chunk in agent.stream(graph_input, config, stream_mode=["updates", "custom"]):
            if mode == "custom" and (event := coasty_payload(chunk)) is not None:
                outcome.events.append(event)
            elif mode == "updates" and "__interrupt__" in chunk:
                for pause in chunk["__interrupt__"]:
                    question = question_of(pause.value)
                    outcome.questions.append(question)
                    answers[pause.id] = answer(question)
        graph_input = Command(resume=answers) if answers else None
    outcome.final_answer = agent.get_state(config).values["messages"][-1].text
    return outcome
