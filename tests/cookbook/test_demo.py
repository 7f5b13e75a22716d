"""`make demo`: non-interactive in a pipe, interactive at a terminal (driven through a pty)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
import types

import pytest

from langchain_coasty import demo, examples
from tests.cookbook.conftest import ROOT, offline_env, run_script

TASK = "Sign in to the supplier portal and download the March invoice"


def test_demo_without_a_terminal_answers_for_itself_and_finishes() -> None:
    proc = run_script("-m", "langchain_coasty.demo", "--pace", "0", "--task", TASK)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "Planner: scripted planner" in out
    assert "Coasty:  local sandbox at http://127.0.0.1:" in out
    assert "The Coasty agent asks: " in out
    assert "Answer (automatic):" in out
    assert "The run resumed with the note: 'Approved automatically" in out
    assert re.search(r"\[running\] step 1/20 \| 5 credits \(\$0\.05\)", out), out
    final = re.search(r"Run \S+: succeeded, (\d) steps, (\d+) credits = \$(\d+\.\d\d)", out)
    assert final, out
    steps, credits, dollars = int(final[1]), int(final[2]), float(final[3])
    assert 3 <= steps <= 6 and credits == 5 * steps and dollars == credits / 100
    assert "Planner's answer: " in out and "succeeded" in out.split("Planner's answer: ")[1]
    # its own machine, provisioned for the thread, reused after the pause, then terminated
    provisioned = re.search(r"Machine: provisioned (\S+) for this thread", out)
    assert provisioned, out
    machine = provisioned[1]
    assert f"Machine: {machine} is running" in out
    assert f"Machine: {machine} reused by the resumed call" in out
    assert re.search(
        rf"Machine: {machine} terminated at the end of the agent run, it cost \$0\.\d\d", out
    )
    assert out.index("reused") < out.index("terminated at the end")


def test_demo_at_a_terminal_asks_the_person_and_uses_their_answer() -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_coasty.demo", "--pace", "0", "--task", TASK],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=offline_env({"TERM": "xterm"}),
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()

    def read_until(marker: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while marker not in seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {marker!r} in:\n{seen.decode(errors='replace')}"
            ready, _, _ = select.select([master], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the demo exited and closed the terminal
                chunk = b""
            assert chunk, f"demo ended before {marker!r}:\n{seen.decode(errors='replace')}"
            seen.extend(chunk)

    try:
        read_until(b"Your answer")
        os.write(master, b"Use the account in the team vault\n")
        read_until(b"credits = $")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    out = seen.decode(errors="replace")
    assert "The Coasty agent asks: " in out
    assert "Answer (automatic)" not in out
    assert "\x1b[2K" in out  # the live progress line is redrawn in place
    assert "The run resumed with the note: 'Use the account in the team vault'" in out
    assert re.search(r"Run \S+: succeeded", out)


def test_a_missing_chat_model_package_is_a_message_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langchain_openai", None)  # makes the import fail
    model, line = examples.chat_model_from_env({"OPENAI_API_KEY": "sk-x"})
    assert model is None
    assert "OPENAI_API_KEY is set but langchain-openai is not installed" in line
    assert line.startswith("scripted planner")
    model, line = examples.chat_model_from_env({})
    assert model is None and "no OPENAI_API_KEY or ANTHROPIC_API_KEY set" in line


def test_answers_typed_at_the_terminal() -> None:
    assert demo.answer_from_text("") == {"decisions": [{"type": "approve"}]}
    assert demo.answer_from_text("cancel")["decisions"][0]["type"] == "reject"
    note = demo.answer_from_text(" 123456 ")
    assert note == {"decisions": [{"type": "respond", "message": "123456"}]}


def test_a_configured_provider_is_used_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    class ChatAnthropic(examples.ScriptedPlanner):
        model: str = ""

    fake = types.ModuleType("langchain_anthropic")
    fake.ChatAnthropic = ChatAnthropic  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain_anthropic", fake)
    env = {"ANTHROPIC_API_KEY": "sk-ant-x", "ANTHROPIC_MODEL": "claude-test"}
    model, line = examples.chat_model_from_env(env)
    assert isinstance(model, ChatAnthropic) and model.model == "claude-test"
    assert line == "real chat model: ChatAnthropic('claude-test') from langchain-anthropic"
