"""Safety under injected faults, with counts asserted from the sandbox's control plane."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from langchain_coasty import AsyncCoastyClient, CoastyClient, RunEvent

pytestmark = pytest.mark.usefixtures("framing")

CREATE_FAULTS = {
    "seed": 11,
    "create_refuse_rate": 0.1,
    "create_lose_response_rate": 0.1,
    "create_rate_limit_rate": 0.1,
    "retry_after": 0,
}
Fired = Callable[[], dict[str, int]]

STREAM_FAULTS = {
    "seed": 5,
    "stream_cut_rate": 0.5,
    "stream_cut_max_frames": 20,
    "stream_cut_mode": "random",
    "stream_duplicate_rate": 0.3,
}


def fingerprint(events: list[RunEvent]) -> list[tuple[int, str, Any]]:
    return [(e.seq, e.type, e.data) for e in events]


def assert_exactly_once(events: list[RunEvent], reference: list[RunEvent]) -> None:
    assert fingerprint(events) == fingerprint(reference)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "done"


def test_50_creates_under_30_percent_faults_make_exactly_50_runs(sb: Any, fired: Fired) -> None:
    sb.inject(**CREATE_FAULTS)
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url, max_retries=8) as client:

        def create(i: int) -> str:
            return client.runs.create(machine_id=sb.machine_id, task=f"Open file {i}").id

        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(pool.map(create, range(50)))
        assert len(set(ids)) == 50
        assert len(client.runs.list(limit=200).data) == 50
    counters = sb.counters()
    faults = fired()
    assert counters["runs_created"] == 50
    assert sum(faults.values()) >= 10
    assert {"create_lose_response", "create_refuse", "create_rate_limit"} <= set(faults), faults
    assert counters["create_calls"] > 50


async def test_async_creates_under_faults_make_exactly_one_run_each(sb: Any) -> None:
    sb.inject(**{**CREATE_FAULTS, "seed": 12})
    async with AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url, max_retries=8) as c:
        runs = await asyncio.gather(
            *(c.runs.create(machine_id=sb.machine_id, task=f"Open file {i}") for i in range(50))
        )
    assert len({r.id for r in runs}) == 50
    assert sb.counters()["runs_created"] == 50


def test_a_lost_create_is_recovered_by_its_key_not_recreated(
    client: CoastyClient, sb: Any, fired: Fired
) -> None:
    sb.inject(seed=1, create_lose_response_rate=1.0)
    result = client.runs.create_with_response(machine_id=sb.machine_id, task="Open the notes")
    counters = sb.counters()
    assert counters["runs_created"] == 1 and counters["create_calls"] == 1
    assert fired() == {"create_lose_response": 1}
    assert result.replayed is False
    assert client.runs.get(result.run.id).id == result.run.id


def _slow_scenario(sb: Any, steps: int, pace: float) -> None:
    sb.load_scenarios([{"name": "slow", "match": "slow job", "steps": steps, "pace": pace}])


def test_sync_streams_survive_cuts_duplicates_and_rotation(
    client: CoastyClient, sb: Any, fired: Fired
) -> None:
    _slow_scenario(sb, steps=10, pace=0.2)  # ~2 s per run: rotation hits every stream
    sb.configure(rotation_seconds=1.0, heartbeat_interval=0.05)
    runs = [client.runs.create(machine_id=sb.machine_id, task=f"slow job {i}") for i in range(8)]
    sb.inject(**STREAM_FAULTS)
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        streamed = list(pool.map(lambda r: list(client.runs.events(r.id)), runs))
    counters, faults = sb.counters(), fired()
    sb.clear_faults()
    for run, events in zip(runs, streamed, strict=True):
        assert_exactly_once(events, list(client.runs.events(run.id)))
    cuts = faults.get("stream_cut_abrupt", 0) + faults.get("stream_cut_clean", 0)
    assert cuts > 0, faults
    assert faults.get("stream_duplicate", 0) > 0, faults
    # Every connection ends at done, at a cut or at a rotation: the rest were rotations.
    assert counters["stream_connections"] - len(runs) - cuts >= len(runs)


async def test_200_concurrent_async_streams_get_every_event_once(sb: Any, fired: Fired) -> None:
    # Every run pauses after one step, so all 200 streams are open at once before any resumes.
    sb.load_scenarios(
        [{"name": "parked", "match": "parked job", "steps": 2, "pauses": [{"after_step": 1}]}]
    )
    sb.configure(rotation_seconds=1.0)
    sb.inject(**STREAM_FAULTS)
    async with AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url, timeout=30) as c:
        paused = 0
        all_paused = asyncio.Event()

        async def follow(i: int) -> list[RunEvent]:
            nonlocal paused
            run = await c.runs.create(machine_id=sb.machine_id, task=f"parked job {i}")
            events = []
            async with c.runs.events(run.id) as stream:
                async for event in stream:
                    events.append(event)
                    if event.type == "awaiting_human":
                        paused += 1
                        if paused == 200:
                            all_paused.set()
                        await all_paused.wait()
                        await c.runs.resume(run.id)
            return events

        streamed = await asyncio.gather(*(follow(i) for i in range(200)))
        counters, faults = sb.counters(), fired()
        sb.clear_faults()
        run_ids = [r.id for r in (await c.runs.list(limit=200)).data]
        async with c.runs.events(run_ids[0]) as stream:
            reference_length = len([event async for event in stream])
    assert counters["runs_by_status"]["succeeded"] == 200
    assert counters["events_emitted"] == 200 * reference_length
    for events in streamed:
        assert [e.seq for e in events] == list(range(1, reference_length + 1))
        assert events[-1].type == "done" and events[-1].status == "succeeded"
        assert [e.type for e in events].count("awaiting_human") == 1
    cuts = faults.get("stream_cut_abrupt", 0) + faults.get("stream_cut_clean", 0)
    assert cuts > 20 and faults.get("stream_duplicate", 0) > 0, faults
    # Each stream ends once at done; every cut cost one more connection (rotations, which
    # depend on how long the streams stay open, may add more).
    assert counters["stream_connections"] >= 200 + cuts


def test_stalled_stream_reconnects_after_the_read_timeout(sb: Any, fired: Fired) -> None:
    _slow_scenario(sb, steps=3, pace=0.0)
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url, stream_read_timeout=0.3) as client:
        run = client.runs.create(machine_id=sb.machine_id, task="slow job")
        client.runs.wait(run.id)
        reference = list(client.runs.events(run.id))
        sb.inject(seed=3, stream_stall_rate=1.0, stream_stall_seconds=30, stream_cut_max_frames=8)
        events = list(client.runs.events(run.id))
    assert_exactly_once(events, reference)
    assert fired().get("stream_stall", 0) >= 1


def test_memory_stays_flat_over_a_long_stream(client: CoastyClient, sb: Any) -> None:
    sb.load_scenarios([{"name": "long", "match": "long job", "steps": 3, "events": 6000}])
    run = client.runs.create(machine_id=sb.machine_id, task="long job")
    client.runs.wait(run.id)
    stream = client.runs.events(run.id)
    count = 0
    tracemalloc.start()
    try:
        for event in stream:
            last_type = event.type
            count += 1
            if count == 1000:
                tracemalloc.reset_peak()
                baseline = tracemalloc.get_traced_memory()[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 6000 and last_type == "done"
    assert peak - baseline < 1_000_000
