"""The sandbox machines' screens: a real image of a desktop that follows the run's steps.

Each machine shows one browser window with a fixed set of named elements (so grounding
can answer where they are), the page of the last `navigate`, the text last typed, and a
marker on the current step's target. A paused run dims the screen under a banner with the
question; a stopped machine is black. Rendered with Pillow (the `[sandbox]` extra).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import ImageFont

__all__ = ["ELEMENTS", "HEIGHT", "WIDTH", "Element", "ScreenState", "locate", "render"]

WIDTH, HEIGHT = 1280, 800
"""The size of every sandbox screen, in pixels."""


@dataclass(frozen=True, slots=True)
class Element:
    """One named thing drawn on the screen, with its box (left, top, right, bottom)."""

    name: str
    box: tuple[int, int, int, int]
    kind: str = "button"
    label: str = ""
    """What the element shows (fields show it as a placeholder)."""

    @property
    def center(self) -> tuple[int, int]:
        left, top, right, bottom = self.box
        return (left + right) // 2, (top + bottom) // 2


ELEMENTS: tuple[Element, ...] = (
    Element("address bar", (180, 52, 1100, 84), "field", "Address"),
    Element("back button", (20, 52, 160, 84), "button", "< Back"),
    Element("search box", (300, 190, 980, 236), "field", "Search"),
    Element("search button", (1000, 190, 1120, 236), "button", "Search"),
    Element("sign in button", (1120, 110, 1250, 146), "button", "Sign in"),
    Element("pricing link", (40, 110, 160, 146), "link", "Pricing"),
    Element("docs link", (180, 110, 300, 146), "link", "Docs"),
    Element("email field", (300, 320, 980, 366), "field", "Email"),
    Element("password field", (300, 400, 980, 446), "field", "Password"),
    Element("submit button", (300, 480, 520, 530), "button", "Submit"),
    Element("cancel button", (540, 480, 760, 530), "button", "Cancel"),
    Element("accept cookies button", (980, 700, 1250, 750), "button", "Accept cookies"),
)
"""The elements on every sandbox screen (what `locate` finds)."""


@dataclass(slots=True)
class ScreenState:
    """What a machine's screen shows now; the engine updates it as runs and actions go."""

    machine_id: str
    powered: bool = True
    url: str = "about:blank"
    typed: str = ""
    step: int = 0
    action: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    question: str | None = None
    version: int = 0
    """Bumped on every change: two captures with the same version are the same picture."""

    def show_step(self, step: int, action: str, args: dict[str, Any]) -> None:
        """The agent is taking ``action`` (its args say where) as step ``step``."""
        self.step, self.action, self.args, self.question = step, action, dict(args), None
        if action == "navigate" and isinstance(args.get("url"), str):
            self.url = args["url"][:200]
        if action == "type" and isinstance(args.get("text"), str):
            self.typed = args["text"][:200]
        self.version += 1

    def show_pause(self, question: str) -> None:
        """The run waits for a person who is asked ``question``."""
        self.question = question
        self.version += 1

    def clear_pause(self) -> None:
        """The pause ended (answered, cancelled or timed out)."""
        if self.question is not None:
            self.question = None
            self.version += 1

    def power(self, on: bool) -> None:
        """The machine started or stopped."""
        if self.powered != on:
            self.powered = on
            self.version += 1


def locate(description: str) -> Element | None:
    """The element a description names (``"the Sign in button"``), or None when none fits."""
    words = {w for w in _words(description) if w not in _FILLER}
    best, best_score = None, 0
    for element in ELEMENTS:
        score = len(words & set(element.name.split()))
        if score > best_score or (
            score == best_score
            and best is not None
            and score
            and (len(element.name) < len(best.name))
        ):
            best, best_score = element, score
    return best if best_score else None


_FILLER = {"the", "a", "an", "on", "in", "of", "to", "at", "click", "press", "tap", "find"}


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() else " " for c in text).split()


def _target(action: str | None, args: dict[str, Any]) -> tuple[int, int] | None:
    """Where the current step acts, if it acts somewhere."""
    x, y = args.get("x"), args.get("y")
    if isinstance(x, int | float) and isinstance(y, int | float):
        return int(x), int(y)
    named = args.get("target")
    if isinstance(named, str):
        element = locate(named)
        if element is not None:
            return element.center
    if action == "type":
        return _field_for(args).center
    return None


