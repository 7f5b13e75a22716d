"""Testing your agent offline: the `coasty_sandbox` pytest fixture plus a scenario file.

The fixture (installed with ``pip install "langchain-coasty[sandbox]"``) is a local Coasty
server, reset before each test. ``load_scenarios`` scripts what the Coasty agent does for
matching tasks: its steps, its questions, a failure, its result. Nothing leaves the machine
and nothing is billed. Run: ``pytest cookbook/testing_your_agent`` (or run this file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from my_agent import build_agent, run_until_done

SCENARIOS = Path(__file__).with_name("scenarios.yaml")


@pytest.fixture
def sandbox(coasty_sandbox: Any) -> Any:
    coasty_sandbox.load_scenarios(str(SCENARIOS))
    return coasty_sandbox


@pytest.fixture
def agent(sandbox: Any) -> Any:
    return build_agent(
        api_key=sandbox.api_key, base_url=sandbox.base_url, machine_id=sandbox.machine_id
    )


def test_answers_the_one_time_code_and_reports_the_result(agent: Any, sandbox: Any) -> None:
    outcome = run_until_done(agent, "File my March expense report", answer=lambda q: "481516")

    assert outcome.questions == ["What is the one-time code?"]
    assert "EXP-2031" in outcome.final_answer
    resumed = [e for e in outcome.events if e["type"] == "resumed"]
    assert [e["data"].get("note") for e in resumed] == ["481516"]
    steps = [e["data"]["summary"] for e in outcome.events if e["type"] == "step"]
    assert steps == [
        "Opened the expense portal",
        "Attached the March receipts",
        "Submitted the report",
    ]
    billing = [e["data"]["credits_charged"] for e in outcome.events if e["type"] == "billing"]
    assert billing[-1] == 15  # 3 steps x 5 credits
    counters = sandbox.counters()
    assert counters["runs_created"] == 1  # resuming the graph reattached, no second run
    assert counters["resumes"] == 1


def test_a_failing_site_is_reported_not_raised(agent: Any, sandbox: Any) -> None:
    outcome = run_until_done(agent, "Download the vendor price list", answer=lambda q: "")

    assert outcome.questions == []
    assert "failed" in outcome.final_answer.lower()
    assert "SITE_UNAVAILABLE" in outcome.final_answer
    assert sandbox.counters()["runs_by_status"].get("failed") == 1


def test_refusing_at_the_question_cancels_the_run(agent: Any, sandbox: Any) -> None:
    reject = {"decisions": [{"type": "reject", "message": "Not now."}]}
    outcome = run_until_done(agent, "File my March expense report", answer=lambda q: reject)

    assert len(outcome.questions) == 1
    assert "cancelled" in outcome.final_answer.lower()
    assert outcome.events[-1]["type"] == "done"
    assert outcome.events[-1]["data"]["status"] == "cancelled"
    assert sandbox.counters()["runs_by_status"].get("cancelled") == 1


if __name__ == "__main__":  # same as: pytest cookbook/testing_your_agent
    import subprocess
    import sys

    raise SystemExit(subprocess.call([sys.executable, "-m", "pytest", __file__, "-q"]))
