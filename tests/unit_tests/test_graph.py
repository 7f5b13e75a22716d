"""Idempotency keys and answered-interrupt counting from a LangGraph config."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from langchain_coasty._graph import answered_interrupts, graph_context


@dataclass
class Scratchpad:
    resume: list[Any] = field(default_factory=list)
    null_resume: Any = None

    def get_null_resume(self, consume: bool = False) -> Any:
        return self.null_resume


@dataclass
class Runtime:
    tool_call_id: str
    stream_writer: Any = None


def _config(scratchpad: Any, ns: str = "tools:1f2e", thread: str | None = "t1") -> Any:
    return {
        "configurable": {
            "thread_id": thread,
            "checkpoint_ns": ns,
            "__pregel_scratchpad": scratchpad,
            "__pregel_checkpointer": object(),
        }
    }


BODY = {"task": "t", "machine_id": "m"}


def test_outside_a_graph_there_is_no_context() -> None:
    assert graph_context({}) is None
    assert graph_context(None) is None


def test_key_is_stable_for_the_same_position_and_differs_otherwise() -> None:
    sp = Scratchpad()
    key = graph_context(_config(sp), Runtime("call_1"))
    assert key is not None
    k1 = key.idempotency_key(BODY)
    assert k1 is not None
    assert re.fullmatch(r"lc-[0-9a-f]{40}", k1)
    again = graph_context(_config(Scratchpad(resume=["x"])), Runtime("call_1"))
    assert again is not None and again.idempotency_key(BODY) == k1
    others = [
        graph_context(_config(sp), Runtime("call_2")),
        graph_context(_config(sp, ns="tools:other"), Runtime("call_1")),
        graph_context(_config(sp, thread="t2"), Runtime("call_1")),
    ]
    assert len({o.idempotency_key(BODY) for o in others if o} | {k1}) == 4


def test_no_thread_or_no_checkpointer_means_no_derived_key() -> None:
    ctx = graph_context(_config(Scratchpad(), thread=None), Runtime("c"))
    assert ctx is not None and ctx.idempotency_key(BODY) is None
    config = _config(Scratchpad())
    config["configurable"]["__pregel_checkpointer"] = None
    ctx = graph_context(config, Runtime("c"))
    assert ctx is not None and ctx.idempotency_key(BODY) is None


def test_without_a_tool_call_identical_requests_of_one_execution_get_distinct_keys() -> None:
    sp = Scratchpad()
    first = graph_context(_config(sp))
    second = graph_context(_config(sp))
    assert first is not None and second is not None
    k1, k2 = first.idempotency_key(BODY), second.idempotency_key(BODY)
    assert k1 != k2
    replay = graph_context(_config(Scratchpad()))
    assert replay is not None and replay.idempotency_key(BODY) == k1


def test_answered_interrupts_counts_stored_and_new_answers() -> None:
    assert answered_interrupts(Scratchpad()) == 0
    assert answered_interrupts(Scratchpad(resume=["a"])) == 1
    assert answered_interrupts(Scratchpad(resume=["a"], null_resume="b")) == 2
    assert answered_interrupts(object()) == 0


def test_metadata_names_the_graph_position() -> None:
    ctx = graph_context(_config(Scratchpad()), Runtime("call_9"))
    assert ctx is not None
    assert ctx.metadata("lc-k") == {
        "langchain_thread_id": "t1",
        "langchain_checkpoint_ns": "tools:1f2e",
        "langchain_tool_call_id": "call_9",
        "idempotency_key": "lc-k",
    }
