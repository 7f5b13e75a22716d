"""One action, as a prediction proposes it or a planner writes it, as a machine command.

Coasty's docs give two shapes for the parameters of several actions; both are read and the
command is sent in one: ``key_press`` ``{key}`` / ``{keys}`` (sent as ``keys``), ``wait``
``{ms}`` / ``{seconds}`` (read as milliseconds), ``scroll`` ``{x, y, direction, amount}`` /
``{clicks}`` (signed, positive up), ``drag`` ``{from_x, from_y, to_x, to_y}`` / ``{x1, y1,
x2, y2}``. A prediction's ``type_text`` is the machine's ``type``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from langchain_coasty.client._cua_params import ACTION_COMMANDS
from langchain_coasty.client._errors import InvalidRequestError

__all__ = ["MAX_WAIT_MS", "machine_action"]

MAX_WAIT_MS = 30_000
"""The longest ``wait`` an action may ask for."""

_ALIASES = {"type_text": "type", "left_click": "click", "keypress": "key_press"}


def _bad(action: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid action `{action}`: {why}.", field="params", limit=f"the parameters of {action}"
    )


def _number(params: Mapping[str, Any], name: str, action: str) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(action, f"needs a number `{name}`")
    return int(value)


def _keys(params: Mapping[str, Any], action: str) -> list[str]:
    keys = params.get("keys", params.get("key"))
    if isinstance(keys, str):
        keys = [k for k in keys.split("+") if k] if "+" in keys else [keys]
    if not isinstance(keys, list | tuple) or not keys or not all(isinstance(k, str) for k in keys):
        raise _bad(action, "needs `key` (a string) or `keys` (a list of strings)")
    return list(keys)


def machine_action(
    action: str, params: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """The machine command and its parameters for ``action``; ``wait`` gives ``{"ms": n}``."""
    params = dict(params or {})
    if not isinstance(action, str):
        raise _bad(str(action), "the action must be a name such as click or type")
    command = _ALIASES.get(action, action)
    if command in ("click", "double_click"):
        out: dict[str, Any] = {"x": _number(params, "x", action), "y": _number(params, "y", action)}
        if params.get("clicks") == 2:
            command = "double_click"
        for name in ("button", "modifiers"):
            if name in params:
                out[name] = params[name]
        return command, out
    if command == "type":
        text = params.get("text")
        if not isinstance(text, str) or not text:
            raise _bad(action, "needs a non-empty `text`")
        return command, {"text": text}
    if command in ("key_press", "key_combo"):
        return command, {"keys": _keys(params, action)}
    if command == "scroll":
        out = {k: _number(params, k, action) for k in ("x", "y") if k in params}
        if "clicks" in params:
            clicks = _number(params, "clicks", action)
            out.update(direction="up" if clicks > 0 else "down", amount=abs(clicks))
        else:
            direction = params.get("direction", "down")
            if direction not in ("up", "down", "left", "right"):
                raise _bad(action, "`direction` must be up, down, left or right")
            out.update(
                direction=direction, amount=_number({"a": params.get("amount", 3)}, "a", action)
            )
        return command, out
    if command == "drag":
        names = ("x1", "y1", "x2", "y2") if "x1" in params else ("from_x", "from_y", "to_x", "to_y")
        values = [_number(params, name, action) for name in names]
        return command, dict(zip(("from_x", "from_y", "to_x", "to_y"), values, strict=True))
    if command == "wait":
        if "seconds" in params:
            seconds = params["seconds"]
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                raise _bad(action, "needs a number `seconds` (or `ms`)")
            ms = int(seconds * 1000) if math.isfinite(seconds) else -1
        else:
            ms = _number({"ms": params.get("ms", 1000)}, "ms", action)
        if not 0 <= ms <= MAX_WAIT_MS:
            raise _bad(action, f"waits at most {MAX_WAIT_MS} ms")
        return command, {"ms": ms}
    if command in ("done", "fail", "move"):
        raise _bad(
            action,
            "is not a machine command (done and fail end a prediction; move has "
            "no machine command)",
        )
    if command not in ACTION_COMMANDS:
        raise _bad(
            action,
            "is not a machine command; use click, type, key_press, key_combo, "
            "scroll, drag, wait or screenshot",
        )
    return command, params
