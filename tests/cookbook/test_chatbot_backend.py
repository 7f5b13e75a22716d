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


def test_send_watch_approve_with_note(browser: Any, chat_url: str, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        page.goto(chat_url)
        page.fill("#message", TASK)
        page.click("#send")

        page.locator(".bubble.user", has_text=TASK).wait_for(timeout=WAIT_MS)
        page.locator("#events li.event").first.wait_for(timeout=WAIT_MS)
        question = page.locator("#question.open")
        question.wait_for(timeout=WAIT_MS)
        asked = page.inner_text("#question-text")
        assert asked.strip()
        assert page.inner_text("#status") == "awaiting_human"
        page.screenshot(path=str(tmp_path / "chatbot-question.png"), full_page=True)

        page.fill("#note", "Use the saved credentials")
        page.click("#approve")

        page.locator("#status[data-status=succeeded]").wait_for(timeout=WAIT_MS)
        page.locator(".bubble.assistant").last.wait_for(timeout=WAIT_MS)
        page.locator("#send:not([disabled])").wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(tmp_path / "chatbot.png"), full_page=True)

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
