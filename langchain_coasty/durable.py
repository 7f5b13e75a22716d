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

A webhook receiver verifies the delivery (``verify_run_webhook`` fetches the run's signing
secret through its idempotency key, so the receiver keeps no state), then calls
``resume_from_webhook(graph, event)``: it finds the thread from the run's ``metadata``
(``langchain_thread_id``) and resumes the interrupt waiting for that run. Resumes of one
thread must not overlap: in one process ``resume_from_webhook`` serialises them with
``thread_lock(thread_id)`` (use the same lock when you answer a pause); on LangGraph Server
create the resume run with ``multitask_strategy="enqueue"``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from pydantic import SecretStr

from langchain_coasty._graph import THREAD_ID_KEY, TRUNCATED_KEY, call_interrupt
from langchain_coasty.client import NotFoundError, Run, RunEvent
from langchain_coasty.human import HumanAnswer, PauseRequest, parse_answer
from langchain_coasty.webhooks import (
    MAX_PAYLOAD_BYTES,
    WebhookEvent,
    WebhookVerificationError,
    verify_webhook,
)

if TYPE_CHECKING:
    from langchain_coasty.client import AsyncCoastyClient, CoastyClient, CreateResult
    from langchain_coasty.runnable import RunSession

__all__ = [
    "RECHECK",
    "WAIT_TYPE",
    "CoastyWait",
    "ResumeOutcome",
    "aresume_from_webhook",
    "averify_run_webhook",
    "find_thread",
    "is_wake_up",
    "resume_from_webhook",
    "thread_lock",
    "verify_run_webhook",
]

WAIT_TYPE: Literal["coasty_wait"] = "coasty_wait"
"""``type`` of the interrupt value a durable wait raises."""
RECHECK: dict[str, str] = {"coasty_wait": "recheck"}
"""Resume value that makes a durable wait look at its run again."""
_TERMINAL_EVENTS = ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out")


class CoastyWait(TypedDict):
    """The interrupt value of a durable wait: which run the call waits for."""

    type: Literal["coasty_wait"]
    run_id: str
    machine_id: str | None
    idempotency_key: str
    status: str
    resume_with: str


def wait_request(run: Run, key: str) -> CoastyWait:
    """The interrupt value for a durable wait on ``run``."""
    return CoastyWait(
        type=WAIT_TYPE,
        run_id=run.id,
        machine_id=run.machine_id,
        idempotency_key=key,
        status=run.status.value,
        resume_with="the run's webhook event, the run JSON, or {'coasty_wait': 'recheck'}",
    )


def is_wake_up(value: Any) -> bool:
    """Whether a resume value wakes a durable wait (rather than answering a person's pause)."""
    if isinstance(value, WebhookEvent | Run):
        return True
    if not isinstance(value, Mapping):
        return False
    if value.get("coasty_wait") is not None:
        return True
    kind = value.get("type")
    if isinstance(kind, str) and kind.startswith("run.") and isinstance(value.get("data"), Mapping):
        return True
    return value.get("object") == "agent.run" or ("id" in value and "status" in value)


def _plain_interrupt(value: Any) -> Any:
    from langgraph.types import interrupt

    return interrupt(value)


# --- the tool side: one durable wait, as steps the sync and async drivers carry out ----


@dataclass
class Op:
    """One request of a durable wait to its driver (which does the I/O)."""

    kind: Literal["get", "events", "dispatch", "apply", "cancel", "call"]
    arg: Any = None
    event: RunEvent | None = None


