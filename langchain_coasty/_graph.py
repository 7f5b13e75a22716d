"""LangGraph touch points: the graph context of a call, idempotency keys, run metadata, interrupts.

LangGraph is optional: it is imported lazily, and only when a call runs inside a graph.
The keys read here from ``config["configurable"]`` are LangGraph internals
(``__pregel_scratchpad``, ``__pregel_checkpointer``, ``__pregel_runtime``); every access is
guarded so that a change in LangGraph degrades to "not in a graph" instead of failing.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.runnables import RunnableConfig

from langchain_coasty._lru import BoundedDict
from langchain_coasty.human import AnswerValue

_SCRATCHPAD = "__pregel_scratchpad"
_CHECKPOINTER = "__pregel_checkpointer"
_RUNTIME = "__pregel_runtime"
MAX_METADATA_VALUE = 256
"""Longest value of each ``langchain_*`` run metadata entry (characters)."""
THREAD_ID_KEY = "langchain_thread_id"
CHECKPOINT_NS_KEY = "langchain_checkpoint_ns"
TOOL_CALL_ID_KEY = "langchain_tool_call_id"
IDEMPOTENCY_KEY_KEY = "idempotency_key"
TRUNCATED_KEY = "langchain_truncated"


@dataclass
class GraphContext:
    """Where a call runs inside a LangGraph graph (``None`` outside one)."""

    thread_id: str | None
    checkpoint_ns: str
    tool_call_id: str | None
    has_checkpointer: bool
    answered: int
    stream_writer: Callable[[Any], None] | None
    scratchpad: Any = field(default=None, repr=False)

    def idempotency_key(self, body: Mapping[str, Any]) -> str | None:
        """The key that stays the same when LangGraph re-executes this call, if any.

        ``checkpoint_ns`` ("tools:<task id>") is kept whole: the task id is stable across
        re-executions of a task (including in another process, from a saved checkpoint)
        and tells apart two steps that reuse a tool call id.
        """
        if not self.thread_id or not self.has_checkpointer:
            return None
        call = self.tool_call_id
        if not call:
            # A runnable called from a node: the nth identical request of this execution.
            digest = _body_digest(body)
            call = f"body:{digest}#{_ordinal(self.scratchpad, digest)}"
        material = f"{self.thread_id}|{self.checkpoint_ns}|{call}"
        return "lc-" + hashlib.sha256(material.encode()).hexdigest()[:40]

    def metadata(self, key: str) -> dict[str, str]:
        """Run metadata tying the Coasty run to this graph position (see ``run_metadata``)."""
        return run_metadata(
            thread_id=self.thread_id,
            checkpoint_ns=self.checkpoint_ns,
            tool_call_id=self.tool_call_id,
            idempotency_key=key,
        )


def run_metadata(
    *,
    thread_id: str | None,
    checkpoint_ns: str | None,
    tool_call_id: str | None,
    idempotency_key: str,
) -> dict[str, str]:
    """The ``metadata`` a run created inside a graph carries, so anyone can find its thread.

    Keys (empty values are left out): ``langchain_thread_id`` (the LangGraph thread),
    ``langchain_checkpoint_ns`` (the task's namespace, ``"tools:<task id>"``),
    ``langchain_tool_call_id`` (the planner's tool call) and ``idempotency_key`` (the create's
    key, which also fetches the original create response, webhook secret included, for 24 h
    through ``client.idempotency.get``). Each value is capped at ``MAX_METADATA_VALUE``
    characters, so the block stays under about 1.1 KB and 5 of the 50 keys a run allows;
    when a value had to be cut, ``langchain_truncated`` names the cut keys and the thread
    can no longer be found from the run alone.
    """
    given = {
        THREAD_ID_KEY: thread_id or "",
        CHECKPOINT_NS_KEY: checkpoint_ns or "",
        TOOL_CALL_ID_KEY: tool_call_id or "",
        IDEMPOTENCY_KEY_KEY: idempotency_key,
    }
    out = {k: v[:MAX_METADATA_VALUE] for k, v in given.items() if v}
    cut = [k for k, v in given.items() if len(v) > MAX_METADATA_VALUE]
    if cut:
        out[TRUNCATED_KEY] = ",".join(cut)
    return out


def graph_context(config: RunnableConfig | None, runtime: Any = None) -> GraphContext | None:
    """Read the graph context from a runnable config (and a ``ToolRuntime`` when given)."""
    configurable: Mapping[str, Any] = (config or {}).get("configurable") or {}
    if runtime is not None:
        runtime_config = getattr(runtime, "config", None)
        if isinstance(runtime_config, Mapping):
            configurable = {**configurable, **(runtime_config.get("configurable") or {})}
    scratchpad = configurable.get(_SCRATCHPAD)
    if scratchpad is None:
        return None
    writer = getattr(runtime, "stream_writer", None) if runtime is not None else None
    if writer is None:
        writer = getattr(configurable.get(_RUNTIME), "stream_writer", None)
    thread_id = configurable.get("thread_id")
    return GraphContext(
        thread_id=None if thread_id is None else str(thread_id),
        checkpoint_ns=str(configurable.get("checkpoint_ns") or ""),
        tool_call_id=getattr(runtime, "tool_call_id", None) if runtime is not None else None,
        has_checkpointer=configurable.get(_CHECKPOINTER) is not None,
        answered=answered_interrupts(scratchpad),
        stream_writer=writer if callable(writer) else None,
        scratchpad=scratchpad,
    )


def answered_interrupts(scratchpad: Any) -> int:
    """How many interrupts of the current task have an answer (stored or just given)."""
    try:
        count = len(scratchpad.resume)
    except (AttributeError, TypeError):
        return 0
    try:
        if scratchpad.get_null_resume(False) is not None:
            count += 1
    except (AttributeError, TypeError):
        pass
    return count


def call_interrupt(payload: dict[str, Any]) -> Any:
    """Call LangGraph's ``interrupt()``; it returns the stored answer or raises GraphInterrupt.

    The answer schema is published (and validated) when LangGraph supports
    ``response_schema``: an invalid answer is rejected without being saved.
    """
    from langgraph.types import interrupt

    if _supports_response_schema(interrupt):
        return interrupt(payload, response_schema=cast(Any, AnswerValue))
    return interrupt(payload)


def is_graph_bubble_up(exc: BaseException) -> bool:
    """Whether ``exc`` is LangGraph control flow (an interrupt, a parent command)."""
    if not type(exc).__module__.startswith("langgraph"):
        return False  # LangGraph's own exceptions only: no import for everything else
    from langgraph.errors import GraphBubbleUp

    return isinstance(exc, GraphBubbleUp)


def plain_interrupt(value: Any) -> Any:
    """Call LangGraph's ``interrupt()`` with no answer schema (a durable wait's wake-up)."""
    from langgraph.types import interrupt

    return interrupt(value)


_signature_cache: dict[int, bool] = {}


def _supports_response_schema(fn: Callable[..., Any]) -> bool:
    key = id(fn)
    if key not in _signature_cache:
        try:
            _signature_cache[key] = "response_schema" in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            _signature_cache[key] = False
    return _signature_cache[key]


def _body_digest(body: Mapping[str, Any]) -> str:
    raw = json.dumps(body, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


_ordinals: BoundedDict[int, tuple[Any, dict[str, int]]] = BoundedDict(256)
_ordinals_lock = threading.Lock()


def _ordinal(scratchpad: Any, digest: str) -> int:
    """Count identical requests within one task execution (one scratchpad object)."""
    with _ordinals_lock:
        entry = _ordinals.get(id(scratchpad))
        if entry is None or entry[0] is not scratchpad:
            entry = (scratchpad, {})
            _ordinals.put(id(scratchpad), entry)
        counts = entry[1]
        counts[digest] = counts.get(digest, 0) + 1
        return counts[digest]
