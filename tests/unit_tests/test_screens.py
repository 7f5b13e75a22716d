"""Screens in payloads stay within their bounds, downscaled when Pillow can, left out when not."""

from __future__ import annotations

import base64
import builtins
import io
import random
from typing import Any

import pytest
from PIL import Image

from langchain_coasty.sandbox.screens import ScreenState, render
from langchain_coasty.screens import ScreenLimits, bound


def noisy_png(width: int, height: int) -> bytes:
    """A PNG that compresses badly (random pixels), so it is large."""
    image = Image.frombytes("RGB", (width, height), random.Random(7).randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _bound(data: bytes, width: int, height: int, **limits: Any) -> dict[str, Any]:
    return dict(
        bound(
            data,
            mime_type="image/png",
            width=width,
            height=height,
            machine_id="m-1",
            captured_at="2026-12-01T00:00:00Z",
            limits=ScreenLimits(**limits),
        )
    )


def test_a_screen_within_the_bound_is_passed_as_it_is() -> None:
    data = render(ScreenState("m-1"), mime_type="image/png")
    payload = _bound(data, 1280, 800)
    assert base64.b64decode(payload["data"]) == data
    assert payload["downscaled"] is False and payload["size_bytes"] == len(data)
    assert payload["mime_type"] == "image/png" and payload["machine_id"] == "m-1"


def test_a_large_screen_is_downscaled_into_the_bound() -> None:
    data = noisy_png(2560, 1600)
    assert len(data) > 1_000_000
    payload = _bound(data, 2560, 1600, max_width=640, max_bytes=60_000)
    image = Image.open(io.BytesIO(base64.b64decode(payload["data"])))
    assert image.format == "JPEG" and image.width <= 640
    assert (payload["width"], payload["height"]) == image.size
    assert payload["size_bytes"] <= 60_000 and payload["downscaled"] is True


def test_without_pillow_a_large_screen_is_left_out_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def no_pillow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("no Pillow here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pillow)
    payload = _bound(b"x" * 300_000, 2560, 1600)
    assert "data" not in payload
    assert "install Pillow" in payload["omitted"] and payload["size_bytes"] == 300_000


def test_an_undecodable_large_image_is_left_out() -> None:
    payload = _bound(b"not an image" * 30_000, 2560, 1600)
    assert "data" not in payload and "omitted" in payload


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_width", 0), ("max_width", 10_000), ("max_bytes", 10), ("max_bytes", "1")],
)
def test_limits_name_the_field_and_the_range(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"{field} must be an integer in \d+\.\.\d+"):
        ScreenLimits(**{field: value})
