"""Pause payloads and the accepted answer forms."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_coasty.human import HumanAnswer, build_pause_request, parse_answer

ACCEPTED: list[tuple[Any, HumanAnswer]] = [
    ("the code is 1234", HumanAnswer("resume", "the code is 1234")),
    ("   ", HumanAnswer("resume", None)),
    ({"decisions": [{"type": "respond", "message": "ok"}]}, HumanAnswer("resume", "ok")),
    ({"decisions": [{"type": "approve"}]}, HumanAnswer("resume", None)),
    ({"decisions": [{"type": "reject"}]}, HumanAnswer("cancel", None)),
    ({"decisions": [{"type": "reject", "message": "no"}]}, HumanAnswer("cancel", "no")),
    ({"action": "resume", "note": "go"}, HumanAnswer("resume", "go")),
    ({"action": "cancel"}, HumanAnswer("cancel", None)),
    # Agent Chat UI's edit: the person typed into the action's `answer` field.
    (
        {
            "decisions": [
                {
                    "type": "edit",
                    "edited_action": {
                        "name": "coasty_computer",
                        "args": {"answer": "481516", "task": "Pay the invoice"},
                    },
                }
            ]
        },
        HumanAnswer("resume", "481516"),
    ),
    (
        {"decisions": [{"type": "edit", "edited_action": {"name": "x", "args": {}}}]},
        HumanAnswer("resume", None),
    ),
    # A decision on its own, as LangChain's HITL types spell one.
    ({"type": "approve"}, HumanAnswer("resume", None)),
    ({"type": "reject", "message": "stop"}, HumanAnswer("cancel", "stop")),
    # The older HumanInterrupt responses (Agent Inbox, Agent Chat UI before 2025-11).
    (
        [{"type": "response", "args": "use the work account"}],
        HumanAnswer("resume", "use the work account"),
    ),
    ([{"type": "accept", "args": None}], HumanAnswer("resume", None)),
    ([{"type": "ignore", "args": None}], HumanAnswer("cancel", None)),
    (
        [{"type": "edit", "args": {"action": "coasty_computer", "args": {"answer": "42"}}}],
        HumanAnswer("resume", "42"),
    ),
]


@pytest.mark.parametrize(("answer", "expected"), ACCEPTED)
def test_accepted_answers(answer: Any, expected: HumanAnswer) -> None:
    assert parse_answer(answer) == expected


@pytest.mark.parametrize(
    "answer",
    [
        42,
        None,
        {"decisions": []},
        {"decisions": [{"type": "edit"}]},
        {"decisions": [{"type": "edit", "edited_action": {"args": {"answer": 7}}}]},
        [],
        [{"type": "response", "args": 5}],
        [{"type": "accept"}, {"type": "ignore"}],
        [{"type": "snooze"}],
        [{"type": "edit", "args": "not a dict"}],
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
    (action,) = request["action_requests"]
    assert action["name"] == "coasty_computer"
    # Agent Chat UI edits every arg in a text field: the answer first, all strings.
    assert action["args"] == {"answer": "", "task": "Pay the invoice"}
    assert action["description"].startswith("Approve paying $10? (reason: payment)\n\n")
    assert "**answer**" in action["description"]
    assert request["review_configs"] == [
        {
            "action_name": "coasty_computer",
            "allowed_decisions": ["approve", "edit", "reject", "respond"],
        }
    ]
    assert request["coasty"] == {
        "run_id": "r-1",
        "machine_id": "m-1",
        "task": "Pay the invoice",
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


def test_answer_schema_admits_every_accepted_form() -> None:
    """``interrupt()`` validates answers against ``AnswerValue``: no accepted form is refused."""
    from pydantic import TypeAdapter

    from langchain_coasty.human import AnswerValue

    adapter: TypeAdapter[Any] = TypeAdapter(AnswerValue)
    for answer, expected in ACCEPTED:
        if isinstance(answer, HumanAnswer):
            continue
        assert parse_answer(adapter.validate_python(answer)) == expected
