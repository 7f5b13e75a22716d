"""Against the real Coasty service: run only when COASTY_API_KEY (and COASTY_MACHINE_ID) are set.

Use a ``sk-coasty-test-*`` key: test keys are free and return mocked machines with the same
schemas, so these tests check that the client and the tool agree with the real service.
"""

from __future__ import annotations

import os

import pytest

from langchain_coasty import CoastyClient, CoastyComputerTool, RunStatus

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (os.environ.get("COASTY_API_KEY") and os.environ.get("COASTY_MACHINE_ID")),
        reason="needs COASTY_API_KEY and COASTY_MACHINE_ID for the real Coasty service",
    ),
]


def test_health_and_machines() -> None:
    with CoastyClient() as client:
        assert client.health()["status"] == "ok"
        machines = client.machines.list()
        assert any(m.id == os.environ["COASTY_MACHINE_ID"] for m in machines.data)


def test_a_short_run_reaches_a_terminal_state_and_is_listed() -> None:
    with CoastyClient() as client:
        run = client.runs.create(
            machine_id=os.environ["COASTY_MACHINE_ID"],
            task="Take a screenshot of the desktop and describe it in one sentence.",
            max_steps=3,
        )
        assert run.webhook_secret is not None
        seqs = [event.seq for event in client.runs.events(run.id)]
        assert seqs == sorted(set(seqs))
        final = client.runs.get(run.id)
        assert RunStatus(final.status).is_terminal
        assert final.webhook_secret is None


def test_the_tool_summarises_a_real_run() -> None:
    tool = CoastyComputerTool(
        machine_id=os.environ["COASTY_MACHINE_ID"], max_steps=3, on_awaiting_human="fail"
    )
    message = tool.invoke(
        {
            "type": "tool_call",
            "id": "live-1",
            "name": "coasty_computer",
            "args": {"task": "Take a screenshot of the desktop."},
        }
    )
    assert "Coasty run" in str(message.content)