def durable_steps(session: RunSession, created: CreateResult) -> Generator[Op, Any, None]:
    """The decisions of a durable wait; ``session.result`` is set when the call returns.

    Answers already given replay in order (LangGraph re-runs the call from its first
    line): wake-ups are only signals, a person's answer is sent to Coasty when it is the
    newest one. What to do next is always decided from a fresh GET of the run.
    """
    run = created.run
    ctx = session.ctx
    assert ctx is not None and session.request is not None
    key = session.request.key
    known = session.progress.seq > 0 or bool(session.progress.pauses)
    answered = ctx.answered
    human_answers = 0
    for index in range(1, answered + 1):
        answer = _plain_interrupt(wait_request(run, key))
        if is_wake_up(answer):
            continue
        human_answers += 1
        parsed = parse_answer(answer)
        session.progress.applied = max(session.progress.applied, human_answers)
        if index == answered:
            _note_cancel(session, parsed)
            yield Op("apply", parsed)
    # Another process delivered the events up to the pauses answered so far.
    silent = 0 if known else human_answers
    session._silent_pauses = silent

    current = run if answered == 0 and not created.replayed else (yield Op("get"))
    while True:
        if current.status.is_terminal:
            yield from _catch_up(session, stop_at_pause=False, silent=silent)
            session.progress.done = True
            session.result = session.finish(current)
            return
        if current.status.value == "awaiting_human":
            pause = _surfaced_pause(session, current)
            if pause is None:
                events = yield from _catch_up(session, stop_at_pause=True, silent=silent)
                pause = _last_pause(session, events, current)
            silent = 0
            action = session.pause_action(pause, False)
            if action == "interrupt":
                answer = call_interrupt(pause)  # raises: nobody has answered this pause yet
                parsed = parse_answer(answer)
                session.progress.applied = len(session.progress.pauses)
                _note_cancel(session, parsed)
                yield Op("apply", parsed)
            elif action == "no_checkpointer":  # pragma: no cover - checked before creating
                raise session.no_checkpointer_error()
            elif action == "return":
                session.result = session.finish(current)
                return
            elif action == "fail":
                yield Op("cancel")
            else:
                parsed = parse_answer((yield Op("call", pause)))
                session.progress.applied = len(session.progress.pauses)
                _note_cancel(session, parsed)
                yield Op("apply", parsed)
            current = yield Op("get")
            continue
        if _over_budget(session, current):
            yield Op("cancel")
            current = yield Op("get")
            continue
        answer = _plain_interrupt(wait_request(current, key))  # raises: the durable wait
        if not is_wake_up(answer):
            parsed = parse_answer(answer)
            _note_cancel(session, parsed)
            yield Op("apply", parsed)
        current = yield Op("get")


def _catch_up(
    session: RunSession, *, stop_at_pause: bool, silent: int
) -> Generator[Op, Any, list[RunEvent]]:
    """Read the events since the last delivered one (to ``done`` or the current pause)."""
    seen_before = session._pauses_seen
    target = max(seen_before, silent) + 1
    count = 0

    def stop(event: RunEvent) -> bool:
        nonlocal count
        if event.type == "awaiting_human":
            count += 1
            return stop_at_pause and seen_before + count >= target
        return event.type == "done"

    events: list[RunEvent] = yield Op("events", (session.progress.seq, stop))
    for event in events:
        deliver, _, _ = session.observe(event)
        if deliver:
            yield Op("dispatch", session.payload(event), event)
        session.delivered(event)
    return events


def _surfaced_pause(session: RunSession, run: Run) -> PauseRequest | None:
    """The current pause when this process already delivered it (nothing new to read)."""
    pauses = session.progress.pauses
    unanswered = len(pauses) > session.progress.applied
    if unanswered and pauses[-1]["coasty"].get("seq") == session.progress.seq:
        return pauses.pop()  # pause_action records it again
    return None


def _last_pause(session: RunSession, events: list[RunEvent], run: Run) -> PauseRequest:
    from langchain_coasty.human import build_pause_request

    for event in reversed(events):
        if event.type == "awaiting_human":
            data: Mapping[str, Any] = event.data if isinstance(event.data, Mapping) else {}
            seq = event.seq
            break
    else:
        data, seq = {"reason": run.awaiting_human_reason}, session.progress.seq
    return build_pause_request(
        task=run.task or "",
        machine_id=run.machine_id,
        run_id=run.id,
        seq=seq,
        data=data,
        steps_completed=run.steps_completed,
        credits_charged=run.credits_charged,
    )


