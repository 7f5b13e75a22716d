"""Scripted agent behaviour: which steps, pauses, failures and results a run goes through.

Every run follows a plan chosen when it is created. User scenarios are tried first, in load
order; the first whose ``match`` pattern is found in the task wins. Otherwise the built-in
default scenario derives 3-6 steps from the task text, and pauses once in ``awaiting_human``
when the task mentions a login / sign in / password, a one-time code (OTP, 2FA), a payment
(pay, checkout, purchase) or an approval.

Scenario format (a JSON or YAML file holding a list, or ``{"scenarios": [...]}``; the same
dicts can be posted to ``POST /_sandbox/scenarios``)::

    scenarios:
      - name: checkout-with-otp          # optional, shown in logs and the control plane
        match: "buy|checkout"            # regex searched in the task, case-insensitive;
                                         # omit to match every task
        steps: 4                         # a number of generated steps, or a list of steps:
        # steps:
        #   - {action: navigate, args: {url: "https://shop.example"},
        #      reasoning: "Open the shop", summary: "Opened the shop", output: "page loaded"}
        pauses:                          # any number; after_step 0 pauses before step 1
          - {after_step: 2, reason: "The site sent a one-time code.",
             question: "What is the code?"}
        fail: {after_step: 3, code: "ELEMENT_NOT_FOUND", message: "No Pay button."}
        result: {order_id: "A-1"}        # the run's result when it succeeds
        events: 100000                   # total events the run emits (padded with
                                         # reasoning events); exact when it runs to the end
        pace: 0.5                        # seconds per step for this scenario (else server pace)

Event sequence of a run: ``status`` queued, ``status`` running, then per step ``reasoning``,
``tool_call``, ``tool_result``, ``step``, ``billing``; a pause adds ``status`` +
``awaiting_human`` and, on resume, ``resumed`` + ``status``; the run ends with ``text`` (on
success) or ``error`` (on failure/timeout), then ``status`` and ``done``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENTS_PER_STEP = 5
EVENTS_PER_PAUSE = 4
EVENTS_AT_START = 2
EVENTS_AT_END = 3


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One agent step: the action it takes and the words around it."""

    action: str
    args: dict[str, Any]
    reasoning: str
    summary: str
    output: str
    ok: bool = True


@dataclass(frozen=True, slots=True)
class PauseSpec:
    """A point where the agent needs a person."""

    reason: str
    question: str
    kind: str = "human_input"


@dataclass(frozen=True, slots=True)
class FailSpec:
    """A point where the run fails."""

    code: str
    message: str


PlanItem = StepSpec | PauseSpec | FailSpec


@dataclass(slots=True)
class Plan:
    """What one run will do, fixed at creation."""

    items: list[PlanItem]
    result: dict[str, Any] | None
    pace: float | None = None
    filler_per_step: list[int] = field(default_factory=list)
    scenario: str = "default"


@dataclass(frozen=True, slots=True)
class _Pause:
    after_step: int
    spec: PauseSpec


