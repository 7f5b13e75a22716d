"""The engine: the sandbox's state machines, and the scripted agent that drives each run.

One cohesive thing (every state change of the sandbox goes through it); its plain records
are in ``records``.

Runs: queued -> running -> (awaiting_human <-> running) -> succeeded | failed | cancelled |
timed_out. One asyncio task per active run walks the run's plan (see ``scenarios``). Events
are kept per run as ready-to-send SSE frames (bytes), and every open stream waits on the
run's change notification, so a thousand runs with open streams cost a thousand idle tasks.

Keyed creates (``Idempotency-Key``, per key kind): the first create of a key reserves it
(``processing``) and completes it with the response body; a repeat with the same body
replays that body, a repeat while the first is processing gets ``KeyInFlight``, a repeat
with another body ``KeyReused``; a create that raises or is cancelled rolls its
reservation back, so a retry creates afresh. Machine creates (``submit_machine``) share the
protocol and the key store; the machines themselves are the ``fleet``'s (module ``fleet``).

Screens: one ``ScreenState`` per machine (``screen``), moved by the runs' steps and pauses
and by the machine's power; ``capture`` renders it (module ``screens``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from langchain_coasty.sandbox.cua import SessionStore
from langchain_coasty.sandbox.delivery import WebhookSender
from langchain_coasty.sandbox.faults import FaultInjector
from langchain_coasty.sandbox.fleet import Fleet, SandboxMachine
from langchain_coasty.sandbox.records import IdempotencyRecord, SandboxConfig, SandboxRun, body_hash
from langchain_coasty.sandbox.scenarios import (
    DEFAULT_SCENARIO,
    FailSpec,
    PauseSpec,
    Scenario,
    StepSpec,
    choose,
)
from langchain_coasty.sandbox.screens import ScreenState, render
from langchain_coasty.sandbox.validation import RUN_STATUSES

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
CREDITS_PER_STEP = {"v1": 8, "v3": 5, "v4": 5, "v5": 5}
MACHINE_IDS = ("m-sandbox-1", "m-sandbox-2", "m-sandbox-3", "m-sandbox-4")
LIVE_MACHINE_IDS = tuple(f"mch_test_{n:024x}" for n in (0xA11CE, 0xB0B, 0xC0FFEE, 0xD00D))
"""Machine ids shaped like the live API's (``id_style="live"``)."""
_FILLER_YIELD_EVERY = 512


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class InvalidState(Exception):
    """A cancel or resume that the run's current status does not allow."""


class KeyReused(Exception):
    """A keyed create whose body differs from the one first sent with that key."""


class KeyInFlight(Exception):
    """A keyed create whose key is held by an earlier create that has not finished."""


