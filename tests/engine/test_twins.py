"""The sync and async drivers make the same decisions for the same scripted event sequence.

Both drivers run the same step generators; what could still differ is how each carries an
operation out (what it suppresses, when it closes, when it cancels). Each case drives both
with one script against a recording client and compares every call they made and the final
run they returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManager, CallbackManager

from langchain_coasty._engine.drivers import drive_async, drive_sync
from langchain_coasty._engine.progress import DELIVERED_RUNS
from langchain_coasty._engine.session import RunSession
from langchain_coasty._engine.steps import call_steps
from langchain_coasty.callbacks import CoastyCallbackHandler, CoastyEventPayload
from langchain_coasty.client import (
    ConflictError,
    CreateResult,
    IdleTimeoutError,
    NotFoundError,
    Run,
    RunEvent,
    Screenshot,
)
from langchain_coasty.runnable import CoastyRunnable

KEY = "sk-coasty-test-0123456789abcdef"
TASK = "Export the March invoices"


def _event(seq: int, kind: str, **data: Any) -> RunEvent:
    return RunEvent(seq=seq, type=kind, data=data)


@dataclass
class Script:
    """What the fake Coasty does for one run."""

    events: list[RunEvent]
    idle_after: int | None = None
    """Raise ``IdleTimeoutError`` after this many events."""
    status: str = "succeeded"
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    cancelled: bool = False
    screens: bool = True
    """Whether the machine has a screen (else screenshots are a 404)."""

    def run(self) -> Run:
        status = "cancelled" if self.cancelled else self.status
        return Run(id="run-1", status=status, machine_id="m-1", task=TASK, credits_charged=7)

    def created(self, request: Any, key: str) -> CreateResult:
        self.calls.append(("create", request.task, key == ""))
        return CreateResult(
            run=Run(id="run-1", status="running", machine_id="m-1", task=TASK),
            replayed=False,
            idempotency_key=key,
        )

    def stream(self, after: int, idle: float | None) -> Iterator[RunEvent]:
        self.calls.append(("events", after, idle))
        for count, event in enumerate(e for e in self.events if e.seq > after):
            if self.idle_after is not None and count >= self.idle_after:
                raise IdleTimeoutError("no event")
            yield event

    def resumed(self, note: str | None) -> Run:
        self.calls.append(("resume", note))
        return self.run()

    def screenshot(self, machine_id: str) -> Screenshot:
        self.calls.append(("screenshot", machine_id))
        if not self.screens:
            raise NotFoundError(
                "no screen for this machine kind", status_code=404, code="NOT_FOUND"
            )
        return Screenshot(machine_id=machine_id, image=b"img", width=2, height=2)

    def cancel(self) -> Run:
        self.calls.append(("cancel",))
        if self.cancelled:
            raise ConflictError("already cancelled")
        self.cancelled = True
        return self.run()


class _SyncStream:
    def __init__(self, events: Iterator[RunEvent], script: Script) -> None:
        self._events, self._script = events, script

    def __iter__(self) -> _SyncStream:
        return self

    def __next__(self) -> RunEvent:
        return next(self._events)

    def __enter__(self) -> _SyncStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._script.calls.append(("close",))


class _AsyncStream:
    def __init__(self, events: Iterator[RunEvent], script: Script) -> None:
        self._events, self._script = events, script

    def __aiter__(self) -> _AsyncStream:
        return self

    async def __anext__(self) -> RunEvent:
        await asyncio.sleep(0)
        try:
            return next(self._events)
        except StopIteration:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._script.calls.append(("close",))


class _SyncRuns:
    def __init__(self, script: Script) -> None:
        self.s = script

    def create_request(self, request: Any, *, idempotency_key: str) -> CreateResult:
        return self.s.created(request, idempotency_key)

    def get(self, run_id: str) -> Run:
        self.s.calls.append(("get",))
        return self.s.run()

    def events(self, run_id: str, after: int = 0, idle_timeout: float | None = None) -> Any:
        return _SyncStream(self.s.stream(after, idle_timeout), self.s)

    def resume(self, run_id: str, note: str | None = None) -> Run:
        return self.s.resumed(note)

    def cancel(self, run_id: str) -> Run:
        return self.s.cancel()


class _AsyncRuns:
    def __init__(self, script: Script) -> None:
        self.s = script

    async def create_request(self, request: Any, *, idempotency_key: str) -> CreateResult:
        return self.s.created(request, idempotency_key)

    async def get(self, run_id: str) -> Run:
        self.s.calls.append(("get",))
        return self.s.run()

    def events(self, run_id: str, after: int = 0, idle_timeout: float | None = None) -> Any:
        return _AsyncStream(self.s.stream(after, idle_timeout), self.s)

    async def resume(self, run_id: str, note: str | None = None) -> Run:
        return self.s.resumed(note)

    async def cancel(self, run_id: str) -> Run:
        return self.s.cancel()


class _SyncMachines:
    def __init__(self, script: Script) -> None:
        self.s = script

    def screenshot(self, machine_id: str) -> Screenshot:
        return self.s.screenshot(machine_id)


class _AsyncMachines:
    def __init__(self, script: Script) -> None:
        self.s = script

    async def screenshot(self, machine_id: str) -> Screenshot:
        return self.s.screenshot(machine_id)


@dataclass
class _Client:
    runs: Any
    machines: Any


class _Recorder(CoastyCallbackHandler):
    """Every payload dispatched, and the child run's start and end."""

    run_inline = True

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_coasty_event(self, event: CoastyEventPayload) -> None:
        self.seen.append((event["seq"], event["type"], event["data"]))

    def on_coasty_screenshot(self, event: CoastyEventPayload) -> None:
        self.seen.append((event["seq"], "screenshot", event["data"]))

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        self.seen.append(("start", kwargs.get("name"), sorted(kwargs.get("tags") or [])))

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        self.seen.append(("end", outputs))

    def on_chain_error(self, error: BaseException, **kwargs: Any) -> None:
        self.seen.append(("error", type(error).__name__))


