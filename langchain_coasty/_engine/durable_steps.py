"""The decisions of a durable wait: create the run, pause the graph, look again when woken.

The call pauses the graph with a ``coasty_wait`` interrupt (a ``CoastyWait`` value) and holds
nothing while the run works. Resumed with a wake-up (``is_wake_up``), the re-executed call
fetches the run and returns its result, raises the person's pause as the ordinary HITL
interrupt, or waits again. The receiver side (webhooks to threads) is
``langchain_coasty.durable``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any, Literal, TypedDict, cast

from langchain_coasty._engine.ops import (
    AskPolicy,
    Attached,
    Deliver,
    GetRun,
    Op,
    ReadEvents,
    Steps,
    answer_ops,
    cancel_ops,
)
from langchain_coasty._engine.session import RunSession
from langchain_coasty._graph import plain_interrupt
from langchain_coasty.client import CreateResult, Run, RunEvent, RunStatus
from langchain_coasty.human import PauseRequest
from langchain_coasty.webhooks import WebhookEvent

__all__ = ["RECHECK", "WAIT_TYPE", "CoastyWait", "durable_steps", "is_wake_up", "wait_request"]

WAIT_TYPE: Literal["coasty_wait"] = "coasty_wait"
"""``type`` of the interrupt value a durable wait raises."""
RECHECK: dict[str, str] = {"coasty_wait": "recheck"}
"""Resume value that makes a durable wait look at its run again."""


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
        status=RunStatus(run.status).value,
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
    kind = value.get("type") or value.get("event")  # either published webhook body
    run = value.get("data") if isinstance(value.get("data"), Mapping) else value.get("run_id")
    if isinstance(kind, str) and kind.startswith("run.") and isinstance(run, Mapping | str):
        return True
    has_id = "id" in value or "run_id" in value
    return value.get("object") == "agent.run" or (has_id and "status" in value)


def durable_steps(session: RunSession, created: CreateResult) -> Steps:
    """The decisions of a durable wait; returns the final run when the call ends.

    Answers already given replay in order (LangGraph re-runs the call from its first
    line): wake-ups are only signals, a person's answer is sent to Coasty when it is the
    newest one. What to do next is always decided from a fresh GET of the run.
    """
    run = created.run
    ctx, plan = session.ctx, session.plan
    assert ctx is not None and plan is not None
    session.attach(run)
    yield Attached()
    known = session.progress.seq > 0 or bool(session.progress.pauses)
    answered = ctx.answered
    human_answers = 0
    for index in range(1, answered + 1):
        answer = plain_interrupt(wait_request(run, plan.key))
        if is_wake_up(answer):
            continue
        human_answers += 1
        parsed = session.parse(answer)
        session.progress.applied = max(session.progress.applied, human_answers)
        if index == answered:
            session.note_answer(parsed)
            yield from answer_ops(session, parsed)
    # Another process delivered the events up to the pauses answered so far.
    silent = 0 if known else human_answers
    session.silent_pauses = silent

    current: Run = run if answered == 0 and not created.replayed else (yield GetRun(run.id))
    while True:
        if current.is_terminal:
            yield from _catch_up(session, stop_at_pause=False, silent=silent)
            session.progress.done = True
            return session.finish(current)
        if current.status == RunStatus.AWAITING_HUMAN:
            pause = _surfaced_pause(session)
            if pause is None:
                events = yield from _catch_up(session, stop_at_pause=True, silent=silent)
                pause = _last_pause(session, events, current)
            silent = 0
            action = session.pause_action(pause, False)
            if action == "interrupt":
                parsed = session.parse(session.ask_person(pause))  # raises until answered
                session.progress.applied = len(session.progress.pauses)
                session.note_answer(parsed)
                yield from answer_ops(session, parsed)
            elif action == "no_checkpointer":  # pragma: no cover - checked before creating
                raise session.no_checkpointer_error()
            elif action == "return":
                return session.finish(current)
            elif action == "fail":
                yield from cancel_ops(session)
            else:
                policy = cast(Callable[[PauseRequest], Any], session.policy)
                parsed = session.parse((yield AskPolicy(policy, pause)))
                session.progress.applied = len(session.progress.pauses)
                session.note_answer(parsed)
                yield from answer_ops(session, parsed)
            current = yield GetRun(run.id)
            continue
        if session.over_budget(current.credits_charged):
            yield from cancel_ops(session)
            current = yield GetRun(run.id)
            continue
        answer = plain_interrupt(wait_request(current, plan.key))  # raises: the durable wait
        if not is_wake_up(answer):
            parsed = session.parse(answer)
            session.note_answer(parsed)
            yield from answer_ops(session, parsed)
        current = yield GetRun(run.id)


def _catch_up(
    session: RunSession, *, stop_at_pause: bool, silent: int
) -> Generator[Op, Any, list[RunEvent]]:
    """Read the events since the last delivered one (to ``done`` or the current pause)."""
    seen_before = session.pauses_seen
    target = max(seen_before, silent) + 1
    count = 0

    def stop(event: RunEvent) -> bool:
        nonlocal count
        if event.type == "awaiting_human":
            count += 1
            return stop_at_pause and seen_before + count >= target
        return event.type == "done"

    events: list[RunEvent] = yield ReadEvents(session.run_id, session.progress.seq, stop)
    for event in events:
        if session.observe(event).deliver:
            yield Deliver(session.payload, event)
        session.mark_delivered(event)
    return events


def _surfaced_pause(session: RunSession) -> PauseRequest | None:
    """The current pause when this process already delivered it (nothing new to read)."""
    pauses = session.progress.pauses
    unanswered = len(pauses) > session.progress.applied
    if unanswered and pauses[-1]["coasty"].get("seq") == session.progress.seq:
        return pauses.pop()  # pause_action records it again
    return None


def _last_pause(session: RunSession, events: list[RunEvent], run: Run) -> PauseRequest:
    for event in reversed(events):
        if event.type == "awaiting_human":
            data: Mapping[str, Any] = event.data if isinstance(event.data, Mapping) else {}
            return session.pause_request(event.seq, data, run)
    return session.pause_request(session.progress.seq, {"reason": run.awaiting_human_reason}, run)
