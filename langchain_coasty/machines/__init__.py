"""Machines for runs: one per graph thread, one per call, or one from a pool; none left behind.

A tool, runnable or toolkit takes ``machine=`` instead of a fixed ``machine_id``:

* ``MachinePerThread(spec)``: provisioned on the thread's first task and reused by every
  later task of the thread, from any process (the machine carries the thread id in its
  metadata, and its create is idempotent per tool call); released at the end of the agent
  run by ``CoastyMiddleware`` or by ``release_thread_machine`` in a hand-built graph.
* ``MachinePerCall(spec)``: provisioned for one call and terminated when the call ends, on
  every way out (an error, a cancelled task, Ctrl-C) except a LangGraph interrupt: a run
  paused for a person keeps its machine, and the re-executed call finds it again.
* ``CoastyMachinePool``: N machines provisioned up front, lent to one call at a time.

Every machine the package creates has a TTL lease (``MachineSpec.ttl_minutes``, default 60),
renewed while a run on it is going and stretched to cover a pause, so that even a killed
process leaves nothing billing past the lease. The decisions are sans-I/O generators of
operations (``acquire_steps``, ``release_steps``), carried out by a sync and an async driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from langchain_coasty.machines.drivers import (
    acall_machine,
    arelease_thread_machine,
    call_machine,
    release_thread_machine,
)
from langchain_coasty.machines.policies import (
    DEFAULT_LEASE_MINUTES,
    MachineLease,
    MachinePerCall,
    MachinePerThread,
    MachineSpec,
    MachineUsage,
)
from langchain_coasty.machines.pool import CoastyMachinePool
from langchain_coasty.machines.steps import pause_lease_minutes

__all__ = [
    "DEFAULT_LEASE_MINUTES",
    "CoastyMachinePool",
    "MachineLease",
    "MachinePerCall",
    "MachinePerThread",
    "MachinePolicy",
    "MachineSpec",
    "MachineUsage",
    "acall_machine",
    "arelease_thread_machine",
    "call_machine",
    "pause_lease_minutes",
    "policy_of",
    "release_thread_machine",
]


MachinePolicy: TypeAlias = MachinePerThread | MachinePerCall | CoastyMachinePool
"""What ``machine=`` takes (a fixed machine is ``machine_id=``)."""


def policy_of(value: Any) -> MachinePolicy | None:
    """Check a ``machine=`` setting."""
    if value is None or isinstance(value, MachinePerThread | MachinePerCall | CoastyMachinePool):
        return value
    if isinstance(value, Mapping):
        raise ValueError("`machine` takes MachinePerThread(...), MachinePerCall(...) or a pool")
    raise ValueError(
        "`machine` must be MachinePerThread(...), MachinePerCall(...) or a CoastyMachinePool "
        f"(a fixed machine is `machine_id=`), not {type(value).__name__}"
    )
