"""Helpers for running the cookbook recipes: load them by path, serve ASGI apps, run scripts."""

from __future__ import annotations

import importlib.util
import os
import runpy
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COOKBOOK = ROOT / "cookbook"
# Variables that would send a recipe to the real Coasty or a real chat model.
LIVE_VARS = ("COASTY_API_KEY", "COASTY_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")


def load_recipe(relative: str) -> ModuleType:
    """Import a recipe file (e.g. "chatbot_backend/app.py") as a fresh module."""
    path = COOKBOOK / relative
    name = "cookbook_" + relative.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def offline_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without live credentials, so recipes use the sandbox."""
    env = {k: v for k, v in os.environ.items() if k not in LIVE_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_script(
    *args: str, timeout: float = 60, env_extra: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python <args>` from the repository root, offline, capturing text output."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=offline_env(env_extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_recipe_main(
    relative: str, *args: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    """Run a recipe file as `python cookbook/<relative> <args>` would, in this process.

    Cheaper than a subprocess (the heavy imports are already loaded); returns the exit code
    and what it printed.
    """
    path = COOKBOOK / relative
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    monkeypatch.syspath_prepend(str(path.parent))
    code = 0
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().out


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yields its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LIVE_VARS:
        monkeypatch.delenv(name, raising=False)
