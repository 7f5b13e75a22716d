"""The `make demo` walkthrough: a LangGraph planner delegates a desktop task to Coasty.

Also home of the small helpers the cookbook recipes share (`ScriptedPlanner`,
`chat_model_from_env`, `coasty_target`, `ProgressDisplay`). See `EPILOG` for the
environment variables; ``python -m langchain_coasty.demo --help`` for the options.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig

DEFAULT_TASK = "Log in to the supplier portal and download the March invoice as a PDF"
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
SYSTEM_PROMPT = (
    "You are a planner. Hand any task that needs a desktop or a browser to the "
    "coasty_computer tool, then tell the user what it did and what it cost."
)


class ScriptedPlanner(GenericFakeChatModel):
    """A fake chat model that plans like a real one: delegate the user's request, then report."""

    messages: Iterator[AIMessage | str] = iter(())
    tool_name: str = "coasty_computer"
    disable_streaming: bool = True

    def bind_tools(
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Accept any tools: the script always calls `tool_name`."""
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1] if messages else None
        if isinstance(last, ToolMessage) and last.status == "error":
            reply = AIMessage(content=f"Coasty could not finish the task. {last.text}")
        elif isinstance(last, ToolMessage):
            reply = AIMessage(content=f"Done. I handed the task to Coasty. {last.text}")
        else:
            task = _latest_request(messages)
            call = {
                "name": self.tool_name,
                "args": {"task": task},
                "id": f"call_{uuid.uuid4().hex[:12]}",
            }
            reply = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=reply)])

    @property
    def _llm_type(self) -> str:
        return "scripted-planner"


def _latest_request(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return DEFAULT_TASK


_PROVIDERS = (
    ("OPENAI_API_KEY", "langchain_openai", "ChatOpenAI", "OPENAI_MODEL", "gpt-4o-mini"),
    (
        "ANTHROPIC_API_KEY",
        "langchain_anthropic",
        "ChatAnthropic",
        "ANTHROPIC_MODEL",
        "claude-haiku-4-5",
    ),
)


def chat_model_from_env(
    environ: dict[str, str] | None = None,
) -> tuple[BaseChatModel | None, str]:
    """Return a real chat model when one is configured (else None) and a line saying which."""
    env = os.environ if environ is None else environ
    notes: list[str] = []
    for key_var, module_name, class_name, model_var, default_model in _PROVIDERS:
        if not env.get(key_var):
            continue
        package = module_name.replace("_", "-")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            notes.append(f"{key_var} is set but {package} is not installed (pip install {package})")
            continue
        model_name = env.get(model_var) or default_model
        model: BaseChatModel = getattr(module, class_name)(model=model_name)
        return model, f"real chat model: {class_name}({model_name!r}) from {package}"
    reason = "; ".join(notes) or "no OPENAI_API_KEY or ANTHROPIC_API_KEY set"
    return None, f"scripted planner (a LangChain fake chat model; {reason})"


@dataclass
class CoastyTarget:
    """Where runs go: the real Coasty or the embedded sandbox."""

    api_key: str
    base_url: str
    machine_ids: list[str]
    label: str

    @property
    def machine_id(self) -> str:
        return self.machine_ids[0]


@contextmanager
def coasty_target(pace: float = 0.0, machine_id: str | None = None) -> Iterator[CoastyTarget]:
    """Yield the real Coasty when COASTY_API_KEY and COASTY_BASE_URL are set, else a sandbox."""
    api_key, base_url = os.environ.get("COASTY_API_KEY"), os.environ.get("COASTY_BASE_URL")
    if api_key and base_url:
        machine = machine_id or os.environ.get("COASTY_MACHINE_ID")
        if not machine:
            raise SystemExit("Set COASTY_MACHINE_ID or pass --machine to use the real Coasty.")
        yield CoastyTarget(api_key, base_url, [machine], f"Coasty at {base_url}")
        return
    from langchain_coasty.sandbox import CoastySandbox

    with CoastySandbox(pace=pace) as sandbox:
        machines = list(sandbox.machine_ids)
        if machine_id:
            machines = [machine_id, *(m for m in machines if m != machine_id)]
        yield CoastyTarget(
            sandbox.api_key, sandbox.base_url, machines, f"local sandbox at {sandbox.base_url}"
        )


def coasty_payload(chunk: Any) -> dict[str, Any] | None:
    """Pick the Coasty event out of a LangGraph custom-stream chunk (None if it is not one)."""
    if isinstance(chunk, dict):
        inner = chunk.get("coasty_event")
        if isinstance(inner, dict):
            return inner
        if "type" in chunk and "seq" in chunk:
            return chunk
    return None


@dataclass
class ProgressDisplay:
    """A one-line live view of a run (status, steps, credits, action) fed by its events."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    live: bool = False
    status: str = "starting"
    step: int = 0
    max_steps: int | None = None
    credits: int = 0
    action: str = ""
    run_id: str = ""
    events: int = 0
    _printed: str = ""

    def on_event(self, event: dict[str, Any]) -> None:
        """Update from one `coasty_event` payload and redraw."""
        data = event.get("data") or {}
        kind = event.get("type")
        self.events += 1
        self.run_id = str(event.get("run_id") or self.run_id)
        if kind == "status":
            self.status = str(data.get("status", self.status))
        elif kind == "step":
            self.step = int(data.get("steps_completed") or data.get("step") or self.step)
            self.max_steps = data.get("max_steps") or self.max_steps
        elif kind == "tool_call":
            self.action = _describe_action(data)
        elif kind == "billing":
            self.credits = int(data.get("credits_charged", self.credits))
        elif kind == "resumed":
            self.status = "running"
        elif kind == "done":
            self.status = str(data.get("status", "done"))
        if self.live:
            self._write("\r\x1b[2K" + self.line()[:150])
        elif kind in {"status", "billing", "done"} and self.line() != self._printed:
            self._printed = self.line()  # one line per step and per status change
            self._write("  " + self._printed + "\n")
        if kind == "resumed":
            self.say(f"The run resumed with the note: {data.get('note')!r}")

    def say(self, text: str) -> None:
        """Print a full line without breaking the live one."""
        self._write(("\r\x1b[2K" if self.live else "") + text + "\n")
        if self.live:
            self._write(self.line()[:150])

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    @property
    def cost_usd(self) -> float:
        return self.credits / 100

    def line(self) -> str:
        steps = f"{self.step}/{self.max_steps}" if self.max_steps else str(self.step)
        text = f"[{self.status}] step {steps} | {self.credits} credits (${self.cost_usd:.2f})"
        return f"{text} | {self.action}" if self.action else text

    def finish_line(self) -> None:
        """End the live line so that normal output can follow."""
        if self.live:
            self._write("\n")


def _describe_action(data: dict[str, Any]) -> str:
    args = data.get("args")
    values = [v for v in args.values() if isinstance(v, str)] if isinstance(args, dict) else []
    detail = f" {values[0]!r}" if values else ""
    return f"{data.get('action', '?')}{detail}"[:80]


def question_of(interrupt_value: Any) -> str:
    """The Coasty agent's question in an interrupt payload."""
    if isinstance(interrupt_value, dict):
        block = interrupt_value.get("coasty") or {}
        for text in (block.get("question"), block.get("reason")):
            if text:
                return str(text)
        requests = interrupt_value.get("action_requests") or [{}]
        if requests[0].get("description"):
            return str(requests[0]["description"])
    return str(interrupt_value)


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

    from langchain_coasty.tools import CoastyComputerTool

    parser = argparse.ArgumentParser(
        prog="python -m langchain_coasty.demo",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", default=DEFAULT_TASK, help="what the Coasty agent should do")
    parser.add_argument("--machine", default=None, help="Coasty machine id (default: first one)")
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
        print(f"Coasty:  {target.label}, machine {target.machine_id}")
        print(f"Task:    {args.task}")
        tool = CoastyComputerTool(
            api_key=target.api_key,
            base_url=target.base_url,
            machine_id=target.machine_id,
            max_steps=args.max_steps,
            on_awaiting_human="interrupt",
        )
        agent = create_agent(
            model or ScriptedPlanner(),
            tools=[tool],
            system_prompt=SYSTEM_PROMPT,
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
