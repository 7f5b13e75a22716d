"""The sandbox's screens are real images that follow what the machine is doing."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageStat

from langchain_coasty.sandbox.screens import ELEMENTS, HEIGHT, WIDTH, ScreenState, locate, render


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(("mime", "fmt"), [("image/jpeg", "JPEG"), ("image/png", "PNG")])
def test_a_screen_decodes_at_its_size(mime: str, fmt: str) -> None:
    image = decode(render(ScreenState("m-1"), mime_type=mime))
    assert image.format == fmt and image.size == (WIDTH, HEIGHT)


def test_each_step_and_the_pause_look_different() -> None:
    state = ScreenState("m-1")
    state.show_step(1, "navigate", {"url": "https://example.com/pricing"})
    first = decode(render(state))
    state.show_step(2, "click", {"target": "the Sign in button"})
    second = decode(render(state))
    state.show_pause("Approve the payment of $12?")
    paused = decode(render(state))
    for a, b in ((first, second), (second, paused)):
        assert ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is not None
    # the pause dims the screen under an amber banner
    assert ImageStat.Stat(paused.convert("L")).mean[0] < ImageStat.Stat(second.convert("L")).mean[0]
    r, g, b = paused.convert("RGB").getpixel((WIDTH // 2, 450))
    assert r > 200 and 120 < g < 200 and b < 80


def test_the_current_target_is_marked_where_it_is() -> None:
    state = ScreenState("m-1")
    state.show_step(1, "click", {"target": "Submit button"})
    image = decode(render(state, mime_type="image/png")).convert("RGB")
    x, y = next(e for e in ELEMENTS if e.name == "submit button").center
    r, g, b = image.getpixel((x + 18, y))  # on the marker's ring
    assert r > 180 and g < 90 and b < 90


def test_a_stopped_machine_is_black() -> None:
    state = ScreenState("m-1")
    version = state.version
    state.power(False)
    assert state.version == version + 1
    image = decode(render(state)).convert("L")
    assert image.getextrema()[1] < 160 and image.getpixel((WIDTH // 2, HEIGHT // 2)) < 10


def test_elements_are_found_by_description() -> None:
    assert locate("the Sign in button").name == "sign in button"  # type: ignore[union-attr]
    assert locate("click on the password field").name == "password field"  # type: ignore[union-attr]
    assert locate("cookies").name == "accept cookies button"  # type: ignore[union-attr]
    assert locate("a purple elephant") is None
    for element in ELEMENTS:
        x, y = element.center
        assert 0 <= x < WIDTH and 0 <= y < HEIGHT
        assert locate(element.name) == element
