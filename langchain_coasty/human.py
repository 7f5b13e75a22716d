"""What happens when a Coasty run waits for a person (``awaiting_human``).

Policies (``on_awaiting_human`` on ``CoastyRunnable`` / ``CoastyComputerTool``):

* ``"interrupt"`` (default): inside a LangGraph graph, call ``interrupt()`` with a payload
  shaped like LangChain's ``HITLRequest`` plus a ``coasty`` block; the answer resumes or
  cancels the run. Outside a graph it behaves like ``"return"``.
* ``"return"``: stop following and hand the pause back (the tool result says how to answer
  with ``coasty_resume_run`` / ``coasty_cancel_run``).
* ``"fail"``: cancel the run and report it.
* a callable ``(request) -> answer`` (sync, or async when awaited through the async path),
  for automatic approvers.

Accepted answers: a plain string (the note; resume), ``{"decisions": [{"type": "respond",
"message": m}]}`` (resume with ``m``), ``{"decisions": [{"type": "approve"}]}`` (resume),
``{"decisions": [{"type": "reject", "message"?: m}]}`` (cancel), and
``{"action": "resume" | "cancel", "note"?: n}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypeAlias

from typing_extensions import TypedDict

__all__ = [
    "AnswerValue",
    "AwaitingHumanPolicy",
    "HumanAnswer",
    "HumanDecision",
    "PauseRequest",
    "parse_answer",
    "question_of",
]

DEFAULT_ACTION_NAME = "coasty_computer"
"""The action name of a pause raised outside a tool (a tool pauses under its own name)."""
MAX_NOTE = 2000


class HumanDecision(TypedDict):
    """One decision in a ``{"decisions": [...]}`` answer."""

    type: Literal["respond", "approve", "reject"]
    message: NotRequired[str | None]


class DecisionsAnswer(TypedDict):
    """HITL-style answer: ``{"decisions": [decision]}``."""

    decisions: list[HumanDecision]


class ActionAnswer(TypedDict):
    """Plain answer: ``{"action": "resume" | "cancel", "note": ...}``."""

    action: Literal["resume", "cancel"]
    note: NotRequired[str | None]


AnswerValue: TypeAlias = str | DecisionsAnswer | ActionAnswer
"""Every answer form ``interrupt()`` accepts for a Coasty pause."""

PauseRequest: TypeAlias = dict[str, Any]
"""The interrupt payload (also what a callable policy receives)."""

AwaitingHumanPolicy: TypeAlias = (
    Literal["interrupt", "return", "fail"] | Callable[[PauseRequest], Any | Awaitable[Any]]
)


@dataclass(frozen=True)
class HumanAnswer:
    """A parsed answer: resume (with an optional note) or cancel."""

    action: Literal["resume", "cancel"]
    note: str | None = None


def build_pause_request(
    *,
    action_name: str = DEFAULT_ACTION_NAME,
    task: str,
    machine_id: str | None,
    run_id: str,
    seq: int,
    data: Mapping[str, Any],
    steps_completed: int | None = None,
    credits_charged: int | None = None,
    fallback_reason: str | None = None,
) -> PauseRequest:
    """Build the HITLRequest-shaped interrupt payload for one ``awaiting_human`` event.

    ``fallback_reason`` (the run's ``awaiting_human_reason``) stands in when the event
    carries neither a reason nor a question.
    """
    reason = _str_or_none(data.get("reason"))
    question = _str_or_none(data.get("question"))
    if reason is None and question is None:
        reason = _str_or_none(fallback_reason)
    steps = _int_or_none(data.get("steps_completed"), steps_completed)
    credits = _int_or_none(data.get("credits_charged"), credits_charged)
    description = question or reason or "The Coasty agent needs a person to continue."
    if question and reason and reason not in question:
        description = f"{question} (reason: {reason})"
    return {
        "action_requests": [
            {
                "name": action_name,
                "args": {"task": task[:MAX_NOTE], "machine_id": machine_id},
                "description": description,
            }
        ],
        "review_configs": [
            {"action_name": action_name, "allowed_decisions": ["respond", "approve", "reject"]}
        ],
        "coasty": {
            "run_id": run_id,
            "machine_id": machine_id,
            "reason": reason,
            "question": question,
            "steps_completed": steps,
            "credits_charged": credits,
            "cost_usd": None if credits is None else round(credits / 100, 2),
            "seq": seq,
        },
    }


def pause_says_why(request: PauseRequest) -> bool:
    """Whether a pause payload holds the agent's reason or question."""
    block = request.get("coasty")
    return isinstance(block, Mapping) and bool(block.get("reason") or block.get("question"))


def pause_run_id(interrupt_value: Any) -> str | None:
    """The Coasty run a pause payload is about (None when the value is not a Coasty pause)."""
    if isinstance(interrupt_value, Mapping):
        block = interrupt_value.get("coasty")
        if isinstance(block, Mapping) and isinstance(block.get("run_id"), str):
            return str(block["run_id"])
    return None


def parse_answer(answer: Any) -> HumanAnswer:
    """Turn any accepted answer form into a ``HumanAnswer``; raise ``ValueError`` otherwise."""
    if isinstance(answer, HumanAnswer):
        return answer
    if isinstance(answer, str):
        return HumanAnswer("resume", _note(answer))
    if isinstance(answer, Mapping):
        if "decisions" in answer:
            decisions = answer["decisions"]
            if not isinstance(decisions, list) or len(decisions) != 1:
                raise ValueError(_bad(answer, "expected exactly one decision"))
            decision = decisions[0]
            if not isinstance(decision, Mapping):
                raise ValueError(_bad(answer, "a decision must be a dict"))
            kind = decision.get("type")
            message = decision.get("message")
            if message is not None and not isinstance(message, str):
                raise ValueError(_bad(answer, "a decision's message must be a string"))
            if kind in ("respond", "approve"):
                return HumanAnswer("resume", _note(message))
            if kind == "reject":
                return HumanAnswer("cancel", _note(message))
            raise ValueError(_bad(answer, f"unknown decision type {kind!r}"))
        if "action" in answer:
            action = answer["action"]
            note = answer.get("note")
            if note is not None and not isinstance(note, str):
                raise ValueError(_bad(answer, "note must be a string"))
            if action in ("resume", "cancel"):
                return HumanAnswer(action, _note(note))
            raise ValueError(_bad(answer, f"unknown action {action!r}"))
    raise ValueError(_bad(answer, "unsupported answer type"))


def question_of(interrupt_value: Any) -> str:
    """The Coasty agent's question in a pause payload (what ``build_pause_request`` wrote)."""
    if isinstance(interrupt_value, Mapping):
        block = interrupt_value.get("coasty") or {}
        for text in (block.get("question"), block.get("reason")):
            if text:
                return str(text)
        requests = interrupt_value.get("action_requests") or [{}]
        if requests[0].get("description"):
            return str(requests[0]["description"])
    return str(interrupt_value)


def _note(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value[:MAX_NOTE]


def _bad(answer: Any, why: str) -> str:
    shown = repr(answer)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return (
        f"Invalid answer to a Coasty pause ({why}): {shown}. Answer with a string (the note), "
        '{"decisions": [{"type": "respond", "message": "..."}]}, '
        '{"decisions": [{"type": "approve"}]}, {"decisions": [{"type": "reject"}]} or '
        '{"action": "resume" | "cancel", "note": "..."}.'
    )


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:MAX_NOTE] if text else None


def _int_or_none(value: Any, fallback: int | None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return fallback
