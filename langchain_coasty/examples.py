"""What the demo and the cookbook recipes share: planners, where runs go, a live progress line.

``ScriptedPlanner`` (a fake chat model that plans like a real one), ``chat_model_from_env``
(a real model when a provider key is set), ``coasty_target`` (the real Coasty when
configured, else an embedded sandbox) and ``ProgressDisplay`` (a one-line view of a run fed
by its events).
"""

from __future__ import annotations

import importlib
import os
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable

from langchain_coasty.human import DEFAULT_ACTION_NAME

__all__ = [
    "DEFAULT_TASK",
    "SYSTEM_PROMPT",
    "CoastyTarget",
    "ProgressDisplay",
    "ScriptedPlanner",
    "chat_model_from_env",
    "coasty_target",
]

DEFAULT_TASK = "Log in to the supplier portal and download the March invoice as a PDF"
SYSTEM_PROMPT = (
    "You are a planner. Hand any task that needs a desktop or a browser to the "
    "coasty_computer tool, then tell the user what it did and what it cost."
)


class ScriptedPlanner(GenericFakeChatModel):
    """A fake chat model that plans like a real one: delegate the user's request, then report."""

    messages: Iterator[AIMessage | str] = iter(())
    tool_name: str = DEFAULT_ACTION_NAME
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
    sandbox: bool = False
    """The embedded sandbox (so machines may be provisioned freely), not the real Coasty."""

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
            sandbox.api_key,
            sandbox.base_url,
            machines,
            f"local sandbox at {sandbox.base_url}",
            sandbox=True,
        )


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

    def on_event(self, event: Mapping[str, Any]) -> None:
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
