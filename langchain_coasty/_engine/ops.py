"""The operations the run decisions ask a driver to carry out, and what each sends back.

The step generators (``steps``, ``durable_steps``) yield these and receive the result; the
sync and async drivers (``drivers``) are the only code that turns them into I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from langchain_coasty._engine.request import RunPlan
    from langchain_coasty._engine.session import FollowedRun, RunSession
    from langchain_coasty.callbacks import CoastyEventPayload
    from langchain_coasty.client import RunEvent
    from langchain_coasty.human import HumanAnswer, PauseRequest

__all__ = [
    "ASYNC_POLICY_ERROR",
    "NEXT_EVENT",
    "AskPolicy",
    "Attached",
    "Cancel",
    "CaptureScreen",
    "CloseStream",
    "Create",
    "Deliver",
    "DeliverScreen",
    "GetRun",
    "NextEvent",
    "Op",
    "OpenStream",
    "ReadEvents",
    "Resume",
    "Steps",
    "StreamEnd",
    "answer_ops",
    "cancel_ops",
]

ASYNC_POLICY_ERROR = "on_awaiting_human is an async callable: use ainvoke/astream, or a sync one."


class StreamEnd(Enum):
    """What ``NextEvent`` returns instead of an event."""

    END = "end"
    """The stream ended (after ``done``)."""
    IDLE = "idle"
    """No event came within ``idle_timeout``."""


@dataclass(slots=True)
class Create:
    """Create the run (idempotently); returns the client's ``CreateResult``."""

    plan: RunPlan


@dataclass(slots=True)
class Attached:
    """The run is known: open its ``coasty_run`` child run in traces; returns ``None``."""


@dataclass(slots=True)
class GetRun:
    """``GET`` the run; returns the ``Run``."""

    run_id: str


@dataclass(slots=True)
class ReadEvents:
    """Read the events after ``after`` until ``stop(event)`` is true; returns a list."""

    run_id: str
    after: int
    stop: Callable[[RunEvent], bool]


@dataclass(slots=True)
class OpenStream:
    """Open the run's event stream after ``after``; returns ``None``. The driver closes it."""

    run_id: str
    after: int
    idle_timeout: float | None


@dataclass(slots=True)
class NextEvent:
    """The next event of the open stream, or a ``StreamEnd`` (one instance: ``NEXT_EVENT``)."""


NEXT_EVENT = NextEvent()


@dataclass(slots=True)
class CloseStream:
    """Close the open event stream (the driver also closes it on any way out)."""


@dataclass(slots=True)
class Deliver:
    """Dispatch the event's payload to the callbacks and the custom stream, hand ``event`` on.

    The payload is built on demand (``payload``): only when a channel listens. Once the
    event is handed on, the driver calls ``delivered`` with it (the bookkeeping that makes
    delivery exactly once) and, with ``then_next``, reads the next event as ``NEXT_EVENT``
    would: one round trip per event on the hot path instead of two.
    """

    make_payload: Callable[[RunEvent], CoastyEventPayload]
    event: RunEvent
    delivered: Callable[[RunEvent], None] | None = None
    then_next: bool = False

    @property
    def payload(self) -> CoastyEventPayload:
        return self.make_payload(self.event)


@dataclass(slots=True)
class DeliverScreen:
    """Dispatch a ``screenshot`` payload as the ``coasty_screenshot`` event and stream chunk."""

    payload: CoastyEventPayload


@dataclass(slots=True)
class CaptureScreen:
    """Take the machine's screenshot; returns the ``Screenshot`` or the ``CoastyError``."""

    machine_id: str


@dataclass(slots=True)
class Resume:
    """Resume the paused run with ``note``; an already resumed or finished run is no error."""

    run_id: str
    note: str | None


@dataclass(slots=True)
class Cancel:
    """Cancel the run; one that already ended is no error (``quiet``: no error at all)."""

    run_id: str
    quiet: bool = False


@dataclass(slots=True)
class RenewLease:
    """Set the lease of the run's machine to ``minutes`` from now; returns None."""

    machine_id: str
    minutes: int


@dataclass(slots=True)
class AskPolicy:
    """Call the callable ``on_awaiting_human`` policy with the pause; returns its answer."""

    policy: Callable[[PauseRequest], Any]
    pause: PauseRequest


Op: TypeAlias = (
    Create
    | Attached
    | GetRun
    | ReadEvents
    | OpenStream
    | NextEvent
    | CloseStream
    | Deliver
    | Resume
    | Cancel
    | AskPolicy
    | RenewLease
    | CaptureScreen
    | DeliverScreen
)
"""Every operation a step generator may yield."""

Steps: TypeAlias = "Generator[Op, Any, FollowedRun]"
"""A step generator: yields operations, receives their results, returns the final run."""


def answer_ops(session: RunSession, answer: HumanAnswer | None) -> Iterator[Op]:
    """Send a person's answer to the run: resume it with the note, or cancel it."""
    if answer is None or session.run is None:
        return
    if answer.action == "resume":
        yield Resume(session.run.id, answer.note)
    else:
        session.cancel_sent = True
        yield Cancel(session.run.id)


def cancel_ops(session: RunSession, *, quiet: bool = False) -> Iterator[Op]:
    """Cancel the run once (``quiet``: a failure to cancel is not an error either)."""
    if session.run is None or session.cancel_sent:
        return
    session.cancel_sent = True
    yield Cancel(session.run.id, quiet=quiet)
