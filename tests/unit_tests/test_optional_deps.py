"""The package works without its extras, and says which extra to install when one is needed."""

from __future__ import annotations

import subprocess
import sys

_BLOCK = "import sys; sys.modules.update({m: None for m in ('langgraph', 'starlette', 'uvicorn')})"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"{_BLOCK}\n{code}"], capture_output=True, text=True, timeout=60
    )


def test_tool_client_and_runnable_need_no_extras() -> None:
    done = _run(
        "from langchain_coasty import CoastyClient, CoastyComputerTool, CoastyRunnable\n"
        "tool = CoastyComputerTool(api_key='sk-coasty-test-0', machine_id='m-1')\n"
        "print(tool.name, CoastyRunnable(api_key='sk-coasty-test-0').machine_id)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["coasty_computer", "None"]


def test_the_sandbox_without_its_extra_names_the_extra() -> None:
    done = _run("from langchain_coasty.sandbox import CoastySandbox\nCoastySandbox().start()")
    assert done.returncode != 0
    assert 'pip install "langchain-coasty[sandbox]"' in done.stderr
