"""Helpers for driving the LangChain layer against the sandbox over loopback."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from langchain_coasty.callbacks import CoastyCallbackHandler, CoastyEventPayload
from tests.fakes import ScriptedChatModel, Step, call

__all__ = ["ScriptedChatModel", "Step", "call"]


def tool_calls(*calls: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=list(calls))


def last_tool_messages(messages: list[BaseMessage]) -> list[ToolMessage]:
    """The tool messages answering the last AI message."""
    out: list[ToolMessage] = []
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            out.append(message)
        else:
            break
    return list(reversed(out))


class Recorder(CoastyCallbackHandler):
    """Records every delivered coasty event (thread-safe) and the typed hooks."""

    def __init__(self) -> None:
        self.events: list[CoastyEventPayload] = []
        self.hooks: Counter[str] = Counter()
        self._lock = threading.Lock()

    def on_coasty_event(self, event: CoastyEventPayload) -> None:
        with self._lock:
            self.events.append(event)

    def on_coasty_status(self, event: CoastyEventPayload) -> None:
        self.hooks["status"] += 1

    def on_coasty_step(self, event: CoastyEventPayload) -> None:
        self.hooks["step"] += 1

    def on_coasty_billing(self, event: CoastyEventPayload) -> None:
        self.hooks["billing"] += 1

    def on_coasty_awaiting_human(self, event: CoastyEventPayload) -> None:
        self.hooks["awaiting_human"] += 1

    def on_coasty_done(self, event: CoastyEventPayload) -> None:
        self.hooks["done"] += 1

    def by_run(self) -> dict[str, list[int]]:
        runs: dict[str, list[int]] = {}
        for event in self.events:
            runs.setdefault(event["run_id"], []).append(event["seq"])
        return runs

    def types(self, run_id: str | None = None) -> list[str]:
        return [e["type"] for e in self.events if run_id is None or e["run_id"] == run_id]


def assert_exactly_once(seqs_by_run: dict[str, list[int]], finished: bool = True) -> None:
    """Every run's events arrived once each, in order, with no gap from seq 1."""
    for run_id, seqs in seqs_by_run.items():
        assert seqs == list(range(1, len(seqs) + 1)), (run_id, seqs)


@pytest.fixture
def coasty_env(sb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """COASTY_API_KEY / COASTY_BASE_URL pointing at the sandbox."""
    monkeypatch.setenv("COASTY_API_KEY", sb.api_key)
    monkeypatch.setenv("COASTY_BASE_URL", sb.base_url)
    return sb


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
