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

import asyncio
import contextlib
import hashlib
import logging
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

from langchain_coasty._graph import THREAD_ID_KEY, is_graph_bubble_up
from langchain_coasty._lru import BoundedDict
from langchain_coasty.callbacks import CoastyEventPayload
from langchain_coasty.client import (
    AsyncCoastyClient,
    CoastyClient,
    CoastyError,
    MachineRecord,
    MachineStatus,
    NotFoundError,
    ProvisionRequest,
    provision_request,
)

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

__all__ = [
    "DEFAULT_LEASE_MINUTES",
    "CoastyMachinePool",
    "MachineLease",
    "MachinePerCall",
    "MachinePerThread",
    "MachinePolicy",
    "MachineSpec",
    "MachineUsage",
    "arelease_thread_machine",
    "release_thread_machine",
]

logger = logging.getLogger("langchain_coasty")

DEFAULT_LEASE_MINUTES = 60
OWNER_KEY = "langchain_coasty"
"""Metadata key (value ``"1"``) on every machine this package created."""
POLICY_KEY = "langchain_coasty_policy"
"""Metadata key naming the policy that created a machine (``thread``, ``call``, ``pool``)."""
_OWN_KEYS = 3  # OWNER_KEY, POLICY_KEY and the thread id: what a spec's metadata leaves room for
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
_THREAD_LOCKS: BoundedDict[str, threading.Lock] = BoundedDict(
    10_000, pinned=lambda lock: lock.locked()
)
_ASYNC_THREAD_LOCKS: BoundedDict[tuple[Any, str], asyncio.Lock] = BoundedDict(
    10_000, pinned=lambda lock: lock.locked()
)


class MachineSpec(BaseModel):
    """How to provision a machine (the developer's choice, never the LLM's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    display_name: str = "langchain-coasty"
    os_type: Literal["linux", "windows"] = "linux"
    desktop_enabled: bool = True
    cpu_cores: int | None = None
    memory_gb: int | None = None
    storage_gb: int | None = None
    ttl_minutes: int = DEFAULT_LEASE_MINUTES
    """The auto-destroy lease (5..10080 minutes), renewed while a run is going."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """At most 13 entries (the package adds 3 of the 16 a machine allows)."""
    ready_timeout: float = 900.0
    """The longest wait for a new machine to be running (seconds)."""

    @model_validator(mode="after")
    def _valid(self) -> MachineSpec:
        if not (isinstance(self.ready_timeout, int | float) and 0 < self.ready_timeout <= 86_400):
            raise ValueError(
                "ready_timeout must be a number of seconds in 0..86400 "
                f"(got {self.ready_timeout!r})"
            )
        if len(self.metadata) > 16 - _OWN_KEYS:
            raise ValueError(
                f"metadata may have at most {16 - _OWN_KEYS} entries (the package adds "
                f"{_OWN_KEYS} of the 16 a machine allows); got {len(self.metadata)}"
            )
        try:
            self.request("call", None)
        except CoastyError as exc:  # InvalidRequestError names the field and the limit
            raise ValueError(str(exc)) from None
        return self

    def request(self, policy: str, thread_id: str | None) -> ProvisionRequest:
        """The validated provision request, with the package's own metadata."""
        meta = {**self.metadata, OWNER_KEY: "1", POLICY_KEY: policy}
        if thread_id:
            meta[THREAD_ID_KEY] = thread_id[:256]
        fields: dict[str, Any] = {
            "display_name": self.display_name,
            "os_type": self.os_type,
            "desktop_enabled": self.desktop_enabled,
            "ttl_minutes": self.ttl_minutes,
            "metadata": meta,
        }
        for name in ("cpu_cores", "memory_gb", "storage_gb"):
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        return provision_request(fields)


class MachinePerThread(BaseModel):
    """One machine per LangGraph thread, reused by every task of the thread."""

    model_config = ConfigDict(frozen=True)
    spec: MachineSpec = Field(default_factory=MachineSpec)

    def __init__(self, spec: MachineSpec | None = None, /, **data: Any) -> None:
        super().__init__(spec=spec if spec is not None else data.pop("spec", MachineSpec()), **data)


class MachinePerCall(BaseModel):
    """A fresh machine for each call, terminated when the call ends."""

    model_config = ConfigDict(frozen=True)
    spec: MachineSpec = Field(default_factory=MachineSpec)

    def __init__(self, spec: MachineSpec | None = None, /, **data: Any) -> None:
        super().__init__(spec=spec if spec is not None else data.pop("spec", MachineSpec()), **data)


