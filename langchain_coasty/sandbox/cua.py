"""The sandbox's step-by-step agent: grounding, predicted actions, sessions and their cost.

Deterministic: grounding finds the element a description names on the sandbox screen
(``screens.locate``) and scales its center to the screenshot's real size (measured by
decoding it) or to the screen size asked for. An instruction becomes a short plan (click
the field, type the quoted text, click the button it names); a prediction answers the plan's
next step, counted by the trajectory sent (``/v1/predict``) or kept (a session). Sessions
keep at most ``max_trajectory_length`` steps and expire after 2 idle hours of sandbox time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_coasty.sandbox.screens import ELEMENTS, HEIGHT, WIDTH, Element, locate
from langchain_coasty.sandbox.validation import Problem

__all__ = [
    "SESSION_TTL_SECONDS",
    "CuaSession",
    "SessionStore",
    "ground",
    "measure",
    "predict",
    "usage",
]

SESSION_TTL_SECONDS = 7200
_ENGINE_CREDITS = {"v1": 5, "v3": 2, "v4": 3, "v5": 2}
_HD_PIXELS = 1920 * 1080


class BadImage(Exception):
    """A screenshot that is base64 but not a PNG or JPEG image."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.problem = Problem("screenshot", "a base64 PNG or JPEG image", message)


def measure(screenshot_b64: str) -> tuple[int, int]:
    """The real (width, height) of a base64 screenshot, by decoding it."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(screenshot_b64, validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise BadImage(f"screenshot is a {image.format} image; send PNG or JPEG.")
            return image.size
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
        raise BadImage("screenshot is not a base64 PNG or JPEG image.") from exc


def _scale(point: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """A point of the sandbox screen (WIDTH x HEIGHT) in a screen of ``size``."""
    x, y = point
    width, height = size
    return min(width - 1, x * width // WIDTH), min(height - 1, y * height // HEIGHT)


def ground(description: str, size: tuple[int, int]) -> tuple[int, int]:
    """Where ``description`` is in a screen of ``size``: the named element's center, or a
    stable point derived from the text when the screen has no such element."""
    element = locate(description)
    if element is not None:
        return _scale(element.center, size)
    digest = hashlib.sha256(description.encode()).digest()
    width, height = size
    return digest[0] * (width - 1) // 255, digest[1] * (height - 1) // 255


_QUOTED = re.compile(r"['\"\u2018\u201c]([^'\"\u2019\u201d]+)['\"\u2019\u201d]")


def _named(name: str) -> Element:
    return next(e for e in ELEMENTS if e.name == name)


def _click(element: Element) -> dict[str, Any]:
    x, y = element.center
    return {"action_type": "click", "params": {"x": x, "y": y}, "description": element.name}


_GENERIC = frozenset({"button", "link", "field", "box", "the", "a", "an", "in", "into", "on"})


def _best(text: str, fields: bool) -> Element | None:
    """The field (or the button or link) that ``text`` names by a word of its own."""
    words = set("".join(c.lower() if c.isalnum() else " " for c in text).split()) - _GENERIC
    scored = [
        (len(words & set(e.name.split())), -len(e.name), e)
        for e in ELEMENTS
        if (e.kind == "field") == fields
    ]
    score, _, element = max(scored, key=lambda t: t[:2])
    return element if score else None


def plan(instruction: str) -> list[dict[str, Any]]:
    """The actions that do ``instruction`` on a sandbox screen (empty: it cannot be done)."""
    quoted = _QUOTED.search(instruction)
    if quoted is None:
        element = locate(instruction)
        return [] if element is None else [_click(element)]
    text = quoted.group(1)
    rest = instruction[: quoted.start()] + " " + instruction[quoted.end() :]
    field_ = _best(rest, fields=True) or _named("email field" if "@" in text else "search box")
    steps = [_click(field_), {"action_type": "type_text", "params": {"text": text}}]
    button = _best(rest, fields=False)
    if button is None and field_.name == "search box":
        button = _named("search button")
    if button is not None:
        steps.append(_click(button))
    return steps


def _raw_code(action: dict[str, Any]) -> str:
    params = action.get("params", {})
    kind = action["action_type"]
    if kind == "click":
        return f"pyautogui.click({params['x']}, {params['y']})"
    if kind == "type_text":
        return f"pyautogui.write({params['text']!r})"
    return f"# {kind}"


def predict(
    instruction: str,
    position: int,
    size: tuple[int, int],
    *,
    max_actions: int = 1,
    tools: list[str] | None = None,
    include_reasoning: bool = True,
    include_raw_code: bool = True,
) -> tuple[dict[str, Any], int]:
    """The answer for the plan's step ``position`` in a screen of ``size``, and how many
    plan steps it used (actions, raw_code, reasoning, status)."""
    steps = [s for s in plan(instruction) if tools is None or s["action_type"] in tools]
    if not steps:
        actions: list[dict[str, Any]] = [
            {
                "action_type": "fail",
                "params": {"reason": "Nothing on the screen matches the instruction."},
            }
        ]
        status, reasoning, used = "fail", "I cannot find what the instruction names.", 0
    elif position >= len(steps):
        actions = [{"action_type": "done", "params": {}}]
        status, reasoning, used = "done", "The instruction is done.", 0
    else:
        actions = []
        for step in steps[position : position + max_actions]:
            action = {**step, "params": dict(step["params"])}
            if "x" in action["params"]:
                x, y = _scale((action["params"]["x"], action["params"]["y"]), size)
                action["params"].update(x=x, y=y)
            actions.append(action)
        used = len(actions)
        status = "continue"
        reasoning = f"Step {position + 1} of {len(steps)}: " + ", ".join(
            a.get("description") or a["action_type"] for a in actions
        )
    body: dict[str, Any] = {"actions": actions, "status": status}
    if include_raw_code:
        body["raw_code"] = [_raw_code(a) for a in actions]
        for action in actions:
            action["raw_code"] = _raw_code(action)
    if include_reasoning:
        body["reasoning"] = reasoning
    return body, used


def usage(
    key_kind: str,
    *,
    base: int,
    engine: int = 0,
    trajectory: int = 0,
    hd: bool = False,
    custom_prompt: bool = False,
) -> dict[str, Any]:
    """The UsageInfo of one call: billed on live keys, free (and not itemized) on test keys."""
    lines: list[dict[str, Any]] = [{"item": "base", "credits": base}]
    if engine:
        lines.append({"item": "engine", "credits": engine})
    if trajectory:
        lines.append({"item": "trajectory", "credits": (trajectory + 1) // 2, "count": trajectory})
    if hd:
        lines.append({"item": "hd_images", "credits": 1, "count": 1})
    if custom_prompt:
        lines.append({"item": "custom_prompt", "credits": 1})
    credits = sum(line["credits"] for line in lines)
    if key_kind != "live":
        return {
            "input_tokens": 0,
            "output_tokens": 0,
            "credits_charged": 0,
            "cost_cents": 0,
            "breakdown": None,
            "billed": False,
        }
    return {
        "input_tokens": 1200 + 400 * trajectory,
        "output_tokens": 80,
        "credits_charged": credits,
        "cost_cents": credits,
        "breakdown": lines,
        "billed": True,
    }


def predict_usage(
    key_kind: str, cua_version: str, size: tuple[int, int], trajectory: int, custom: bool
) -> dict[str, Any]:
    """The cost of one prediction: by CUA version, screenshot size and trajectory length."""
    return usage(
        key_kind,
        base=3,
        engine=_ENGINE_CREDITS.get(cua_version, 2),
        trajectory=trajectory,
        hd=size[0] * size[1] > _HD_PIXELS,
        custom_prompt=custom,
    )


def ground_usage(key_kind: str, size: tuple[int, int]) -> dict[str, Any]:
    """The cost of one grounding (~3 credits)."""
    return usage(key_kind, base=3, hd=size[0] * size[1] > _HD_PIXELS)


def iso(ts: float) -> str:
    """A sandbox time as RFC 3339."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class CuaSession:
    """One stateful session: its settings, its kept trajectory and its idle expiry."""

    id: str
    key_kind: str
    cua_version: str
    screen_width: int
    screen_height: int
    max_trajectory_length: int
    tools: list[str] | None
    custom_prompt: bool
    created_at: float
    last_used: float
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    step_count: int = 0
    instruction: str | None = None
    position: int = 0
    """Plan steps done for the current instruction."""
    total_credits_used: int = 0

    @property
    def expires_at(self) -> float:
        return self.last_used + SESSION_TTL_SECONDS

    def info(self) -> dict[str, Any]:
        """The SessionInfoResponse body."""
        return {
            "session_id": self.id,
            "cua_version": self.cua_version,
            "screen_size": f"{self.screen_width}x{self.screen_height}",
            "step_count": self.step_count,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "total_credits_used": self.total_credits_used,
        }

    def step(
        self, instruction: str, include_reasoning: bool, include_raw_code: bool
    ) -> dict[str, Any]:
        """Predict the next step for ``instruction``; keep it in the trajectory."""
        if instruction != self.instruction:
            self.instruction, self.position = instruction, 0
        body, used = predict(
            instruction,
            self.position,
            (self.screen_width, self.screen_height),
            max_actions=1,
            tools=self.tools,
            include_reasoning=include_reasoning,
            include_raw_code=include_raw_code,
        )
        self.position += used
        self.step_count += 1
        self.trajectory.append({"instruction": instruction, "actions": body["actions"]})
        del self.trajectory[: -self.max_trajectory_length]
        return body


