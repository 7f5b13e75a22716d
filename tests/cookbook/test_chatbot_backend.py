"""The chatbot recipe end to end in a real headless Chromium: send, watch, approve or cancel."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cookbook.conftest import load_recipe, serve

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TASK = "Log in to the supplier portal and download the March invoice"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        why = "Chromium is not installed (Debian package: chromium)"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI installs it: a missing browser is a broken setup there
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def chat_url(coasty_sandbox: Any) -> Iterator[str]:
    recipe = load_recipe("chatbot_backend/app.py")
    agent = recipe.build_agent(
        coasty_sandbox.api_key, coasty_sandbox.base_url, coasty_sandbox.machine_id
    )
    with serve(recipe.create_app(agent)) as url:
        yield url


# Every picture the live screen shows, in order (recorded in the page, so none is missed).
RECORD_SCREENS = """
window.screens = [];
new MutationObserver(() => {
  const img = document.getElementById("screen");
  window.screens.push({ at: img.dataset.at, src: img.src });
}).observe(document.getElementById("screen"), { attributes: true, attributeFilter: ["src"] });
"""
DECODE = """async (src) => {
  const img = new Image();
  img.src = src;
  await img.decode();
  return [img.naturalWidth, img.naturalHeight];
}"""


def shots_dir(tmp_path: Path) -> Path:
    """Where the page screenshots go (CHATBOT_SHOTS keeps them for a person to look at)."""
    kept = os.environ.get("CHATBOT_SHOTS")
    folder = Path(kept) if kept else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_send_watch_approve_with_note(browser: Any, chat_url: str, tmp_path: Path) -> None:
    shots = shots_dir(tmp_path)
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        page.goto(chat_url)
        page.evaluate(RECORD_SCREENS)
        assert page.get_attribute("#screen", "src") is None  # no run, no screen yet
        page.screenshot(path=str(shots / "chatbot-start.png"), full_page=True)
        page.fill("#message", TASK)
        page.click("#send")

        page.locator(".bubble.user", has_text=TASK).wait_for(timeout=WAIT_MS)
        page.locator("#events li.event").first.wait_for(timeout=WAIT_MS)
        page.locator("#screen[src]").wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(shots / "chatbot-running.png"), full_page=True)
        question = page.locator("#question.open")
        question.wait_for(timeout=WAIT_MS)
        asked = page.inner_text("#question-text")
        assert asked.strip()
        assert page.inner_text("#status") == "awaiting_human"
        page.screenshot(path=str(shots / "chatbot-question.png"), full_page=True)

        # the screen at the pause sits above Approve / Cancel, decodes, and is not a step's
        paused_src = page.get_attribute("#question-screen", "src")
        assert paused_src and paused_src.startswith("data:image/jpeg;base64,")
        assert page.is_visible("#question-screen")
        box = page.locator("#question-screen").bounding_box()
        assert box is not None and box["y"] < page.locator("#approve").bounding_box()["y"]
        assert page.evaluate(DECODE, paused_src)[0] > 0
        # the live screen shows the pause too (its screen event comes before the question)
        assert page.get_attribute("#screen", "src") == paused_src
        assert page.get_attribute("#screen", "data-at") == "pause"

        page.fill("#note", "Use the saved credentials")
        page.click("#approve")

        page.locator("#status[data-status=succeeded]").wait_for(timeout=WAIT_MS)
        page.locator(".bubble.assistant").last.wait_for(timeout=WAIT_MS)
        page.locator("#send:not([disabled])").wait_for(timeout=WAIT_MS)
        page.locator("#screen[data-at=end]").wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(shots / "chatbot-end.png"), full_page=True)
        end_src = page.get_attribute("#screen", "src")
        assert end_src and end_src != paused_src and page.evaluate(DECODE, end_src)[0] > 0
        # every step's picture decodes; those after the answer differ from the pause's (the
        # sandbox runs at full speed, so the steps before it may already show the pause)
        seen = page.evaluate("window.screens")
        steps = [s["src"] for s in seen if s["at"] == "step"]
        assert all(page.evaluate(DECODE, src)[0] > 0 for src in steps)
        moments = [s["at"] for s in seen]
        after_pause = [s["src"] for s in seen[moments.index("pause") + 1 :] if s["at"] == "step"]
        assert after_pause and all(src != paused_src for src in after_pause)

        types = page.eval_on_selector_all("#events li.event", "els => els.map(e => e.dataset.type)")
        assert "awaiting_human" in types and "resumed" in types and types[-1] == "done"
        assert types.count("status") >= 1 and "step" in types and "billing" in types
        resumed = page.locator("#events li[data-type=resumed]").first.inner_text()
        assert "Use the saved credentials" in resumed  # the note reached the same run
        assert not page.is_visible("#question")
        final = page.locator(".bubble.assistant").last.inner_text()
        assert "succeeded" in final.lower()
        assert page.inner_text("#credits").startswith(tuple("123456789"))
        run_ids = {
            e
            for e in page.eval_on_selector_all(
                "#events li.event", "els => els.map(e => e.dataset.run)"
            )
            if e
        }
        assert len(run_ids) == 1  # one run, paused and resumed
    finally:
        page.close()


def test_cancel_button_cancels_the_run(browser: Any, chat_url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    try:
        page.goto(chat_url)
        page.fill("#message", "Pay the supplier invoice #1042 in the billing portal")
        page.click("#send")
        page.locator("#question.open").wait_for(timeout=WAIT_MS)
        page.click("#cancel")
        page.locator("#status[data-status=cancelled]").wait_for(timeout=WAIT_MS)
        page.locator(".bubble.assistant").last.wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(tmp_path / "chatbot-cancel.png"), full_page=True)
        types = page.eval_on_selector_all("#events li.event", "els => els.map(e => e.dataset.type)")
        assert types[-1] == "done" and "resumed" not in types
        assert "cancel" in page.locator(".bubble.assistant").last.inner_text().lower()
    finally:
        page.close()