class MachineUsage(BaseModel):
    """What a call's machine was and cost (on the tool's artifact and in ``machine`` events)."""

    machine_id: str
    policy: Literal["thread", "call", "pool"]
    provisioned: bool
    """Whether this call provisioned it (rather than reusing one)."""
    terminated: bool = False
    status: str | None = None
    cost_usd: float | None = None
    """Credits the machine billed so far (1 credit = 1 cent), when the server says."""

    def describe(self) -> str:
        """One sentence for the tool's summary."""
        if self.terminated:
            cost = "" if self.cost_usd is None else f" (it cost ${self.cost_usd:.2f})"
            return f"Machine {self.machine_id} was terminated{cost}."
        cost = "" if self.cost_usd is None else f" (${self.cost_usd:.2f} so far)"
        kept = {
            "thread": "kept for this thread (until its agent run ends)",
            "pool": "returned to the pool",
        }
        return f"Machine {self.machine_id} is {kept.get(self.policy, 'kept')}{cost}."


@dataclass
class MachineLease:
    """The machine one call runs on, and what to do with it when the call ends."""

    machine_id: str
    policy: Literal["thread", "call", "pool"]
    ttl_minutes: int
    provisioned: bool = False
    usage: MachineUsage | None = None
    pool_key: str | None = None


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


