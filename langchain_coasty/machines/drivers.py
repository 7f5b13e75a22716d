"""The machine operations carried out (sync and async), and the machine of one call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from langchain_coasty._graph import THREAD_ID_KEY
from langchain_coasty.callbacks import CoastyEventPayload
from langchain_coasty.client import (
    AsyncCoastyClient,
    CoastyClient,
    CoastyError,
    MachineRecord,
    NotFoundError,
)

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

from langchain_coasty._lru import BoundedDict
from langchain_coasty.machines.policies import OWNER_KEY, MachineLease, MachineUsage
from langchain_coasty.machines.pool import CoastyMachinePool
from langchain_coasty.machines.steps import (
    Announce,
    Fetch,
    FindOwned,
    GiveBack,
    MachineSteps,
    Provision,
    Renew,
    Start,
    Terminate,
    WaitReady,
    acquire_steps,
    exit_steps,
    release_thread_steps,
)

if TYPE_CHECKING:
    from langchain_coasty.machines import MachinePolicy

logger = logging.getLogger("langchain_coasty")
_THREAD_LOCKS: BoundedDict[str, threading.Lock] = BoundedDict(
    10_000, pinned=lambda lock: lock.locked()
)
_ASYNC_THREAD_LOCKS: BoundedDict[tuple[Any, str], asyncio.Lock] = BoundedDict(
    10_000, pinned=lambda lock: lock.locked()
)

# --- drivers ----------------------------------------------------------------------------


def _owned_by(records: list[MachineRecord], thread_id: str) -> list[MachineRecord]:
    return [
        r
        for r in records
        if (r.metadata or {}).get(OWNER_KEY) == "1"
        and (r.metadata or {}).get(THREAD_ID_KEY) == thread_id[:256]
    ]


class _Announcer:
    """Delivers ``machine`` events on the same channels as run events."""

    def __init__(self, config: RunnableConfig | None, writer: Any = None) -> None:
        from langchain_coasty.callbacks import EventDispatcher

        if writer is None:
            with contextlib.suppress(Exception):  # not inside a graph
                from langgraph.config import get_stream_writer

                writer = get_stream_writer()
        self._dispatcher = EventDispatcher(config, writer)

    @staticmethod
    def payload(op: Announce) -> CoastyEventPayload:
        data = {"phase": op.phase, **op.usage.model_dump()}
        return CoastyEventPayload(
            run_id="",
            machine_id=op.usage.machine_id,
            seq=0,
            type="machine",
            data=data,
            ts=time.time(),
        )

    def send(self, op: Announce) -> None:
        with contextlib.suppress(Exception):  # no callback context: nothing to deliver to
            self._dispatcher.dispatch(self.payload(op))

    async def asend(self, op: Announce) -> None:
        with contextlib.suppress(Exception):
            await self._dispatcher.adispatch(self.payload(op))


def drive_machine_sync(steps: MachineSteps, client: CoastyClient, announce: _Announcer) -> Any:
    """Carry out machine operations with a sync client; returns the steps' result."""
    value: Any = None
    while True:
        try:
            op = steps.send(value)
        except StopIteration as stop:
            return stop.value
        value = None
        match op:
            case Provision(request=request, key=key):
                value = client.machines.create_request(request, idempotency_key=key).machine
            case Fetch(machine_id=machine_id):
                with contextlib.suppress(NotFoundError):
                    value = client.machines.get(machine_id)
            case FindOwned(thread_id=thread_id):
                value = _owned_by(client.machines.list(limit=100).data, thread_id)
            case Start(machine_id=machine_id):
                client.machines.start(machine_id)
            case WaitReady(machine_id=machine_id, timeout=timeout):
                try:
                    value = client.machines.wait_until(machine_id, timeout=timeout)
                except CoastyError as exc:
                    value = exc
            case Renew(machine_id=machine_id, minutes=minutes):
                try:
                    client.machines.update(machine_id, ttl_minutes=minutes)
                except CoastyError as exc:
                    logger.warning("Could not renew the lease of machine %s: %s", machine_id, exc)
            case Terminate(machine_id=machine_id):
                with contextlib.suppress(NotFoundError):
                    client.machines.delete(machine_id)
                with contextlib.suppress(CoastyError):
                    value = client.machines.get(machine_id)
            case Announce():
                announce.send(op)
            case GiveBack(lease=given):
                given.pool.give_back(given)


