"""The machine decisions as generators of operations that do no I/O: acquire, release, renew."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from langchain_coasty._graph import is_graph_bubble_up
from langchain_coasty._lru import BoundedDict
from langchain_coasty.client import (
    MachineRecord,
    MachineStatus,
    ProvisionRequest,
)

if TYPE_CHECKING:
    pass

from langchain_coasty.machines.policies import (
    DEFAULT_LEASE_MINUTES,
    MachineLease,
    MachinePerCall,
    MachinePerThread,
    MachineUsage,
)

_LIVE = {
    MachineStatus.CREATING,
    MachineStatus.PROVISIONING,
    MachineStatus.STARTING,
    MachineStatus.RUNNING,
    MachineStatus.RESTARTING,
    MachineStatus.STOPPING,
    MachineStatus.STOPPED,
}
_THREAD_MACHINES: BoundedDict[str, str] = BoundedDict(10_000)
"""Thread id -> machine id, for this process (other processes find it by metadata)."""

# --- operations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Provision:
    """Create a machine with ``request`` under ``key``; returns its ``MachineRecord``."""

    request: ProvisionRequest
    key: str


@dataclass(frozen=True)
class Fetch:
    """Get a machine; returns its record, or None when it is gone."""

    machine_id: str


@dataclass(frozen=True)
class FindOwned:
    """The live machines this package created for ``thread_id`` (any process)."""

    thread_id: str


@dataclass(frozen=True)
class Start:
    """Start a stopped machine; returns None."""

    machine_id: str


@dataclass(frozen=True)
class WaitReady:
    """Wait until the machine runs; returns its record, or the error that ended the wait."""

    machine_id: str
    timeout: float


@dataclass(frozen=True)
class Renew:
    """Set the machine's lease to ``minutes`` from now; returns None (failures are logged)."""

    machine_id: str
    minutes: int


@dataclass(frozen=True)
class Terminate:
    """Terminate the machine; returns its last record (for the cost), or None."""

    machine_id: str


@dataclass(frozen=True)
class Announce:
    """Deliver a ``machine`` event (provisioned, ready, terminated); returns None."""

    phase: Literal["provisioned", "ready", "reused", "terminated"]
    usage: MachineUsage


@dataclass(frozen=True)
class GiveBack:
    """Return a borrowed machine to its pool; returns None."""

    lease: MachineLease


MachineOp: TypeAlias = (
    Provision | Fetch | FindOwned | Start | WaitReady | Renew | Terminate | Announce | GiveBack
)
MachineSteps: TypeAlias = Generator[MachineOp, Any, Any]


# --- decisions --------------------------------------------------------------------------


def cost_usd(record: MachineRecord | None) -> float | None:
    """What a machine billed so far, in dollars (None when the server does not say)."""
    billing = record.billing if record is not None else None
    if billing is None:
        return None
    total = (billing.total_credits_billed or 0) + (billing.accrued_cents or 0)
    return total / 100


def _usable(record: MachineRecord | None) -> bool:
    return record is not None and record.status in _LIVE


def _key(*parts: str) -> str:
    return "lc-machine-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]


def _usage(lease: MachineLease, record: MachineRecord | None, **extra: Any) -> MachineUsage:
    status = None if record is None or record.status is None else str(record.status)
    return MachineUsage(
        machine_id=lease.machine_id,
        policy=lease.policy,
        provisioned=lease.provisioned,
        status=status,
        cost_usd=cost_usd(record),
        **extra,
    )


def acquire_steps(
    policy: MachinePerThread | MachinePerCall, thread_id: str | None, call_key: str
) -> MachineSteps:
    """Find or provision the call's machine, wait until it runs; returns a ``MachineLease``."""
    spec = policy.spec
    kind: Literal["thread", "call"] = "thread" if isinstance(policy, MachinePerThread) else "call"
    record: MachineRecord | None = None
    if kind == "thread":
        if not thread_id:
            raise ValueError(
                "MachinePerThread needs a LangGraph thread (configurable.thread_id); "
                "outside a graph use MachinePerCall or a fixed machine_id."
            )
        known = _THREAD_MACHINES.get(thread_id)
        if known is not None:
            record = yield Fetch(known)
        if not _usable(record):
            found: list[MachineRecord] = yield FindOwned(thread_id)
            record = next((r for r in found if _usable(r)), None)
    provisioned = record is None
    if record is None:
        key = _key(kind, thread_id or "", call_key)
        record = yield Provision(spec.request(kind, thread_id), key)
        if kind == "call" and not _usable(record):
            # A re-executed call whose earlier machine is gone: provision another.
            record = yield Provision(spec.request(kind, thread_id), _key(key, "again"))
    assert record is not None
    lease = MachineLease(record.id, kind, spec.ttl_minutes, provisioned=provisioned)
    if kind == "thread":
        _THREAD_MACHINES.put(str(thread_id), record.id)
    yield Announce("provisioned" if provisioned else "reused", _usage(lease, record))
    if not provisioned:
        yield Renew(record.id, spec.ttl_minutes)
    if record.status == MachineStatus.STOPPED:
        yield Start(record.id)
    if not record.is_running:
        ready: MachineRecord | BaseException = yield WaitReady(record.id, spec.ready_timeout)
        if isinstance(ready, BaseException):
            # It never came up (an error, too slow): nothing of it is left billing.
            if kind == "thread":
                _THREAD_MACHINES.pop(str(thread_id))
            yield from release_steps(lease)
            raise ready
        yield Announce("ready", _usage(lease, ready))
    return lease


def release_steps(lease: MachineLease) -> MachineSteps:
    """Terminate the lease's machine and report what it cost; returns its ``MachineUsage``."""
    record = yield Terminate(lease.machine_id)
    usage = _usage(lease, record, terminated=True)
    yield Announce("terminated", usage)
    return usage


def exit_steps(lease: MachineLease, error: BaseException | None) -> MachineSteps:
    """What a call does with its machine on its way out; returns its usage (None: kept).

    An interrupt keeps it (the paused run needs it); a per-call machine is terminated on
    every other way out; a pool's goes back to the pool; a thread's stays for the thread.
    """
    if error is not None and is_graph_bubble_up(error):
        return None
    if lease.policy == "call":
        return (yield from release_steps(lease))
    if lease.policy == "pool":
        yield GiveBack(lease)
    return _usage(lease, None)


def release_thread_steps(thread_id: str, keep: frozenset[str] = frozenset()) -> MachineSteps:
    """Terminate the thread's machines except ``keep``; returns their ``MachineUsage`` list."""
    ids: list[str] = []
    known = _THREAD_MACHINES.pop(thread_id)
    if known is not None:
        ids.append(known)
    found: list[MachineRecord] = yield FindOwned(thread_id)
    ids += [r.id for r in found if r.id not in ids and _usable(r)]
    done = []
    for machine_id in ids:
        if machine_id in keep:
            _THREAD_MACHINES.put(thread_id, machine_id)
            continue
        lease = MachineLease(machine_id, "thread", DEFAULT_LEASE_MINUTES, provisioned=True)
        done.append((yield from release_steps(lease)))
    return done


def pause_lease_minutes(lease: MachineLease, pause_timeout_seconds: int | None) -> int:
    """A lease long enough to cover a pause of the run (the person may look at the screen)."""
    if pause_timeout_seconds is None:
        return lease.ttl_minutes
    return min(10_080, max(lease.ttl_minutes, math.ceil(pause_timeout_seconds / 60) + 10))
