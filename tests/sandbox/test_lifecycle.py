"""The run state machine: pauses, resume, cancel, limits, deadlines, pricing, timestamps."""

from __future__ import annotations

import httpx
import pytest

from langchain_coasty.sandbox import CoastySandbox
from tests.sandbox.conftest import create, events_until, read_events, types

pytestmark = pytest.mark.usefixtures("framing")

LOGIN_TASK = "Go to example.com and log in to the dashboard"


def test_default_run_event_sequence(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, task="Open firefox, go to example.com and read the title")
    events = read_events(api, run["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert types(events)[:2] == ["status", "status"]
    assert events[0]["data"] == {"status": "queued", "previous": None}
    assert events[1]["data"] == {"status": "running", "previous": "queued"}
    assert types(events)[-3:] == ["text", "status", "done"]
    assert events[-2]["data"] == {"status": "succeeded", "previous": "running"}
    done = events[-1]["data"]
    assert done["status"] == "succeeded" and done["error"] is None and done["result"]
    steps = [e for e in events if e["type"] == "step"]
    assert 3 <= len(steps) <= 6
    assert "awaiting_human" not in types(events)
    calls = [e["data"] for e in events if e["type"] == "tool_call"]
    results = [e["data"] for e in events if e["type"] == "tool_result"]
    assert [c["id"] for c in calls] == [r["id"] for r in results]
    assert calls[0]["action"] == "open_app" and calls[1]["action"] == "navigate"
    assert calls[1]["args"]["url"] == "https://example.com"
    billing = [e["data"] for e in events if e["type"] == "billing"]
    assert [b["credits_charged"] for b in billing] == [5 * (i + 1) for i in range(len(steps))]
    assert steps[-1]["data"]["steps_completed"] == len(steps)
    assert steps[-1]["data"]["max_steps"] == 50


@pytest.mark.parametrize(("version", "credits"), [("v1", 8), ("v3", 5), ("v4", 5), ("v5", 5)])
def test_pricing_per_step(api: httpx.Client, sb: CoastySandbox, version: str, credits: int) -> None:
    run = create(api, sb.machine_id, cua_version=version)
    read_events(api, run["id"])
    got = api.get(f"/v1/runs/{run['id']}").json()
    assert got["credits_charged"] == credits * got["steps_completed"] == got["cost_cents"]


def test_pause_and_resume_with_a_note(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, task=LOGIN_TASK)
    before = events_until(api, run["id"], "awaiting_human")
    pause = before[-1]["data"]
    assert pause["reason"] and pause["question"]
    assert pause["steps_completed"] >= 1
    assert pause["credits_charged"] == 5 * pause["steps_completed"]
    assert before[-2]["data"] == {"status": "awaiting_human", "previous": "running"}
    paused = api.get(f"/v1/runs/{run['id']}").json()
    assert paused["status"] == "awaiting_human"
    assert paused["awaiting_human_reason"] == pause["reason"]
    assert paused["awaiting_human_since"] is not None

    resumed = api.post(f"/v1/runs/{run['id']}/resume", json={"note": "Signed in as demo"})
    assert resumed.status_code == 200
    assert resumed.json()["status"] == "running"
    assert resumed.json()["awaiting_human_since"] is None
    rest = read_events(api, run["id"], after=before[-1]["seq"])
    assert rest[0]["seq"] == before[-1]["seq"] + 1
    assert rest[0]["type"] == "resumed" and rest[0]["data"] == {"note": "Signed in as demo"}
    assert rest[1]["data"] == {"status": "running", "previous": "awaiting_human"}
    assert rest[-1]["type"] == "done" and rest[-1]["data"]["status"] == "succeeded"
    assert sb.counters()["resumes"] == 1


def test_resume_without_a_body(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, task="Approve the expense report")
    events_until(api, run["id"], "awaiting_human")
    assert api.post(f"/v1/runs/{run['id']}/resume").status_code == 200
    events = read_events(api, run["id"])
    assert [e["data"] for e in events if e["type"] == "resumed"] == [{"note": None}]
    assert events[-1]["data"]["status"] == "succeeded"


def test_resume_outside_awaiting_human_is_409(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id)
    read_events(api, run["id"])
    response = api.post(f"/v1/runs/{run['id']}/resume", json={"note": "x"})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "INVALID_STATE"
    assert error["retryable"] is False and error["retry_with_same_idempotency_key"] is False
    assert "succeeded" in error["message"]


def test_cancel_while_queued(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.configure(pace=100)
    run = create(api, sb.machine_id)
    response = api.post(f"/v1/runs/{run['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    events = read_events(api, run["id"])
    assert types(events) == ["status", "status", "done"]
    assert events[1]["data"] == {"status": "cancelled", "previous": "queued"}
    assert events[2]["data"] == {"status": "cancelled", "result": None, "error": None}
    assert sb.counters()["cancels"] == 1


def test_cancel_while_running(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.load_scenarios([{"match": "long chore", "steps": 1000, "pace": 0.05}])
    run = create(api, sb.machine_id, task="A long chore")
    events_until(api, run["id"], "step")
    assert api.get(f"/v1/runs/{run['id']}").json()["status"] == "running"
    cancelled = api.post(f"/v1/runs/{run['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    events = read_events(api, run["id"])
    assert events[-2]["data"] == {"status": "cancelled", "previous": "running"}
    assert events[-1]["type"] == "done"


def test_cancel_while_awaiting_human(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, task=LOGIN_TASK)
    events_until(api, run["id"], "awaiting_human")
    assert api.post(f"/v1/runs/{run['id']}/cancel").json()["status"] == "cancelled"
    events = read_events(api, run["id"])
    assert events[-2]["data"] == {"status": "cancelled", "previous": "awaiting_human"}
    assert api.post(f"/v1/runs/{run['id']}/resume").status_code == 409


def test_cancel_a_finished_run_is_409(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id)
    read_events(api, run["id"])
    response = api.post(f"/v1/runs/{run['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "INVALID_STATE"
    assert response.json()["error"]["type"] == "state_error"


@pytest.mark.parametrize(("policy", "status"), [("fail", "failed"), ("cancel", "cancelled")])
def test_on_awaiting_human_fail_or_cancel(
    api: httpx.Client, sb: CoastySandbox, policy: str, status: str
) -> None:
    run = create(api, sb.machine_id, task=LOGIN_TASK, on_awaiting_human=policy)
    events = read_events(api, run["id"])
    assert "awaiting_human" not in types(events)
    assert types(events)[-3:] == ["error", "status", "done"]
    assert events[-1]["data"]["status"] == status
    assert events[-1]["data"]["error"]["code"] == "AWAITING_HUMAN"
    got = api.get(f"/v1/runs/{run['id']}").json()
    assert got["status"] == status
    assert got["error"]["code"] == "AWAITING_HUMAN"
    assert got["awaiting_human_reason"]


def test_awaiting_human_timeout(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, task=LOGIN_TASK, awaiting_human_timeout_seconds=1)
    events = read_events(api, run["id"])
    assert "awaiting_human" in types(events)
    assert events[-1]["data"]["status"] == "timed_out"
    assert events[-1]["data"]["error"]["code"] == "AWAITING_HUMAN_TIMEOUT"


def test_expire_pause_ends_a_paused_run_as_its_timeout_would(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    run = create(api, sb.machine_id, task=LOGIN_TASK, awaiting_human_timeout_seconds=3600)
    paused = events_until(api, run["id"], "awaiting_human")
    assert api.get(f"/v1/runs/{run['id']}").json()["status"] == "awaiting_human"

    expired = sb.expire_pause(run["id"])
    assert expired["status"] == "timed_out"
    rest = read_events(api, run["id"], after=paused[-1]["seq"])
    assert types(rest) == ["error", "status", "done"]
    assert rest[0]["data"]["code"] == "AWAITING_HUMAN_TIMEOUT"
    assert "3600" in rest[0]["data"]["message"]
    got = api.get(f"/v1/runs/{run['id']}").json()
    assert got["status"] == "timed_out" and got["error"]["code"] == "AWAITING_HUMAN_TIMEOUT"
    with pytest.raises(ValueError, match="INVALID_STATE"):
        sb.expire_pause(run["id"])  # no longer paused


def test_a_pause_without_a_timeout_never_expires(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, task=LOGIN_TASK, awaiting_human_timeout_seconds=None)
    events_until(api, run["id"], "awaiting_human")
    with pytest.raises(ValueError, match="never expires"):
        sb.expire_pause(run["id"])
    assert api.get(f"/v1/runs/{run['id']}").json()["status"] == "awaiting_human"
    with pytest.raises(ValueError, match="NOT_FOUND"):
        sb.expire_pause("no-such-run")


def test_deadline_times_the_run_out(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, task=LOGIN_TASK, deadline_seconds=1)
    events = read_events(api, run["id"])
    assert events[-1]["data"]["status"] == "timed_out"
    assert events[-1]["data"]["error"]["code"] == "DEADLINE_EXCEEDED"
    got = api.get(f"/v1/runs/{run['id']}").json()
    assert got["status"] == "timed_out" and got["finished_at"]


def test_max_steps_fails_the_run(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, max_steps=2)
    events = read_events(api, run["id"])
    assert events[-1]["data"]["status"] == "failed"
    assert events[-1]["data"]["error"]["code"] == "MAX_STEPS_EXCEEDED"
    got = api.get(f"/v1/runs/{run['id']}").json()
    assert got["steps_completed"] == 2 and got["credits_charged"] == 10


def test_webhook_secret_is_returned_only_on_create(api: httpx.Client, sb: CoastySandbox) -> None:
    url = "https://127.0.0.1:9/coasty"
    run = create(api, sb.machine_id, task=LOGIN_TASK, webhook_url=url)
    assert run["webhook_secret"].startswith("whsec_")
    assert run["webhook_url"] == url
    assert api.get(f"/v1/runs/{run['id']}").json()["webhook_secret"] is None
    assert all(r["webhook_secret"] is None for r in api.get("/v1/runs").json()["data"])
    assert api.post(f"/v1/runs/{run['id']}/cancel").json()["webhook_secret"] is None


def test_byok_is_echoed_without_the_key(api: httpx.Client, sb: CoastySandbox) -> None:
    key = "sk-ant-0123456789abcdef"
    run = create(
        api,
        sb.machine_id,
        headers={"X-LLM-Provider": "anthropic", "X-LLM-Api-Key": key},
    )
    assert run["llm"]["provider"] == "anthropic"
    assert run["llm"]["model"] == "claude-sonnet-4-6"
    assert run["llm"]["key_source"] == "header"
    assert run["llm"]["key_fingerprint"].startswith("sha256:")
    read_events(api, run["id"])
    got = api.get(f"/v1/runs/{run['id']}")
    assert key not in got.text
    assert got.json()["llm"]["key_scrubbed"] is True
    managed = create(api, sb.machine_id, llm={"provider": "managed"})
    assert managed["llm"] is None