async def drive_machine_async(
    steps: MachineSteps, client: AsyncCoastyClient, announce: _Announcer
) -> Any:
    """Async twin of ``drive_machine_sync``."""
    value: Any = None
    while True:
        try:
            op = steps.send(value)
        except StopIteration as stop:
            return stop.value
        value = None
        match op:
            case Provision(request=request, key=key):
                value = (await client.machines.create_request(request, idempotency_key=key)).machine
            case Fetch(machine_id=machine_id):
                with contextlib.suppress(NotFoundError):
                    value = await client.machines.get(machine_id)
            case FindOwned(thread_id=thread_id):
                value = _owned_by((await client.machines.list(limit=100)).data, thread_id)
            case Start(machine_id=machine_id):
                await client.machines.start(machine_id)
            case WaitReady(machine_id=machine_id, timeout=timeout):
                try:
                    value = await client.machines.wait_until(machine_id, timeout=timeout)
                except CoastyError as exc:
                    value = exc
            case Renew(machine_id=machine_id, minutes=minutes):
                try:
                    await client.machines.update(machine_id, ttl_minutes=minutes)
                except CoastyError as exc:
                    logger.warning("Could not renew the lease of machine %s: %s", machine_id, exc)
            case Terminate(machine_id=machine_id):
                with contextlib.suppress(NotFoundError):
                    await client.machines.delete(machine_id)
                with contextlib.suppress(CoastyError):
                    value = await client.machines.get(machine_id)
            case Announce():
                await announce.asend(op)
            case GiveBack(lease=given):
                given.pool.give_back(given)


# --- the call's machine -----------------------------------------------------------------

_RELEASE_TIMEOUT = 10.0


@contextlib.contextmanager
def call_machine(
    policy: MachinePolicy,
    client: CoastyClient,
    *,
    thread_id: str | None,
    call_key: str,
    config: RunnableConfig | None,
    writer: Any = None,
) -> Iterator[MachineLease]:
    """The machine of one sync call, released by the policy's rule on every way out."""
    announce = _Announcer(config, writer)
    if isinstance(policy, CoastyMachinePool):
        lease = policy.take(call_key)
    else:
        # Parallel calls of one thread provision one machine: one acquisition at a time.
        with _THREAD_LOCKS.get_or_make(thread_id or call_key, threading.Lock):
            lease = drive_machine_sync(acquire_steps(policy, thread_id, call_key), client, announce)
    error: BaseException | None = None
    try:
        yield lease
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            usage = drive_machine_sync(exit_steps(lease, error), client, announce)
        except Exception as failed:
            _release_failed(lease, failed, error)
        else:
            lease.usage = usage or lease.usage


@contextlib.asynccontextmanager
async def acall_machine(
    policy: MachinePolicy,
    client: AsyncCoastyClient,
    *,
    thread_id: str | None,
    call_key: str,
    config: RunnableConfig | None,
    writer: Any = None,
) -> AsyncIterator[MachineLease]:
    """Async twin of ``call_machine`` (the release is shielded from cancellation)."""
    announce = _Announcer(config, writer)
    if isinstance(policy, CoastyMachinePool):
        lease = await policy.atake(call_key)
    else:
        steps = acquire_steps(policy, thread_id, call_key)
        key = (asyncio.get_running_loop(), thread_id or call_key)
        async with _ASYNC_THREAD_LOCKS.get_or_make(key, asyncio.Lock):
            lease = await drive_machine_async(steps, client, announce)
    error: BaseException | None = None
    try:
        yield lease
    except BaseException as exc:
        error = exc
        raise
    finally:
        leaving = asyncio.ensure_future(
            drive_machine_async(exit_steps(lease, error), client, announce)
        )
        try:
            async with asyncio.timeout(_RELEASE_TIMEOUT):
                usage = await asyncio.shield(leaving)
        except (Exception, asyncio.CancelledError) as failed:
            if isinstance(failed, asyncio.CancelledError) and not leaving.done():
                with contextlib.suppress(BaseException):
                    lease.usage = await asyncio.wait_for(leaving, _RELEASE_TIMEOUT)
            else:
                _release_failed(lease, failed, error)
        else:
            lease.usage = usage or lease.usage


def _release_failed(
    lease: MachineLease, failed: BaseException, error: BaseException | None
) -> None:
    message = (
        f"Could not terminate Coasty machine {lease.machine_id} ({failed}); its lease "
        f"destroys it within {lease.ttl_minutes} minutes, or delete it with "
        f"client.machines.delete({lease.machine_id!r})."
    )
    logger.error(message)
    if error is not None:
        error.add_note(message)
    else:
        raise RuntimeError(message) from failed


def release_thread_machine(
    thread_id: str,
    client: CoastyClient,
    *,
    keep: frozenset[str] = frozenset(),
    config: RunnableConfig | None = None,
) -> list[MachineUsage]:
    """Terminate the machines this package provisioned for ``thread_id`` (end of a thread)."""
    return list(
        drive_machine_sync(release_thread_steps(thread_id, keep), client, _Announcer(config))
    )


async def arelease_thread_machine(
    thread_id: str,
    client: AsyncCoastyClient,
    *,
    keep: frozenset[str] = frozenset(),
    config: RunnableConfig | None = None,
) -> list[MachineUsage]:
    """Async twin of ``release_thread_machine``."""
    steps = release_thread_steps(thread_id, keep)
    return list(await drive_machine_async(steps, client, _Announcer(config)))