def _field_for(args: dict[str, Any]) -> Element:
    text = str(args.get("text", "")).lower()
    name = "email field" if "@" in text else "search box"
    return next(e for e in ELEMENTS if e.name == name)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def render(state: ScreenState, *, mime_type: str = "image/jpeg") -> bytes:
    """The screen as JPEG (the contract's default) or PNG bytes."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (WIDTH, HEIGHT), (245, 246, 248))
    draw = ImageDraw.Draw(image)
    if not state.powered:
        draw.rectangle((0, 0, WIDTH, HEIGHT), fill=(0, 0, 0))
        draw.text((40, 40), f"{state.machine_id}: stopped", fill=(90, 90, 90), font=_font(20))
        return _encode(image, mime_type)
    _window(draw, state)
    if state.question is not None:
        _pause_banner(image, state.question)
        draw = ImageDraw.Draw(image)
    point = _target(state.action, state.args)
    if point is not None:  # drawn last, so a person asked at a pause sees the target too
        x, y = point
        draw.ellipse((x - 18, y - 18, x + 18, y + 18), outline=(220, 30, 30), width=4)
        draw.line((x - 26, y, x + 26, y), fill=(220, 30, 30), width=2)
        draw.line((x, y - 26, x, y + 26), fill=(220, 30, 30), width=2)
    _status_bar(draw, state)
    return _encode(image, mime_type)


def _window(draw: Any, state: ScreenState) -> None:
    draw.rectangle((0, 0, WIDTH, 96), fill=(222, 226, 232))
    title = f"Sandbox browser on {state.machine_id}"
    draw.text((20, 14), title, fill=(60, 64, 72), font=_font(18))
    for element in ELEMENTS:
        fill = (255, 255, 255) if element.kind == "field" else (59, 110, 220)
        if element.kind == "link":
            fill = (245, 246, 248)
        draw.rounded_rectangle(element.box, radius=6, fill=fill, outline=(150, 156, 166))
        left, top, _, bottom = element.box
        color = (255, 255, 255) if element.kind == "button" else (60, 64, 72)
        text = element.label
        if element.name == "address bar":
            text = state.url
        elif element.kind == "field":
            color = (140, 144, 152)  # a placeholder
            if state.typed and element is _field_for({"text": state.typed}):
                text, color = state.typed, (20, 24, 30)
        draw.text((left + 10, (top + bottom) // 2 - 9), text[:80], fill=color, font=_font(16))
    draw.text((300, 270), f"Page: {state.url}"[:100], fill=(30, 34, 40), font=_font(22))


def _pause_banner(image: Any, question: str) -> None:
    from PIL import Image, ImageDraw

    shade = Image.new("RGB", image.size, (20, 20, 20))
    image.paste(Image.blend(image, shade, 0.55))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 300, WIDTH, 470), fill=(245, 158, 11))
    draw.text((40, 320), "Waiting for a person", fill=(20, 20, 20), font=_font(30))
    draw.text((40, 380), question[:110], fill=(20, 20, 20), font=_font(20))
    if len(question) > 110:
        draw.text((40, 410), question[110:220], fill=(20, 20, 20), font=_font(20))


def _status_bar(draw: Any, state: ScreenState) -> None:
    draw.rectangle((0, HEIGHT - 36, WIDTH, HEIGHT), fill=(32, 36, 44))
    doing = "idle" if state.action is None else f"step {state.step}: {state.action}"
    target = state.args.get("target") or state.args.get("url") or state.args.get("text")
    if isinstance(target, str):
        doing += f" {target[:70]!r}"
    if state.question is not None:
        doing += " (paused)"
    draw.text(
        (16, HEIGHT - 28), f"{state.machine_id} · {doing}", fill=(235, 235, 235), font=_font(16)
    )


def _encode(image: Any, mime_type: str) -> bytes:
    out = io.BytesIO()
    if mime_type == "image/png":
        image.save(out, format="PNG", optimize=True)
    else:
        image.save(out, format="JPEG", quality=80)
    return out.getvalue()