def _note_cancel(session: RunSession, answer: HumanAnswer) -> None:
    if answer.action == "cancel":
        session.stop_reason = "rejected"
        session.stop_note = "cancelled by the person answering the pause" + (
            f": {answer.note}" if answer.note else ""
        )


def _over_budget(session: RunSession, run: Run) -> bool:
    limit = session.settings.max_cost_usd
    if limit is None or session.cancel_sent or run.credits_charged is None:
        return False
    if run.credits_charged / 100 <= limit:
        return False
    session.stop_reason = "budget_exceeded"
    session.stop_note = (
        f"stopped: cost budget ${limit:.2f} exceeded (${run.credits_charged / 100:.2f} charged)"
    )
    return True


# --- the receiver side: from a verified webhook to the waiting thread ----------------


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


_locks: OrderedDict[str, threading.Lock] = OrderedDict()
_locks_guard = threading.Lock()


def thread_lock(thread_id: str) -> threading.Lock:
    """The in-process lock that keeps resumes of one thread from overlapping."""
    with _locks_guard:
        lock = _locks.get(thread_id)
        if lock is None:
            lock = _locks[thread_id] = threading.Lock()
            while len(_locks) > 10_000:
                oldest, old = next(iter(_locks.items()))
                if old.locked():
                    break
                del _locks[oldest]
        else:
            _locks.move_to_end(thread_id)
        return lock


