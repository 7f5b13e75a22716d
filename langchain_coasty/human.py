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

The payload answers with Agent Chat UI's three decisions: ``approve`` resumes with no note,
``edit`` resumes with what the person typed into the action's ``answer`` argument (the
``task`` argument is shown for reference; editing it changes nothing), ``reject`` cancels
the run (its message is kept as the reason).

Accepted answers, each as ``{"decisions": [d]}`` or the decision ``d`` alone:
``{"type": "approve"}`` (resume), ``{"type": "edit", "edited_action": {"name": ...,
"args": {"answer": a}}}`` (resume with ``a``), ``{"type": "reject", "message"?: m}``
(cancel), ``{"type": "respond", "message": m}`` (resume with ``m``); also a plain string
(the note; resume), ``{"action": "resume" | "cancel", "note"?: n}``, and the older
``HumanInterrupt`` responses ``[{"type": "response" | "accept" | "edit" | "ignore",
"args": ...}]`` (``ignore`` cancels).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypeAlias

from typing_extensions import TypedDict

__all__ = [
    "AnswerValue",
    "AwaitingHumanPolicy",
    "EditedAction",
    "HumanAnswer",
    "HumanDecision",
    "LegacyResponse",
    "PauseRequest",
    "parse_answer",
    "question_of",
]

DEFAULT_ACTION_NAME = "coasty_computer"
"""The action name of a pause raised outside a tool (a tool pauses under its own name)."""
ANSWER_ARG = "answer"
"""The argument of the paused action that a person fills in (Agent Chat UI's ``edit``)."""
ALLOWED_DECISIONS = ("approve", "edit", "reject", "respond")
MAX_NOTE = 2000


class EditedAction(TypedDict):
    """The action of an ``edit`` decision, with the person's ``answer`` among its args."""

    name: NotRequired[str]
    args: dict[str, Any]


class HumanDecision(TypedDict):
    """One decision in a ``{"decisions": [...]}`` answer (LangChain's HITL decisions)."""

    type: Literal["approve", "edit", "reject", "respond"]
    message: NotRequired[str | None]
    edited_action: NotRequired[EditedAction]


class DecisionsAnswer(TypedDict):
    """HITL-style answer: ``{"decisions": [decision]}``."""

    decisions: list[HumanDecision]


class LegacyResponse(TypedDict):
    """An older ``HumanInterrupt`` response (Agent Inbox, Agent Chat UI before 2025-11)."""

    type: Literal["response", "accept", "edit", "ignore"]
    args: NotRequired[Any]


class ActionAnswer(TypedDict):
    """Plain answer: ``{"action": "resume" | "cancel", "note": ...}``."""

    action: Literal["resume", "cancel"]
    note: NotRequired[str | None]


AnswerValue: TypeAlias = str | DecisionsAnswer | ActionAnswer | HumanDecision | list[LegacyResponse]
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
    carries neither a reason nor a question. Every arg is a string: Agent Chat UI edits
    each one in a text field.
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
    description += (
        f"\n\nType your answer in **{ANSWER_ARG}** and choose *Edit*; *Approve* continues "
        "without an answer; *Reject* cancels the run."
    )
    return {
        "action_requests": [
            {
                "name": action_name,
                "args": {ANSWER_ARG: "", "task": task[:MAX_NOTE]},
                "description": description,
            }
        ],
        "review_configs": [
            {"action_name": action_name, "allowed_decisions": list(ALLOWED_DECISIONS)}
        ],
        "coasty": {
            "run_id": run_id,
            "machine_id": machine_id,
            "task": task[:MAX_NOTE],
            "reason": reason,
            "question": question,
            "steps_completed": steps,
            "credits_charged": credits,
            "cost_usd": None if credits is None else round(credits / 100, 2),
            "seq": seq,
        },
    }


def attach_screen(request: PauseRequest, screen: Mapping[str, Any] | None) -> None:
    """Put the machine's screen at the pause under the payload's ``coasty`` block."""
    if screen is not None:
        request["coasty"]["screen"] = dict(screen)


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
    if isinstance(answer, list):
        return _legacy(answer)
    if isinstance(answer, Mapping):
        if "decisions" in answer:
            decisions = answer["decisions"]
            if not isinstance(decisions, list) or len(decisions) != 1:
                raise ValueError(_bad(answer, "expected exactly one decision"))
            return _decision(decisions[0], answer)
        if "type" in answer:
            return _decision(answer, answer)
        if "action" in answer:
            action = answer["action"]
            note = answer.get("note")
            if note is not None and not isinstance(note, str):
                raise ValueError(_bad(answer, "note must be a string"))
            if action in ("resume", "cancel"):
                return HumanAnswer(action, _note(note))
            raise ValueError(_bad(answer, f"unknown action {action!r}"))
    raise ValueError(_bad(answer, "unsupported answer type"))


def _decision(decision: Any, answer: Any) -> HumanAnswer:
    """One HITL decision: approve, edit (the ``answer`` arg), reject or respond."""
    if not isinstance(decision, Mapping):
        raise ValueError(_bad(answer, "a decision must be a dict"))
    kind = decision.get("type")
    if kind == "edit":
        edited = decision.get("edited_action")
        if not isinstance(edited, Mapping) or not isinstance(edited.get("args"), Mapping):
            raise ValueError(_bad(answer, 'an edit needs "edited_action": {"args": {...}}'))
        return HumanAnswer("resume", _answer_arg(edited["args"], answer))
    message = decision.get("message")
    if message is not None and not isinstance(message, str):
        raise ValueError(_bad(answer, "a decision's message must be a string"))
    if kind in ("respond", "approve"):
        return HumanAnswer("resume", _note(message))
    if kind == "reject":
        return HumanAnswer("cancel", _note(message))
    raise ValueError(_bad(answer, f"unknown decision type {kind!r}"))


def _legacy(answer: list[Any]) -> HumanAnswer:
    """An older ``HumanInterrupt`` answer: ``[{"type": ..., "args": ...}]``."""
    if len(answer) != 1 or not isinstance(answer[0], Mapping):
        raise ValueError(_bad(answer, "expected a list of exactly one response"))
    kind, args = answer[0].get("type"), answer[0].get("args")
    if kind == "response":
        if args is not None and not isinstance(args, str):
            raise ValueError(_bad(answer, "a response's args must be a string"))
        return HumanAnswer("resume", _note(args))
    if kind == "accept":
        return HumanAnswer("resume")
    if kind == "ignore":
        return HumanAnswer("cancel")
    if kind == "edit":
        inner = args.get("args") if isinstance(args, Mapping) else None
        if not isinstance(inner, Mapping):
            raise ValueError(_bad(answer, 'an edit needs "args": {"args": {...}}'))
        return HumanAnswer("resume", _answer_arg(inner, answer))
    raise ValueError(_bad(answer, f"unknown response type {kind!r}"))


def _answer_arg(args: Mapping[str, Any], answer: Any) -> str | None:
    value = args.get(ANSWER_ARG)
    if value is not None and not isinstance(value, str):
        raise ValueError(_bad(answer, f"the {ANSWER_ARG!r} argument must be a string"))
    return _note(value)


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
        '{"decisions": [{"type": "approve"}]}, {"decisions": [{"type": "edit", '
        '"edited_action": {"name": "...", "args": {"answer": "..."}}}]}, '
        '{"decisions": [{"type": "reject", "message": "..."}]}, '
        '{"decisions": [{"type": "respond", "message": "..."}]} or '
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
