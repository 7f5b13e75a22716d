"""The README's runnable examples run as written against the sandbox."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_coasty.sandbox import CoastySandbox

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"<!-- readme-test: run -->\n```python\n(.*?)```", re.S)


def _blocks() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


def test_the_first_screen_has_the_two_commands() -> None:
    first_screen = "\n".join(README.read_text(encoding="utf-8").splitlines()[:25])
    assert "make demo" in first_screen
    assert "make test" in first_screen


def test_readme_marks_its_runnable_examples() -> None:
    assert len(_blocks()) >= 5


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_example_runs(index: int, coasty_sandbox: CoastySandbox, tmp_path: Path) -> None:
    code = _blocks()[index]
    script = tmp_path / f"example_{index}.py"
    script.write_text(code, encoding="utf-8")
    env = {
        "COASTY_API_KEY": coasty_sandbox.api_key,
        "COASTY_BASE_URL": coasty_sandbox.base_url,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(README.parent),  # this checkout's package, whichever is installed
    }
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
