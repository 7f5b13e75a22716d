"""The /v1 machine endpoints: lifecycle, leases, metering, runs on machines, faults, ledger."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from langchain_coasty.sandbox import CoastySandbox
from tests.sandbox.conftest import create, make_client, wait_until


def provision(api: httpx.Client, headers: dict[str, str] | None = None, **fields: Any) -> Any:
    body = {"display_name": "worker", **fields}
    response = api.post("/v1/machines", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()


def status(api: httpx.Client, machine_id: str) -> str:
    value: str = api.get(f"/v1/machines/{machine_id}").json()["machine"]["status"]
    return value


def booted(api: httpx.Client, sb: CoastySandbox, **fields: Any) -> dict[str, Any]:
    """A created machine, past its boot on the sandbox clock."""
    machine: dict[str, Any] = provision(api, **fields)["machine"]
    sb.advance_clock(1)
    assert status(api, machine["id"]) == "running"
    return machine


def test_a_machine_boots_through_the_documented_phases(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    sb.configure(machine_phase_seconds=60)
    created = provision(api, os_type="windows", metadata={"team": "qa"})
    machine = created["machine"]
    assert machine["status"] == "creating" and machine["os_type"] == "windows"
    assert machine["is_test"] is True and machine["metadata"] == {"team": "qa"}
    assert created["connection"]["has_ssh_key"] is True
    assert "ssh_private_key_pem" not in created["connection"]
    seen = [status(api, machine["id"])]
    for _ in range(3):
        sb.advance_clock(60)
        seen.append(status(api, machine["id"]))
    assert seen == ["creating", "provisioning", "starting", "running"]
    assert api.get(f"/v1/machines/{machine['id']}").json()["machine"]["started_at"]


def test_a_machine_boots_on_real_time_too(api: httpx.Client) -> None:
    machine = provision(api)["machine"]
    wait_until(lambda: status(api, machine["id"]) == "running", timeout=5)


def test_listing_shows_fixed_machines_first_and_no_terminated_ones(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    first, second = booted(api, sb), booted(api, sb)
    api.delete(f"/v1/machines/{first['id']}")
    ids = [m["id"] for m in api.get("/v1/machines").json()["data"]]
    assert ids == [*sb.machine_ids, second["id"]]
    page = api.get("/v1/machines", params={"limit": 2}).json()
    assert len(page["data"]) == 2 and page["has_more"] is True
    assert api.get("/v1/machines", params={"limit": 201}).status_code == 422


PROVISION_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"display_name": ""}, "display_name", "1..64"),
    ({"display_name": "d" * 65}, "display_name", "1..64"),
    ({"os_type": "macos"}, "os_type", "one of linux, windows"),
    ({"desktop_enabled": "yes"}, "desktop_enabled", "true or false"),
    ({"cpu_cores": 0}, "cpu_cores", "1..16"),
    ({"cpu_cores": 17}, "cpu_cores", "1..16"),
    ({"memory_gb": 65}, "memory_gb", "1..64"),
    ({"storage_gb": 7}, "storage_gb", "8..500"),
    ({"storage_gb": 501}, "storage_gb", "8..500"),
    ({"restore_from_snapshot": "no"}, "restore_from_snapshot", "true, false or null"),
    ({"ttl_minutes": 4}, "ttl_minutes", "5..10080"),
    ({"ttl_minutes": 10081}, "ttl_minutes", "5..10080"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "at most 16 entries"),
    ({"metadata": {"k" * 65: "v"}}, "metadata", "at most 16 entries"),
    ({"metadata": {"k": "v" * 257}}, "metadata", "at most 16 entries"),
    ({"metadata": {"k": 1}}, "metadata", "at most 16 entries"),
    ({"region": "eu"}, "region", "not allowed"),
]


@pytest.mark.parametrize(("patch", "field", "limit"), PROVISION_CASES)
def test_invalid_provision_requests_name_the_field_and_limit(
    api: httpx.Client, sb: CoastySandbox, patch: dict[str, Any], field: str, limit: str
) -> None:
    response = api.post("/v1/machines", json={"display_name": "w", **patch})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"] == {"field": field, "limit": error["details"]["limit"]}
    assert error["details"]["limit"].startswith(limit)
    assert sb.counters()["machines_created"] == 0


def test_the_largest_documented_values_are_accepted(api: httpx.Client) -> None:
    provision(
        api,
        display_name="d" * 64,
        cpu_cores=16,
        memory_gb=64,
        storage_gb=500,
        ttl_minutes=10080,
        metadata={f"k{i}": "v" * 256 for i in range(16)},
        desktop_enabled=True,
        restore_from_snapshot=None,
    )


def test_stop_start_restart_and_the_states_they_need(api: httpx.Client, sb: CoastySandbox) -> None:
    machine = booted(api, sb)
    path = f"/v1/machines/{machine['id']}"
    conflict = api.post(f"{path}/start")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "INVALID_STATE"
    assert "running" in conflict.json()["error"]["message"]
    assert api.post(f"{path}/stop").json()["status"] == "stopping"
    sb.advance_clock(1)
    assert status(api, machine["id"]) == "stopped"
    assert api.post(f"{path}/restart").status_code == 409
    assert api.post(f"{path}/start").json()["status"] == "starting"
    sb.advance_clock(1)
    assert api.post(f"{path}/restart").json()["status"] == "restarting"
    sb.advance_clock(1)
    assert status(api, machine["id"]) == "running"


def test_terminate_is_final_and_repeatable(api: httpx.Client, sb: CoastySandbox) -> None:
    machine = booted(api, sb)
    path = f"/v1/machines/{machine['id']}"
    assert api.delete(path).json()["status"] == "terminated"
    assert api.delete(path).json()["status"] == "terminated"
    assert status(api, machine["id"]) == "terminated"
    assert api.post(f"{path}/start").status_code == 409
    assert api.get(f"{path}/connection").status_code == 409
    assert api.patch(path, json={"ttl_minutes": 30}).status_code == 409
    [line] = sb.machines()
    assert line["end_reason"] == "deleted" and line["terminated_at"]
    assert sb.live_machines() == []


def test_a_lease_destroys_the_machine_when_it_expires(api: httpx.Client, sb: CoastySandbox) -> None:
    machine = booted(api, sb, ttl_minutes=5)
    assert machine["ttl_minutes"] == 5 and machine["auto_destroy_at"]
    sb.advance_clock(5 * 60 - 10)
    assert status(api, machine["id"]) == "running"
    sb.advance_clock(10)
    assert status(api, machine["id"]) == "terminated"
    assert sb.machines()[0]["end_reason"] == "ttl_expired"


def test_a_lease_is_set_from_now_extended_and_cleared(api: httpx.Client, sb: CoastySandbox) -> None:
    machine = booted(api, sb)
    path = f"/v1/machines/{machine['id']}"
    updated = api.patch(path, json={"ttl_minutes": 5}).json()
    assert updated["ttl_minutes"] == 5 and updated["auto_destroy_at"]
    sb.advance_clock(4 * 60)
    assert api.patch(path, json={"ttl_minutes": 10}).json()["ttl_minutes"] == 10
    sb.advance_clock(5 * 60)
    assert status(api, machine["id"]) == "running"  # extended past the first lease
    cleared = api.patch(path, json={"ttl_minutes": 0}).json()
    assert cleared["ttl_minutes"] is None and cleared["auto_destroy_at"] is None
    sb.advance_clock(7 * 24 * 3600)
    assert status(api, machine["id"]) == "running"
    for bad in (3, 10081, -1, "5", None):
        response = api.patch(path, json={"ttl_minutes": bad})
        assert response.status_code == 422, bad
        assert response.json()["error"]["details"]["field"] == "ttl_minutes"
    assert api.patch(path, json={"ttl_minutes": 5, "x": 1}).status_code == 422


def test_machines_bill_their_hourly_rates(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.configure(machine_phase_seconds=0)
    linux = provision(api)["machine"]
    windows = provision(api, os_type="windows")["machine"]
    sb.advance_clock(3600)

    def billing(machine_id: str) -> dict[str, Any]:
        found: dict[str, Any] = api.get(f"/v1/machines/{machine_id}").json()["machine"]["billing"]
        return found

    assert billing(linux["id"])["total_credits_billed"] == 5
    assert billing(windows["id"])["accrued_cents"] == 9
    assert billing(windows["id"])["projected_daily_cents"] == 9 * 24
    api.post(f"/v1/machines/{linux['id']}/stop")
    sb.advance_clock(3600)
    assert billing(linux["id"])["total_credits_billed"] == 6  # 5 running + 1 stopped
    active = api.get("/v1/billing/active").json()
    rates = {a["machine_id"]: a["rate_cents_per_hour"] for a in active["active"]}
    assert rates == {linux["id"]: 1, windows["id"]: 9}
    assert active["current_run_rate_cents_per_hour"] == 10
    api.delete(f"/v1/machines/{windows['id']}")
    sb.advance_clock(3600)
    assert billing(windows["id"])["total_credits_billed"] == 18  # nothing after terminate
    assert [a["machine_id"] for a in api.get("/v1/billing/active").json()["active"]] == [
        linux["id"]
    ]
    assert sb.machines()[1]["total_credits_billed"] == 18


def test_the_fixed_machines_bill_nothing_and_show_no_billing(api: httpx.Client) -> None:
    first = api.get("/v1/machines").json()["data"][0]
    assert "billing" not in first and first["status"] == "running"
    assert api.get("/v1/billing/active").json()["active"] == []


def test_a_run_needs_a_running_machine(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.configure(machine_phase_seconds=60)
    machine = provision(api)["machine"]
    booting = api.post("/v1/runs", json={"machine_id": machine["id"], "task": "t"})
    assert booting.status_code == 409
    error = booting.json()["error"]
    assert error["code"] == "INVALID_STATE" and machine["id"] in error["message"]
    assert error["details"]["current_state"] == "creating"
    sb.advance_clock(180)
    run = create(api, machine["id"])
    assert run["machine_id"] == machine["id"]
    api.post(f"/v1/machines/{machine['id']}/stop")
    sb.advance_clock(60)
    stopped = api.post("/v1/runs", json={"machine_id": machine["id"], "task": "t"})
    assert stopped.status_code == 409 and "stopped" in stopped.json()["error"]["message"]
    assert sb.counters()["runs_created"] == 1


def test_the_fixed_machines_can_stop_and_come_back_on_reset(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    api.post(f"/v1/machines/{sb.machine_id}/stop")
    sb.advance_clock(1)
    assert api.post("/v1/runs", json={"machine_id": sb.machine_id, "task": "t"}).status_code == 409
    sb.reset()
    create(api, sb.machine_id)


def test_a_keyed_create_replays_its_machine(api: httpx.Client, sb: CoastySandbox) -> None:
    key = {"Idempotency-Key": "mk-1"}
    first = api.post("/v1/machines", json={"display_name": "w"}, headers=key)
    again = api.post("/v1/machines", json={"display_name": "w"}, headers=key)
    assert again.headers["x-coasty-idempotent-replay"] == "true"
    assert again.json()["machine"]["id"] == first.json()["machine"]["id"]
    other = api.post("/v1/machines", json={"display_name": "x"}, headers=key)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    lookup = api.get("/v1/idempotency/mk-1").json()
    assert lookup["result"]["machine"]["id"] == first.json()["machine"]["id"]
    assert sb.counters()["machines_created"] == 1


def test_a_lost_create_answer_still_made_the_machine(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.inject(machine_create_lose_response_rate=1.0)
    key = {"Idempotency-Key": "mk-lost"}
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/v1/machines", json={"display_name": "w"}, headers=key)
    sb.clear_faults()
    again = api.post("/v1/machines", json={"display_name": "w"}, headers=key)
    assert again.headers["x-coasty-idempotent-replay"] == "true"
    assert [m["id"] for m in sb.machines()] == [again.json()["machine"]["id"]]
    assert sb.counters()["faults_fired"]["machine_create_lose_response"] == 1


def test_a_provisioning_fault_ends_in_error(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.inject(machine_provision_fail_rate=1.0)
    machine = provision(api)["machine"]
    sb.advance_clock(1)
    assert status(api, machine["id"]) == "error"
    assert api.post("/v1/runs", json={"machine_id": machine["id"], "task": "t"}).status_code == 409
    assert api.delete(f"/v1/machines/{machine['id']}").json()["status"] == "terminated"


def test_a_slow_start_fault_holds_the_machine_in_starting(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    sb.configure(machine_phase_seconds=1)
    sb.inject(machine_start_delay_seconds=600)
    machine = provision(api)["machine"]
    sb.advance_clock(60)
    assert status(api, machine["id"]) == "starting"
    sb.advance_clock(600)
    assert status(api, machine["id"]) == "running"
    assert sb.counters()["faults_fired"]["machine_slow_start"] == 1


def test_connection_details_are_never_cached(api: httpx.Client, sb: CoastySandbox) -> None:
    machine = booted(api, sb)
    response = api.get(f"/v1/machines/{machine['id']}/connection")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["ssh_private_key_pem"].startswith("-----BEGIN") and body["vnc_password"]


def test_machines_are_isolated_by_key_kind(api: httpx.Client, sb: CoastySandbox) -> None:
    machine = provision(api)["machine"]
    with make_client(sb, headers={"X-API-Key": "sk-coasty-live-abc123"}) as live:
        assert live.get(f"/v1/machines/{machine['id']}").status_code == 404
        assert live.delete(f"/v1/machines/{machine['id']}").status_code == 404
        created = provision(live)["machine"]
        assert created["is_test"] is False
        listed = [m["id"] for m in live.get("/v1/machines").json()["data"]]
    assert machine["id"] not in listed and created["id"] in listed


def test_unknown_machines_are_404(api: httpx.Client) -> None:
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/start"), ("GET", "/connection")):
        response = api.request(method, f"/v1/machines/mch_test_0000dead{suffix}")
        assert response.status_code == 404, (method, suffix)


def test_pricing_and_health(api: httpx.Client) -> None:
    pricing = api.get("/v1/machines/pricing").json()["pricing"]
    assert pricing["runtime_credits_per_hour"]["windows"]["running"] == 9
    assert pricing["ttl_minutes"] == {"min": 5, "max": 10080, "clear": 0}
    with httpx.Client(base_url=str(api.base_url)) as anonymous:
        assert anonymous.get("/v1/machines/health").json()["status"] == "ok"


def test_the_clock_only_moves_forward(sb: CoastySandbox) -> None:
    before = sb.advance_clock(0)["offset_seconds"]
    assert sb.advance_clock(30)["offset_seconds"] == before + 30
    for bad in (-1, "1", None, True):
        with pytest.raises(ValueError, match="advance_seconds"):
            sb.advance_clock(bad)  # type: ignore[arg-type]
    sb.reset()
    assert sb.advance_clock(0)["offset_seconds"] == 0
