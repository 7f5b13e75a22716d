"""The `machines` and `billing` resources of a client, sync and async side by side.

`machines.create` is an idempotent create like `runs.create` (one key per logical call,
reused on every retry; a lost answer is collected by key). Start, stop and restart are
re-sent only when they never reached the server; get, list, delete and the lease update
are safe to repeat. `_MachineWait` holds the decisions of `wait_until`, so both twins only
fetch and sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from langchain_coasty.client import _base_client
from langchain_coasty.client._base_client import _ACTION, _ACTION_BATCH, _parse, _unexpected_body
from langchain_coasty.client._cua_models import ActionResult, BatchActionResult
from langchain_coasty.client._cua_params import action_body, batch_body
from langchain_coasty.client._errors import APITimeoutError, MachineStateError
from langchain_coasty.client._machine_models import (
    MAX_SCREENSHOT_BYTES,
    BillingActiveResponse,
    LifecycleResponse,
    MachineConnection,
    MachinePricing,
    MachineRecord,
    MachinesPage,
    MachineStatus,
    MachineUpdate,
    ProvisionResult,
    Screenshot,
    _MachineEnvelope,
)
from langchain_coasty.client._params import (
    ProvisionRequest,
    check_idempotency_key,
    check_limit,
    check_machine_id,
    check_seconds,
    check_ttl_update,
    invalid,
    provision_request,
    provision_request_body,
)

if TYPE_CHECKING:
    import httpx

    from langchain_coasty.client._resources import _AsyncClient, _SyncClient

__all__ = ["AsyncBilling", "AsyncMachines", "Billing", "Machines"]

OsType = Literal["linux", "windows"]
_DEFAULT_WAIT = 600.0


def _machine_path(machine_id: str, suffix: str = "") -> str:
    return f"/v1/machines/{quote(check_machine_id(machine_id), safe='')}{suffix}"


def _provision_fields(
    display_name: str,
    *,
    os_type: OsType | None,
    desktop_enabled: bool | None,
    cpu_cores: int | None,
    memory_gb: int | None,
    storage_gb: int | None,
    restore_from_snapshot: bool | None,
    ttl_minutes: int | None,
    metadata: Mapping[str, str] | None,
) -> ProvisionRequest:
    """The validated request of `create`: the arguments given (None: the server's default)."""
    given = {
        "display_name": display_name,
        "os_type": os_type,
        "desktop_enabled": desktop_enabled,
        "cpu_cores": cpu_cores,
        "memory_gb": memory_gb,
        "storage_gb": storage_gb,
        "restore_from_snapshot": restore_from_snapshot,
        "ttl_minutes": ttl_minutes,
        "metadata": dict(metadata) if isinstance(metadata, Mapping) else metadata,
    }
    return provision_request({k: v for k, v in given.items() if v is not None})


def _machine(response: httpx.Response) -> MachineRecord:
    envelope = _parse(_MachineEnvelope, response)
    machine = envelope.machine
    if machine.request_id is None:
        machine.request_id = envelope.request_id
    return machine


def _check_max_bytes(max_bytes: int) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
        raise invalid("max_bytes", max_bytes, limits={"max_bytes": "an integer of at least 1024"})
    return max_bytes


def _screenshot(response: httpx.Response, max_bytes: int) -> Screenshot:
    """The screenshot in ``response``; a body over ``max_bytes`` (base64 counted) is refused."""
    if len(response.content) > max_bytes * 4 // 3 + 4096:
        raise _unexpected_body(response, f"a screenshot over max_bytes={max_bytes}")
    shot = _parse(Screenshot, response)
    if shot.size_bytes > max_bytes:
        raise _unexpected_body(response, f"a screenshot over max_bytes={max_bytes}")
    return shot


def _check_status(status: MachineStatus | str) -> MachineStatus:
    try:
        return MachineStatus(getattr(status, "value", status))
    except ValueError:
        raise invalid("machine_status", status) from None


class _MachineWait:
    """The decisions of one `wait_until`: done, a dead end, or how long until the next look."""

    _DEAD_ENDS = frozenset({MachineStatus.ERROR, MachineStatus.TERMINATED, MachineStatus.DELETING})

    def __init__(
        self,
        machine_id: str,
        status: MachineStatus | str,
        timeout: float | None,
        poll_interval: float | None,
    ) -> None:
        check_machine_id(machine_id)
        self.target = _check_status(status)
        check_seconds("timeout", timeout, optional=True)
        check_seconds("poll_interval", poll_interval, optional=True)
        self.machine_id = machine_id
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.deadline = None if timeout is None else time.monotonic() + timeout
        dead = set(self._DEAD_ENDS)
        if self.target == MachineStatus.TERMINATED:
            dead.discard(MachineStatus.DELETING)
        dead.discard(self.target)
        self._dead = frozenset(dead)
        self._polls = 0
        self.last_status: str | None = None

    def reached(self, machine: MachineRecord) -> bool:
        """Whether the machine is in the wanted status; `MachineStateError` at a dead end."""
        status = machine.status
        self.last_status = None if status is None else str(getattr(status, "value", status))
        if status == self.target:
            return True
        if status in self._dead:
            raise MachineStateError(
                f"Machine {self.machine_id} is {self.last_status} while waiting for it to be "
                f"{self.target.value}; it will not get there on its own.",
                machine_id=self.machine_id,
                status=self.last_status or "",
            )
        return False

    def next_delay(self) -> float:
        """Seconds until the next look (growing, capped, never past the deadline)."""
        self._polls += 1
        if self.poll_interval is not None:
            delay = self.poll_interval
        else:
            delay = min(0.1 * 1.5**self._polls, 2.0)
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise self.timed_out()
            delay = min(delay, remaining)
        return delay

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def timed_out(self) -> APITimeoutError:
        error = APITimeoutError(
            f"Machine {self.machine_id} was not {self.target.value} within {self.timeout} s "
            f"(last status {self.last_status or 'unknown'}); it may still get there: wait again, "
            "or terminate it."
        )
        error.machine_id = self.machine_id
        return error


# --------------------------------------------------------------------------- sync


class Machines:
    """`client.machines`: provision, inspect, start/stop, lease and terminate machines."""

    def __init__(self, client: _SyncClient) -> None:
        self._client = client

    def create(
        self,
        display_name: str,
        *,
        os_type: OsType | None = None,
        desktop_enabled: bool | None = None,
        cpu_cores: int | None = None,
        memory_gb: int | None = None,
        storage_gb: int | None = None,
        restore_from_snapshot: bool | None = None,
        ttl_minutes: int | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> MachineRecord:
        """Provision a machine (`POST /v1/machines`); retries never provision a second one."""
        return self.create_with_response(
            display_name,
            os_type=os_type,
            desktop_enabled=desktop_enabled,
            cpu_cores=cpu_cores,
            memory_gb=memory_gb,
            storage_gb=storage_gb,
            restore_from_snapshot=restore_from_snapshot,
            ttl_minutes=ttl_minutes,
            metadata=metadata,
            idempotency_key=idempotency_key,
        ).machine

    def create_with_response(
        self,
        display_name: str,
        *,
        os_type: OsType | None = None,
        desktop_enabled: bool | None = None,
        cpu_cores: int | None = None,
        memory_gb: int | None = None,
        storage_gb: int | None = None,
        restore_from_snapshot: bool | None = None,
        ttl_minutes: int | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> ProvisionResult:
        """Like `create`, also with the connection summary, the key, and whether it replayed."""
        request = _provision_fields(
            display_name,
            os_type=os_type,
            desktop_enabled=desktop_enabled,
            cpu_cores=cpu_cores,
            memory_gb=memory_gb,
            storage_gb=storage_gb,
            restore_from_snapshot=restore_from_snapshot,
            ttl_minutes=ttl_minutes,
            metadata=metadata,
        )
        return self.create_request(request, idempotency_key=idempotency_key)

    def create_request(
        self, request: ProvisionRequest, *, idempotency_key: str | None = None
    ) -> ProvisionResult:
        """Like `create_with_response`, for a `ProvisionRequest` from `provision_request`."""
        body = provision_request_body(request)
        return self._client._provision(body, check_idempotency_key(idempotency_key))

    def get(self, machine_id: str) -> MachineRecord:
        """`GET /v1/machines/{machine_id}` (a terminated machine is still readable)."""
        return _machine(self._client._request("GET", _machine_path(machine_id)))

    def list(self, limit: int = 50) -> MachinesPage:
        """`GET /v1/machines`."""
        params = {"limit": check_limit(limit)}
        return _parse(MachinesPage, self._client._request("GET", "/v1/machines", params=params))

    def delete(self, machine_id: str) -> LifecycleResponse:
        """Terminate a machine (`DELETE /v1/machines/{machine_id}`): irreversible, stops billing."""
        path = _machine_path(machine_id)
        return _parse(LifecycleResponse, self._client._request("DELETE", path))

    def update(self, machine_id: str, *, ttl_minutes: int) -> MachineUpdate:
        """Set the auto-destroy lease to `ttl_minutes` from now (5..10080), or clear it with 0."""
        body = check_ttl_update(ttl_minutes)
        response = self._client._request("PATCH", _machine_path(machine_id), json=body)
        return _parse(MachineUpdate, response)

    def start(self, machine_id: str) -> LifecycleResponse:
        """`POST /v1/machines/{machine_id}/start` (from stopped)."""
        return self._lifecycle(machine_id, "/start")

    def stop(self, machine_id: str) -> LifecycleResponse:
        """`POST /v1/machines/{machine_id}/stop` (from running; stopped machines bill storage)."""
        return self._lifecycle(machine_id, "/stop")

    def restart(self, machine_id: str) -> LifecycleResponse:
        """`POST /v1/machines/{machine_id}/restart` (from running)."""
        return self._lifecycle(machine_id, "/restart")

    def _lifecycle(self, machine_id: str, suffix: str) -> LifecycleResponse:
        path = _machine_path(machine_id, suffix)
        return _parse(LifecycleResponse, self._client._request("POST", path, resend="unsent"))

    def connection(self, machine_id: str) -> MachineConnection:
        """SSH key and VNC password of a machine; the secret fields are `SecretStr`."""
        path = _machine_path(machine_id, "/connection")
        return _parse(MachineConnection, self._client._request("GET", path))

    def screenshot(self, machine_id: str, *, max_bytes: int = MAX_SCREENSHOT_BYTES) -> Screenshot:
        """The machine's screen now (`GET /v1/machines/{machine_id}/screenshot`), decoded.

        A larger image than `max_bytes` is refused (an `APIConnectionError`), as is a bad body.
        """
        limit = _check_max_bytes(max_bytes)
        path = _machine_path(machine_id, "/screenshot")
        return _screenshot(self._client._request("GET", path), limit)

    def pricing(self) -> MachinePricing:
        """`GET /v1/machines/pricing`: runtime rates, one-time charges and TTL bounds."""
        return _parse(MachinePricing, self._client._request("GET", "/v1/machines/pricing"))

    def wait_until(
        self,
        machine_id: str,
        status: MachineStatus | str = MachineStatus.RUNNING,
        *,
        timeout: float | None = _DEFAULT_WAIT,
        poll_interval: float | None = None,
    ) -> MachineRecord:
        """Poll until the machine is in `status` and return it.

        `timeout` bounds the whole wait (`APITimeoutError`); a machine that reaches error or
        terminated instead raises `MachineStateError`.
        """
        wait = _MachineWait(machine_id, status, timeout, poll_interval)
        while True:
            machine = self.get(machine_id)
            if wait.reached(machine):
                return machine
            _base_client._sleep(wait.next_delay())
            if wait.expired():
                raise wait.timed_out()

    def actions(
        self,
        machine_id: str,
        command: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        timeout_ms: int | None = None,
        idempotency_key: str | None = None,
    ) -> ActionResult:
        """Run one command on the machine (`POST /v1/machines/{id}/actions`), at most once."""
        body = action_body(command, parameters, timeout_ms=timeout_ms)
        kind = _ACTION.at(_machine_path(machine_id, "/actions"))
        return self._client._keyed_create(body, check_idempotency_key(idempotency_key), kind)

    def actions_batch(
        self,
        machine_id: str,
        steps: Sequence[Mapping[str, Any]],
        *,
        stop_on_error: bool = True,
        idempotency_key: str | None = None,
    ) -> BatchActionResult:
        """Run up to 50 `{command, parameters}` steps in order, stopping at a failure by default."""
        body = batch_body(steps, stop_on_error=stop_on_error)
        kind = _ACTION_BATCH.at(_machine_path(machine_id, "/actions/batch"))
        return self._client._keyed_create(body, check_idempotency_key(idempotency_key), kind)


class Billing:
    """`client.billing`: what is billing the wallet right now."""

    def __init__(self, client: _SyncClient) -> None:
        self._client = client

    def active(self) -> BillingActiveResponse:
        """`GET /v1/billing/active`: every machine metering now and the summed hourly rate."""
        return _parse(BillingActiveResponse, self._client._request("GET", "/v1/billing/active"))


# -------------------------------------------------------------------------- async


class AsyncMachines:
    """`client.machines` of the async client."""

    def __init__(self, client: _AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        display_name: str,
        *,
        os_type: OsType | None = None,
        desktop_enabled: bool | None = None,
        cpu_cores: int | None = None,
        memory_gb: int | None = None,
        storage_gb: int | None = None,
        restore_from_snapshot: bool | None = None,
        ttl_minutes: int | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> MachineRecord:
        """Provision a machine (`POST /v1/machines`); retries never provision a second one."""
        result = await self.create_with_response(
            display_name,
            os_type=os_type,
            desktop_enabled=desktop_enabled,
            cpu_cores=cpu_cores,
            memory_gb=memory_gb,
            storage_gb=storage_gb,
            restore_from_snapshot=restore_from_snapshot,
            ttl_minutes=ttl_minutes,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )
        return result.machine

    async def create_with_response(
        self,
        display_name: str,
        *,
        os_type: OsType | None = None,
        desktop_enabled: bool | None = None,
        cpu_cores: int | None = None,
        memory_gb: int | None = None,
        storage_gb: int | None = None,
        restore_from_snapshot: bool | None = None,
        ttl_minutes: int | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> ProvisionResult:
        """Like `create`, also with the connection summary, the key, and whether it replayed."""
        request = _provision_fields(
            display_name,
            os_type=os_type,
            desktop_enabled=desktop_enabled,
            cpu_cores=cpu_cores,
            memory_gb=memory_gb,
            storage_gb=storage_gb,
            restore_from_snapshot=restore_from_snapshot,
            ttl_minutes=ttl_minutes,
            metadata=metadata,
        )
        return await self.create_request(request, idempotency_key=idempotency_key)

    async def create_request(
        self, request: ProvisionRequest, *, idempotency_key: str | None = None
    ) -> ProvisionResult:
        """Like `create_with_response`, for a `ProvisionRequest` from `provision_request`."""
        body = provision_request_body(request)
        return await self._client._provision(body, check_idempotency_key(idempotency_key))

    async def get(self, machine_id: str) -> MachineRecord:
        """`GET /v1/machines/{machine_id}` (a terminated machine is still readable)."""
        return _machine(await self._client._request("GET", _machine_path(machine_id)))

    async def list(self, limit: int = 50) -> MachinesPage:
        """`GET /v1/machines`."""
        params = {"limit": check_limit(limit)}
        response = await self._client._request("GET", "/v1/machines", params=params)
        return _parse(MachinesPage, response)

    async def delete(self, machine_id: str) -> LifecycleResponse:
        """Terminate a machine (`DELETE /v1/machines/{machine_id}`): irreversible, stops billing."""
        path = _machine_path(machine_id)
        return _parse(LifecycleResponse, await self._client._request("DELETE", path))

    async def update(self, machine_id: str, *, ttl_minutes: int) -> MachineUpdate:
        """Set the auto-destroy lease to `ttl_minutes` from now (5..10080), or clear it with 0."""
        body = check_ttl_update(ttl_minutes)
        response = await self._client._request("PATCH", _machine_path(machine_id), json=body)
        return _parse(MachineUpdate, response)

    async def start(self, machine_id: str) -> LifecycleResponse:
        """`POST /v1/machines/{machine_id}/start` (from stopped)."""
        return await self._lifecycle(machine_id, "/start")

    async def stop(self, machine_id: str) -> LifecycleResponse:
        """`POST /v1/machines/{machine_id}/stop` (from running; stopped machines bill storage)."""
        return await self._lifecycle(machine_id, "/stop")

    async def restart(self, machine_id: str) -> LifecycleResponse:
        """`POST /v1/machines/{machine_id}/restart` (from running)."""
        return await self._lifecycle(machine_id, "/restart")

    async def _lifecycle(self, machine_id: str, suffix: str) -> LifecycleResponse:
        path = _machine_path(machine_id, suffix)
        response = await self._client._request("POST", path, resend="unsent")
        return _parse(LifecycleResponse, response)

    async def connection(self, machine_id: str) -> MachineConnection:
        """SSH key and VNC password of a machine; the secret fields are `SecretStr`."""
        path = _machine_path(machine_id, "/connection")
        return _parse(MachineConnection, await self._client._request("GET", path))

    async def screenshot(
        self, machine_id: str, *, max_bytes: int = MAX_SCREENSHOT_BYTES
    ) -> Screenshot:
        """The machine's screen now, decoded (see `Machines.screenshot`)."""
        limit = _check_max_bytes(max_bytes)
        path = _machine_path(machine_id, "/screenshot")
        return _screenshot(await self._client._request("GET", path), limit)

    async def pricing(self) -> MachinePricing:
        """`GET /v1/machines/pricing`: runtime rates, one-time charges and TTL bounds."""
        return _parse(MachinePricing, await self._client._request("GET", "/v1/machines/pricing"))

    async def wait_until(
        self,
        machine_id: str,
        status: MachineStatus | str = MachineStatus.RUNNING,
        *,
        timeout: float | None = _DEFAULT_WAIT,  # noqa: ASYNC109
        poll_interval: float | None = None,
    ) -> MachineRecord:
        """Poll until the machine is in `status` and return it (see `Machines.wait_until`).

        Unlike the sync twin, the deadline also bounds a request in progress.
        """
        wait = _MachineWait(machine_id, status, timeout, poll_interval)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    machine = await self.get(machine_id)
                    if wait.reached(machine):
                        return machine
                    await _base_client._asleep(wait.next_delay())
                    if wait.expired():
                        raise wait.timed_out()
        except TimeoutError:
            raise wait.timed_out() from None

    async def actions(
        self,
        machine_id: str,
        command: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        timeout_ms: int | None = None,
        idempotency_key: str | None = None,
    ) -> ActionResult:
        """Run one command on the machine (`POST /v1/machines/{id}/actions`), at most once."""
        body = action_body(command, parameters, timeout_ms=timeout_ms)
        kind = _ACTION.at(_machine_path(machine_id, "/actions"))
        return await self._client._keyed_create(body, check_idempotency_key(idempotency_key), kind)

    async def actions_batch(
        self,
        machine_id: str,
        steps: Sequence[Mapping[str, Any]],
        *,
        stop_on_error: bool = True,
        idempotency_key: str | None = None,
    ) -> BatchActionResult:
        """Run up to 50 `{command, parameters}` steps in order, stopping at a failure by default."""
        body = batch_body(steps, stop_on_error=stop_on_error)
        kind = _ACTION_BATCH.at(_machine_path(machine_id, "/actions/batch"))
        return await self._client._keyed_create(body, check_idempotency_key(idempotency_key), kind)


class AsyncBilling:
    """`client.billing` of the async client."""

    def __init__(self, client: _AsyncClient) -> None:
        self._client = client

    async def active(self) -> BillingActiveResponse:
        """`GET /v1/billing/active`: every machine metering now and the summed hourly rate."""
        response = await self._client._request("GET", "/v1/billing/active")
        return _parse(BillingActiveResponse, response)
