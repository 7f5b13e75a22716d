"""``CoastyMachinePool``: machines provisioned up front and lent to one call at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_coasty.client import (
    AsyncCoastyClient,
    CoastyClient,
    CoastyError,
    NotFoundError,
    ProvisionRequest,
)

if TYPE_CHECKING:
    pass

from langchain_coasty.machines.policies import MachineLease, MachineSpec
from langchain_coasty.machines.steps import _key

logger = logging.getLogger("langchain_coasty")

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
                return MachineLease(
                    machine_id, "pool", self.spec.ttl_minutes, pool_key=key, pool=self
                )
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
                return MachineLease(
                    machine_id, "pool", self.spec.ttl_minutes, pool_key=key, pool=self
                )
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
