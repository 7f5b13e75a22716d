"""The machine of one call under a ``machine=`` policy, around the run's session.

The call's input is checked first (as the run request it will become, with a stand-in
machine), so bad input is refused before a machine is provisioned; the checked request's
idempotency key, stable when LangGraph re-executes the call, keys the provisioning too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_coasty._engine.request import CoastyInput, build_request
from langchain_coasty._graph import graph_context
from langchain_coasty.machines import MachineLease, acall_machine, call_machine

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from langchain_coasty._engine.session import FollowedRun
    from langchain_coasty._engine.settings import CoastySettings

__all__ = [
    "CheckedCall",
    "amachine_for_call",
    "check_call",
    "machine_for_call",
    "on_machine",
    "record_usage",
]

_STAND_IN = "m-pending"


@dataclass(frozen=True)
class CheckedCall:
    """A call whose input was checked: the key its machine is provisioned under, and where."""

    key: str
    thread_id: str | None
    writer: Any


def check_call(
    settings: CoastySettings,
    input: CoastyInput,
    config: RunnableConfig | None,
    *,
    runtime: Any = None,
    extra_instructions: str | None = None,
) -> CheckedCall:
    """Check the call's input as its run request (``ValueError`` before any machine is made)."""
    ctx = graph_context(config, runtime)
    plan = build_request(
        settings, on_machine(input, _STAND_IN), ctx, extra_instructions=extra_instructions
    )
    return CheckedCall(
        plan.key,
        ctx.thread_id if ctx is not None else None,
        ctx.stream_writer if ctx is not None else None,
    )


def on_machine(input: CoastyInput, machine_id: str) -> CoastyInput:
    """The call's input, targeting ``machine_id`` (other input is left for the check)."""
    if isinstance(input, str):
        return {"task": input, "machine_id": machine_id}
    if isinstance(input, Mapping):
        return {**input, "machine_id": machine_id}
    return input


@contextlib.contextmanager
def machine_for_call(
    settings: CoastySettings, checked: CheckedCall | None, config: RunnableConfig | None
) -> Iterator[MachineLease | None]:
    """The policy's machine for a sync call (None without a policy)."""
    if settings.machine is None or checked is None:
        yield None
        return
    with call_machine(
        settings.machine,
        settings.get_client(),
        thread_id=checked.thread_id,
        call_key=checked.key,
        config=config,
        writer=checked.writer,
    ) as lease:
        yield lease


@contextlib.asynccontextmanager
async def amachine_for_call(
    settings: CoastySettings, checked: CheckedCall | None, config: RunnableConfig | None
) -> AsyncIterator[MachineLease | None]:
    """Async twin of ``machine_for_call``."""
    if settings.machine is None or checked is None:
        yield None
        return
    async with acall_machine(
        settings.machine,
        settings.get_async_client(),
        thread_id=checked.thread_id,
        call_key=checked.key,
        config=config,
        writer=checked.writer,
    ) as lease:
        yield lease


def record_usage(result: FollowedRun | None, lease: MachineLease | None) -> None:
    """Put the machine's usage (known once the call released it) on the final run."""
    if result is not None and lease is not None and lease.usage is not None:
        result.machine = lease.usage
