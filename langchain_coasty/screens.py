"""Screens in payloads: a machine's screenshot bounded for a pause, an artifact or an event.

A screenshot goes where people and models look (the interrupt payload, the tool's artifact,
the custom stream, a vision planner's tool message), so it is bounded: at most
``max_width`` pixels wide and ``max_bytes`` encoded. A larger one is downscaled and
re-encoded as JPEG when Pillow is installed (it comes with the ``[sandbox]`` extra);
without Pillow it is left out and the payload says why, with what is needed to fetch it.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypedDict

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_WIDTH",
    "SCREEN_MOMENTS",
    "ScreenLimits",
    "ScreenMoment",
    "ScreenPayload",
    "bound",
    "limits_of",
    "unavailable",
]

DEFAULT_MAX_WIDTH = 1280
DEFAULT_MAX_BYTES = 200_000

ScreenMoment: TypeAlias = Literal["step", "pause", "end"]
"""When a call captures the machine's screen (the ``screens_at`` setting)."""
SCREEN_MOMENTS: tuple[ScreenMoment, ...] = ("step", "pause", "end")


@dataclass(frozen=True, slots=True)
class ScreenLimits:
    """How large a screen may be where it is shown; ``enabled=False`` leaves screens out."""

    max_width: int = DEFAULT_MAX_WIDTH
    max_bytes: int = DEFAULT_MAX_BYTES
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_width, int) or not 16 <= self.max_width <= 8192:
            raise ValueError(f"max_width must be an integer in 16..8192, got {self.max_width!r}")
        if not isinstance(self.max_bytes, int) or not 1024 <= self.max_bytes <= 20_000_000:
            raise ValueError(
                f"max_bytes must be an integer in 1024..20000000, got {self.max_bytes!r}"
            )


class ScreenPayload(TypedDict, total=False):
    """A screen as payloads carry it: a base64 image, or why it was left out."""

    machine_id: str
    captured_at: str | None
    mime_type: str
    width: int
    height: int
    size_bytes: int
    data: str
    """The image, base64 (no ``data:`` prefix); absent when ``omitted`` says why."""
    downscaled: bool
    omitted: str


def bound(
    image: bytes,
    *,
    mime_type: str,
    width: int,
    height: int,
    machine_id: str,
    captured_at: str | None,
    limits: ScreenLimits,
) -> ScreenPayload:
    """The payload of one screenshot within ``limits`` (downscaled when needed and possible)."""
    payload: ScreenPayload = {"machine_id": machine_id, "captured_at": captured_at}
    if width <= limits.max_width and len(image) <= limits.max_bytes:
        return _with_image(payload, image, mime_type, width, height, downscaled=False)
    smaller = _downscale(image, limits)
    if smaller is None:
        payload["mime_type"], payload["width"], payload["height"] = mime_type, width, height
        payload["size_bytes"] = len(image)
        payload["omitted"] = (
            f"the screen ({width}x{height}, {len(image)} bytes) is over the bound "
            f"({limits.max_width} px wide, {limits.max_bytes} bytes) and could not be "
            "downscaled (install Pillow); fetch it with client.machines.screenshot()"
        )
        return payload
    data, new_width, new_height = smaller
    return _with_image(payload, data, "image/jpeg", new_width, new_height, downscaled=True)


def _with_image(
    payload: ScreenPayload,
    image: bytes,
    mime_type: str,
    width: int,
    height: int,
    *,
    downscaled: bool,
) -> ScreenPayload:
    payload["mime_type"], payload["width"], payload["height"] = mime_type, width, height
    payload["size_bytes"] = len(image)
    payload["data"] = base64.b64encode(image).decode("ascii")
    payload["downscaled"] = downscaled
    return payload


def _downscale(image: bytes, limits: ScreenLimits) -> tuple[bytes, int, int] | None:
    """JPEG bytes within the limits, or None without Pillow or for an undecodable image."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        picture: Any = Image.open(io.BytesIO(image))
        picture.load()
    except Exception:  # any decoder failure means "cannot downscale"
        return None
    picture = picture.convert("RGB")
    if picture.width > limits.max_width:
        ratio = limits.max_width / picture.width
        size = (limits.max_width, max(1, round(picture.height * ratio)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    for quality in (85, 70, 55, 40, 25):
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=quality, optimize=True)
        if out.tell() <= limits.max_bytes:
            return out.getvalue(), picture.width, picture.height
        if quality == 40:  # still too large: halve the size for the last try
            picture = picture.resize((max(1, picture.width // 2), max(1, picture.height // 2)))
    return None


def unavailable(machine_id: str, error: BaseException) -> ScreenPayload:
    """The payload of a screen that could not be captured, saying why (never an error)."""
    code = getattr(error, "code", None) or type(error).__name__
    message = str(getattr(error, "message", None) or error)
    if len(message) > 300:
        message = message[:300] + "..."
    return {
        "machine_id": machine_id,
        "captured_at": None,
        "omitted": f"the screen is unavailable ({code}: {message})",
    }


def limits_of(setting: ScreenLimits | bool) -> ScreenLimits | None:
    """The bounds a ``screens`` setting stands for; None when screens are switched off."""
    limits = ScreenLimits() if setting is True else setting
    if isinstance(limits, ScreenLimits) and limits.enabled:
        return limits
    return None
