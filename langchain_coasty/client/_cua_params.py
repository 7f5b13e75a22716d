"""Request bodies of ground, predict, sessions and machine actions, checked before sending.

Each builder returns the JSON body of one call or raises `InvalidRequestError` naming the
field and its limit. A screenshot is accepted as image bytes, base64 text (a `data:` URI
too) or anything with an `image_b64` attribute, such as the machines resource's screenshot.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_coasty.client._errors import InvalidRequestError
from langchain_coasty.client._params import LlmConfig, invalid

__all__ = [
    "ACTION_COMMANDS",
    "PREDICT_TOOLS",
    "ScreenshotInput",
    "ScreenshotLike",
    "action_body",
    "batch_body",
    "check_session_id",
    "ground_body",
    "predict_body",
    "screenshot_b64",
    "session_body",
    "session_predict_body",
]

PREDICT_TOOLS = (
    "click",
    "type_text",
    "key_press",
    "key_combo",
    "scroll",
    "drag",
    "move",
    "wait",
)
"""The action types a prediction may be restricted to (`tools`)."""

ACTION_COMMANDS = (
    "screenshot",
    "click",
    "double_click",
    "click_with_modifiers",
    "type",
    "key_press",
    "key_combo",
    "scroll",
    "drag",
    "list_windows",
    "switch_to_window",
    "close_window",
    "minimize_window",
    "maximize_window",
    "restore_window",
    "arrange_windows",
    "move_window",
    "terminal_connect",
    "terminal_execute",
    "terminal_read",
    "terminal_clear",
    "terminal_close",
    "file_read",
    "file_exists",
    "directory_list",
    "file_write",
    "file_edit",
    "file_append",
    "file_delete",
    "directory_delete",
    "file_download",
    "file_list_downloads",
    "browser_open",
    "browser_navigate",
    "browser_click",
    "browser_type",
    "browser_get_dom",
    "browser_get_clickables",
    "browser_state",
    "browser_info",
    "browser_scroll",
    "browser_close",
    "browser_screenshot",
    "browser_wait",
    "browser_list_tabs",
    "browser_open_tab",
    "browser_close_tab",
    "browser_switch_tab",
    "browser_execute",
)
"""The machine commands of `POST /v1/machines/{id}/actions` (ActionRequest.command)."""

_B64 = re.compile(r"[A-Za-z0-9+/=]+")
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_MAX_SCREENSHOT = 10_485_760
_MAX_PARAMETERS = 1_000_000
_MAX_METADATA = 16_384

_LIMITS: dict[str, str] = {
    "screenshot": "image bytes, or base64 of 100..10485760 characters of [A-Za-z0-9+/=]",
    "element": "a string of 1..32000 characters",
    "instruction": "a string of 1..32000 characters",
    "screen_width": "an integer in 320..3840, or None (the screenshot's true size)",
    "screen_height": "an integer in 240..2160, or None (the screenshot's true size)",
    "cua_version": "one of v1, v3, v4, v5",
    "model": "a string of 1..512 characters, or None",
    "system_prompt": "a string of at most 16000 characters, or None",
    "instructions": "a string of at most 16000 characters, or None",
    "trajectory": "at most 20 steps of {screenshot, actions (<= 10), reasoning}",
    "max_actions": "an integer in 1..10",
    "tools": "1..8 distinct names of " + ", ".join(PREDICT_TOOLS) + ", or None",
    "include_reasoning": "true or false",
    "include_raw_code": "true or false",
    "max_trajectory_length": "an integer in 1..20",
    "metadata": "an object of at most 32 keys and 16384 UTF-8 bytes, or None",
    "session_id": "1..128 characters of [A-Za-z0-9_-]",
    "command": "a machine command such as click, type, key_press, scroll, drag, screenshot",
    "parameters": "an object of at most 1 MB as JSON",
    "timeout_ms": "an integer in 1000..120000, or None",
    "steps": "1..50 actions",
    "stop_on_error": "true or false",
    "llm": "an object with provider (managed, anthropic, openai) and optional model names",
}

CuaVersion = Literal["v1", "v3", "v4", "v5"]
PredictTool = Literal[
    "click", "type_text", "key_press", "key_combo", "scroll", "drag", "move", "wait"
]


@runtime_checkable
class ScreenshotLike(Protocol):
    """A captured screen: its base64 image (as the machines resource's screenshot has it)."""

    @property
    def image_b64(self) -> str: ...


ScreenshotInput = bytes | str | ScreenshotLike
"""What a screenshot argument accepts: image bytes, base64 (or a data URI), or a capture."""


def screenshot_b64(screenshot: object, field: str = "screenshot") -> str:
    """The base64 text of a screenshot argument, checked against the contract's limits."""
    if isinstance(screenshot, bytes | bytearray | memoryview):
        text = base64.b64encode(bytes(screenshot)).decode("ascii")
    elif isinstance(screenshot, str):
        text = screenshot
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
    elif isinstance(screenshot, ScreenshotLike) and isinstance(screenshot.image_b64, str):
        text = screenshot.image_b64
    else:
        raise invalid(field, screenshot, limits=_LIMITS | {field: _LIMITS["screenshot"]})
    limits = _LIMITS | {field: _LIMITS["screenshot"]}
    if not 100 <= len(text) <= _MAX_SCREENSHOT:
        raise invalid(field, problem=f"got {len(text)} characters of base64", limits=limits)
    if not _B64.fullmatch(text):
        raise invalid(field, problem="not base64: characters outside [A-Za-z0-9+/=]", limits=limits)
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(field, problem="not valid base64 (bad padding)", limits=limits) from None
    return text


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


_Width = Field(default=None, ge=320, le=3840)
_Height = Field(default=None, ge=240, le=2160)
_Prompt = Field(default=None, max_length=16000)
_Model = Field(default=None, min_length=1, max_length=512)
_Text = Field(min_length=1, max_length=32000)


class _PredictedActionBody(_Body):
    action_type: Literal[
        "click",
        "type_text",
        "key_press",
        "key_combo",
        "scroll",
        "drag",
        "move",
        "wait",
        "done",
        "fail",
    ]
    params: dict[str, Any] = {}
    description: str | None = None
    raw_code: str | None = None


class _TrajectoryStep(_Body):
    screenshot: str
    actions: list[_PredictedActionBody] = Field(default=[], max_length=10)
    reasoning: str | None = Field(default=None, max_length=16000)


class _GroundBody(_Body):
    element: str = _Text
    screen_width: int | None = _Width
    screen_height: int | None = _Height


class _PredictBody(_Body):
    instruction: str = _Text
    cua_version: CuaVersion | None = None
    model: str | None = _Model
    system_prompt: str | None = _Prompt
    instructions: str | None = _Prompt
    screen_width: int | None = _Width
    screen_height: int | None = _Height
    trajectory: list[_TrajectoryStep] | None = Field(default=None, max_length=20)
    max_actions: int | None = Field(default=None, ge=1, le=10)
    tools: list[PredictTool] | None = Field(default=None, min_length=1, max_length=8)
    include_reasoning: bool | None = None
    include_raw_code: bool | None = None
    llm: LlmConfig | None = None


class _SessionBody(_Body):
    cua_version: CuaVersion | None = None
    model: str | None = _Model
    screen_width: int | None = Field(default=None, ge=320, le=3840)
    screen_height: int | None = Field(default=None, ge=240, le=2160)
    max_trajectory_length: int | None = Field(default=None, ge=1, le=20)
    system_prompt: str | None = _Prompt
    instructions: str | None = _Prompt
    tools: list[PredictTool] | None = Field(default=None, min_length=1, max_length=8)
    metadata: dict[str, Any] | None = Field(default=None, max_length=32)
    llm: LlmConfig | None = None


class _SessionPredictBody(_Body):
    instruction: str = _Text
    include_reasoning: bool | None = None
    include_raw_code: bool | None = None


class _ActionBody(_Body):
    command: str
    parameters: dict[str, Any] | None = None
    timeout_ms: int | None = Field(default=None, ge=1000, le=120000)


def _error(exc: ValidationError, model: type[_Body]) -> InvalidRequestError:
    first = exc.errors()[0]
    parts = [str(p) for p in first["loc"] if not str(p).startswith(("function-", "lax-"))]
    field = parts[0] if parts else "body"
    if first["type"] == "extra_forbidden":
        return InvalidRequestError(
            f"Unknown parameter `{field}`: accepted are " + ", ".join(model.model_fields) + ".",
            field=field,
            limit="a documented field",
        )
    where = ".".join(parts)
    detail = f"at {where}: {first['msg']}" if len(parts) > 1 else None
    value = first.get("input") if len(parts) == 1 else None
    return invalid(field, value, problem=detail, limits=_LIMITS)


def _validated(model: type[_Body], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of the fields that are not None, validated by ``model``."""
    given = {k: v for k, v in fields.items() if v is not None}
    if isinstance(given.get("llm"), LlmConfig):
        given["llm"] = given["llm"].model_dump()
    try:
        parsed = model.model_validate(given)
    except ValidationError as exc:
        raise _error(exc, model) from None
    body = parsed.model_dump(mode="json", include=set(given), exclude_none=True)
    try:
        json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:  # NaN or a lone surrogate (UnicodeError is a ValueError)
        raise invalid("body", problem="not valid JSON text", limits=_LIMITS) from None
    return body


def _unique_tools(tools: Sequence[str] | None) -> None:
    if tools is not None and not isinstance(tools, str) and len(set(tools)) != len(tools):
        raise invalid("tools", problem="names repeat", limits=_LIMITS)


def ground_body(screenshot: object, element: str, **fields: Any) -> dict[str, Any]:
    """The body of `POST /v1/ground`."""
    body = _validated(_GroundBody, {"element": element, **fields})
    return {"screenshot": screenshot_b64(screenshot), **body}


def predict_body(screenshot: object, instruction: str, **fields: Any) -> dict[str, Any]:
    """The body of `POST /v1/predict`; trajectory screenshots accept the same inputs."""
    _unique_tools(fields.get("tools"))
    trajectory = fields.get("trajectory")
    if trajectory is not None:
        if isinstance(trajectory, str | bytes) or not isinstance(trajectory, Sequence):
            raise invalid("trajectory", trajectory, limits=_LIMITS)
        if len(trajectory) > 20:
            raise invalid("trajectory", problem=f"got {len(trajectory)} steps", limits=_LIMITS)
        steps = []
        for n, step in enumerate(trajectory):
            if not isinstance(step, Mapping) or "screenshot" not in step:
                raise invalid("trajectory", problem=f"step {n} has no screenshot", limits=_LIMITS)
            steps.append({**step, "screenshot": screenshot_b64(step["screenshot"], "trajectory")})
        fields = {**fields, "trajectory": steps}
    body = _validated(_PredictBody, {"instruction": instruction, **fields})
    return {"screenshot": screenshot_b64(screenshot), **body}


def session_body(**fields: Any) -> dict[str, Any]:
    """The body of `POST /v1/sessions`."""
    _unique_tools(fields.get("tools"))
    body = _validated(_SessionBody, fields)
    metadata = body.get("metadata")
    if metadata is not None:
        size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
        if size > _MAX_METADATA:
            raise invalid("metadata", problem=f"got {size} bytes", limits=_LIMITS)
    return body


def session_predict_body(screenshot: object, instruction: str, **fields: Any) -> dict[str, Any]:
    """The body of `POST /v1/sessions/{id}/predict`."""
    body = _validated(_SessionPredictBody, {"instruction": instruction, **fields})
    return {"screenshot": screenshot_b64(screenshot), **body}


def check_session_id(session_id: str) -> str:
    """A session id that can travel in a URL path (1..128 of [A-Za-z0-9_-])."""
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise invalid("session_id", session_id, limits=_LIMITS)
    return session_id


def action_body(
    command: str, parameters: Mapping[str, Any] | None = None, *, timeout_ms: int | None = None
) -> dict[str, Any]:
    """The body of one machine action (ActionRequest)."""
    if command not in ACTION_COMMANDS:
        raise invalid("command", command, limits=_LIMITS)
    fields: dict[str, Any] = {"command": command, "timeout_ms": timeout_ms}
    if parameters is not None:
        if not isinstance(parameters, Mapping):
            raise invalid("parameters", parameters, limits=_LIMITS)
        fields["parameters"] = dict(parameters)
    body = _validated(_ActionBody, fields)
    size = len(json.dumps(body.get("parameters", {}), ensure_ascii=False).encode("utf-8"))
    if size > _MAX_PARAMETERS:
        raise invalid("parameters", problem=f"got {size} bytes", limits=_LIMITS)
    return body


def batch_body(steps: Sequence[Mapping[str, Any]], *, stop_on_error: bool = True) -> dict[str, Any]:
    """The body of a batch of machine actions: 1..50 `{command, parameters?, timeout_ms?}`."""
    if (
        isinstance(steps, str | bytes)
        or not isinstance(steps, Sequence)
        or not 1 <= len(steps) <= 50
    ):
        count = len(steps) if isinstance(steps, Sequence) else None
        raise invalid("steps", problem=f"got {count} steps", limits=_LIMITS)
    if not isinstance(stop_on_error, bool):
        raise invalid("stop_on_error", stop_on_error, limits=_LIMITS)
    out = []
    for n, step in enumerate(steps):
        if not isinstance(step, Mapping) or "command" not in step:
            raise invalid("steps", problem=f"step {n} has no command", limits=_LIMITS)
        extra = set(step) - {"command", "parameters", "timeout_ms"}
        if extra:
            raise invalid("steps", problem=f"step {n} has unknown {sorted(extra)}", limits=_LIMITS)
        out.append(
            action_body(step["command"], step.get("parameters"), timeout_ms=step.get("timeout_ms"))
        )
    return {"steps": out, "stop_on_error": stop_on_error}
