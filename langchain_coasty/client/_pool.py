"""Spreading a client's runs over several small httpx connection pools.

httpcore's pool walks every pooled connection on each request and each release, so one pool
holding n open event streams costs O(n) per request and O(n^2) in all. A client that builds
its own transport therefore keeps a general pool (list, health, machines) plus up to
`shard_layout(max_connections)[0]` run pools, opened on first use and sharing one SSL
context. Every request of a run goes to the same run pool: the create by its idempotency
key, later calls by the run id (remembered from the create, so its connection is reused).
"""

from __future__ import annotations

import ssl
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

import httpx

__all__ = ["SHARD_CONNECTIONS", "RunPools", "shard_layout"]

SHARD_CONNECTIONS = 32
"""Connections a run pool is sized for (it may take up to twice that when runs hash unevenly)."""

_UNLIMITED_SHARDS = 128
_REMEMBERED_RUNS = 8192

_Http = TypeVar("_Http", httpx.Client, httpx.AsyncClient)


def shard_layout(max_connections: int | None) -> tuple[int, int | None]:
    """Number of run pools and the connection limit of each, for a client-wide limit."""
    if max_connections is None:
        return _UNLIMITED_SHARDS, None
    count = -(-max_connections // SHARD_CONNECTIONS)
    share = -(-max_connections // count)
    # Headroom over the even share: a hash never spreads runs perfectly evenly, and a run
    # that waits for a connection while other pools have room would be a regression.
    return count, min(max_connections, 2 * share)


class RunPools(Generic[_Http]):
    """The general pool and the lazily opened run pools of one client."""

    def __init__(
        self,
        max_connections: int | None,
        general_limits: httpx.Limits,
        make: Callable[[httpx.Limits, ssl.SSLContext], _Http],
    ) -> None:
        self._ssl = httpx.create_ssl_context()
        self._make: Callable[[httpx.Limits, ssl.SSLContext], _Http] = make
        count, per_pool = shard_layout(max_connections)
        self._limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        self._pools: list[_Http | None] = [None] * count
        self._runs: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        self.general: _Http = make(general_limits, self._ssl)

    def opened(self) -> list[_Http]:
        """The run pools opened so far."""
        return [pool for pool in self._pools if pool is not None]

    def _index(self, key: str) -> int:
        index = self._runs.get(key)
        if index is None:
            index = zlib.crc32(key.encode()) % len(self._pools)
        return index

    def for_key(self, key: str) -> _Http:
        """The pool for a run id or an idempotency key (stable for the client's life)."""
        index = self._index(key)
        pool = self._pools[index]
        if pool is not None:
            return pool
        with self._lock:
            if self._closed:
                return self.general  # closed: httpx raises as it would on one pool
            pool = self._pools[index]
            if pool is None:
                pool = self._pools[index] = self._make(self._limits, self._ssl)
            return pool

    def remember(self, run_id: str, key: str) -> None:
        """Send a created run's later requests to the pool its create used."""
        index = self._index(key)
        with self._lock:
            self._runs[run_id] = index
            if len(self._runs) > _REMEMBERED_RUNS:
                self._runs.popitem(last=False)

    def close_all(self) -> list[_Http]:
        """Mark closed and hand back every pool (general first) for the caller to close."""
        with self._lock:
            self._closed = True
            pools = [self.general]
            pools.extend(self.opened())
            self._pools = [None] * len(self._pools)
        return pools
