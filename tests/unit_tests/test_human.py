"""Pause payloads and the accepted answer forms."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_coasty.human import HumanAnswer, build_pause_request, parse_answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("the code is 1234", HumanAnswer("resume", "the code is 1234")),
        ("   ", HumanAnswer("resume", None)),
        ({"decisions": [{"type": "respond", "message": "ok"}]}, HumanAnswer("resume", "ok")),
        ({"decisions": [{"type": "approve"}]}, HumanAnswer("resume", None)),
        ({"decisions": [{"type": "reject"}]}, HumanAnswer("cancel", None)),
        ({"decisions": [{"type": "reject", "message": "no"}]}, HumanAnswer("cancel", "no")),
        ({"action": "resume", "note": "go"}, HumanAnswer("resume", "go")),
        ({"action": "cancel"}, HumanAnswer("cancel", None)),
    ],
)
def test_accepted_answers(answer: Any, expected: HumanAnswer) -> None:
    assert parse_answer(answer) == expected


@pytest.mark.parametrize(
    "answer",
    [
        42,
        None,
        {"decisions": []},
        {"decisions": [{"type": "edit"}]},
        {"decisions": [{"type": "respond"}, {"type": "reject"}]},
        {"action": "pause"},
        {"action": "resume", "note": 5},
        {"something": "else"},
    ],
)
def test_bad_answers_explain_the_accepted_forms(answer: Any) -> None:
    with pytest.raises(ValueError, match="Answer with a string"):
        parse_answer(answer)


def test_long_notes_are_capped_to_the_api_limit() -> None:
    assert len(parse_answer("x" * 5000).note or "") == 2000


def test_pause_request_is_hitl_shaped() -> None:
    request = build_pause_request(
        task="Pay the invoice",
        machine_id="m-1",
        run_id="r-1",
        seq=9,
        data={
            "reason": "payment",
            "question": "Approve paying $10?",
            "steps_completed": 2,
            "credits_charged": 10,
        },
    )
    assert request["action_requests"] == [
        {
            "name": "coasty_computer",
            "args": {"task": "Pay the invoice", "machine_id": "m-1"},
            "description": "Approve paying $10? (reason: payment)",
        }
    ]
    assert request["review_configs"][0]["action_name"] == "coasty_computer"
    assert request["coasty"] == {
        "run_id": "r-1",
        "machine_id": "m-1",
        "reason": "payment",
        "question": "Approve paying $10?",
        "steps_completed": 2,
        "credits_charged": 10,
        "cost_usd": 0.1,
        "seq": 9,
    }


def test_pause_request_tolerates_missing_fields() -> None:
    request = build_pause_request(task="t", machine_id=None, run_id="r", seq=1, data={})
    assert request["action_requests"][0]["description"]
    assert request["coasty"]["cost_usd"] is None
