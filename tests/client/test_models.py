"""Models parse tolerantly: unknown fields and event types pass through."""

from __future__ import annotations

import json
from typing import Any

import pytest

from langchain_coasty import Run, RunEvent, RunStatus


def test_run_keeps_unknown_fields_and_hides_the_webhook_secret() -> None:
    run = Run.model_validate(
        {
            "id": "r1",
            "object": "agent.run",
            "status": "awaiting_human",
            "cost_cents": 15,
            "webhook_secret": "whsec_abc",
            "budget_cents": 500,
        }
    )
    assert run.status is RunStatus.AWAITING_HUMAN and not run.is_terminal
    assert run.model_extra == {"budget_cents": 500}
    assert run.cost_usd == 0.15
    assert "whsec_abc" not in repr(run) and "whsec_abc" not in run.model_dump_json()


def test_run_status_terminality() -> None:
    terminal = {s for s in RunStatus if s.is_terminal}
    assert terminal == {"succeeded", "failed", "cancelled", "timed_out"}
    assert str(RunStatus.RUNNING) == "running"


def test_event_accessors_return_none_when_absent_or_mistyped() -> None:
    step = RunEvent(seq=3, type="step", data={"step": 2, "steps_completed": "2", "max_steps": 50})
    assert (step.step, step.steps_completed, step.max_steps) == (2, None, 50)
    assert step.status is None and step.reason is None and step.credits_charged is None
    pause = RunEvent(seq=4, type="awaiting_human", data={"reason": "2FA", "question": "Code?"})
    assert (pause.reason, pause.question) == ("2FA", "Code?")
    done = RunEvent(seq=5, type="done", data={"status": "failed", "error": {"code": "X"}})
    assert done.is_done and done.status == "failed" and done.error == {"code": "X"}
    error = RunEvent(seq=6, type="error", data={"code": "E", "message": "m"})
    assert (error.code, error.message, error.error) == ("E", "m", {"code": "E", "message": "m"})
    novel = RunEvent.model_validate(
        {"seq": 7, "type": "telemetry", "data": {"x": 1}, "extra": True}
    )
    assert novel.model_extra == {"extra": True} and novel.data == {"x": 1}
    assert RunEvent(seq=8, type="tool_result", data={"ok": 1}).ok is None


@pytest.mark.parametrize(
    ("frame", "sse_id", "expected"),
    [
        ({"seq": 1, "type": "step", "data": {"step": 1}, "ts": 1.5}, "1", (1, "step", {"step": 1})),
        ({"seq": 2, "type": "text", "data": None}, "2", (2, "text", {})),
        ({"seq": 3, "type": "text", "data": "hello"}, "3", (3, "text", {"value": "hello"})),
        ({"seq": True, "type": "status", "data": {}}, "4", (4, "status", {})),
        ({"type": "status", "data": {}}, "5", (5, "status", {})),
        ({"seq": 6, "data": {}, "ts": "yesterday"}, "6", (6, "reasoning", {})),
    ],
    ids=["well-formed", "null-data", "scalar-data", "bool-seq", "seq-from-id", "no-type"],
)
def test_stream_frames_are_read_tolerantly(
    frame: dict[str, Any], sse_id: str, expected: tuple[int, str, dict[str, Any]]
) -> None:
    from httpx_sse import ServerSentEvent

    from langchain_coasty.client._stream import _Cursor

    cursor = _Cursor(after=0)
    sse = ServerSentEvent(event="reasoning", data=json.dumps(frame), id=sse_id)
    event = cursor.accept(sse)
    assert event is not None
    assert (event.seq, event.type, event.data) == expected
    assert cursor.last_seq == expected[0]
    assert cursor.accept(sse) is None  # the same frame again is a duplicate
    assert cursor.duplicates == 1