@dataclass(slots=True)
class Scenario:
    """A user (or the default) scenario: a task pattern and what runs matching it do."""

    name: str
    pattern: re.Pattern[str] | None = None
    steps: int | list[StepSpec] | None = None
    pauses: list[_Pause] = field(default_factory=list)
    fail: tuple[int, FailSpec] | None = None
    result: dict[str, Any] | None = None
    events: int | None = None
    pace: float | None = None
    derive_pauses: bool = False

    def matches(self, task: str) -> bool:
        return self.pattern is None or self.pattern.search(task) is not None

    def plan(self, task: str, max_steps: int) -> Plan:
        """Lay out the run: steps with pauses and a failure inserted at their positions."""
        if isinstance(self.steps, list):
            steps = list(self.steps)
        elif isinstance(self.steps, int):
            steps = _generated_steps(task, self.steps)
        else:
            steps = derive_steps(task)
        pauses = list(self.pauses)
        if self.derive_pauses:
            pause = default_pause(task)
            if pause is not None:
                pauses.append(_Pause(min(len(steps), max(1, (len(steps) + 1) // 2)), pause))
        items: list[PlanItem] = []
        for index in range(len(steps) + 1):
            items.extend(p.spec for p in pauses if p.after_step == index)
            if self.fail is not None and self.fail[0] == index:
                items.append(self.fail[1])
                break
            if index < len(steps):
                items.append(steps[index])
        result = self.result if self.result is not None else _default_result(task, len(steps))
        plan = Plan(items=items, result=result, pace=self.pace, scenario=self.name)
        if self.events is not None:
            plan.filler_per_step = _filler(items, self.events, max_steps)
        return plan


def _filler(items: Sequence[PlanItem], target: int, max_steps: int) -> list[int]:
    steps = min(sum(isinstance(i, StepSpec) for i in items), max_steps)
    pauses = 0
    seen_steps = 0
    for item in items:
        if isinstance(item, StepSpec):
            seen_steps += 1
            if seen_steps > max_steps:
                break
        elif isinstance(item, PauseSpec):
            pauses += 1
        else:
            break
    base = EVENTS_AT_START + EVENTS_AT_END + steps * EVENTS_PER_STEP + pauses * EVENTS_PER_PAUSE
    extra = max(0, target - base)
    slots = max(1, steps)
    return [extra // slots + (1 if i < extra % slots else 0) for i in range(slots)]


_PAUSE_RULES: tuple[tuple[re.Pattern[str], PauseSpec], ...] = (
    (
        re.compile(
            r"\b(one[- ]time (code|password)|otp|2fa|two[- ]factor|verification code)\b", re.I
        ),
        PauseSpec(
            "The site sent a one-time code that I cannot read.",
            "What is the one-time code? Enter it on the machine or reply with it, then resume.",
            "otp_required",
        ),
    ),
    (
        re.compile(r"\b(log ?in|logon|sign ?in|password)\b", re.I),
        PauseSpec(
            "The site asks me to sign in.",
            "Please sign in on the machine (or tell me which account to use), then resume.",
            "login_required",
        ),
    ),
    (
        re.compile(r"\b(pay|payment|checkout|check out|purchase)\b", re.I),
        PauseSpec(
            "I am about to submit a payment.",
            "Do you approve this payment? Resume to pay, or cancel the run.",
            "payment_confirmation",
        ),
    ),
    (
        re.compile(r"\b(approve|approval)\b", re.I),
        PauseSpec(
            "This step needs your approval.",
            "Do you approve? Resume to continue, or cancel the run.",
            "approval_required",
        ),
    ),
)


def default_pause(task: str) -> PauseSpec | None:
    """The pause the default scenario makes for this task, if the task needs a person."""
    for pattern, spec in _PAUSE_RULES:
        if pattern.search(task):
            return spec
    return None


_URL_RE = re.compile(r"https?://[^\s,;]+|\b[\w-]+\.(?:com|org|net|io|ai|dev)\b[^\s,;]*", re.I)
_SPLIT_RE = re.compile(r"(?:[,;\n]|\.\s|\bthen\b|\band\b)+", re.I)


def _action_for(clause: str) -> tuple[str, dict[str, Any]]:
    lowered = clause.lower()
    url = _URL_RE.search(clause)
    if url or re.search(r"\b(go to|visit|navigate|browse)\b", lowered):
        target = url.group(0) if url else clause
        return "navigate", {"url": target if "://" in target else f"https://{target}"}
    if re.search(r"\b(open|launch|start)\b", lowered):
        app = re.sub(r"^.*?\b(open|launch|start)\b\s*(the\s+)?", "", clause, flags=re.I)
        return "open_app", {"app": app.strip()[:60] or "browser"}
    if re.search(r"\b(type|enter|fill|write|search|send)\b", lowered):
        return "type", {"text": clause.strip()[:120]}
    if re.search(r"\b(scroll)\b", lowered):
        return "scroll", {"direction": "down", "amount": 3}
    if re.search(r"\b(check|verify|find|read|look)\b", lowered):
        return "screenshot", {}
    return "click", {"target": clause.strip()[:80], "x": 640, "y": 400}


def _step(index: int, clause: str) -> StepSpec:
    action, args = _action_for(clause)
    text = clause.strip()[:200] or "the task"
    return StepSpec(
        action=action,
        args=args,
        reasoning=f"Step {index}: to {text}, I will use {action}.",
        summary=f"{action}: {text}",
        output=f"{action} done; the screen changed as expected.",
    )


def derive_steps(task: str) -> list[StepSpec]:
    """3-6 believable steps derived from the clauses of the task text."""
    clauses = [c.strip() for c in _SPLIT_RE.split(task) if c and c.strip()][:5]
    steps = [_step(i + 1, c) for i, c in enumerate(clauses)]
    while len(steps) < 2:
        steps.append(_step(len(steps) + 1, "look at the screen" if steps else task))
    steps.append(
        StepSpec(
            action="screenshot",
            args={},
            reasoning=f"Step {len(steps) + 1}: check that the task is done.",
            summary="Verified the result on screen",
            output="The result is visible on screen.",
        )
    )
    return steps[:6]


def _generated_steps(task: str, count: int) -> list[StepSpec]:
    derived = derive_steps(task)
    return [
        derived[i] if i < len(derived) else _step(i + 1, f"continue with {task[:60]}")
        for i in range(count)
    ]


def _default_result(task: str, steps: int) -> dict[str, Any]:
    return {"summary": f"Done: {task[:200]}", "steps": steps}


DEFAULT_SCENARIO = Scenario(name="default", derive_pauses=True)


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _parse_step(raw: Any, index: int) -> StepSpec:
    _require(isinstance(raw, Mapping), f"steps[{index}] must be an object")
    action = raw.get("action", "click")
    _require(isinstance(action, str) and bool(action), f"steps[{index}].action must be a string")
    args = raw.get("args", {})
    _require(isinstance(args, Mapping), f"steps[{index}].args must be an object")
    summary = str(raw.get("summary", f"{action} done"))
    return StepSpec(
        action=action,
        args=dict(args),
        reasoning=str(raw.get("reasoning", f"Step {index + 1}: {summary}")),
        summary=summary,
        output=str(raw.get("output", f"{action} done")),
        ok=bool(raw.get("ok", True)),
    )


def _after_step(raw: Mapping[str, Any], where: str) -> int:
    value = raw.get("after_step", 0)
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"{where}.after_step must be an integer >= 0",
    )
    return int(value)


def parse_scenario(raw: Any, index: int = 0) -> Scenario:
    """Build a Scenario from its dict form; raises ValueError naming the bad field."""
    _require(isinstance(raw, Mapping), f"scenario {index} must be an object")
    known = {"name", "match", "steps", "pauses", "fail", "result", "events", "pace"}
    unknown = sorted(set(raw) - known)
    _require(not unknown, f"scenario {index}: unknown field(s) {unknown}; allowed {sorted(known)}")
    name = str(raw.get("name", f"scenario-{index}"))
    pattern = None
    if raw.get("match") is not None:
        try:
            pattern = re.compile(str(raw["match"]), re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"scenario {name!r}: match is not a valid regex: {exc}") from exc
    steps: int | list[StepSpec] | None = None
    if "steps" in raw:
        value = raw["steps"]
        if isinstance(value, int) and not isinstance(value, bool):
            _require(0 <= value <= 1000, f"scenario {name!r}: steps must be in 0..1000")
            steps = value
        else:
            _require(isinstance(value, list), f"scenario {name!r}: steps must be a number or list")
            steps = [_parse_step(s, i) for i, s in enumerate(value)]
    pauses = []
    raw_pauses = raw.get("pauses", [])
    _require(isinstance(raw_pauses, list), f"scenario {name!r}: pauses must be a list")
    for i, p in enumerate(raw_pauses):
        _require(isinstance(p, Mapping), f"scenario {name!r}: pauses[{i}] must be an object")
        spec = PauseSpec(
            reason=str(p.get("reason", "The agent needs a person.")),
            question=str(p.get("question", "Please take over, then resume.")),
            kind=str(p.get("kind", "human_input")),
        )
        pauses.append(_Pause(_after_step(p, f"pauses[{i}]"), spec))
    fail = None
    if raw.get("fail") is not None:
        f = raw["fail"]
        _require(isinstance(f, Mapping), f"scenario {name!r}: fail must be an object")
        fail = (
            _after_step(f, "fail"),
            FailSpec(
                str(f.get("code", "AGENT_FAILED")), str(f.get("message", "The agent failed."))
            ),
        )
    result = raw.get("result")
    _require(
        result is None or isinstance(result, dict), f"scenario {name!r}: result must be an object"
    )
    events = raw.get("events")
    _require(
        events is None or (isinstance(events, int) and 1 <= events <= 10_000_000),
        f"scenario {name!r}: events must be an integer in 1..10000000",
    )
    pace = raw.get("pace")
    _require(
        pace is None or (isinstance(pace, int | float) and pace >= 0),
        f"scenario {name!r}: pace must be a number >= 0",
    )
    return Scenario(
        name=name,
        pattern=pattern,
        steps=steps,
        pauses=pauses,
        fail=fail,
        result=result,
        events=events,
        pace=float(pace) if pace is not None else None,
    )


def parse_scenarios(raw: Iterable[Any]) -> list[Scenario]:
    return [parse_scenario(item, i) for i, item in enumerate(raw)]


def read_scenario_file(path: str | Path) -> list[dict[str, Any]]:
    """Read scenario dicts from a JSON or YAML file (a list or ``{"scenarios": [...]}``)."""
    text = Path(path).read_text(encoding="utf-8")
    data: Any
    if str(path).endswith(".json"):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if isinstance(data, Mapping):
        data = data.get("scenarios", [])
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of scenarios or {{'scenarios': [...]}}")
    return data


def choose(scenarios: Sequence[Scenario], task: str) -> Scenario:
    """The first user scenario matching the task, else the default."""
    for scenario in scenarios:
        if scenario.matches(task):
            return scenario
    return DEFAULT_SCENARIO
