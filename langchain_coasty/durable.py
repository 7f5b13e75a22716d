"""Durable waits: a graph that waits for a Coasty run without holding a stream, and its wake-up.

With ``wait="durable"`` on ``CoastyComputerTool`` / ``CoastyRunnable`` the call creates the
run and immediately pauses the graph with an interrupt whose value is a ``CoastyWait``
(``{"type": "coasty_wait", "run_id", "machine_id", "idempotency_key", "status"}``). Nothing
is held while the run works: no connection, no worker, no task. The graph is woken by
resuming that interrupt with the run's outcome:

* a verified webhook event (``WebhookEvent`` as a dict, what ``resume_from_webhook`` sends),
* the run's JSON, or
* ``RECHECK`` (``{"coasty_wait": "recheck"}``) from a poller that wants the call to look again.

The re-executed call then fetches the run (one GET; it never trusts the wake-up value) and:
returns the same content and artifact as the streaming mode when the run has ended; raises
the ordinary HITL interrupt with the Coasty agent's question when it waits for a person
(answering it resumes the run and goes back to a durable wait); waits again otherwise. The
run's events are delivered (callbacks, custom stream, ``event_log``) in catch-up batches at
these wake-ups, each once.

A webhook receiver verifies the delivery (``verify_run_webhook`` reads the run's signing
secret from the ``WebhookSecretStore`` the tool put it in when it created the run: in
memory for one process, a LangGraph ``BaseStore`` such as ``PostgresStore`` across
processes), then calls ``resume_from_webhook(graph, event, client=client)``: it fetches
the run, finds the thread from its ``metadata`` (``langchain_thread_id``) and resumes the
interrupt waiting for that run. Resumes of one
thread must not overlap: in one process ``resume_from_webhook`` serialises them with
``thread_lock(thread_id)`` (use the same lock when you answer a pause); on LangGraph Server
create the resume run with ``multitask_strategy="enqueue"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from pydantic import ValidationError

from langchain_coasty._engine.durable_steps import RECHECK, WAIT_TYPE, CoastyWait
from langchain_coasty._graph import THREAD_ID_KEY, TRUNCATED_KEY
from langchain_coasty._lru import BoundedDict
from langchain_coasty.client import AsyncCoastyClient, CoastyClient, NotFoundError, Run
from langchain_coasty.human import pause_run_id
from langchain_coasty.webhook_secrets import (
    BaseStoreWebhookSecrets,
    InMemoryWebhookSecrets,
    WebhookSecretStore,
)
from langchain_coasty.webhooks import (
    WebhookEvent,
    WebhookSecretNotFoundError,
    averify_run_webhook,
    verify_run_webhook,
)

__all__ = [
    "RECHECK",
    "WAIT_TYPE",
    "BaseStoreWebhookSecrets",
    "CoastyWait",
    "InMemoryWebhookSecrets",
    "ResumeOutcome",
    "WebhookSecretNotFoundError",
    "WebhookSecretStore",
    "aresume_from_webhook",
    "averify_run_webhook",
    "find_thread",
    "resume_from_webhook",
    "thread_lock",
    "verify_run_webhook",
]

_TERMINAL_EVENTS = ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out")
_LOCK_POLL = (0.002, 0.05)
"""First and longest pause between tries of a busy thread lock from async code (seconds)."""


@dataclass
class ResumeOutcome:
    """What ``resume_from_webhook`` did."""

    status: Literal["resumed", "not_waiting", "no_thread"]
    """``resumed``; ``not_waiting`` (no interrupt of the thread waits for this run: a late
    or repeated delivery, or the thread is not paused yet); ``no_thread`` (the run's
    metadata names no thread)."""
    thread_id: str | None = None
    interrupt_id: str | None = None
    result: Any = None
    """What ``graph.invoke`` returned (the thread's state, with ``__interrupt__`` if it paused
    again)."""


def find_thread(run: Run | Mapping[str, Any]) -> RunnableConfig | None:
    """The config of the graph thread a run was created from, read from its ``metadata``."""
    meta = run.metadata if isinstance(run, Run) else run.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    thread_id = meta.get(THREAD_ID_KEY)
    cut = str(meta.get(TRUNCATED_KEY) or "")
    if not isinstance(thread_id, str) or not thread_id or THREAD_ID_KEY in cut:
        return None
    return {"configurable": {"thread_id": thread_id}}


_locks: BoundedDict[str, threading.Lock] = BoundedDict(10_000, pinned=lambda lock: lock.locked())


def thread_lock(thread_id: str) -> threading.Lock:
    """The in-process lock that keeps resumes of one thread from overlapping."""
    return _locks.get_or_make(thread_id, threading.Lock)


async def _acquire(lock: threading.Lock) -> None:
    """Take ``lock`` from async code without blocking the loop or holding a worker thread.

    Only a successful non-blocking try takes it, so a task cancelled while it waits has
    taken nothing: there is no lock left held by a waiter that went away.
    """
    delay, longest = _LOCK_POLL
    while not lock.acquire(blocking=False):
        await asyncio.sleep(delay)
        delay = min(delay * 2, longest)


def _event(event: WebhookEvent | Mapping[str, Any]) -> tuple[dict[str, Any], str | None, Any]:
    """The resume value, the run id and the event type of a delivery, in either shape."""
    if not isinstance(event, WebhookEvent):
        try:
            event = WebhookEvent.model_validate(event)
        except ValidationError:
            body = dict(event)
            return body, None, body.get("type")
    return event.model_dump(mode="json"), event.run_id, event.type


def _waiting_interrupt(snapshot: Any, run_id: str | None, kind: Any) -> Any:
    """The pending interrupt that this event should resume, if any."""
    terminal = kind in _TERMINAL_EVENTS
    fallback = None
    for pending in getattr(snapshot, "interrupts", ()) or ():
        value = getattr(pending, "value", None)
        if not isinstance(value, Mapping):
            continue
        if value.get("type") == WAIT_TYPE and value.get("run_id") == run_id:
            return pending
        if terminal and pause_run_id(value) == run_id:
            # The run ended while a person was being asked: wake that call instead.
            fallback = pending
    return fallback


def _given_thread(config: RunnableConfig | None) -> bool:
    return ((config or {}).get("configurable") or {}).get("thread_id") is not None


def _with_thread(
    config: RunnableConfig | None, found: RunnableConfig | None
) -> RunnableConfig | None:
    if _given_thread(config):
        return config
    if found is None:
        return None
    given: Mapping[str, Any] = (config or {}).get("configurable") or {}
    merged: dict[str, Any] = {**(config or {})}
    merged["configurable"] = {**given, **found["configurable"]}
    return cast(RunnableConfig, merged)


def _body_thread(body: Mapping[str, Any]) -> RunnableConfig | None:
    data = body.get("data")
    return find_thread(data) if isinstance(data, Mapping) else None


def resume_from_webhook(
    graph: Any,
    event: WebhookEvent | Mapping[str, Any],
    *,
    config: RunnableConfig | None = None,
    client: CoastyClient | None = None,
) -> ResumeOutcome:
    """Resume the thread whose durable wait (or pause) this verified webhook event concerns.

    ``event`` is a verified delivery (``verify_run_webhook`` / ``verify_webhook``), in
    either body shape. The thread is ``config``'s when it names one (``config`` may also
    carry callbacks and other options for the invocation); else it is read from the run's
    metadata: from ``client.runs.get(event.run_id)`` when a ``client`` is given (Coasty's
    deliveries need not carry metadata), from the body otherwise. Runs
    ``graph.invoke(Command(resume={interrupt_id: event}), config)`` under ``thread_lock``.
    """
    from langgraph.types import Command

    body, run_id, kind = _event(event)
    found: RunnableConfig | None = None
    if not _given_thread(config):
        if client is None:
            found = _body_thread(body)
        elif run_id is not None:
            with contextlib.suppress(NotFoundError):
                found = find_thread(client.runs.get(run_id))
    config = _with_thread(config, found)
    if config is None:
        return ResumeOutcome("no_thread")
    thread_id = str(config["configurable"]["thread_id"])
    with thread_lock(thread_id):
        pending = _waiting_interrupt(graph.get_state(config), run_id, kind)
        if pending is None:
            return ResumeOutcome("not_waiting", thread_id)
        result = graph.invoke(Command(resume={pending.id: body}), config)
    return ResumeOutcome("resumed", thread_id, pending.id, result)


async def aresume_from_webhook(
    graph: Any,
    event: WebhookEvent | Mapping[str, Any],
    *,
    config: RunnableConfig | None = None,
    client: AsyncCoastyClient | None = None,
) -> ResumeOutcome:
    """Async twin of ``resume_from_webhook`` (``graph.ainvoke``)."""
    from langgraph.types import Command

    body, run_id, kind = _event(event)
    found: RunnableConfig | None = None
    if not _given_thread(config):
        if client is None:
            found = _body_thread(body)
        elif run_id is not None:
            with contextlib.suppress(NotFoundError):
                found = find_thread(await client.runs.get(run_id))
    config = _with_thread(config, found)
    if config is None:
        return ResumeOutcome("no_thread")
    thread_id = str(config["configurable"]["thread_id"])
    lock = thread_lock(thread_id)
    await _acquire(lock)
    try:
        pending = _waiting_interrupt(await graph.aget_state(config), run_id, kind)
        if pending is None:
            return ResumeOutcome("not_waiting", thread_id)
        result = await graph.ainvoke(Command(resume={pending.id: body}), config)
    finally:
        lock.release()
    return ResumeOutcome("resumed", thread_id, pending.id, result)