def _event_dict(event: WebhookEvent | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(event, WebhookEvent):
        return event.model_dump(mode="json")
    return dict(event)


def _waiting_interrupt(snapshot: Any, event: Mapping[str, Any]) -> Any:
    """The pending interrupt that this event should resume, if any."""
    run = event.get("data") or {}
    run_id = run.get("id")
    terminal = event.get("type") in _TERMINAL_EVENTS
    fallback = None
    for pending in getattr(snapshot, "interrupts", ()) or ():
        value = getattr(pending, "value", None)
        if not isinstance(value, Mapping):
            continue
        if value.get("type") == WAIT_TYPE and value.get("run_id") == run_id:
            return pending
        coasty = value.get("coasty")
        if terminal and isinstance(coasty, Mapping) and coasty.get("run_id") == run_id:
            # The run ended while a person was being asked: wake that call instead.
            fallback = pending
    return fallback


def _plan(
    event: WebhookEvent | Mapping[str, Any], config: RunnableConfig | None
) -> tuple[dict[str, Any], RunnableConfig | None]:
    body = _event_dict(event)
    data = body.get("data")
    given: Mapping[str, Any] = (config or {}).get("configurable") or {}
    if given.get("thread_id") is not None:
        return body, config
    found = find_thread(data) if isinstance(data, Mapping) else None
    if found is None:
        return body, None
    merged: dict[str, Any] = {**(config or {})}
    merged["configurable"] = {**given, **found["configurable"]}
    return body, RunnableConfig(**merged)  # type: ignore[typeddict-item]


def resume_from_webhook(
    graph: Any, event: WebhookEvent | Mapping[str, Any], *, config: RunnableConfig | None = None
) -> ResumeOutcome:
    """Resume the thread whose durable wait (or pause) this verified webhook event concerns.

    ``event`` is a verified delivery (``verify_webhook`` / ``verify_run_webhook``). The
    thread comes from the run's metadata unless ``config`` names one (``config`` may also
    carry callbacks and other options for the invocation). Runs
    ``graph.invoke(Command(resume={interrupt_id: event}), config)`` under ``thread_lock``.
    """
    from langgraph.types import Command

    body, config = _plan(event, config)
    if config is None:
        return ResumeOutcome("no_thread")
    thread_id = str(config["configurable"]["thread_id"])
    with thread_lock(thread_id):
        pending = _waiting_interrupt(graph.get_state(config), body)
        if pending is None:
            return ResumeOutcome("not_waiting", thread_id)
        result = graph.invoke(Command(resume={pending.id: body}), config)
    return ResumeOutcome("resumed", thread_id, pending.id, result)


async def aresume_from_webhook(
    graph: Any, event: WebhookEvent | Mapping[str, Any], *, config: RunnableConfig | None = None
) -> ResumeOutcome:
    """Async twin of ``resume_from_webhook`` (``graph.ainvoke``)."""
    from langgraph.types import Command

    body, config = _plan(event, config)
    if config is None:
        return ResumeOutcome("no_thread")
    thread_id = str(config["configurable"]["thread_id"])
    lock = thread_lock(thread_id)
    await asyncio.to_thread(lock.acquire)
    try:
        pending = _waiting_interrupt(await graph.aget_state(config), body)
        if pending is None:
            return ResumeOutcome("not_waiting", thread_id)
        result = await graph.ainvoke(Command(resume={pending.id: body}), config)
    finally:
        lock.release()
    return ResumeOutcome("resumed", thread_id, pending.id, result)


# --- verifying without keeping secrets: the create response holds the run's secret -----

_secrets: OrderedDict[str, tuple[str, SecretStr]] = OrderedDict()
_secrets_guard = threading.Lock()


def _claimed_key(payload: bytes) -> tuple[str, str]:
    """The (idempotency key, run id) an unverified delivery claims; only used to look up."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WebhookVerificationError(
            f"Webhook body is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    try:
        data = json.loads(payload)["data"]
        key, run_id = data["metadata"]["idempotency_key"], data["id"]
    except (ValueError, KeyError, TypeError):
        raise WebhookVerificationError(
            "The delivery names no run with an idempotency key in its metadata; "
            "verify it with verify_webhook and the secret you kept"
        ) from None
    if not isinstance(key, str) or not isinstance(run_id, str):
        raise WebhookVerificationError("The delivery's run metadata is malformed")
    return key, run_id


def _remember(key: str, run_id: str, result: Any) -> SecretStr:
    if not isinstance(result, Mapping) or result.get("id") != run_id:
        raise WebhookVerificationError("The idempotency key does not belong to this run")
    secret = result.get("webhook_secret")
    if not isinstance(secret, str) or not secret:
        raise WebhookVerificationError("The run was created without a webhook_url")
    value = SecretStr(secret)
    with _secrets_guard:
        _secrets[key] = (run_id, value)
        while len(_secrets) > 4096:
            _secrets.popitem(last=False)
    return value


def _cached(key: str, run_id: str) -> SecretStr | None:
    with _secrets_guard:
        found = _secrets.get(key)
    return found[1] if found is not None and found[0] == run_id else None


def verify_run_webhook(
    client: CoastyClient, payload: bytes, signature_header: str, *, tolerance: int = 300
) -> WebhookEvent:
    """``verify_webhook`` with the run's secret fetched from Coasty (no secret store needed).

    The secret comes with the original create response, which ``GET /v1/idempotency/{key}``
    returns for 24 h; the key is in the run's metadata. Raises ``WebhookVerificationError``.
    """
    key, run_id = _claimed_key(payload)
    secret = _cached(key, run_id)
    if secret is None:
        try:
            lookup: Callable[[str], Any] = client.idempotency.get
            secret = _remember(key, run_id, lookup(key).result)
        except NotFoundError:
            raise WebhookVerificationError("No create with this idempotency key") from None
    return verify_webhook(payload, signature_header, secret, tolerance=tolerance)


async def averify_run_webhook(
    client: AsyncCoastyClient, payload: bytes, signature_header: str, *, tolerance: int = 300
) -> WebhookEvent:
    """Async twin of ``verify_run_webhook``."""
    key, run_id = _claimed_key(payload)
    secret = _cached(key, run_id)
    if secret is None:
        try:
            secret = _remember(key, run_id, (await client.idempotency.get(key)).result)
        except NotFoundError:
            raise WebhookVerificationError("No create with this idempotency key") from None
    return verify_webhook(payload, signature_header, secret, tolerance=tolerance)
