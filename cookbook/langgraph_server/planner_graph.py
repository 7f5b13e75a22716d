"""The planner graph that ``langgraph.json`` deploys: a planner agent with the Coasty tool.

The planner is a scripted fake by default (it decides from the message history only, so it
behaves the same after a server restart or on another worker); set ``PLANNER_MODEL`` (e.g.
``anthropic:claude-sonnet-4-5``) for a real one. The Coasty tool is configured from the
environment: ``COASTY_API_KEY``, ``COASTY_BASE_URL``, ``COASTY_MACHINE_ID``, ``COASTY_WAIT``
(``stream`` or ``durable``) and ``COASTY_WEBHOOK_URL``. The graph is compiled without a
checkpointer: LangGraph Server brings its own. ``CoastyMiddleware`` cancels a paused Coasty
run when the person moves on without answering it (Agent Chat UI's chat box).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_coasty import CoastyComputerTool, CoastyMiddleware

SYSTEM_PROMPT = (
    "You plan work for a person. Hand anything that needs a computer (a desktop app, a "
    "website, a logged-in account) to the coasty_computer tool as one complete task, then "
    "report what it found."
)


class HistoryPlanner(BaseChatModel):
    """A scripted planner: the user's last request becomes one Coasty task, then a summary."""

    @property
    def _llm_type(self) -> str:
        return "scripted-history-planner"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> HistoryPlanner:  # type: ignore[override]
        return self

    def _decide(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(f"final: {last.text}")
        request = next(
            (m for m in reversed(messages) if isinstance(m, HumanMessage)), HumanMessage("")
        )
        call_id = f"call_{len(messages)}"
        return AIMessage(
            "",
            tool_calls=[
                {
                    "name": "coasty_computer",
                    # .text reads content blocks (Agent Chat UI's) and strings alike.
                    "args": {"task": request.text},
                    "id": call_id,
                    "type": "tool_call",
                }
            ],
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._decide(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._decide(messages))])


def planner_model() -> BaseChatModel:
    """``PLANNER_MODEL`` through ``init_chat_model``, or the scripted planner."""
    name = os.environ.get("PLANNER_MODEL")
    if not name:
        return HistoryPlanner()
    from langchain.chat_models import init_chat_model

    return init_chat_model(name)


def coasty_tool() -> CoastyComputerTool:
    """The Coasty tool, configured from the environment."""
    wait = os.environ.get("COASTY_WAIT", "stream")
    if wait not in ("stream", "durable"):
        raise ValueError(f"COASTY_WAIT must be 'stream' or 'durable', not {wait!r}")
    return CoastyComputerTool(
        machine_id=os.environ.get("COASTY_MACHINE_ID") or None,
        webhook_url=os.environ.get("COASTY_WEBHOOK_URL") or None,
        wait=wait,
    )


tool = coasty_tool()
graph = create_agent(
    planner_model(), [tool], system_prompt=SYSTEM_PROMPT, middleware=[CoastyMiddleware(tool)]
)
