"""Scenarios: the default agent's pauses, and user scenarios from dicts, JSON and YAML."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from langchain_coasty.sandbox import CoastySandbox
from tests.sandbox.conftest import create, events_until, read_events, types


@pytest.mark.parametrize(
    ("task", "kind"),
    [
        ("Log in to the HR portal and download my payslip", "login_required"),
        ("Sign in to GitHub and star the repo", "login_required"),
        ("Reset the password for the test account", "login_required"),
        ("Enter the one-time code and open settings", "otp_required"),
        ("Finish 2FA setup on the admin panel", "otp_required"),
        ("Pay the electricity bill", "payment_confirmation"),
        ("Go to checkout and purchase the cart", "payment_confirmation"),
        ("Get approval for the vacation request", "approval_required"),
    ],
)
def test_default_scenario_pauses_for_a_person(
    api: httpx.Client, sb: CoastySandbox, task: str, kind: str
) -> None:
    run = create(api, sb.machine_id, task=task)
    pause = events_until(api, run["id"], "awaiting_human")[-1]["data"]
    assert pause["kind"] == kind
    assert pause["reason"] and pause["question"].endswith(("resume.", "run."))
    api.post(f"/v1/runs/{run['id']}/resume", json={"note": "done"})
    events = read_events(api, run["id"])
    assert types(events).count("awaiting_human") == 1
    assert events[-1]["data"]["status"] == "succeeded"


@pytest.mark.parametrize(
    "task", ["Open the calculator and add 2 and 3", "Display the payroll summary"]
)
def test_default_scenario_runs_through_other_tasks(
    api: httpx.Client, sb: CoastySandbox, task: str
) -> None:
    run = create(api, sb.machine_id, task=task)
    events = read_events(api, run["id"])
    assert "awaiting_human" not in types(events)
    assert events[-1]["data"]["status"] == "succeeded"


def test_scripted_steps_pauses_and_result(api: httpx.Client, sb: CoastySandbox) -> None:
    names = sb.load_scenarios(
        [
            {
                "name": "expense",
                "match": r"expense report \d+",
                "steps": [
                    {"action": "open_app", "args": {"app": "Expensify"}, "summary": "Opened"},
                    {"action": "type", "args": {"text": "42.00"}, "output": "typed"},
                    {"action": "click", "args": {"x": 1, "y": 2}},
                ],
                "pauses": [
                    {"after_step": 1, "reason": "Which cost centre?", "question": "CC?"},
                    {"after_step": 2, "reason": "Approve the total?", "question": "OK?"},
                ],
                "result": {"report_id": "R-7"},
            }
        ]
    )
    assert names == ["expense"]
    run = create(api, sb.machine_id, task="File EXPENSE REPORT 12")
    seen: list[dict[str, object]] = []
    for reason in ("Which cost centre?", "Approve the total?"):
        part = events_until(api, run["id"], "awaiting_human", after=len(seen))
        seen.extend(part)
        assert part[-1]["data"]["reason"] == reason
        api.post(f"/v1/runs/{run['id']}/resume")
    seen.extend(read_events(api, run["id"], after=len(seen)))
    calls = [e["data"] for e in seen if e["type"] == "tool_call"]
    assert [(c["action"], c["args"]) for c in calls] == [
        ("open_app", {"app": "Expensify"}),
        ("type", {"text": "42.00"}),
        ("click", {"x": 1, "y": 2}),
    ]
    assert [e["data"]["output"] for e in seen if e["type"] == "tool_result"][1] == "typed"
    assert seen[-1]["data"]["result"] == {"report_id": "R-7"}
    assert api.get(f"/v1/runs/{run['id']}").json()["result"] == {"report_id": "R-7"}


def test_scripted_failure(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.load_scenarios(
        [
            {
                "match": "broken",
                "steps": 4,
                "fail": {"after_step": 2, "code": "NO_BUTTON", "message": "No Pay button."},
            }
        ]
    )
    run = create(api, sb.machine_id, task="A broken flow")
    events = read_events(api, run["id"])
    assert types(events)[-3:] == ["error", "status", "done"]
    assert events[-3]["data"] == {"code": "NO_BUTTON", "message": "No Pay button."}
    got = api.get(f"/v1/runs/{run['id']}").json()
    assert got["status"] == "failed" and got["steps_completed"] == 2
    assert got["error"] == {"code": "NO_BUTTON", "message": "No Pay button."}


@pytest.mark.parametrize("total", [50, 2_000, 100_000])
def test_event_count_knob(api: httpx.Client, sb: CoastySandbox, total: int) -> None:
    sb.load_scenarios([{"match": "bench", "steps": 3, "events": total}])
    run = create(api, sb.machine_id, task="bench run")
    with api.stream("GET", f"/v1/runs/{run['id']}/events") as response:
        ids = [line for line in response.iter_lines() if line.startswith("id: ")]
    assert len(ids) == total
    assert ids[-1] == f"id: {total}"
    assert sb.counters()["events_emitted"] == total


def test_first_matching_scenario_wins_and_replace(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.load_scenarios([{"name": "one", "match": "alpha", "steps": 1}])
    sb.load_scenarios([{"name": "two", "match": "alpha|beta", "steps": 2}])

    def steps(task: str) -> list[str]:
        return types(read_events(api, create(api, sb.machine_id, task=task)["id"]))

    assert steps("alpha")[:].count("step") == 1
    assert steps("beta").count("step") == 2
    assert sb.load_scenarios([{"name": "three", "steps": 1}], replace=True) == ["three"]
    assert steps("anything at all").count("step") == 1


def test_scenario_files_json_and_yaml(api: httpx.Client, sb: CoastySandbox, tmp_path: Path) -> None:
    json_file = tmp_path / "s.json"
    json_file.write_text(json.dumps({"scenarios": [{"name": "j", "match": "^json", "steps": 1}]}))
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text("- name: y\n  match: ^yaml\n  steps: 2\n  result: {ok: true}\n")
    assert sb.load_scenarios(str(json_file)) == ["j"]
    assert sb.load_scenarios(yaml_file) == ["j", "y"]
    events = read_events(api, create(api, sb.machine_id, task="yaml task")["id"])
    assert types(events).count("step") == 2
    assert events[-1]["data"]["result"] == {"ok": True}


@pytest.mark.parametrize(
    "bad",
    [
        {"match": "("},
        {"steps": "many"},
        {"pauses": [{"after_step": -1}]},
        {"events": 0},
        {"colour": "red"},
    ],
)
def test_invalid_scenarios_are_rejected(sb: CoastySandbox, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        sb.load_scenarios([bad])
