"""The bookkeeping of one followed run (no I/O) and its typed outcome, ``FollowedRun``.

A ``RunSession`` knows what was delivered, which pauses were seen and answered, whether a
budget was passed and why following stopped. The decisions that use it are in ``steps``
and ``durable_steps``; the drivers carry them out.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from langchain_coasty._engine.progress import (
    DELIVERED_RUNS,
    RunProgress,
    next_generation,
)
from langchain_coasty._engine.request import CoastyInput, RunPlan, build_request
from langchain_coasty._graph import (
    GraphContext,
    call_interrupt,
    graph_context,
    is_graph_bubble_up,
)
from langchain_coasty.callbacks import CoastyEventPayload, event_payload
from langchain_coasty.client import CoastyError, Run, RunEvent, Screenshot
from langchain_coasty.human import (
    DEFAULT_ACTION_NAME,
    AwaitingHumanPolicy,
    HumanAnswer,
    PauseRequest,
    build_pause_request,
    parse_answer,
)
from langchain_coasty.machines import MachineUsage, pause_lease_minutes
from langchain_coasty.screens import ScreenMoment, ScreenPayload, bound, limits_of, unavailable

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from langchain_coasty._engine.settings import CoastySettings
    from langchain_coasty.machines import MachineLease

__all__ = ["FollowedRun", "Observation", "PauseAction", "RunSession", "StopReason"]

logger = logging.getLogger("langchain_coasty")

StopReason: TypeAlias = Literal["budget_exceeded", "idle_timeout", "awaiting_human", "rejected"]
"""Why following a run stopped before (or without) its end."""
PauseAction: TypeAlias = Literal["interrupt", "no_checkpointer", "return", "fail", "call"]
"""What a pause leads to (``RunSession.pause_action``)."""

_LOG_SIZE = 100


class FollowedRun(Run):
    """The final ``Run`` of a followed call, with why following stopped and a compact log.

    ``stop_reason`` is ``None`` when the run was followed to its end; otherwise one of
    ``budget_exceeded``, ``idle_timeout``, ``awaiting_human``, ``rejected``, with
    ``stop_note`` saying it in words. ``event_log`` holds the delivered events (seq, type
    and a short detail), at most the last 100.
    """

    stop_reason: StopReason | None = None
    stop_note: str | None = None
    event_log: list[dict[str, Any]] = []
    machine: MachineUsage | None = None
    """The machine the package provisioned or lent for the call, and its cost (else None)."""
    screen: dict[str, Any] | None = None
    """The machine's last screen this call captured (``langchain_coasty.screens``
    ``ScreenPayload``): the end's, or the pause's when the pause was handed back; None
    when screens are off (``screens``, ``screens_at``)."""
    ended_before_call: bool = False
    """The call found its run already ended: a retry or re-execution of the same tool call
    reattaches to its run (same idempotency key) instead of starting a second one."""


@dataclass(slots=True)
class Observation:
    """What one event means for delivery."""

    deliver: bool
    """Deliver it (False while silently replaying what another process delivered)."""
    pause: PauseRequest | None
    """The pause request, when the event is an ``awaiting_human``."""
    silent: bool
    """The event belongs to a silent replay."""


_DELIVER = Observation(deliver=True, pause=None, silent=False)


class RunSession:
    """One followed run: what was delivered, paused, answered and why following stopped."""

    def __init__(
        self,
        settings: CoastySettings,
        plan: RunPlan | None,
        ctx: GraphContext | None,
        *,
        config: RunnableConfig | None = None,
        action_name: str = DEFAULT_ACTION_NAME,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.ctx = ctx
        self.config: RunnableConfig = config or {}
        self.action_name = action_name
        self.run: Run | None = None
        self.progress = RunProgress()
        # (seq, type, detail): a tuple an event while the run goes, dicts when it is done
        self.log: deque[tuple[int, str, Any]] = deque(maxlen=_LOG_SIZE)
        self.stop_reason: StopReason | None = None
        self.stop_note: str | None = None
        self.done = False
        self.cancel_sent = False
        self.generation = next_generation()
        self.result: FollowedRun | None = None
        # An earlier execution of this call in this process (a ToolNode sibling still running
        # in the background) delivers its own events: nothing to replay silently then.
        self.earlier_execution_here = DELIVERED_RUNS.note_key(plan.key) if plan else True
        self.silent_pauses = 0
        """Pauses another process delivered and answered, replayed without delivering."""
        self.pauses_seen = 0
        self.pause_open = False
        """An answer was invalid: the pause stays open, to be answered again."""
        self.ended_before_call = False
        self.lease: MachineLease | None = None
        """The machine this package provisioned for the run, whose lease it renews."""
        self._lease_renewed = time.monotonic()
        self.screen: ScreenPayload | None = None
        """The last screen captured (the artifact's ``screen``)."""

    @classmethod
    def for_call(
        cls,
        settings: CoastySettings,
        input: CoastyInput,
        config: RunnableConfig | None,
        *,
        runtime: Any = None,
        action_name: str = DEFAULT_ACTION_NAME,
        extra_instructions: str | None = None,
    ) -> RunSession:
        """The session of a call that creates (or reattaches to) its run."""
        ctx = graph_context(config, runtime)
        plan = build_request(settings, input, ctx, extra_instructions=extra_instructions)
        return cls(settings, plan, ctx, config=config, action_name=action_name)

    @classmethod
    def for_existing(
        cls,
        settings: CoastySettings,
        config: RunnableConfig | None,
        *,
        action_name: str = DEFAULT_ACTION_NAME,
    ) -> RunSession:
        """The session of a call that follows a run created elsewhere (e.g. after a resume)."""
        return cls(settings, None, graph_context(config), config=config, action_name=action_name)

    def lease_renewal(self, *, for_pause: bool = False) -> tuple[str, int] | None:
        """(machine id, minutes) when the machine's lease is due a renewal, else None.

        While the run goes, every third of the lease; at a pause, long enough to cover the
        pause timeout (the person may look at the machine before answering).
        """
        lease = self.lease
        if lease is None:
            return None
        now = time.monotonic()
        if for_pause:
            self._lease_renewed = now
            timeout = self.settings.awaiting_human_timeout_seconds
            return lease.machine_id, pause_lease_minutes(lease, timeout)
        if now - self._lease_renewed < lease.ttl_minutes * 20:  # a third of it, in seconds
            return None
        self._lease_renewed = now
        return lease.machine_id, lease.ttl_minutes

    @property
    def policy(self) -> AwaitingHumanPolicy:
        return self.plan.policy if self.plan else self.settings.on_awaiting_human

    @property
    def interrupts(self) -> bool:
        """Whether pauses become LangGraph interrupts here."""
        return self.policy == "interrupt" and self.ctx is not None

    @property
    def run_id(self) -> str:
        assert self.run is not None, "no run attached yet"
        return self.run.id

    def child_run_inputs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Inputs and metadata of the ``coasty_run`` child run in traces."""
        assert self.run is not None
        meta = {"coasty_run_id": self.run.id, "coasty_machine_id": self.run.machine_id}
        return {"run_id": self.run.id, "task": self.run.task}, meta

    def attach(self, run: Run) -> int:
        """Start following ``run``; return the seq to stream after."""
        self.run = run
        existing = DELIVERED_RUNS.get(run.id)
        self.progress = DELIVERED_RUNS.get_or_create(run.id)
        if existing is None and not self.earlier_execution_here and self.interrupts and self.ctx:
            # Another process delivered the events before the answered pauses.
            self.silent_pauses = self.ctx.answered
        self.pauses_seen = len(self.progress.pauses)
        return self.progress.take_over(self.generation)

    def pause_request(
        self, seq: int, data: Mapping[str, Any], run: Run | None = None
    ) -> PauseRequest:
        """The interrupt payload for a pause of this run (``run`` adds its counters)."""
        current = run or self.run
        assert current is not None
        return build_pause_request(
            action_name=self.action_name,
            task=current.task or "",
            machine_id=current.machine_id,
            run_id=current.id,
            seq=seq,
            data=data,
            steps_completed=run.steps_completed if run is not None else None,
            credits_charged=run.credits_charged if run is not None else None,
            fallback_reason=current.awaiting_human_reason,
        )

    def observe(self, event: RunEvent) -> Observation:
        """Book ``event``: whether to deliver it, and its pause request if it is a pause."""
        pause: PauseRequest | None = None
        if event.type == "awaiting_human":
            self.pauses_seen += 1
            data = event.data if isinstance(event.data, Mapping) else {}
            pause = self.pause_request(event.seq, data)
        if event.type == "done":
            self.done = True
        silent = self.silent_pauses > 0
        if silent and pause is not None and self.pauses_seen >= self.silent_pauses:
            self.silent_pauses = 0
        if not silent:
            self.log.append(_log_entry(event))
            if pause is None:
                return _DELIVER  # the common case, without an allocation per event
        return Observation(deliver=not silent, pause=pause, silent=silent)

    def mark_delivered(self, event: RunEvent) -> None:
        self.progress.seq = max(self.progress.seq, event.seq)
        if event.type == "done":
            self.progress.done = True

    def payload(self, event: RunEvent) -> CoastyEventPayload:
        assert self.run is not None
        return event_payload(event, run_id=self.run.id, machine_id=self.run.machine_id)

    def wants_screen(self, moment: ScreenMoment) -> bool:
        """Whether to capture the machine's screen at ``moment``."""
        if self.run is None or not self.run.machine_id:
            return False
        return moment in self.settings.screens_at and limits_of(self.settings.screens) is not None

    def take_screen(self, shot: Screenshot | CoastyError) -> ScreenPayload:
        """The bounded payload of a capture (or why there is none); kept as the last screen."""
        assert self.run is not None and self.run.machine_id
        limits = limits_of(self.settings.screens)
        assert limits is not None
        if isinstance(shot, Screenshot):
            screen = bound(
                shot.image,
                mime_type=shot.mime_type,
                width=shot.width,
                height=shot.height,
                machine_id=shot.machine_id,
                captured_at=shot.captured_at,
                limits=limits,
            )
        else:
            screen = unavailable(self.run.machine_id, shot)
        self.screen = screen
        return screen

    def screen_event(
        self, screen: ScreenPayload, moment: ScreenMoment, seq: int
    ) -> CoastyEventPayload:
        """The ``screenshot`` payload for the callbacks and the custom stream."""
        assert self.run is not None
        return CoastyEventPayload(
            run_id=self.run.id,
            machine_id=self.run.machine_id,
            seq=seq,
            type="screenshot",
            data={"at": moment, "screen": dict(screen)},
            ts=time.time(),
        )

    def over_budget(self, credits: int | None) -> bool:
        """Whether ``credits`` charged so far pass ``max_cost_usd`` (then say so, once)."""
        limit = self.settings.max_cost_usd
        if limit is None or credits is None or self.cancel_sent or credits / 100 <= limit:
            return False
        self.stop_reason = "budget_exceeded"
        self.stop_note = (
            f"stopped: cost budget ${limit:.2f} exceeded (${credits / 100:.2f} charged)"
        )
        return True

    def pause_action(self, pause: PauseRequest, silent: bool) -> PauseAction:
        """Decide what a pause leads to: interrupt, return, fail or call."""
        if silent or self.interrupts:
            if self.ctx is not None and not self.ctx.has_checkpointer:
                return "no_checkpointer"
            self.progress.pauses.append(pause)
            return "interrupt"
        if self.policy in ("interrupt", "return"):
            self.stop_reason = "awaiting_human"
            note = (
                " (not inside a LangGraph graph, so the pause is handed back)"
                if self.policy == "interrupt"
                else ""
            )
            self.stop_note = f"paused: the run needs a person{note}"
            return "return"
        if self.policy == "fail":
            self.stop_reason = "awaiting_human"
            self.stop_note = "cancelled: the run needed a person and on_awaiting_human='fail'"
            return "fail"
        return "call"

    def record_answer(self, answer: Any, pause_index: int) -> HumanAnswer | None:
        """Record the answer to pause ``pause_index``; return it when it still has to be sent."""
        parsed = self.parse(answer)
        if pause_index <= self.progress.applied:
            return None
        self.progress.applied = pause_index
        if self.silent_pauses > 0:
            # Replaying another process's pauses: only the last answered one is ours to send.
            return None
        self.note_answer(parsed)
        return parsed

    def ask_person(self, pause: PauseRequest) -> Any:
        """The answer to ``pause`` (``interrupt()``, which raises until there is one)."""
        try:
            return call_interrupt(pause)
        except ValueError:  # the answer failed the published schema: the pause stays open
            self.pause_open = True
            raise

    def parse(self, answer: Any) -> HumanAnswer:
        """``parse_answer``, noting that an invalid answer leaves the pause open."""
        try:
            return parse_answer(answer)
        except ValueError:
            self.pause_open = True
            raise

    def note_answer(self, answer: HumanAnswer) -> None:
        """Say why following stops when the person rejected the pause."""
        if answer.action == "cancel":
            self.stop_reason = "rejected"
            self.stop_note = "cancelled by the person answering the pause" + (
                f": {answer.note}" if answer.note else ""
            )

    def went_idle(self) -> None:
        """No event came within ``idle_timeout``: say so (the run is then cancelled)."""
        self.stop_reason = "idle_timeout"
        self.stop_note = (
            f"stopped: no event for {self.settings.idle_timeout:g}s; the run was cancelled"
        )

    def no_checkpointer_error(self) -> RuntimeError:
        return RuntimeError(
            "A Coasty run paused for a person inside a LangGraph graph compiled without a "
            "checkpointer, so the interrupt could not be resumed. Compile the graph with a "
            "checkpointer (e.g. InMemorySaver) or set on_awaiting_human='return'. "
            f"The run {self.run.id if self.run else ''} was cancelled."
        )

    def cancels_on(self, exc: BaseException) -> bool:
        """Whether leaving with ``exc`` must cancel the run.

        Every way out cancels it (the caller stopped waiting, a callback or a policy raised,
        the stream gave up, memory ran out) except its end, a LangGraph interrupt (the run
        waits for the answer) and an invalid answer (the pause stays open).
        """
        if self.run is None or self.done or self.cancel_sent or self.pause_open:
            return False
        return not is_graph_bubble_up(exc)

    @staticmethod
    def cancels_pending_create(exc: BaseException) -> bool:
        """Whether a create still in flight when ``exc`` came must be found and cancelled."""
        import asyncio

        return isinstance(exc, KeyboardInterrupt | GeneratorExit | asyncio.CancelledError)

    @staticmethod
    def cancel_failed(exc: BaseException, run_id: str, error: BaseException) -> None:
        """Attach a failed cancel to the exception that is leaving, and log the run's id."""
        exc.add_note(
            f"Cancelling Coasty run {run_id} failed ({type(error).__name__}: {error}); "
            f"the run may still be going: cancel it with client.runs.cancel({run_id!r})."
        )
        logger.warning("Could not cancel Coasty run %s on the way out: %s", run_id, error)

    @staticmethod
    def lookup_failed(exc: BaseException, key: str, error: BaseException) -> None:
        """Attach a failed search for a cut-short create to the exception that is leaving."""
        exc.add_note(
            f"A Coasty run may have been created under idempotency key {key} and could not be "
            f"looked up ({type(error).__name__}: {error}): find it with "
            f"client.idempotency.get({key!r}) and cancel it."
        )
        logger.warning("Could not look up the Coasty run of idempotency key %s: %s", key, error)

    def finish(self, run: Run) -> FollowedRun:
        """The final run, with the compact event log and why following stopped."""
        fields = dict(run)
        fields.update(
            stop_reason=self.stop_reason,
            stop_note=self.stop_note if self.stop_reason else None,
            event_log=[_log_dict(*entry) for entry in self.log],
            ended_before_call=self.ended_before_call,
            screen=None if self.screen is None else dict(self.screen),
        )
        # The signing secret is kept in the secret store by run id, never on the artifact
        # (which lands in checkpoints, thread state sent to browsers and traces).
        fields["webhook_secret"] = None
        # Already validated as a Run: only the new fields are added (extras are kept).
        self.result = FollowedRun.model_construct(run.model_fields_set | set(fields), **fields)
        return self.result


def _log_entry(event: RunEvent) -> tuple[int, str, Any]:
    data = event.data if type(event.data) is dict or isinstance(event.data, Mapping) else {}
    detail: Any = None
    for key in ("summary", "status", "question", "action", "credits_charged", "code", "text"):
        if data.get(key) is not None:
            detail = data[key]
            break
    if isinstance(detail, str):
        detail = detail[:200]
    return (event.seq, event.type, detail)


def _log_dict(seq: int, kind: str, detail: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"seq": seq, "type": kind}
    if detail is not None:
        entry["detail"] = detail
    return entry