class CreateRefused(Exception):
    """A create that a fault refused before validating or creating anything."""

    def __init__(self, reason: Literal["unavailable", "rate_limited"], retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Created:
    """The answer to a create: the run's JSON body, and how to send it."""

    body: bytes
    keyed: bool = False  # the create carried an Idempotency-Key
    replay: bool = False  # the stored answer of an earlier create with that key
    lose_response: bool = False  # the create_lose_response fault: cut the answer short


class Engine:
    """All sandbox state: runs, idempotency records, scenarios, faults, counters, webhooks."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        scenarios: list[Scenario] | None = None,
        seed: int = 0,
    ) -> None:
        self.config = config or SandboxConfig()
        self.initial_config = SandboxConfig(**self.config.to_dict())
        self.base_scenarios = list(scenarios or [])
        self.custom_scenarios: list[Scenario] = []
        self.faults = FaultInjector(seed)
        self.webhooks = WebhookSender(self._webhook_settings, self._count_webhook_attempt)
        self.machine_ids = LIVE_MACHINE_IDS if self.config.id_style == "live" else MACHINE_IDS
        self.fleet = Fleet(lambda: self.config, self.faults)
        self.closing = False
        self._reset_state()

    def _reset_state(self) -> None:
        self.runs: dict[str, SandboxRun] = {}
        self.idempotency: dict[tuple[str, str], IdempotencyRecord] = {}
        self.counts: Counter[str] = Counter()
        self.open_streams = 0
        self.last_create_body: Any = None
        self.screens: dict[str, ScreenState] = {}
        self._drawn: dict[tuple[str, str], tuple[tuple[Any, ...], bytes]] = {}
        self.fleet.reset(self.machine_ids)
        self.sessions = SessionStore()

    def bill(self, key_kind: str, credits: int) -> None:
        """Count the credits one step-by-step call charged (visible in the counters)."""
        self.counts[f"cua_credits_{key_kind}"] += credits

    def _webhook_settings(self) -> tuple[float, int, float]:
        c = self.config
        return c.webhook_retry_base, c.webhook_max_attempts, c.webhook_timeout

    def _count_webhook_attempt(self) -> None:
        self.counts["webhook_attempts"] += 1

    # -- control plane -------------------------------------------------------------------

    def reset(self, *, restore_config: bool = False) -> None:
        """Drop runs, records, counters, faults and custom scenarios; end open streams."""
        for run in self.runs.values():
            self._stop_driver(run)
            run.dropped = True
            run.notify()
        self._reset_state()
        self.custom_scenarios.clear()
        self.faults.clear()
        self.faults.fired.clear()
        self.webhooks.reset()
        if restore_config:
            self.config = SandboxConfig(**self.initial_config.to_dict())

    def counters(self) -> dict[str, Any]:
        by_status = dict.fromkeys(RUN_STATUSES, 0)
        for run in self.runs.values():
            by_status[run.status] += 1
        names = (
            "runs_created",
            "create_calls",
            "create_replays",
            "stream_connections",
            "cancels",
            "resumes",
            "events_emitted",
            "webhook_attempts",
            "machine_create_calls",
            "machines_created",
            "ground_calls",
            "predict_calls",
            "sessions_created",
            "session_predict_calls",
            "actions_executed",
            "cua_replays",
            "cua_credits_live",
            "cua_credits_test",
        )
        out: dict[str, Any] = {name: self.counts[name] for name in names}
        machines_by_status: Counter[str] = Counter(m.status for m in self.fleet.created())
        out["machines_by_status"] = dict(machines_by_status)
        out["open_streams"] = self.open_streams
        out["faults_fired"] = dict(self.faults.fired)
        out["runs_by_status"] = by_status
        out["last_create_body"] = self.last_create_body
        return out

    def end_streams(self) -> None:
        """Make every open stream end cleanly (the server is shutting down)."""
        self.closing = True
        for run in self.runs.values():
            run.notify()

    async def aclose(self) -> None:
        self.end_streams()
        for run in self.runs.values():
            self._stop_driver(run)
        await self.webhooks.aclose()

    # -- screens -------------------------------------------------------------------------

    def screen(self, machine_id: str) -> ScreenState:
        """The screen state of ``machine_id`` (one per machine; runs and actions update it)."""
        state = self.screens.get(machine_id)
        if state is None:
            state = self.screens[machine_id] = ScreenState(machine_id)
        return state

    def capture(self, machine: SandboxMachine, mime_type: str = "image/jpeg") -> bytes:
        """The machine's screen now, encoded (black unless the machine is running)."""
        state = self.screen(machine.id)
        state.power(machine.status == "running")
        # Unchanged screens are not drawn again (many runs end on one machine at once).
        key = (machine.id, mime_type)
        seen = dataclasses.astuple(state)
        cached = self._drawn.get(key)
        if cached is not None and cached[0] == seen:
            return cached[1]
        image = render(state, mime_type=mime_type)
        self._drawn[key] = (seen, image)
        return image

    # -- runs ----------------------------------------------------------------------------

    def visible(self, run_id: str, key_kind: str) -> SandboxRun | None:
        run = self.runs.get(run_id)
        return run if run is not None and run.key_kind == key_kind else None

    def create(self, body: dict[str, Any], key_kind: str, llm: dict[str, Any] | None) -> SandboxRun:
        """Start a run for a validated body; ``submit`` adds idempotency and faults."""
        run = SandboxRun(body, key_kind, llm, id_style=self.config.id_style)
        scenario = choose([*self.base_scenarios, *self.custom_scenarios], run.task)
        run.plan = scenario.plan(run.task, run.max_steps)
        self.runs[run.id] = run
        self.counts["runs_created"] += 1
        self._emit(run, "status", {"status": "queued", "previous": None})
        loop = asyncio.get_running_loop()
        if run.deadline_seconds is not None:
            run.deadline_handle = loop.call_later(run.deadline_seconds, self._deadline, run)
        run.driver = loop.create_task(self._drive(run))
        return run

    def cancel(self, run: SandboxRun) -> None:
        if run.status in TERMINAL:
            raise InvalidState(
                f"Run {run.id} is {run.status}; only queued, running or awaiting_human runs "
                "can be cancelled."
            )
        self.counts["cancels"] += 1
        self._finish(run, "cancelled")

    def resume(self, run: SandboxRun, note: str | None) -> None:
        if run.status != "awaiting_human":
            raise InvalidState(
                f"Run {run.id} is {run.status}; only a run in awaiting_human can be resumed."
            )
        self.counts["resumes"] += 1
        self.screen(run.machine_id).clear_pause()
        run.awaiting_human_since = None
        run.awaiting_human_reason = None
        self._emit(run, "resumed", {"note": note})
        self._set_status(run, "running")
        if run.resume_waiter is not None and not run.resume_waiter.done():
            run.resume_waiter.set_result(note)

    def expire_pause(self, run: SandboxRun) -> None:
        """End a paused run now, as if its ``awaiting_human_timeout_seconds`` had passed."""
        if run.status != "awaiting_human":
            raise InvalidState(f"Run {run.id} is {run.status}, not awaiting_human.")
        if run.awaiting_human_timeout_seconds is None:
            raise InvalidState(
                f"Run {run.id} has no awaiting_human_timeout_seconds: its pause never expires."
            )
        self._pause_timed_out(run)

    # -- creates: refusal faults and the idempotency protocol ----------------------------

    def admit_create(self) -> None:
        """Draw the faults that refuse a create outright; raises ``CreateRefused``."""
        retry_after = self.faults.config.retry_after
        if self.faults.create_refused():
            self.faults.fire("create_refuse")
            raise CreateRefused("unavailable", retry_after)
        if self.faults.create_rate_limited():
            self.faults.fire("create_rate_limit")
            raise CreateRefused("rate_limited", retry_after)

    async def submit(
        self,
        body: dict[str, Any],
        key_kind: str,
        *,
        key: str | None,
        request_id: str,
        llm: dict[str, Any] | None = None,
    ) -> Created:
        """Create a run for a validated body, or replay the first answer for its ``key``.

        Raises ``KeyReused`` or ``KeyInFlight``; a failed or cancelled create rolls back.
        """

        async def make() -> bytes:
            delay = self.faults.config.create_delay_seconds
            if delay > 0:
                self.faults.fire("create_delay")
                await asyncio.sleep(delay)
            run = self.create(body, key_kind, llm)
            return _dumps(run.to_json(request_id, include_secret=True))

        def lose() -> bool:
            lost = self.faults.create_response_lost()
            if lost:
                self.faults.fire("create_lose_response")
            return lost

        return await self._keyed(body, key_kind, key, request_id, make, lose)

    async def submit_machine(
        self, body: dict[str, Any], key_kind: str, *, key: str | None, request_id: str
    ) -> Created:
        """Provision a machine for a validated body, or replay the first answer for its ``key``."""

        async def make() -> bytes:
            machine = self.fleet.provision(body, key_kind)
            self.counts["machines_created"] += 1
            return _dumps(self.provision_answer(machine, request_id))

        def lose() -> bool:
            lost = self.faults.machine_create_response_lost()
            if lost:
                self.faults.fire("machine_create_lose_response")
            return lost

        return await self._keyed(body, key_kind, key, request_id, make, lose)

    async def submit_call(
        self,
        path: str,
        body: dict[str, Any],
        key_kind: str,
        *,
        key: str | None,
        request_id: str,
        make: Callable[[], bytes],
    ) -> Created:
        """A keyed step-by-step call (ground, predict, sessions, actions): ``make`` runs once
        per key and path; a repeat replays its answer."""

        async def made() -> bytes:
            return make()

        def lose() -> bool:
            lost = self.faults.cua_response_lost()
            if lost:
                self.faults.fire("cua_lose_response")
            return lost

        keyed_body = {"path": path, "body": body}
        return await self._keyed(keyed_body, key_kind, key, request_id, made, lose)

    async def _keyed(
        self,
        body: dict[str, Any],
        key_kind: str,
        key: str | None,
        request_id: str,
        make: Callable[[], Awaitable[bytes]],
        lose: Callable[[], bool],
    ) -> Created:
        """The idempotency protocol around one create: ``make`` runs once per key."""
        record = None
        if key is not None:
            record = self.reserve(key_kind, key, body_hash(body), request_id)
            if record.status == "completed":
                assert record.body is not None
                return Created(record.body, keyed=True, replay=True)
        try:
            answer = await make()
        except BaseException:
            if record is not None:
                self.roll_back(record)
            raise
        if record is not None:
            self.complete(record, answer)
        return Created(answer, keyed=record is not None, lose_response=lose())

    def provision_answer(self, machine: SandboxMachine, request_id: str) -> dict[str, Any]:
        """The ProvisionResponse body for a just-created machine."""
        return {
            "machine": machine.to_json(self.fleet.now(), billing=True),
            "connection": machine.redacted_connection_json(),
            "request_id": request_id,
        }

    def reserve(self, key_kind: str, key: str, digest: str, request_id: str) -> IdempotencyRecord:
        """Take ``key`` for a create whose body hashes to ``digest``, or find what to replay.

        Returns a new ``processing`` record, which the caller must ``complete`` or
        ``roll_back``, or the ``completed`` record of the first create with that body.
        Raises ``KeyReused`` (another body) or ``KeyInFlight`` (the first is processing).
        """
        record = self.idempotency.get((key_kind, key))
        if record is None:
            record = IdempotencyRecord(key_kind, key, digest, request_id)
            self.idempotency[(key_kind, key)] = record
            return record
        if record.body_hash != digest:
            raise KeyReused(key)
        if record.status == "processing":
            raise KeyInFlight(key)
        self.counts["create_replays"] += 1
        return record

    def complete(self, record: IdempotencyRecord, body: bytes) -> None:
        """Store the answer of a reserved create, to replay to every repeat of its key."""
        record.status, record.original_status, record.body = "completed", 200, body

    def roll_back(self, record: IdempotencyRecord) -> None:
        """Forget a reservation whose create did not happen, so its key can be used again."""
        slot = (record.kind, record.key)
        # After a reset the key may belong to a newer create: drop only this reservation.
        if record.status == "processing" and self.idempotency.get(slot) is record:
            del self.idempotency[slot]

    def idempotency_record(self, key_kind: str, key: str) -> IdempotencyRecord | None:
        """What ``GET /v1/idempotency/{key}`` reports: the key's record in this key kind."""
        return self.idempotency.get((key_kind, key))

    # -- the scripted agent --------------------------------------------------------------

    def _emit(self, run: SandboxRun, event_type: str, data: dict[str, Any]) -> None:
        if run.closed:
            return
        seq = len(run.frames) + 1
        if self.config.event_framing == "flat":
            payload = json.dumps(data, separators=(",", ":"))
        else:
            payload = json.dumps(
                {"seq": seq, "type": event_type, "data": data, "ts": round(time.time(), 6)},
                separators=(",", ":"),
            )
        run.frames.append(f"id: {seq}\nevent: {event_type}\ndata: {payload}\n\n".encode())
        self.counts["events_emitted"] += 1
        if event_type == "done":
            run.closed = True
        run.notify()

    def _set_status(self, run: SandboxRun, status: str) -> None:
        previous, run.status = run.status, status
        self._emit(run, "status", {"status": status, "previous": previous})

    async def _pace(self, run: SandboxRun, fraction: float) -> None:
        assert run.plan is not None
        pace = run.plan.pace if run.plan.pace is not None else self.config.pace
        await asyncio.sleep(pace * fraction)

    async def _drive(self, run: SandboxRun) -> None:
        plan = run.plan
        assert plan is not None
        await self._pace(run, 0.2)
        run.started_at = time.time()
        self._set_status(run, "running")
        steps_done = 0
        for item in plan.items:
            if isinstance(item, StepSpec):
                if run.steps_completed >= run.max_steps:
                    self._finish(
                        run,
                        "failed",
                        error={
                            "code": "MAX_STEPS_EXCEEDED",
                            "message": f"The run used all max_steps={run.max_steps} steps "
                            "before finishing the task.",
                        },
                    )
                    return
                filler = plan.filler_per_step[steps_done] if plan.filler_per_step else 0
                await self._step(run, item, filler)
                steps_done += 1
            elif isinstance(item, PauseSpec):
                if not await self._pause(run, item):
                    return
            elif isinstance(item, FailSpec):
                self._finish(run, "failed", error={"code": item.code, "message": item.message})
                return
        if plan.filler_per_step and steps_done == 0:
            await self._filler(run, plan.filler_per_step[0])
        self._emit(run, "text", {"text": f"Finished: {run.task[:200]}"})
        self._finish(run, "succeeded", result=plan.result)

    async def _filler(self, run: SandboxRun, count: int) -> None:
        for i in range(count):
            self._emit(run, "reasoning", {"text": f"Looking closer at the screen ({i + 1})."})
            if i % _FILLER_YIELD_EVERY == _FILLER_YIELD_EVERY - 1:
                await asyncio.sleep(0)

    async def _step(self, run: SandboxRun, step: StepSpec, filler: int) -> None:
        number = run.steps_completed + 1
        call_id = f"tc_{secrets.token_hex(6)}"
        self._emit(run, "reasoning", {"text": step.reasoning})
        await self._filler(run, filler)
        await self._pace(run, 0.4)
        self._emit(
            run,
            "tool_call",
            {"step": number, "id": call_id, "action": step.action, "args": step.args},
        )
        self.screen(run.machine_id).show_step(number, step.action, step.args)
        await self._pace(run, 0.4)
        self._emit(
            run,
            "tool_result",
            {"step": number, "id": call_id, "ok": step.ok, "output": step.output},
        )
        run.steps_completed = number
        credits = CREDITS_PER_STEP.get(run.cua_version, 5)
        run.credits_charged += credits
        self._emit(
            run,
            "step",
            {
                "step": number,
                "steps_completed": number,
                "max_steps": run.max_steps,
                "summary": step.summary,
            },
        )
        self._emit(
            run,
            "billing",
            {
                "credits": credits,
                "credits_charged": run.credits_charged,
                "cost_cents": run.credits_charged,
            },
        )

    async def _pause(self, run: SandboxRun, pause: PauseSpec) -> bool:
        """Handle a pause per on_awaiting_human; False when the run ended there."""
        if run.on_awaiting_human != "pause":
            run.awaiting_human_reason = pause.reason
            error = {
                "code": "AWAITING_HUMAN",
                "message": f"The agent needed a person ({pause.reason}) and "
                f"on_awaiting_human is {run.on_awaiting_human!r}.",
            }
            status = "failed" if run.on_awaiting_human == "fail" else "cancelled"
            self._finish(run, status, error=error)
            return False
        run.awaiting_human_since = time.time()
        run.awaiting_human_reason = pause.reason
        self.screen(run.machine_id).show_pause(pause.question or pause.reason)
        self._set_status(run, "awaiting_human")
        detail: dict[str, Any] = {
            "reason": pause.reason,
            "question": pause.question,
            "kind": pause.kind,
            "steps_completed": run.steps_completed,
            "credits_charged": run.credits_charged,
        }
        if self.config.pause_event_detail == "reason":
            detail = {"reason": pause.reason}
        elif self.config.pause_event_detail == "bare":
            del detail["reason"], detail["question"]
        self._emit(run, "awaiting_human", detail)
        self._webhook(run, "run.awaiting_human")
        run.resume_waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(run.awaiting_human_timeout_seconds):
                await run.resume_waiter
        except TimeoutError:
            self._pause_timed_out(run)
            return False
        finally:
            run.resume_waiter = None
        return True

    def _pause_timed_out(self, run: SandboxRun) -> None:
        self._finish(
            run,
            "timed_out",
            error={
                "code": "AWAITING_HUMAN_TIMEOUT",
                "message": "Nobody resumed the run within awaiting_human_timeout_seconds="
                f"{run.awaiting_human_timeout_seconds}.",
            },
        )

    def _deadline(self, run: SandboxRun) -> None:
        self._finish(
            run,
            "timed_out",
            error={
                "code": "DEADLINE_EXCEEDED",
                "message": f"The run exceeded deadline_seconds={run.deadline_seconds}.",
            },
        )

    def _stop_driver(self, run: SandboxRun) -> None:
        driver, run.driver = run.driver, None
        if driver is not None and driver is not asyncio.current_task():
            driver.cancel()
        if run.deadline_handle is not None:
            run.deadline_handle.cancel()
            run.deadline_handle = None

    def _finish(
        self,
        run: SandboxRun,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        if run.status in TERMINAL:
            return
        self._stop_driver(run)
        self.screen(run.machine_id).clear_pause()
        run.result = result
        run.error = error
        run.finished_at = time.time()
        if status != "awaiting_human":
            run.awaiting_human_since = None
        if run.llm is not None:
            run.llm["key_scrubbed"] = True
        if error is not None:
            self._emit(run, "error", error)
        self._set_status(run, status)
        self._emit(run, "done", {"status": status, "result": result, "error": error})
        self._webhook(run, f"run.{status}")

    def _webhook(self, run: SandboxRun, event_type: str) -> None:
        if run.webhook_url and run.webhook_secret:
            run_json, shape = run.to_json(None), self.config.webhook_body
            self.webhooks.send(run.webhook_url, run.webhook_secret, event_type, run_json, shape)


__all__ = [
    "DEFAULT_SCENARIO",
    "MACHINE_IDS",
    "TERMINAL",
    "CreateRefused",
    "Created",
    "Engine",
    "IdempotencyRecord",
    "InvalidState",
    "KeyInFlight",
    "KeyReused",
    "SandboxConfig",
    "SandboxRun",
    "body_hash",
]