class SessionStore:
    """The sessions of both key kinds, expiring on the sandbox clock."""

    def __init__(self) -> None:
        self.sessions: dict[str, CuaSession] = {}

    def create(self, body: dict[str, Any], key_kind: str, now: float) -> CuaSession:
        session = CuaSession(
            id=f"ses_{secrets.token_hex(12)}",
            key_kind=key_kind,
            cua_version=body.get("cua_version", "v5"),
            screen_width=int(body.get("screen_width", 1920)),
            screen_height=int(body.get("screen_height", 1080)),
            max_trajectory_length=int(body.get("max_trajectory_length", 3)),
            tools=body.get("tools"),
            custom_prompt=bool(body.get("system_prompt") or body.get("instructions")),
            created_at=now,
            last_used=now,
        )
        self.sessions[session.id] = session
        return session

    def expire(self, now: float) -> None:
        """Forget every session idle past its TTL."""
        for sid in [s.id for s in self.sessions.values() if s.expires_at <= now]:
            del self.sessions[sid]

    def visible(self, session_id: str, key_kind: str, now: float) -> CuaSession | None:
        self.expire(now)
        session = self.sessions.get(session_id)
        return session if session is not None and session.key_kind == key_kind else None

    def listed(self, key_kind: str, now: float) -> list[CuaSession]:
        self.expire(now)
        return [s for s in self.sessions.values() if s.key_kind == key_kind]

    def delete(self, session: CuaSession) -> None:
        self.sessions.pop(session.id, None)
