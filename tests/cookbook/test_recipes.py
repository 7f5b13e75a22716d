"""Each cookbook recipe run as a user would run it, on the sandbox, with its outcome checked.

Scripts run as ``__main__`` in this process (same code path as ``python cookbook/...``);
the testing recipe runs pytest in a subprocess, as its reader would.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from langchain_coasty import CoastyMachinePool, CoastyRunnable
from tests.cookbook.conftest import load_recipe, run_recipe_main, run_script

Capture = pytest.CaptureFixture[str]


def test_planner_agent_recipe(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run_recipe_main(
        "planner_agent/planner_agent.py", capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 0, out
    assert "Planner: scripted planner" in out
    assert "Coasty asks: " in out and "No terminal: approving." in out
    assert re.search(r"step 1/20: ", out)
    assert "status: succeeded" in out
    assert re.search(r"Planner: Done\..*succeeded", out)


def test_step_by_step_recipe(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run_recipe_main(
        "step_by_step/step_by_step.py", capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 0, out
    assert "Planner: scripted planner" in out
    assert "Approve typing 'pricing'?" in out and "No terminal: approving." in out
    assert out.count("planner saw 1 screen(s) after acting") == 3
    assert re.search(r"coasty_act: .*type done", out)
    assert re.search(r"coasty_act: .*clicked': 'search button'", out)
    assert "coasty_next_action: Coasty says the task is done (step 4)." in out
    assert "Coasty sessions left open: 0" in out
    assert "Planner: Done: Search for 'pricing' (in 3 steps)." in out


def test_step_by_step_recipe_takes_an_edit(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    recipe = load_recipe("step_by_step/step_by_step.py")
    answers = iter(["docs"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    final = recipe.main("Search for 'pricing'")
    out = capsys.readouterr().out
    assert "coasty_act: On m-sandbox-1: 1. type done -> {'typed': 4}" in out
    assert final.startswith("Done")


def test_multi_agent_pipeline_recipe(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run_recipe_main(
        "multi_agent_pipeline/pipeline.py", "--pace", "0", capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 0, out
    rows = dict(re.findall(r"^  (leads|statement|invoice) +\S+ +(\w+)", out, re.M))
    # The policy answered the sign-in; nobody was there to approve the payment.
    assert rows == {"leads": "succeeded", "statement": "succeeded", "invoice": "cancelled"}
    assert re.search(r"pause on \S+: policy -> respond", out)
    assert re.search(r"pause on \S+: person -> reject", out)
    assert re.search(r"Pool ready: (mch_test_\w+, ){2}mch_test_\w+", out)
    assert "Pool terminated: yes (3 machines)" in out
    costs = [float(c) for c in re.findall(r"steps \$(\d+\.\d\d)", out)]
    total = float(re.search(r"Total cost: \$(\d+\.\d\d)", out)[1])  # type: ignore[index]
    assert len(costs) == 3 and abs(sum(costs) - total) < 0.001 and total > 0


def test_multi_agent_pipeline_runs_in_parallel_on_a_pool(coasty_sandbox: Any) -> None:
    recipe = load_recipe("multi_agent_pipeline/pipeline.py")
    settings = CoastyRunnable(api_key=coasty_sandbox.api_key, base_url=coasty_sandbox.base_url)
    events: list[dict[str, Any]] = []
    with CoastyMachinePool(3, settings=settings) as pool:
        graph = recipe.build_pipeline(pool)
        state, routed = recipe.run_pipeline(
            graph, recipe.JOBS, recipe.person_at_terminal(True), events.append
        )
        machines = set(pool.machine_ids)
    results = {r["name"]: r for r in state["results"]}
    assert {r["status"] for r in results.values()} == {"succeeded"}
    assert {r["machine_id"] for r in results.values()} <= machines
    assert sorted(r["route"] for r in routed) == ["person", "policy"]
    by_run: dict[str, list[int]] = {}
    for event in events:
        by_run.setdefault(event["run_id"], []).append(event["seq"])
    assert set(by_run) == {r["run_id"] for r in results.values()}
    for seqs in by_run.values():  # every event once, in order
        assert seqs == list(range(1, len(seqs) + 1))
    assert state["total_cost_usd"] == round(sum(r["cost_usd"] for r in results.values()), 2)
    assert coasty_sandbox.counters()["runs_created"] == 3  # resumes reattached, none re-created
    ledger = {m["id"]: m["status"] for m in coasty_sandbox.machines()}
    assert {ledger[m] for m in machines} == {"terminated"}  # the pool left nothing running


def test_webhook_receiver_recipe(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run_recipe_main(
        "webhook_receiver/receiver.py", "--pace", "0", capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 0, out
    assert "Webhooks handled: run.awaiting_human, run.succeeded" in out
    assert "Pause answers:    resumed: Approved by the webhook receiver's policy." in out
    assert re.search(r"Run \S+: succeeded, cost \$0\.[1-9]\d", out)
    assert "Forged signature -> HTTP 400; replayed delivery -> HTTP 200 duplicate" in out


def test_testing_your_agent_recipe() -> None:
    # Only the sandbox plugin (what the recipe needs): autoloading hypothesis' and langsmith's
    # plugins would double this test's time. The entry point itself is used by the whole suite.
    proc = run_script(
        "-m",
        "pytest",
        "cookbook/testing_your_agent",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "langchain_coasty.sandbox.pytest_plugin",
        env_extra={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.search(r"\b3 passed\b", out), out


BLOCKS = [{"type": "text", "text": "Open the notes app"}, {"type": "text", "text": " and read it"}]


@pytest.mark.parametrize("content", [BLOCKS, "Open the notes app and read it"])
def test_planners_read_text_from_blocks_and_strings(
    coasty_sandbox: Any, monkeypatch: pytest.MonkeyPatch, content: Any
) -> None:
    """Agent Chat UI sends content blocks: every planner turns them into the same task."""
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from langchain_coasty import CoastyClient, CoastyComputerTool
    from langchain_coasty.examples import ScriptedPlanner

    monkeypatch.setenv("COASTY_API_KEY", coasty_sandbox.api_key)
    monkeypatch.setenv("COASTY_BASE_URL", coasty_sandbox.base_url)
    monkeypatch.setenv("COASTY_MACHINE_ID", coasty_sandbox.machine_id)
    recipe = load_recipe("langgraph_server/planner_graph.py").graph
    scripted = create_agent(
        ScriptedPlanner(),
        [CoastyComputerTool(machine_id=coasty_sandbox.machine_id)],
        checkpointer=InMemorySaver(),
    )
    for number, graph in enumerate((recipe, scripted)):
        message = {"role": "user", "content": content}
        out = graph.invoke({"messages": [message]}, {"configurable": {"thread_id": f"t{number}"}})
        assert "succeeded" in out["messages"][-1].text
    with CoastyClient() as client:
        tasks = [run.task for run in client.runs.list().data]
    assert tasks == ["Open the notes app and read it"] * 2
