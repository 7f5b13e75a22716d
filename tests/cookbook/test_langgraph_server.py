"""``cookbook/langgraph_server`` as a new user follows its README, answered as Agent Chat UI does.

The README's shell commands run as written (only the two ports are swapped for free ones)
in a copy of the recipe: the ``coasty-sandbox`` CLI, ``cp .env.example .env`` and
``langgraph dev``; then the README's own client script, and each review-card decision as
Agent Chat UI builds it (approve, edit with an answer, reject) through ``langgraph-sdk``,
and the chat-box sequence that abandons a pause, with content-block messages throughout.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cookbook.conftest import COOKBOOK, ROOT, offline_env
from tests.scale_out._receiver import wait_until

pytest.importorskip("langgraph_sdk")
pytest.importorskip("langgraph_api", reason="needs langgraph-cli[inmem]")

from langgraph_sdk import get_client

from langchain_coasty import CoastyClient

RECIPE = COOKBOOK / "langgraph_server"
README = RECIPE / "README.md"
LOGIN_TASK = "Log in to the bank portal and download the March statement"
START_TIMEOUT = 90.0
STUB = "Successfully handled tool call."


def _block(name: str, language: str) -> str:
    found = re.search(
        rf"<!-- recipe-test: {name} -->\n```{language}\n(.*?)```", README.read_text(), re.S
    )
    assert found, f"the recipe README lost its {name} block"
    return found.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


@dataclass
class Recipe:
    """The running recipe: the LangGraph API's URL, the sandbox's, and the key in ``.env``."""

    url: str
    sandbox_url: str
    api_key: str
    workdir: Path
    env: dict[str, str]

    def coasty(self) -> CoastyClient:
        return CoastyClient(api_key=self.api_key, base_url=self.sandbox_url)


def _wait_ok(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    def ready() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, f"{url} to answer", timeout=START_TIMEOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recipe]:
    """The README's commands, run as written in a copy of the recipe."""
    workdir = tmp_path_factory.mktemp("langgraph_server")
    logs = tmp_path_factory.mktemp("logs")  # outside: `langgraph dev` reloads on any change
    sandbox_port, api_port = _free_port(), _free_port()
    swap = {"8765": str(sandbox_port), "2024": str(api_port)}

    def ported(text: str) -> str:
        return re.sub(r"\b(8765|2024)\b", lambda m: swap[m.group(1)], text)

    for name in ("langgraph.json", "planner_graph.py", ".env.example"):
        (workdir / name).write_text(ported((RECIPE / name).read_text()))
    env = offline_env(
        {
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "LANGGRAPH_NO_VERSION_CHECK": "1",
            "LANGSMITH_TRACING": "false",
            "LANGSMITH_API_KEY": "",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            # This checkout's package, whichever one the environment has installed.
            "PYTHONPATH": str(ROOT),
        }
    )
    for name in ("COASTY_MACHINE_ID", "COASTY_WAIT", "COASTY_WEBHOOK_URL", "PLANNER_MODEL"):
        env.pop(name, None)  # the recipe's .env decides

    commands = [shlex.split(ported(line)) for line in _block("commands", "bash").splitlines()]
    commands = [[word for word in c if not word.startswith("#")] for c in commands if c]
    install, sandbox_cmd, copy_cmd, dev_cmd = commands
    # pip install: offline here, so check that what it names exists and is installed.
    assert install[:2] == ["pip", "install"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (ours,) = [w for w in install if w.startswith("langchain-coasty[")]
    assert set(ours.removeprefix("langchain-coasty[").rstrip("]").split(",")) <= set(extras)
    assert {"langgraph", "sandbox"} <= set(ours.removeprefix("langchain-coasty[")[:-1].split(","))
    assert sandbox_cmd[0] == "coasty-sandbox" and dev_cmd[:2] == ["langgraph", "dev"]
    assert "--n-jobs-per-worker" in dev_cmd

    processes: list[subprocess.Popen[bytes]] = []
    try:
        for command, health, log_name in (
            (sandbox_cmd, f"http://127.0.0.1:{sandbox_port}/v1/health", "sandbox.log"),
            (None, None, None),
            (dev_cmd, f"http://127.0.0.1:{api_port}/ok", "server.log"),
        ):
            if command is None:
                subprocess.run(copy_cmd, cwd=workdir, env=env, check=True)
                continue
            assert health is not None and log_name is not None
            log = logs / log_name
            with log.open("ab") as out:
                process = subprocess.Popen(
                    [_bin(command[0]), *command[1:]],
                    cwd=workdir,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            processes.append(process)
            _wait_ok(health, process, log)
        key = re.search(r"^COASTY_API_KEY=(\S+)$", (workdir / ".env").read_text(), re.M)
        assert key is not None
        yield Recipe(
            url=f"http://127.0.0.1:{api_port}",
            sandbox_url=f"http://127.0.0.1:{sandbox_port}",
            api_key=key.group(1),
            workdir=workdir,
            env=env,
        )
    finally:
        for process in reversed(processes):
            _stop(process)


@pytest.mark.slow
def test_the_readme_client_runs_as_written(recipe: Recipe) -> None:
    """The README's client: content blocks in, the answer typed into the card's answer field."""
    script = recipe.workdir / "client.py"
    script.write_text(_block("client", "python"))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=recipe.workdir,
        env={**recipe.env, "LANGGRAPH_URL": recipe.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("final: Coasty run ") and " succeeded " in lines[-1], lines
    assert any(line.startswith("awaiting_human ") for line in lines)
    assert any("**answer**" in line for line in lines)  # the card says what to type where
    run_id = lines[-1].split()[3]
    with recipe.coasty() as coasty:
        run = coasty.runs.get(run_id)
        # The task arrived as text, not as a list literal of content blocks.
        assert run.task == LOGIN_TASK
        resumed = [e for e in coasty.runs.events(run_id) if e.type == "resumed"]
    assert [e.data.get("note") for e in resumed] == ["use the work account"]


async def _paused_thread(recipe: Recipe, task: str = LOGIN_TASK) -> tuple[str, dict[str, Any]]:
    client = get_client(url=recipe.url)
    thread = await client.threads.create()
    message = {"role": "user", "content": [{"type": "text", "text": task}]}
    await client.runs.wait(thread["thread_id"], "planner", input={"messages": [message]})
    state = await client.threads.get_state(thread["thread_id"])
    (pending,) = state["interrupts"]
    return thread["thread_id"], pending["value"]


async def _decide(recipe: Recipe, decision: dict[str, Any]) -> tuple[str, str, list[Any]]:
    """Pause a thread, answer with ``decision`` as the UI does; the run id, final text, notes."""
    thread_id, pause = await _paused_thread(recipe)
    run_id = pause["coasty"]["run_id"]
    review = pause["review_configs"][0]
    assert review["action_name"] == pause["action_requests"][0]["name"]
    assert decision["type"] in review["allowed_decisions"]
    final = await get_client(url=recipe.url).runs.wait(
        thread_id, "planner", command={"resume": {"decisions": [decision]}}
    )
    with recipe.coasty() as coasty:
        notes = [e.data.get("note") for e in coasty.runs.events(run_id) if e.type == "resumed"]
        status = coasty.runs.get(run_id).status.value
    return status, final["messages"][-1]["content"], notes


@pytest.mark.slow
async def test_each_decision_as_agent_chat_ui_builds_it(recipe: Recipe) -> None:
    """approve, edit and reject, on three threads at once (``--n-jobs-per-worker``)."""
    _, pause = await _paused_thread(recipe)
    action = pause["action_requests"][0]
    # Agent Chat UI edits every arg in a text field: all strings, the answer field first.
    assert list(action["args"]) == ["answer", "task"]
    assert all(isinstance(v, str) for v in action["args"].values())
    edit = {
        "type": "edit",
        "edited_action": {"name": action["name"], "args": {**action["args"], "answer": "4815"}},
    }
    approved, edited, rejected = await asyncio.gather(
        _decide(recipe, {"type": "approve"}),
        _decide(recipe, edit),
        _decide(recipe, {"type": "reject", "message": "Not this account"}),
    )
    assert approved[0] == "succeeded" and approved[2] == [None]
    assert edited[0] == "succeeded" and edited[2] == ["4815"]
    assert " succeeded " in edited[1]
    assert rejected[0] == "cancelled" and rejected[2] == []
    assert "cancelled" in rejected[1] and "Not this account" in rejected[1]


@pytest.mark.slow
async def test_typing_in_the_chat_box_instead_cancels_the_paused_run(recipe: Recipe) -> None:
    """The UI's sequence: a stub ToolMessage for the pending call and a new human message."""
    thread_id, pause = await _paused_thread(recipe)
    run_id = pause["coasty"]["run_id"]
    client = get_client(url=recipe.url)
    state = await client.threads.get_state(thread_id)
    (pending_call,) = state["values"]["messages"][-1]["tool_calls"]
    moved_on = {
        "messages": [
            {
                "type": "tool",
                "tool_call_id": pending_call["id"],
                "name": pending_call["name"],
                "content": STUB,
            },
            {"type": "human", "content": [{"type": "text", "text": "Open the notes app"}]},
        ]
    }
    final = await client.runs.wait(thread_id, "planner", input=moved_on)
    assert " succeeded " in final["messages"][-1]["content"]  # the new request was served
    with recipe.coasty() as coasty:
        assert coasty.runs.get(run_id).status.value == "cancelled"
        parked = coasty.runs.list(status="awaiting_human", limit=200).data
    assert [r for r in parked if r.metadata.get("langchain_thread_id") == thread_id] == []
