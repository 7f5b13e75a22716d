"""`client.machines` and `client.billing`, sync and async, against the sandbox over loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from langchain_coasty import (
    APITimeoutError,
    AsyncCoastyClient,
    CoastyClient,
    ConflictError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    MachineRecord,
    MachineStateError,
    MachineStatus,
    NotFoundError,
)
from langchain_coasty.client import MachineConnection, MachinesPage

BAD_CREATES: list[tuple[dict[str, Any], str]] = [
    ({"display_name": ""}, "display_name"),
    ({"display_name": "d" * 65}, "display_name"),
    ({"os_type": "macos"}, "os_type"),
    ({"cpu_cores": 0}, "cpu_cores"),
    ({"cpu_cores": 17}, "cpu_cores"),
    ({"memory_gb": 65}, "memory_gb"),
    ({"storage_gb": 7}, "storage_gb"),
    ({"storage_gb": 501}, "storage_gb"),
    ({"ttl_minutes": 4}, "ttl_minutes"),
    ({"ttl_minutes": 10081}, "ttl_minutes"),
    ({"desktop_enabled": "yes"}, "desktop_enabled"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"metadata": {"k" * 65: "v"}}, "metadata"),
    ({"metadata": {"k": "v" * 257}}, "metadata"),
    ({"metadata": {"k": 1}}, "metadata"),
    ({"idempotency_key": "has space"}, "idempotency_key"),
]
LIMIT_WORDS = {
    "display_name": "1..64",
    "os_type": "linux, windows",
    "cpu_cores": "1..16",
    "memory_gb": "1..64",
    "storage_gb": "8..500",
    "ttl_minutes": "5..10080",
    "desktop_enabled": "true or false",
    "metadata": "at most 16 entries",
    "idempotency_key": "1..128",
}


@pytest.fixture
async def acounted(sb: Any, sent: list[httpx.Request]) -> AsyncIterator[AsyncCoastyClient]:
    """An async sandbox client that records each request it sends."""

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http = httpx.AsyncClient(event_hooks={"request": [record]})
    async with http, AsyncCoastyClient(sb.api_key, sb.base_url, http_client=http) as c:
        yield c


def _create_args(patch: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    fields = {"display_name": "worker", **patch}
    return fields.pop("display_name"), fields


# --------------------------------------------------------------------------- lifecycle


def test_a_machine_is_created_waited_for_listed_and_terminated(
    client: CoastyClient, sb: Any
) -> None:
    result = client.machines.create_with_response(
        "worker", os_type="windows", cpu_cores=2, ttl_minutes=60, metadata={"team": "qa"}
    )
    machine = result.machine
    assert isinstance(machine, MachineRecord) and machine.status == MachineStatus.CREATING
    assert machine.os_type == "windows" and machine.metadata == {"team": "qa"}
    assert machine.ttl_minutes == 60 and machine.auto_destroy_at is not None
    assert result.connection is not None and result.connection.has_ssh_key
    assert result.idempotency_key and result.replayed is False
    running = client.machines.wait_until(machine.id, timeout=10)
    assert running.is_running and running.started_at is not None
    page = client.machines.list()
    assert isinstance(page, MachinesPage) and machine.id in [m.id for m in page.data]
    ended = client.machines.delete(machine.id)
    assert ended.machine_id == machine.id and ended.status == MachineStatus.TERMINATED
    assert client.machines.get(machine.id).is_terminated
    assert machine.id not in [m.id for m in client.machines.list().data]
    assert sb.live_machines() == []
    assert [m["end_reason"] for m in sb.machines()] == ["deleted"]


async def test_the_async_twin_creates_waits_and_terminates(
    aclient: AsyncCoastyClient, sb: Any
) -> None:
    machine = await aclient.machines.create("worker", desktop_enabled=True)
    assert machine.desktop_enabled is True
    running = await aclient.machines.wait_until(machine.id, "running", timeout=10)
    assert running.status == MachineStatus.RUNNING
    assert machine.id in [m.id for m in (await aclient.machines.list(limit=200)).data]
    assert (await aclient.machines.delete(machine.id)).status == "terminated"
    assert (await aclient.machines.get(machine.id)).is_terminated
    assert sb.live_machines() == []


def test_stop_start_restart(client: CoastyClient) -> None:
    machine = client.machines.create("worker")
    client.machines.wait_until(machine.id)
    with pytest.raises(ConflictError) as info:
        client.machines.start(machine.id)
    assert info.value.code == "INVALID_STATE" and machine.id in str(info.value)
    assert client.machines.stop(machine.id).status == MachineStatus.STOPPING
    assert client.machines.wait_until(machine.id, MachineStatus.STOPPED, timeout=10).status == (
        "stopped"
    )
    assert client.machines.start(machine.id).status == "starting"
    client.machines.wait_until(machine.id, timeout=10)
    assert client.machines.restart(machine.id).status == "restarting"
    assert client.machines.wait_until(machine.id, timeout=10).is_running


async def test_async_stop_start_restart(aclient: AsyncCoastyClient) -> None:
    machine = await aclient.machines.create("worker")
    await aclient.machines.wait_until(machine.id)
    assert (await aclient.machines.stop(machine.id)).status == "stopping"
    await aclient.machines.wait_until(machine.id, "stopped", timeout=10)
    with pytest.raises(ConflictError):
        await aclient.machines.restart(machine.id)
    assert (await aclient.machines.start(machine.id)).status == "starting"
    await aclient.machines.wait_until(machine.id, timeout=10)
    assert (await aclient.machines.restart(machine.id)).status == "restarting"


def test_unknown_machines_are_not_found(client: CoastyClient) -> None:
    with pytest.raises(NotFoundError):
        client.machines.get("mch_test_00000000dead")
    with pytest.raises(NotFoundError):
        client.machines.delete("mch_test_00000000dead")


# ---------------------------------------------------------------------------- leases


def test_a_lease_expires_on_the_sped_up_clock(client: CoastyClient, sb: Any) -> None:
    machine = client.machines.create("worker", ttl_minutes=5)
    client.machines.wait_until(machine.id, timeout=10)
    sb.advance_clock(5 * 60 - 5)
    assert client.machines.get(machine.id).is_running
    sb.advance_clock(5)
    gone = client.machines.wait_until(machine.id, "terminated", timeout=5)
    assert gone.is_terminated
    assert sb.machines()[0]["end_reason"] == "ttl_expired"


def test_update_sets_extends_and_clears_the_lease(client: CoastyClient, sb: Any) -> None:
    machine = client.machines.create("worker")
    client.machines.wait_until(machine.id, timeout=10)
    lease = client.machines.update(machine.id, ttl_minutes=5)
    assert lease.machine_id == machine.id and lease.ttl_minutes == 5 and lease.auto_destroy_at
    cleared = client.machines.update(machine.id, ttl_minutes=0)
    assert cleared.ttl_minutes is None and cleared.auto_destroy_at is None
    sb.advance_clock(3600)
    assert client.machines.get(machine.id).is_running


async def test_async_update_and_lease_expiry(aclient: AsyncCoastyClient, sb: Any) -> None:
    machine = await aclient.machines.create("worker")
    await aclient.machines.wait_until(machine.id, timeout=10)
    assert (await aclient.machines.update(machine.id, ttl_minutes=10)).ttl_minutes == 10
    sb.advance_clock(10 * 60)
    assert (await aclient.machines.get(machine.id)).is_terminated


# --------------------------------------------------------------------------- billing


def test_billing_accrues_at_the_running_and_stopped_rates(client: CoastyClient, sb: Any) -> None:
    machine = client.machines.create("worker")
    client.machines.wait_until(machine.id, timeout=10)
    sb.advance_clock(3600)
    billing = client.machines.get(machine.id).billing
    assert billing is not None
    assert billing.running_credits_per_hour == 5 and billing.stopped_credits_per_hour == 1
    assert billing.total_credits_billed == 5
    active = client.billing.active()
    assert [(a.machine_id, a.rate_cents_per_hour) for a in active.active] == [(machine.id, 5)]
    assert active.current_run_rate_cents_per_hour == 5
    client.machines.stop(machine.id)
    client.machines.wait_until(machine.id, "stopped", timeout=10)
    sb.advance_clock(3600)
    billing = client.machines.get(machine.id).billing
    assert billing is not None and billing.total_credits_billed == 6
    assert client.billing.active().current_run_rate_cents_per_hour == 1
    client.machines.delete(machine.id)
    assert client.billing.active().active == []


async def test_async_billing_of_a_windows_machine(aclient: AsyncCoastyClient, sb: Any) -> None:
    machine = await aclient.machines.create("worker", os_type="windows")
    await aclient.machines.wait_until(machine.id, timeout=10)
    sb.advance_clock(2 * 3600)
    active = await aclient.billing.active()
    [item] = active.active
    assert item.status == MachineStatus.RUNNING and item.rate_cents_per_hour == 9
    assert item.total_credits_billed == 18 and active.current_run_rate_cents_per_hour == 9
    pricing = (await aclient.machines.pricing()).pricing
    assert pricing["runtime_credits_per_hour"]["windows"]["running"] == 9


# ---------------------------------------------------------------------- runs on machines


def test_a_run_on_a_stopped_machine_is_refused(client: CoastyClient, sb: Any) -> None:
    machine = client.machines.create("worker")
    client.machines.wait_until(machine.id, timeout=10)
    run = client.runs.create(machine_id=machine.id, task="Open the pricing page")
    assert client.runs.wait(run.id, timeout=10).status == "succeeded"
    client.machines.stop(machine.id)
    client.machines.wait_until(machine.id, "stopped", timeout=10)
    with pytest.raises(ConflictError) as info:
        client.runs.create(machine_id=machine.id, task="Open the pricing page")
    assert info.value.code == "INVALID_STATE"
    assert machine.id in str(info.value) and "stopped" in str(info.value)
    assert sb.counters()["runs_created"] == 1


# ----------------------------------------------------------------------- idempotency


def test_a_lost_create_answer_is_collected_by_key(client: CoastyClient, sb: Any) -> None:
    sb.inject(machine_create_lose_response_rate=1.0)
    result = client.machines.create_with_response("worker", idempotency_key="mine-1")
    assert result.idempotency_key == "mine-1" and result.replayed is False
    assert [m["id"] for m in sb.machines()] == [result.machine.id]
    assert sb.counters()["faults_fired"]["machine_create_lose_response"] == 1


@pytest.mark.parametrize("twin", ["sync", "async"])
async def test_a_lost_create_answer_is_resent_with_the_same_key(
    twin: str, client: CoastyClient, aclient: AsyncCoastyClient, sb: Any
) -> None:
    """Without the lookup route, the retry re-sends with its key and gets the same machine."""
    sb.configure(idempotency_lookup=False)
    sb.inject(machine_create_lose_response_rate=1.0)
    if twin == "sync":
        result = client.machines.create_with_response("worker")
    else:
        result = await aclient.machines.create_with_response("worker")
    assert [m["id"] for m in sb.machines()] == [result.machine.id]
    assert sb.counters()["machine_create_calls"] == 2
    assert result.replayed is False  # our own first attempt made it


def test_a_caller_key_replays_the_same_machine(client: CoastyClient, sb: Any) -> None:
    first = client.machines.create_with_response("worker", idempotency_key="k-1")
    again = client.machines.create_with_response("worker", idempotency_key="k-1")
    assert again.machine.id == first.machine.id and again.replayed is True
    with pytest.raises(IdempotencyKeyReusedError):
        client.machines.create("other", idempotency_key="k-1")
    assert len(sb.machines()) == 1


# ------------------------------------------------------------------------------ waits


def test_wait_until_gives_up_at_its_deadline(client: CoastyClient, sb: Any) -> None:
    sb.configure(machine_phase_seconds=3600)
    machine = client.machines.create("worker")
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        client.machines.wait_until(machine.id, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 3
    assert info.value.machine_id == machine.id
    assert machine.id in str(info.value) and "creating" in str(info.value)


async def test_async_wait_until_gives_up_at_its_deadline(
    aclient: AsyncCoastyClient, sb: Any
) -> None:
    sb.inject(machine_start_delay_seconds=3600)
    machine = await aclient.machines.create("worker")
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        await aclient.machines.wait_until(machine.id, timeout=0.5, poll_interval=0.05)
    assert 0.5 <= time.monotonic() - started < 3
    assert info.value.machine_id == machine.id


def test_wait_until_stops_at_a_machine_in_error(client: CoastyClient, sb: Any) -> None:
    sb.inject(machine_provision_fail_rate=1.0)
    machine = client.machines.create("worker")
    with pytest.raises(MachineStateError) as info:
        client.machines.wait_until(machine.id, timeout=10)
    assert info.value.machine_id == machine.id and info.value.status == "error"
    assert machine.id in str(info.value) and "error" in str(info.value)


async def test_async_wait_until_stops_at_a_terminated_machine(
    aclient: AsyncCoastyClient, sb: Any
) -> None:
    sb.configure(machine_phase_seconds=3600)
    machine = await aclient.machines.create("worker")
    await aclient.machines.delete(machine.id)
    with pytest.raises(MachineStateError) as info:
        await aclient.machines.wait_until(machine.id, "running", timeout=10)
    assert info.value.status == "terminated"
    assert (await aclient.machines.wait_until(machine.id, "terminated")).is_terminated


# --------------------------------------------------------------- refused before sending


@pytest.mark.parametrize(("patch", "field"), BAD_CREATES)
def test_a_bad_create_is_refused_before_any_request(
    counted: CoastyClient, sent: list[httpx.Request], sb: Any, patch: dict[str, Any], field: str
) -> None:
    name, fields = _create_args(patch)
    with pytest.raises(InvalidRequestError) as info:
        counted.machines.create(name, **fields)
    assert info.value.field == field
    assert field in str(info.value) and LIMIT_WORDS[field] in str(info.value)
    assert sent == [] and sb.counters()["machine_create_calls"] == 0


BAD_CALLS: list[tuple[Callable[[Any], Any], str]] = [
    (lambda c: c.machines.update("mch_test_0000abcd", ttl_minutes=3), "ttl_minutes"),
    (lambda c: c.machines.update("mch_test_0000abcd", ttl_minutes=10081), "ttl_minutes"),
    (lambda c: c.machines.update("mch_test_0000abcd", ttl_minutes=True), "ttl_minutes"),
    (lambda c: c.machines.get(""), "machine_id"),
    (lambda c: c.machines.delete("m" * 129), "machine_id"),
    (lambda c: c.machines.connection(" "), "machine_id"),
    (lambda c: c.machines.list(limit=0), "limit"),
    (lambda c: c.machines.wait_until("mch_test_0000abcd", "asleep"), "machine_status"),
    (lambda c: c.machines.wait_until("mch_test_0000abcd", timeout=-1), "timeout"),
    (lambda c: c.machines.wait_until("mch_test_0000abcd", poll_interval=0), "poll_interval"),
]


@pytest.mark.parametrize(("call", "field"), BAD_CALLS)
def test_bad_arguments_are_refused_before_any_request(
    counted: CoastyClient, sent: list[httpx.Request], call: Callable[[Any], Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        call(counted)
    assert info.value.field == field
    assert sent == []


@pytest.mark.parametrize(("patch", "field"), BAD_CREATES[:4])
async def test_the_async_twin_refuses_bad_creates_before_any_request(
    acounted: AsyncCoastyClient, sent: list[httpx.Request], patch: dict[str, Any], field: str
) -> None:
    name, fields = _create_args(patch)
    with pytest.raises(InvalidRequestError) as info:
        await acounted.machines.create(name, **fields)
    assert info.value.field == field
    with pytest.raises(InvalidRequestError):
        await acounted.machines.update("mch_test_0000abcd", ttl_minutes=4)
    assert sent == []


# ---------------------------------------------------------------------------- secrets


def _secrets_of(connection: MachineConnection) -> list[str]:
    assert connection.ssh_private_key_pem is not None and connection.vnc_password is not None
    return [
        connection.ssh_private_key_pem.get_secret_value(),
        connection.vnc_password.get_secret_value(),
    ]


def test_connection_details_never_show_their_secrets(client: CoastyClient) -> None:
    machine = client.machines.create("worker")
    connection = client.machines.connection(machine.id)
    pem, password = _secrets_of(connection)
    assert pem.startswith("-----BEGIN") and password
    assert connection.ssh_username and connection.ssh_port == 22
    shown = " ".join([repr(connection), str(connection), connection.model_dump_json()])
    assert pem not in shown and password not in shown
    assert connection.vnc_url is not None and password not in repr(connection.vnc_url)


async def test_async_connection_details_never_show_their_secrets(
    aclient: AsyncCoastyClient,
) -> None:
    machine = await aclient.machines.create("worker")
    connection = await aclient.machines.connection(machine.id)
    for secret in _secrets_of(connection):
        assert secret not in repr(connection) and secret not in str(connection.model_dump())


def _client_answering(body: dict[str, Any]) -> CoastyClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body, request=request)

    http = httpx.Client(transport=httpx.MockTransport(answer))
    return CoastyClient("sk-coasty-test-0123456789abcdef", "http://coasty.test", http_client=http)


def test_unknown_connection_fields_are_kept_as_secrets() -> None:
    body = {"machine_id": "m", "rdp_password": "hunter2-rdp", "tokens": {"t": "tok-xyz"}}
    with _client_answering(body) as client:
        connection = client.machines.connection("m")
    extra = connection.model_extra or {}
    assert extra["rdp_password"].get_secret_value() == "hunter2-rdp"
    shown = repr(connection) + connection.model_dump_json()
    assert "hunter2-rdp" not in shown and "tok-xyz" not in shown


def test_a_garbled_connection_body_does_not_echo_its_secrets() -> None:
    body = {"ssh_private_key_pem": "PEM-SECRET-123", "vnc_password": "VNC-SECRET-456"}
    with _client_answering(body) as client, pytest.raises(Exception) as info:
        client.machines.connection("m")
    chain = [info.value, info.value.__cause__, info.value.__context__]
    text = " ".join(f"{e!s} {e!r}" for e in chain if e is not None)
    assert "PEM-SECRET-123" not in text and "VNC-SECRET-456" not in text


# ------------------------------------------------------------------------ tolerance


def test_machine_records_are_tolerant() -> None:
    record = MachineRecord.model_validate(
        {"id": "m-1", "status": "hibernating", "gpu": "a100", "billing": {"new": 1}}
    )
    assert record.status == "hibernating" and not record.is_running
    assert (record.model_extra or {})["gpu"] == "a100"
    assert record.display_name is None and record.ttl_minutes is None
    assert record.billing is not None and record.billing.accrued_cents is None
    known = MachineRecord.model_validate({"id": "m-2", "status": "running"})
    assert known.status is MachineStatus.RUNNING and known.is_running
    assert type(known.model_dump()["status"]) is str  # checkpointers need no enum


def test_get_accepts_a_bare_record_too() -> None:
    with _client_answering({"id": "m-1", "status": "stopped", "request_id": "req_1"}) as client:
        machine = client.machines.get("m-1")
    assert machine.status == MachineStatus.STOPPED and machine.request_id == "req_1"
