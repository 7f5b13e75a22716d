"""Machine actions on a sandbox machine's screen (``POST /v1/machines/{id}/actions``).

Each command changes the machine's ``ScreenState`` the way a desktop would: a click on a
link or button navigates, a click on a field focuses it, ``type`` types into it, Enter in the
search box searches. Both shapes of each action's parameters are read (``key_press``
``{key}`` or ``{keys}``, ``scroll`` ``{direction, amount}`` or signed ``{clicks}``, ``drag``
``{from_x..}`` or ``{x1..}``). Commands a sandbox desktop has no use for answer
``success: false``.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import quote

from langchain_coasty.sandbox.screens import ELEMENTS, HEIGHT, WIDTH, Element, ScreenState, render

__all__ = ["SITE", "execute"]

SITE = "https://sandbox.coasty.local"
"""Where the sandbox browser's pages live."""

_PAGES = {
    "pricing link": "/pricing",
    "docs link": "/docs",
    "sign in button": "/account",
    "submit button": "/account",
    "back button": "",
}


class ActionFailed(Exception):
    """The command could not be carried out; answered as ``success: false``."""


def _at(x: int, y: int) -> Element | None:
    for element in ELEMENTS:
        left, top, right, bottom = element.box
        if left <= x <= right and top <= y <= bottom:
            return element
    return None


def _point(params: dict[str, Any], xs: str = "x", ys: str = "y") -> tuple[int, int]:
    x, y = params.get(xs), params.get(ys)
    if (
        isinstance(x, bool)
        or isinstance(y, bool)
        or not (isinstance(x, int | float) and isinstance(y, int | float))
    ):
        raise ActionFailed(f"needs numeric {xs} and {ys} parameters")
    if not (0 <= x < WIDTH and 0 <= y < HEIGHT):
        raise ActionFailed(f"({x}, {y}) is outside the {WIDTH}x{HEIGHT} screen")
    return int(x), int(y)


def _keys(params: dict[str, Any]) -> list[str]:
    keys = params.get("keys", params.get("key"))
    if isinstance(keys, str):
        keys = keys.replace("+", " ").split() if "+" in keys else [keys]
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ActionFailed("needs key (a string) or keys (a list of strings)")
    return [k.lower() for k in keys]


def _search(state: ScreenState) -> None:
    state.url = f"{SITE}/search?q={quote(state.typed)}"


def _click(state: ScreenState, params: dict[str, Any]) -> dict[str, Any]:
    x, y = _point(params)
    element = _at(x, y)
    state.show_step(state.step + 1, "click", {"x": x, "y": y})
    if element is None:
        return {"clicked": None}
    if element.name == "search button" and state.typed:
        _search(state)
    elif element.name in _PAGES:
        page = _PAGES[element.name]
        state.url = f"{SITE}{page}" if page else "about:blank"
    return {"clicked": element.name}


def _type(state: ScreenState, params: dict[str, Any]) -> dict[str, Any]:
    text = params.get("text")
    if not isinstance(text, str):
        raise ActionFailed("needs a text parameter")
    state.show_step(state.step + 1, "type", {"text": text})
    return {"typed": len(text)}


def _key_press(state: ScreenState, params: dict[str, Any]) -> dict[str, Any]:
    keys = _keys(params)
    state.show_step(state.step + 1, "key_press", {"text": "+".join(keys)})
    if keys[-1] in ("enter", "return") and state.typed and "@" not in state.typed:
        _search(state)
    return {"keys": keys}


def _scroll(state: ScreenState, params: dict[str, Any]) -> dict[str, Any]:
    if "clicks" in params:
        clicks = params["clicks"]
        if isinstance(clicks, bool) or not isinstance(clicks, int):
            raise ActionFailed("clicks must be an integer (positive up, negative down)")
        direction, amount = ("up" if clicks > 0 else "down"), abs(clicks)
    else:
        direction, amount = params.get("direction", "down"), params.get("amount", 3)
        if direction not in ("up", "down", "left", "right"):
            raise ActionFailed("direction must be up, down, left or right")
    state.show_step(state.step + 1, "scroll", {"text": f"{direction} {amount}"})
    return {"direction": direction, "amount": amount}


def _drag(state: ScreenState, params: dict[str, Any]) -> dict[str, Any]:
    if "x1" in params:
        start, end = _point(params, "x1", "y1"), _point(params, "x2", "y2")
    else:
        start, end = _point(params, "from_x", "from_y"), _point(params, "to_x", "to_y")
    state.show_step(state.step + 1, "drag", {"x": end[0], "y": end[1]})
    return {"from": list(start), "to": list(end)}


def _screenshot(state: ScreenState, params: dict[str, Any]) -> dict[str, Any]:
    return {"width": WIDTH, "height": HEIGHT, "mime_type": "image/png"}


_COMMANDS = {
    "click": _click,
    "double_click": _click,
    "click_with_modifiers": _click,
    "type": _type,
    "key_press": _key_press,
    "key_combo": _key_press,
    "scroll": _scroll,
    "drag": _drag,
    "screenshot": _screenshot,
}


def execute(machine_id: str, state: ScreenState, body: dict[str, Any]) -> dict[str, Any]:
    """Run one validated ActionRequest on ``state``; the ActionResultResponse fields."""
    started = time.monotonic()
    command = body["command"]
    handler = _COMMANDS.get(command)
    out: dict[str, Any] = {"machine_id": machine_id, "command": command}
    try:
        if handler is None:
            raise ActionFailed("is not available on the sandbox's machines")
        result = handler(state, dict(body.get("parameters") or {}))
    except ActionFailed as exc:
        out.update(success=False, result=None, error=f"{command} {exc}.")
    else:
        out.update(success=True, result=result, error=None)
    screenshot = None
    if command == "screenshot" and out["success"]:
        image = render(state, mime_type="image/png")
        screenshot = "data:image/png;base64," + base64.b64encode(image).decode("ascii")
    out.update(duration_ms=int((time.monotonic() - started) * 1000), screenshot=screenshot)
    return out