def _settings(**kwargs: Any) -> CoastyRunnable:
    # Both capture moments (the tool's default), so the twins are compared on both.
    kwargs.setdefault("screens_at", ("pause", "end"))
    return CoastyRunnable(api_key=KEY, machine_id="m-1", **kwargs)


def _outcome(
    session: RunSession, script: Script, delivered: list[int], recorder: _Recorder
) -> dict[str, Any]:
    result = session.result
    return {
        "calls": script.calls,
        "callbacks": recorder.seen,
        "delivered": delivered,
        "status": None if result is None else result.status.value,
        "stop_reason": None if result is None else result.stop_reason,
        "stop_note": None if result is None else result.stop_note,
        "event_log": None if result is None else result.event_log,
    }


def _drive_sync(make: Callable[[], Script], settings: CoastyRunnable, stop_after: int | None):
    DELIVERED_RUNS.clear()  # each driver meets the run for the first time
    script, recorder = make(), _Recorder()
    session = RunSession.for_call(settings, TASK, None)
    delivered: list[int] = []
    callbacks = CallbackManager(handlers=[recorder], inheritable_handlers=[recorder])
    events = drive_sync(
        session, call_steps(session), _Client(_SyncRuns(script), _SyncMachines(script)), callbacks
    )
    for event in events:
        delivered.append(event.seq)
        if stop_after is not None and len(delivered) >= stop_after:
            events.close()
            break
    return _outcome(session, script, delivered, recorder)


async def _drive_async(
    make: Callable[[], Script], settings: CoastyRunnable, stop_after: int | None
):
    DELIVERED_RUNS.clear()  # each driver meets the run for the first time
    script, recorder = make(), _Recorder()
    session = RunSession.for_call(settings, TASK, None)
    delivered: list[int] = []
    callbacks = AsyncCallbackManager(handlers=[recorder], inheritable_handlers=[recorder])
    events = drive_async(
        session, call_steps(session), _Client(_AsyncRuns(script), _AsyncMachines(script)), callbacks
    )
    async for event in events:
        delivered.append(event.seq)
        if stop_after is not None and len(delivered) >= stop_after:
            await events.aclose()
            break
    return _outcome(session, script, delivered, recorder)


def _happy() -> Script:
    events = [
        _event(1, "status", status="running"),
        _event(2, "step", step=1, summary="Opened the portal"),
        _event(3, "billing", credits_charged=4),
        _event(4, "done", status="succeeded"),
    ]
    return Script(events)


def _pause(status: str) -> Callable[[], Script]:
    def make() -> Script:
        events = [
            _event(1, "step", step=1, summary="Reached the login page"),
            _event(2, "awaiting_human", reason="otp", question="What is the code?"),
            _event(3, "resumed", note="481516"),
            _event(4, "step", step=2, summary="Logged in"),
            _event(5, "done", status=status),
        ]
        return Script(events, status=status)

    return make


def _budget() -> Script:
    events = [
        _event(1, "step", step=1),
        _event(2, "billing", credits_charged=250),
        _event(3, "step", step=2),
        _event(4, "done", status="cancelled"),
    ]
    return Script(events, status="cancelled")


