"""The async client on aiohttp's transport (the ``[aiohttp]`` extra) keeps every guarantee."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_coasty import AsyncCoastyClient, IdleTimeoutError


def client(sb: Any, **kwargs: Any) -> AsyncCoastyClient:
    return AsyncCoastyClient(
        api_key=sb.api_key, base_url=sb.base_url, http_backend="aiohttp", **kwargs
    )


async def test_create_stream_and_wait(sb: Any) -> None:
    async with client(sb) as coasty:
        run = await coasty.runs.create(machine_id=sb.machine_id, task="Open the docs")
        seqs = [event.seq async for event in coasty.runs.events(run.id)]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 3
        assert (await coasty.runs.wait(run.id, timeout=30)).status == "succeeded"


async def test_cut_and_duplicated_streams_deliver_every_event_once(sb: Any) -> None:
    sb.inject(seed=4, stream_cut_rate=0.5, stream_cut_max_frames=3, stream_duplicate_rate=0.5)
    async with client(sb) as coasty:
        run = await coasty.runs.create(machine_id=sb.machine_id, task="Open the docs then read it")
        seqs = [event.seq async for event in coasty.runs.events(run.id)]
    assert seqs == list(range(1, len(seqs) + 1))
    fired = sb.counters()["faults_fired"]
    assert sum(n for name, n in fired.items() if name.startswith("stream_cut")) >= 1


async def test_a_lost_create_response_makes_one_run(sb: Any) -> None:
    sb.inject(seed=1, create_lose_response_rate=1.0)
    async with client(sb) as coasty:
        await coasty.runs.create(
            machine_id=sb.machine_id, task="Open the docs", idempotency_key="k-1"
        )
    assert sb.counters()["runs_created"] == 1


async def test_the_idle_timeout_holds(sb: Any) -> None:
    sb.inject(stream_stall_rate=1.0, stream_stall_seconds=30, stream_cut_max_frames=1)
    async with client(sb) as coasty:
        run = await coasty.runs.create(machine_id=sb.machine_id, task="Open the docs")
        with pytest.raises(IdleTimeoutError):
            async for _ in coasty.runs.events(run.id, idle_timeout=1.0):
                pass


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="http_backend must be 'httpx' or 'aiohttp'"):
        AsyncCoastyClient(api_key="sk-coasty-test-x", http_backend="curl")  # type: ignore[arg-type]