MachineOp: TypeAlias = (
    Provision | Fetch | FindOwned | Start | WaitReady | Renew | Terminate | Announce
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
            run_id="", machine_id=op.usage.machine_id, seq=0, type="machine", data=data
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


# --- the call's machine -----------------------------------------------------------------

_RELEASE_TIMEOUT = 10.0


def _keeps_machine(exc: BaseException | None) -> bool:
    """A call that ends in a LangGraph interrupt keeps its machine for the paused run."""
    return exc is not None and is_graph_bubble_up(exc)


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
        if _keeps_machine(error):
            pass
        elif lease.policy == "pool":
            assert isinstance(policy, CoastyMachinePool)
            policy.give_back(lease)
            lease.usage = _usage(lease, None)
        elif lease.policy == "call":
            try:
                lease.usage = drive_machine_sync(release_steps(lease), client, announce)
            except Exception as failed:
                _release_failed(lease, failed, error)
        else:
            lease.usage = _usage(lease, None)


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
        if _keeps_machine(error):
            pass
        elif lease.policy == "pool":
            assert isinstance(policy, CoastyMachinePool)
            policy.give_back(lease)
            lease.usage = _usage(lease, None)
        elif lease.policy == "call":
            release = asyncio.ensure_future(
                drive_machine_async(release_steps(lease), client, announce)
            )
            try:
                async with asyncio.timeout(_RELEASE_TIMEOUT):
                    lease.usage = await asyncio.shield(release)
            except (Exception, asyncio.CancelledError) as failed:
                if isinstance(failed, asyncio.CancelledError) and not release.done():
                    with contextlib.suppress(BaseException):
                        lease.usage = await asyncio.wait_for(release, _RELEASE_TIMEOUT)
                else:
                    _release_failed(lease, failed, error)
        else:
            lease.usage = _usage(lease, None)


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


# --- the pool ---------------------------------------------------------------------------


class _EnvClients:
    """Clients configured from the environment, for a pool given no settings."""

    def __init__(self) -> None:
        self._sync: CoastyClient | None = None
        self._async: AsyncCoastyClient | None = None

    def get_client(self) -> CoastyClient:
        if self._sync is None:
            self._sync = CoastyClient()
        return self._sync

    def get_async_client(self) -> AsyncCoastyClient:
        if self._async is None:
            self._async = AsyncCoastyClient()
        return self._async


@dataclass
class _Book:
    """Which pool machines are free, and which call holds which (decisions, no I/O)."""

    free: deque[str] = field(default_factory=deque)
    held: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiters: deque[Any] = field(default_factory=deque)

    def take(self, key: str) -> str | None:
        with self.lock:
            if key in self.held:  # a re-executed call (after an interrupt) gets its machine back
                return self.held[key]
            if not self.free:
                return None
            machine_id = self.held[key] = self.free.popleft()
            return machine_id

    def give_back(self, key: str) -> None:
        with self.lock:
            machine_id = self.held.pop(key, None)
            if machine_id is None:
                return
            self.free.append(machine_id)
            waiters = list(self.waiters)
            self.waiters.clear()
        for wake in waiters:  # every waiter tries again; those that lose wait again
            wake()


class CoastyMachinePool:
    """N machines for concurrent calls: provisioned in parallel, lent one call at a time.

    Use it as ``with CoastyMachinePool(3, settings=tool) as pool:`` (or ``async with``) and
    give it to the tools as ``machine=pool``. On exit every machine is terminated.
    ``settings`` (a tool, toolkit, runnable or ``CoastySettings``) gives the clients; by
    default they come from ``COASTY_API_KEY`` / ``COASTY_BASE_URL``.
    """

    def __init__(
        self,
        size: int,
        spec: MachineSpec | None = None,
        *,
        settings: Any = None,
        max_parallel: int = 4,
        acquire_timeout: float | None = None,
    ) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 100:
            raise ValueError(f"size must be an integer in 1..100 (got {size!r})")
        if not isinstance(max_parallel, int) or not 1 <= max_parallel <= 32:
            raise ValueError(f"max_parallel must be an integer in 1..32 (got {max_parallel!r})")
        self.size = size
        self.spec = spec or MachineSpec()
        self.settings = settings if settings is not None else _EnvClients()
        self.max_parallel = max_parallel
        self.acquire_timeout = acquire_timeout
        self.machine_ids: list[str] = []
        self._book = _Book()
        self._name = f"pool-{id(self):x}"

    # -- lending (used by the tools)

    def take(self, key: str) -> MachineLease:
        """Lend a free machine to the call ``key``, waiting for one when all are out."""
        while True:
            machine_id = self._book.take(key)
            if machine_id is not None:
                return MachineLease(machine_id, "pool", self.spec.ttl_minutes, pool_key=key)
            ready = threading.Event()
            with self._book.lock:
                self._book.waiters.append(ready.set)
            if not ready.wait(self.acquire_timeout):
                raise TimeoutError(f"no machine of the pool came free in {self.acquire_timeout} s")

    async def atake(self, key: str) -> MachineLease:
        """Async twin of ``take``."""
        loop = asyncio.get_running_loop()
        while True:
            machine_id = self._book.take(key)
            if machine_id is not None:
                return MachineLease(machine_id, "pool", self.spec.ttl_minutes, pool_key=key)
            freed: asyncio.Future[None] = loop.create_future()

            def wake(f: asyncio.Future[None] = freed) -> None:
                loop.call_soon_threadsafe(_settle, f)

            with self._book.lock:
                self._book.waiters.append(wake)
            async with asyncio.timeout(self.acquire_timeout):
                await freed

    def give_back(self, lease: MachineLease) -> None:
        """Return a lent machine."""
        if lease.pool_key is not None:
            self._book.give_back(lease.pool_key)

    # -- provisioning and teardown

    def _requests(self) -> list[tuple[ProvisionRequest, str]]:
        return [
            (self.spec.request("pool", None), _key("pool", self._name, str(i)))
            for i in range(self.size)
        ]

    def __enter__(self) -> CoastyMachinePool:
        client: CoastyClient = self.settings.get_client()

        def one(item: tuple[ProvisionRequest, str]) -> str:
            record = client.machines.create_request(item[0], idempotency_key=item[1]).machine
            with self._book.lock:
                self.machine_ids.append(record.id)
            client.machines.wait_until(record.id, timeout=self.spec.ready_timeout)
            return record.id

        try:
            with ThreadPoolExecutor(self.max_parallel) as workers:
                ready = list(workers.map(one, self._requests()))
        except BaseException:
            self._terminate_all(client)
            raise
        self._book.free.extend(ready)
        return self

    def __exit__(self, *exc: object) -> None:
        self._terminate_all(self.settings.get_client())

    def _terminate_all(self, client: CoastyClient) -> None:
        def one(machine_id: str) -> None:
            try:
                with contextlib.suppress(NotFoundError):
                    client.machines.delete(machine_id)
            except CoastyError as exc:
                logger.error("Could not terminate pool machine %s: %s", machine_id, exc)

        with ThreadPoolExecutor(self.max_parallel) as workers:
            list(workers.map(one, list(self.machine_ids)))

    async def __aenter__(self) -> CoastyMachinePool:
        client: AsyncCoastyClient = self.settings.get_async_client()
        gate = asyncio.Semaphore(self.max_parallel)

        async def one(item: tuple[ProvisionRequest, str]) -> str:
            async with gate:
                result = await client.machines.create_request(item[0], idempotency_key=item[1])
                self.machine_ids.append(result.machine.id)
                await client.machines.wait_until(result.machine.id, timeout=self.spec.ready_timeout)
                return result.machine.id

        try:
            ready = await asyncio.gather(*(one(item) for item in self._requests()))
        except BaseException:
            await asyncio.shield(self._aterminate_all(client))
            raise
        self._book.free.extend(ready)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self._aterminate_all(self.settings.get_async_client()))

    async def _aterminate_all(self, client: AsyncCoastyClient) -> None:
        gate = asyncio.Semaphore(self.max_parallel)

        async def one(machine_id: str) -> None:
            async with gate:
                try:
                    with contextlib.suppress(NotFoundError):
                        await client.machines.delete(machine_id)
                except CoastyError as exc:
                    logger.error("Could not terminate pool machine %s: %s", machine_id, exc)

        await asyncio.gather(*(one(m) for m in list(self.machine_ids)))


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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
