"""The /v1 endpoints: auth, headers, runs CRUD, listing, machines, health, error envelope."""

from __future__ import annotations

import uuid

import httpx

from langchain_coasty.sandbox import CoastySandbox
from tests.sandbox.conftest import create, make_client, read_events


def test_health_needs_no_key(sb: CoastySandbox) -> None:
    with make_client(sb, headers={"X-API-Key": ""}) as client:
        response = client.get("/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_machines_lists_the_preprovisioned_machines(api: httpx.Client, sb: CoastySandbox) -> None:
    body = api.get("/v1/machines").json()
    ids = [m["id"] for m in body["data"]]
    assert ids == sb.machine_ids
    assert len(ids) >= 4
    assert sb.machine_id == ids[0]
    assert all(m["status"] == "running" and m["is_test"] for m in body["data"])


def test_missing_and_invalid_keys_are_401(sb: CoastySandbox) -> None:
    for headers in (
        {"X-API-Key": ""},
        {"X-API-Key": "sk-live-nope"},
        {"X-API-Key": "", "Authorization": "Basic x"},
    ):
        with make_client(sb, headers=headers) as client:
            response = client.get("/v1/runs")
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "INVALID_API_KEY"
        assert error["type"] == "auth_error"
        assert error["retryable"] is False
        assert error["retry_with_same_idempotency_key"] is False
        assert "X-API-Key" in error["message"] or "sk-coasty" in error["message"]


def test_bearer_auth_and_test_mode_headers(sb: CoastySandbox) -> None:
    with make_client(sb, headers={"X-API-Key": "", "Authorization": f"Bearer {sb.api_key}"}) as c:
        response = c.get("/v1/runs")
    assert response.status_code == 200
    assert response.headers["x-coasty-key-kind"] == "test"
    assert response.headers["x-coasty-test-mode"] == "true"


def test_live_keys_are_accepted_and_isolated_from_test_mode(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    run = create(api, sb.machine_id)
    with make_client(sb, headers={"X-API-Key": "sk-coasty-live-abc123"}) as live:
        response = live.get(f"/v1/runs/{run['id']}")
        assert response.status_code == 404
        assert response.headers["x-coasty-key-kind"] == "live"
        assert response.headers["x-coasty-test-mode"] == "false"
        assert live.get("/v1/runs").json()["data"] == []


def test_create_returns_a_queued_run_with_headers(api: httpx.Client, sb: CoastySandbox) -> None:
    response = api.post(
        "/v1/runs",
        json={
            "machine_id": sb.machine_id,
            "task": "Open the pricing page",
            "cua_version": "v4",
            "instructions": "Skip popups",
            "max_steps": 20,
            "metadata": {"ticket": "T-1", "n": 3},
        },
    )
    assert response.status_code == 200
    assert response.headers["x-credits-charged"] == "0"
    run = response.json()
    uuid.UUID(run["id"])
    assert run["object"] == "agent.run"
    assert run["status"] == "queued"
    assert run["machine_id"] == sb.machine_id
    assert run["cua_version"] == "v4"
    assert run["instructions"] == "Skip popups"
    assert run["max_steps"] == 20
    assert run["on_awaiting_human"] == "pause"
    assert run["metadata"] == {"ticket": "T-1", "n": 3}
    assert run["steps_completed"] == 0 and run["credits_charged"] == 0 and run["cost_cents"] == 0
    assert run["created_at"].endswith("Z") and run["finished_at"] is None
    assert run["request_id"] == response.headers["x-coasty-request-id"]
    assert run["webhook_secret"] is None


def test_defaults_are_applied(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id)
    assert run["cua_version"] == "v5"
    assert run["max_steps"] == 50
    assert run["on_awaiting_human"] == "pause"
    assert run["metadata"] is None


def test_get_run_after_it_finishes(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, metadata={"k": "v"})
    read_events(api, run["id"])
    got = api.get(f"/v1/runs/{run['id']}").json()
    assert got["status"] == "succeeded"
    assert got["metadata"] == {"k": "v"}
    assert got["steps_completed"] >= 3
    assert got["credits_charged"] == 5 * got["steps_completed"] == got["cost_cents"]
    assert got["started_at"] and got["finished_at"]
    assert got["started_at"] <= got["finished_at"]
    assert got["result"]["summary"]


def test_unknown_run_is_404(api: httpx.Client) -> None:
    for method, path in (
        ("GET", "/v1/runs/nope"),
        ("GET", f"/v1/runs/{uuid.uuid4()}"),
        ("GET", f"/v1/runs/{uuid.uuid4()}/events"),
        ("POST", f"/v1/runs/{uuid.uuid4()}/cancel"),
        ("POST", f"/v1/runs/{uuid.uuid4()}/resume"),
    ):
        response = api.request(method, path)
        assert response.status_code == 404, path
        error = response.json()["error"]
        assert error["code"] == "NOT_FOUND"
        assert error["type"] == "not_found_error"
        assert error["retryable"] is False


def test_unknown_machine_says_how_to_list_machines(api: httpx.Client) -> None:
    response = api.post("/v1/runs", json={"machine_id": "m-nope", "task": "x"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "NOT_FOUND"
    assert "m-nope" in error["message"]
    assert "GET /v1/machines" in error["message"]


def test_unknown_route_and_wrong_method_use_the_envelope(api: httpx.Client) -> None:
    response = api.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    response = api.delete("/v1/runs")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_list_runs_newest_first_with_filter_and_limit(api: httpx.Client, sb: CoastySandbox) -> None:
    created = [create(api, sb.machine_id, task=f"Task {i}") for i in range(5)]
    for run in created[:3]:
        read_events(api, run["id"])
    page = api.get("/v1/runs", params={"limit": 2}).json()
    assert page["object"] == "list"
    assert [r["id"] for r in page["data"]] == [created[4]["id"], created[3]["id"]]
    assert page["has_more"] is True
    assert all(r["webhook_secret"] is None for r in page["data"])
    everything = api.get("/v1/runs", params={"limit": 200}).json()
    assert len(everything["data"]) == 5 and everything["has_more"] is False
    succeeded = api.get("/v1/runs", params={"status": "succeeded"}).json()["data"]
    assert {r["id"] for r in created[:3]} <= {r["id"] for r in succeeded}
    assert all(r["status"] == "succeeded" for r in succeeded)


def test_list_runs_rejects_bad_parameters(api: httpx.Client) -> None:
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"status": "done"}, "status"),
    ):
        response = api.get("/v1/runs", params=params)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert error["details"]["field"] == field
        assert field in error["message"]