def _idle() -> Script:
    return Script([_event(1, "step", step=1), _event(2, "step", step=2)], idle_after=1)


def _long() -> Script:
    return Script([_event(n, "step", step=n) for n in range(1, 8)] + [_event(8, "done")])


def _no_screen() -> Script:
    script = _pause("succeeded")()
    script.screens = False
    return script


def _answer(value: Any) -> Callable[[Any], Any]:
    return lambda pause: value


CASES = {
    "happy path": (_happy, {}, None),
    "pause answered": (_pause("succeeded"), {"on_awaiting_human": _answer("481516")}, None),
    "pause rejected": (
        _pause("cancelled"),
        {"on_awaiting_human": _answer({"decisions": [{"type": "reject", "message": "no"}]})},
        None,
    ),
    "pause handed back": (_pause("succeeded"), {"on_awaiting_human": "return"}, None),
    "pause fails the run": (_pause("cancelled"), {"on_awaiting_human": "fail"}, None),
    "budget exceeded": (_budget, {"max_cost_usd": 1.0}, None),
    "idle timeout": (_idle, {"idle_timeout": 0.5}, None),
    "abort mid-stream": (_long, {}, 3),
    "screen unavailable": (_no_screen, {"on_awaiting_human": _answer("481516")}, None),
    "screens off": (_happy, {"screens": False}, None),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_sync_and_async_drivers_decide_alike(case: str) -> None:
    make, settings, stop_after = CASES[case]
    sync = await asyncio.to_thread(_drive_sync, make, _settings(**settings), stop_after)
    async_ = await _drive_async(make, _settings(**settings), stop_after)
    assert sync == async_
    # What each case is about actually happened (so equality is not of two empty runs).
    calls = [c[0] for c in sync["calls"]]
    assert calls[0] == "create"
    expected = {
        "happy path": (["create", "events", "close", "screenshot", "get"], None),
        "pause answered": (
            ["create", "events", "screenshot", "resume", "close", "screenshot", "get"],
            None,
        ),
        "pause rejected": (
            ["create", "events", "screenshot", "cancel", "close", "screenshot", "get"],
            "rejected",
        ),
        "pause handed back": (
            ["create", "events", "screenshot", "close", "get"],
            "awaiting_human",
        ),
        "pause fails the run": (
            ["create", "events", "cancel", "close", "screenshot", "get"],
            "awaiting_human",
        ),
        "budget exceeded": (
            ["create", "events", "cancel", "close", "screenshot", "get"],
            "budget_exceeded",
        ),
        "idle timeout": (
            ["create", "events", "cancel", "close", "screenshot", "get"],
            "idle_timeout",
        ),
        "abort mid-stream": (["create", "events", "close", "cancel"], None),
        "screen unavailable": (
            ["create", "events", "screenshot", "resume", "close", "screenshot", "get"],
            None,
        ),
        "screens off": (["create", "events", "close", "get"], None),
    }[case]
    assert (calls, sync["stop_reason"]) == expected
    if case == "pause answered":
        assert ("resume", "481516") in sync["calls"]
    if case == "abort mid-stream":
        assert sync["delivered"] == [1, 2, 3] and sync["status"] is None
        assert sync["callbacks"][-1] == ("error", "GeneratorExit")
    else:
        assert sync["callbacks"][0] == ("start", "coasty_run", ["coasty"])
        assert sync["callbacks"][-1][0] == "end"
        events = [c for c in sync["callbacks"][1:-1] if c[1] != "screenshot"]
        assert [c[0] for c in events] == sync["delivered"]
        shots = [c[2] for c in sync["callbacks"] if c[1] == "screenshot"]
        assert len(shots) == calls.count("screenshot")
        if case == "screen unavailable":
            assert sync["status"] == "succeeded"
            assert all("unavailable (NOT_FOUND" in s["screen"]["omitted"] for s in shots)
        elif shots:
            last = "pause" if case == "pause handed back" else "end"
            assert shots[-1]["screen"]["data"] == "aW1n" and shots[-1]["at"] == last


async def test_an_async_policy_is_refused_on_the_sync_path_only() -> None:
    async def approve(pause: Any) -> str:
        return "ok"

    settings = {"on_awaiting_human": approve}
    with pytest.raises(TypeError, match="async callable"):
        await asyncio.to_thread(_drive_sync, _pause("succeeded"), _settings(**settings), None)
    done = await _drive_async(_pause("succeeded"), _settings(**settings), None)
    assert ("resume", "ok") in done["calls"]
