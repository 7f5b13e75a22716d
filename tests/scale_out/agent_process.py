"""One step of a planner agent in its own process, for the cross-process reattach tests.

``python agent_process.py start|answer --saver sqlite:PATH|postgres:DSN --thread T
[--answer TEXT] [--wait stream|durable] [--webhook-url URL] [--secrets postgres:DSN]`` runs
the agent until it stops (an interrupt or the end) and prints one JSON line: the
interrupts, the last messages and the delivered Coasty events. Reads COASTY_API_KEY,
COASTY_BASE_URL and COASTY_MACHINE_ID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.types import Command

from langchain_coasty import CoastyCallbackHandler, CoastyComputerTool
from langchain_coasty.callbacks import CoastyEventPayload

TASK = "Log in to the bank portal and download the March statement"


class HistoryPlanner(BaseChatModel):
    """A fake planner that decides from the message history alone (no position to lose)."""

    task: str = TASK

    @property
    def _llm_type(self) -> str:
        return "history-planner"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> HistoryPlanner:  # type: ignore[override]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            message = AIMessage(f"final: {last.content}")
        else:
            call = {"name": "coasty_computer", "args": {"task": self.task}, "id": "call_1"}
            message = AIMessage("", tool_calls=[{**call, "type": "tool_call"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


class Events(CoastyCallbackHandler):
    """Collects the delivered Coasty events."""

    def __init__(self) -> None:
        self.seen: list[CoastyEventPayload] = []

    def on_coasty_event(self, event: CoastyEventPayload) -> None:
        self.seen.append(event)


@contextlib.contextmanager
def checkpointer(spec: str) -> Iterator[Any]:
    """A sync checkpointer from ``sqlite:PATH`` or ``postgres:DSN``."""
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        with SqliteSaver.from_conn_string(where) as saver:
            yield saver
    elif kind == "postgres":
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(where) as saver:
            saver.setup()
            yield saver
    else:
        raise SystemExit(f"unknown saver {spec!r}")


@contextlib.contextmanager
def secret_store(spec: str | None) -> Iterator[Any]:
    """No store (the process's own) or a ``PostgresStore`` from ``postgres:DSN``."""
    if spec is None:
        yield None
        return
    kind, _, where = spec.partition(":")
    if kind != "postgres":
        raise SystemExit(f"unknown secret store {spec!r}")
    from langgraph.store.postgres import PostgresStore

    with PostgresStore.from_conn_string(where) as store:
        store.setup()
        yield store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["start", "answer"])
    parser.add_argument("--saver", required=True)
    parser.add_argument("--thread", required=True)
    parser.add_argument("--answer", default="use the work account")
    parser.add_argument("--wait", default="stream", choices=["stream", "durable"])
    parser.add_argument("--webhook-url")
    parser.add_argument("--secrets", help="postgres:DSN: keep webhook secrets in a PostgresStore")
    args = parser.parse_args()

    extra: dict[str, Any] = {} if args.wait == "stream" else {"wait": args.wait}
    if args.webhook_url:
        extra["webhook_url"] = args.webhook_url
    events = Events()
    config: Any = {"configurable": {"thread_id": args.thread}, "callbacks": [events]}
    with checkpointer(args.saver) as saver, secret_store(args.secrets) as secrets:
        tool = CoastyComputerTool(
            machine_id=os.environ["COASTY_MACHINE_ID"], webhook_secrets=secrets, **extra
        )
        agent = create_agent(HistoryPlanner(), [tool], checkpointer=saver)
        if args.phase == "start":
            out = agent.invoke({"messages": [HumanMessage("get my statement")]}, config)
        else:
            out = agent.invoke(Command(resume=args.answer), config)
    messages = out["messages"]
    tool_message = next((m for m in messages if isinstance(m, ToolMessage)), None)
    report = {
        "pid": os.getpid(),
        "interrupts": [i.value for i in out.get("__interrupt__", [])],
        "final": messages[-1].content if isinstance(messages[-1], AIMessage) else None,
        "tool_status": tool_message.status if tool_message else None,
        "artifact_status": (
            tool_message.artifact.status.value
            if tool_message is not None and tool_message.artifact is not None
            else None
        ),
        "events": [
            {"seq": e["seq"], "type": e["type"], "run_id": e["run_id"]} for e in events.seen
        ],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
