"""Stateless reattach: a paused thread is answered by another process, on the same run."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_agent_process


def _pause_then_answer(sb: Any, saver: str) -> tuple[dict[str, Any], dict[str, Any]]:
    thread = f"t-{uuid.uuid4().hex[:8]}"
    first = run_agent_process(sb, "start", "--saver", saver, "--thread", thread)
    second = run_agent_process(
        sb, "answer", "--saver", saver, "--thread", thread, "--answer", "use the work account"
    )
    return first, second


def _assert_one_run_across_processes(
    sb: Any, first: dict[str, Any], second: dict[str, Any]
) -> None:
    assert first["pid"] != second["pid"] != os.getpid()
    # Process A stopped at the Coasty agent's question, surfaced as an interrupt.
    (request,) = first["interrupts"]
    coasty = request["coasty"]
    assert coasty["question"]
    assert first["tool_status"] is None  # no tool result yet: the call is paused
    run_id = coasty["run_id"]
    seqs_a = [e["seq"] for e in first["events"]]
    assert seqs_a == list(range(1, coasty["seq"] + 1))
    assert first["events"][-1]["type"] == "awaiting_human"

    # Process B answered it; the same run resumed and finished.
    assert second["interrupts"] == []
    assert second["tool_status"] == "success"
    assert second["artifact_status"] == "succeeded"
    assert second["final"].startswith("final: Coasty run " + run_id + " succeeded")
    seqs_b = [e["seq"] for e in second["events"]]
    assert seqs_b == list(range(coasty["seq"] + 1, seqs_b[-1] + 1))  # nothing delivered twice
    assert {e["run_id"] for e in first["events"] + second["events"]} == {run_id}
    assert second["events"][-1]["type"] == "done"

    counters = sb.counters()
    assert counters["runs_created"] == 1
    assert counters["create_replays"] == 1
    assert counters["resumes"] == 1
    assert {k: v for k, v in counters["runs_by_status"].items() if v} == {"succeeded": 1}


def test_sqlite_thread_answered_by_another_process(sb: Any, tmp_path: Path) -> None:
    first, second = _pause_then_answer(sb, f"sqlite:{tmp_path / 'checkpoints.sqlite'}")
    _assert_one_run_across_processes(sb, first, second)


@pytest.mark.slow
def test_postgres_thread_answered_by_another_process(sb: Any, postgres_dsn: str) -> None:
    first, second = _pause_then_answer(sb, f"postgres:{postgres_dsn}")
    _assert_one_run_across_processes(sb, first, second)
