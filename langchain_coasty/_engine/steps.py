"""The decisions of one call, as a generator of operations that does no I/O.

``call_steps`` creates (or reattaches to) the run and waits in the call's mode;
``stream_steps`` follows the event stream: deliver each new event once, enforce the budget
and the idle timeout, and turn each pause into an interrupt, a hand-back, a cancel or a
call of the policy. The durable mode is in ``durable_steps``. Both drivers run these same
generators, so the sync and async paths cannot decide differently.

A server may end a paused run's stream without ``done`` (Coasty's cookbook mock does). The
client's event stream absorbs that end: it waits for the run to leave ``awaiting_human``
and reconnects from its cursor, so ``NEXT_EVENT`` never reports it and every decision about
the pause (interrupt, hand back, cancel, ask the policy, then resume) stays here.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, cast

from langchain_coasty._engine.durable_steps import durable_steps
from langchain_coasty._engine.ops import (
    NEXT_EVENT,
    AskPolicy,
    Attached,
    CaptureScreen,
    CloseStream,
    Create,
    Deliver,
    DeliverScreen,
    GetRun,
    Op,
    OpenStream,
    RenewLease,
    Steps,
    StreamEnd,
    answer_ops,
    cancel_ops,
)
from langchain_coasty._engine.session import RunSession
from langchain_coasty.client import CreateResult, Run, RunEvent
from langchain_coasty.human import PauseRequest, attach_screen, pause_says_why
from langchain_coasty.screens import ScreenMoment, ScreenPayload

__all__ = ["call_steps", "stream_steps"]

_FOLLOW_UP = frozenset({"awaiting_human", "billing", "done"})


def call_steps(session: RunSession) -> Steps:
    """Create the run under the plan's idempotency key, then wait for it in the plan's mode."""
    plan = session.plan
    assert plan is not None, "a call that creates its run needs a plan"
    created: CreateResult = yield Create(plan)
    if plan.wait == "durable":
        return (yield from durable_steps(session, created))
    return (yield from stream_steps(session, created.run))


def stream_steps(session: RunSession, run: Run) -> Steps:
    """Follow ``run``'s event stream to its end, a hand-back, a budget stop or an idle stop."""
    after = session.attach(run)
    yield Attached()
    if session.interrupts:
        # LangGraph re-ran the call: the answers to earlier pauses come back in order.
        for index, earlier in enumerate(list(session.progress.pauses), start=1):
            answer = session.ask_person(earlier)
            yield from answer_ops(session, session.record_answer(answer, index))
    if session.progress.done:
        session.done = session.ended_before_call = True
    else:
        yield OpenStream(run.id, after, session.settings.idle_timeout)
        # Events of these types are looked at again once delivered; any other is handed on
        # and the next one read in the same round trip.
        follow_up = _FOLLOW_UP | ({"step"} if session.wants_screen("step") else set())
        item: RunEvent | StreamEnd = yield NEXT_EVENT
        while True:
            if item is StreamEnd.END:
                break
            if item is StreamEnd.IDLE:
                session.went_idle()
                yield from cancel_ops(session, quiet=True)
                break
            event = item
            if not session.progress.claim(session.generation, event.seq):
                break  # a re-execution of this call delivers the run's events now
            seen = session.observe(event)
            if seen.deliver and seen.pause is None and event.type not in follow_up:
                item = yield Deliver(session.payload, event, session.mark_delivered, True)
                renewal = session.lease_renewal()
                if renewal is not None:
                    yield RenewLease(*renewal)
                continue
            if seen.deliver:
                yield Deliver(session.payload, event)
            session.mark_delivered(event)
            renewal = session.lease_renewal()
            if renewal is not None:
                yield RenewLease(*renewal)
            if seen.deliver and event.type == "step":
                yield from _screen_steps(session, "step", event.seq)
            if event.type == "billing" and session.over_budget(_credits(event)):
                yield from cancel_ops(session)
            pause = seen.pause
            if pause is not None and not pause_says_why(pause):
                # The event says nothing of why: the run's awaiting_human_reason does.
                current: Run = yield GetRun(run.id)
                pause = session.pause_request(event.seq, event.data, current)
            if pause is not None and (yield from _pause_steps(session, pause, seen.silent)):
                break
            if event.type == "done":
                break
            item = yield NEXT_EVENT
        yield CloseStream()
        handed_back = session.stop_reason == "awaiting_human" and session.screen is not None
        if not handed_back:
            yield from _screen_steps(session, "end", session.progress.seq)
    final: Run = yield GetRun(run.id)
    return session.finish(final)


def _screen_steps(
    session: RunSession, moment: ScreenMoment, seq: int
) -> Generator[Op, Any, ScreenPayload | None]:
    """Capture the screen at ``moment`` (when wanted) and deliver a ``screenshot`` event."""
    if not session.wants_screen(moment):
        return None
    assert session.run is not None and session.run.machine_id
    shot = yield CaptureScreen(session.run.machine_id)
    screen = session.take_screen(shot)
    yield DeliverScreen(session.screen_event(screen, moment, seq))
    return screen


def _pause_steps(
    session: RunSession, pause: PauseRequest, silent: bool
) -> Generator[Op, Any, bool]:
    """Handle one pause; return True when following stops here (the pause is handed back)."""
    action = session.pause_action(pause, silent)
    index = session.pauses_seen
    if action in ("interrupt", "return"):
        cover = session.lease_renewal(for_pause=True)
        if cover is not None:  # the machine waits with the run (a person may look at it)
            yield RenewLease(*cover)
    if not silent and action in ("interrupt", "return", "call"):
        screen = yield from _screen_steps(session, "pause", int(pause["coasty"]["seq"]))
        attach_screen(pause, screen)
    if action == "interrupt":
        answer = session.ask_person(pause)
        yield from answer_ops(session, session.record_answer(answer, index))
    elif action == "no_checkpointer":
        yield from cancel_ops(session)
        raise session.no_checkpointer_error()
    elif action == "return":
        return True
    elif action == "fail":
        yield from cancel_ops(session)
    else:
        policy = cast(Callable[[PauseRequest], Any], session.policy)
        answer = yield AskPolicy(policy, pause)
        yield from answer_ops(session, session.record_answer(answer, index))
    return False


def _credits(event: RunEvent) -> int | None:
    credits = event.credits_charged
    return event.cost_cents if credits is None else credits
