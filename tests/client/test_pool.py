"""Many concurrent runs are spread over several small connection pools, each run on one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from langchain_coasty import AsyncCoastyClient, CoastyClient
from langchain_coasty.client._pool import SHARD_CONNECTIONS, shard_layout

RUNS = 300


def test_capacity_follows_max_connections() -> None:
    for limit in (1, 10, 31, 32, 33, 100, 300, 1000, 4096, 10_000):
        count, per_pool = shard_layout(limit)
        assert per_pool is not None
        assert count * per_pool >= limit  # every run fits
        assert per_pool <= min(limit, 2 * SHARD_CONNECTIONS)  # no pool grows large
    assert shard_layout(None)[1] is None


async def test_many_concurrent_streams_spread_over_pools(sb: Any) -> None:
    # Every run pauses after its first step, so all streams are open at once before any ends.
    sb.load_scenarios([{"match": "^Pool run", "steps": 2, "pauses": [{"after_step": 1}]}])

    async with AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        assert client._pools is not None
        paused = asyncio.Event()
        waiting = 0

        async def one(i: int) -> list[int]:
            nonlocal waiting
            run = await client.runs.create(machine_id=sb.machine_id, task=f"Pool run {i}")
            seqs: list[int] = []
            async with client.runs.events(run.id) as stream:
                async for event in stream:
                    seqs.append(event.seq)
                    if event.type == "awaiting_human":
                        waiting += 1
                        if waiting == RUNS:
                            paused.set()
                        await paused.wait()
                        await client.runs.resume(run.id)
            assert (await client.runs.get(run.id)).status.value == "succeeded"
            return seqs

        async with asyncio.timeout(120):
            tasks = [asyncio.ensure_future(one(i)) for i in range(RUNS)]
            await paused.wait()
            counters = await asyncio.to_thread(sb.counters)
            assert counters["open_streams"] == RUNS  # no stream waited for a connection
            results = await asyncio.gather(*tasks)
        opened = client._pools.opened()

    assert all(seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 5 for seqs in results)
    assert len(opened) > 1
    assert len(opened) <= shard_layout(client.max_connections)[0]
    assert sb.counters()["runs_by_status"]["succeeded"] == RUNS


def test_every_request_of_a_run_uses_one_pool(sb: Any) -> None:
    sent: list[tuple[str, str, int]] = []  # (path, idempotency key, pool)

    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        assert client._pools is not None
        make = client._pools._make

        def make_recorded(limits: httpx.Limits, ssl: Any) -> httpx.Client:
            pool = make(limits, ssl)
            pool.event_hooks["request"] = [
                lambda r: sent.append((r.url.path, r.headers.get("idempotency-key", ""), id(pool)))
            ]
            return pool

        client._pools._make = make_recorded
        keys = [f"pool-test-{i}" for i in range(20)]
        runs = [
            client.runs.create(machine_id=sb.machine_id, task="Open the report", idempotency_key=k)
            for k in keys
        ]
        for run in runs:
            client.runs.wait(run.id)
        assert len(client._pools.opened()) > 1

    for key, run in zip(keys, runs, strict=True):
        used = {pool for path, k, pool in sent if k == key or run.id in path}
        assert len(used) == 1  # create, get and events all on the create's pool
    with pytest.raises(RuntimeError):
        client.runs.get(runs[0].id)  # closed: every pool, as with one pool before


async def test_close_closes_every_pool(sb: Any) -> None:
    client = AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url)
    assert client._pools is not None
    runs = [await client.runs.create(machine_id=sb.machine_id, task=f"Open {i}") for i in range(8)]
    opened: list[httpx.AsyncClient] = client._pools.opened()
    assert len(opened) > 1
    await client.close()
    assert client._http.is_closed and all(pool.is_closed for pool in opened)
    with pytest.raises(RuntimeError):
        await client.runs.get(runs[0].id)
