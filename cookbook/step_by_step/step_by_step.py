"""Step by step: a vision planner drives a machine itself, with Coasty's help at each step.

``create_agent`` gets three tools: ``coasty_next_action`` (the machine's screen and the task
in, Coasty's proposed actions out, remembered in a Coasty session kept in the thread's state),
``coasty_act`` (does the actions and shows the planner the new screen) and ``coasty_ground``
(where an element is). A person approves every ``type`` action before it enters text (a
LangGraph interrupt: approve, edit the text, or reject). ``CoastyMiddleware`` deletes the
thread's session when the agent run ends.

Run it (local sandbox unless COASTY_API_KEY and COASTY_BASE_URL are set; a real vision
planner when OPENAI_API_KEY or ANTHROPIC_API_KEY is set and its LangChain package is
installed)::

    python cookbook/step_by_step/step_by_step.py ["task"]
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_coasty import CoastyMiddleware, CoastyToolkit
from langchain_coasty.examples import chat_model_from_env, coasty_target

TASK = "Search for 'pricing'"
SYSTEM = (
    "You operate a computer step by step. Call coasty_next_action with the task to get the "
    "next actions for the current screen, do them with coasty_act (return_screen=true, so "
    "you see the result), and repeat until coasty_next_action says the task is done. Use "
    "coasty_ground to find an element yourself. Then say what you did in one sentence."
)


class ScriptedVisionPlanner(BaseChatModel):
    """A fake vision planner: asks for the next actions, does them, looks, until done."""

    task: str = TASK
    turns: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted-vision-planner"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedVisionPlanner:  # type: ignore[override]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.turns += 1
        last = messages[-1]
        reply = self._next(last)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _next(self, last: BaseMessage) -> AIMessage:
        call_id = f"call_{self.turns}"
        if not isinstance(last, ToolMessage):
            return _call("coasty_next_action", call_id, instruction=self.task)
        if last.status == "error":
            return AIMessage(content=f"I had to stop: {last.text}")
        if last.name == "coasty_act":
            seen = sum(1 for b in last.content if isinstance(b, dict) and b.get("type") == "image")
            print(f"  planner saw {seen} screen(s) after acting")
            return _call("coasty_next_action", call_id, instruction=self.task)
        step = last.artifact
        status = _field(step, "status")
        if status == "continue":
            actions = [
                {"action": _field(a, "action_type"), "params": _field(a, "params")}
                for a in _field(step, "actions")
            ]
            return _call("coasty_act", call_id, actions=actions, return_screen=True)
        if status == "done":
            return AIMessage(content=f"Done: {self.task} (in {_field(step, 'step') - 1} steps).")
        return AIMessage(content=f"I could not do it: {last.text}")


def _field(artifact: Any, name: str) -> Any:
    """A field of an artifact: the object, or the dict a checkpoint gives back."""
    return artifact.get(name) if isinstance(artifact, dict) else getattr(artifact, name, None)


def _call(name: str, call_id: str, **args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])


def approve(request: dict[str, Any]) -> Any:
    """A person's decision on the text to type: at a terminal ask, otherwise approve."""
    texts = request["coasty"]["texts"]
    print(f"\nApprove typing {', '.join(repr(t) for t in texts)}?")
    if sys.stdin.isatty():
        said = input("Enter approves, 'no' rejects, anything else replaces the text: ").strip()
        if said.lower() == "no":
            return {"decisions": [{"type": "reject", "message": "not this text"}]}
        if said:
            edited = {"name": "coasty_act", "args": {"text": said}}
            return {"decisions": [{"type": "edit", "edited_action": edited}]}
    else:
        print("No terminal: approving.")
    return {"decisions": [{"type": "approve"}]}


def main(task: str = TASK) -> str:
    model, which = chat_model_from_env()
    print(f"Planner: {which}")
    with coasty_target() as target:
        toolkit = CoastyToolkit(
            api_key=target.api_key,
            base_url=target.base_url,
            machine_id=target.machine_id,
            step_tools=True,
            approve_text=True,
        )
        tools = [t for t in toolkit.get_tools() if t.name in STEP_TOOLS]
        agent = create_agent(
            model or ScriptedVisionPlanner(task=task),
            tools,
            system_prompt=SYSTEM,
            middleware=[CoastyMiddleware(toolkit)],
            checkpointer=InMemorySaver(),
        )
        config: Any = {"configurable": {"thread_id": uuid.uuid4().hex}}
        graph_input: Any = {"messages": [HumanMessage(task)]}
        while graph_input is not None:  # once per approval, plus the first run
            result = agent.invoke(graph_input, config)
            pauses = result.get("__interrupt__", [])
            graph_input = (
                Command(resume={p.id: approve(p.value) for p in pauses}) if pauses else None
            )
        for message in result["messages"]:
            if isinstance(message, ToolMessage):
                print(f"  {message.name}: {_first_line(message)}")
        left = toolkit.get_client().sessions.list().sessions
        print(f"Coasty sessions left open: {len(left)}")
        final = str(result["messages"][-1].text)
        print(f"\nPlanner: {final}")
        return final


STEP_TOOLS = ("coasty_next_action", "coasty_act", "coasty_ground")


def _first_line(message: ToolMessage) -> str:
    return message.text.splitlines()[0] if message.text else ""


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or TASK)
