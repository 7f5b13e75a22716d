"""A run leaves next to nothing for the cyclic garbage collector.

Its passes stall the event loop for as long as they walk the heap, so every object a run
leaves in a reference cycle is latency for every other run in the process. httpx's
responses sit in one (their body stream points back at them); the client breaks it once a
body is read, and reference counting frees the rest at once.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_coasty import AsyncCoastyClient, CoastyClient

RUNS = 5
LEFT_PER_RUN = 20
"""Before: some 140 objects a run (three responses of ~45 each); after: a few sockets."""


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_sync_runs_leave_no_cycles(sb: Any, no_collector: None) -> None:
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as coasty:
        coasty.runs.get(coasty.runs.create(machine_id=sb.machine_id, task="Open the docs").id)
        gc.collect()
        for _ in range(RUNS):
            run = coasty.runs.create(machine_id=sb.machine_id, task="Open the docs")
            assert [e.type for e in coasty.runs.events(run.id)][-1] == "done"
            assert coasty.runs.get(run.id).status == "succeeded"
        assert gc.collect() < RUNS * LEFT_PER_RUN


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_async_runs_leave_no_cycles(sb: Any, no_collector: None, backend: Any) -> None:
    async with AsyncCoastyClient(
        api_key=sb.api_key, base_url=sb.base_url, http_backend=backend
    ) as coasty:
        await coasty.runs.create(machine_id=sb.machine_id, task="Open the docs")
        gc.collect()
        for _ in range(RUNS):
            run = await coasty.runs.create(machine_id=sb.machine_id, task="Open the docs")
            assert [e.type async for e in coasty.runs.events(run.id)][-1] == "done"
            assert (await coasty.runs.get(run.id)).status == "succeeded"
        assert gc.collect() < RUNS * LEFT_PER_RUN
