"""`runs.events(..., idle_timeout=)`: a silent stream ends in `IdleTimeoutError`, on both twins.

Heartbeats are not events, and the time a caller spends between two events is not silence.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from langchain_coasty import AsyncCoastyClient, CoastyClient, IdleTimeoutError, RunStatus
from langchain_coasty.client import InvalidRequestError

pytestmark = pytest.mark.usefixtures("framing")

PAUSING = "Log in with the password"


@pytest.fixture
def chatty(sb: Any) -> Any:
    """Heartbeats every 50 ms: a silent run's stream is never silent on the wire."""
    sb.configure(heartbeat_interval=0.05)
    return sb


@pytest.mark.timeout(30)
async def test_a_paused_run_goes_idle_despite_heartbeats(
    client: CoastyClient, aclient: AsyncCoastyClient, chatty: Any
) -> None:
    run = client.runs.create(machine_id=chatty.machine_id, task=PAUSING)
    seen: list[str] = []
    with pytest.raises(IdleTimeoutError) as sync_error:
        for event in client.runs.events(run.id, idle_timeout=0.3):
            seen.append(event.type)
    assert seen[-1] == "awaiting_human"
    with pytest.raises(IdleTimeoutError) as async_error:
        async for _ in aclient.runs.events(run.id, after=len(seen), idle_timeout=0.3):
            pass
    for error in (sync_error.value, async_error.value):
        assert error.run_id == run.id
        assert f"No event from run {run.id} for 0.3 s (last seq {len(seen)})" in str(error)
    assert client.runs.get(run.id).status is RunStatus.AWAITING_HUMAN  # going idle cancels nothing


def _steady_run(client: CoastyClient, sb: Any) -> str:
    sb.load_scenarios([{"name": "steady", "match": "steady job", "steps": 6, "pace": 0.02}])
    return client.runs.create(machine_id=sb.machine_id, task="a steady job").id


@pytest.mark.timeout(30)
def test_time_spent_between_events_is_not_idle_time(client: CoastyClient, sb: Any) -> None:
    run_id = _steady_run(client, sb)
    types = []
    # The server's own gaps (20 ms) are far below the idle timeout even on a loaded machine;
    # the consumer's are above it.
    for event in client.runs.events(run_id, idle_timeout=1.0):
        types.append(event.type)
        if len(types) <= 2:
            time.sleep(1.2)  # a slow consumer (a callback doing work), longer than idle_timeout
    assert types[-1] == "done" and len(types) > 10


@pytest.mark.timeout(30)
async def test_time_spent_between_events_is_not_idle_time_async(
    client: CoastyClient, aclient: AsyncCoastyClient, sb: Any
) -> None:
    run_id = _steady_run(client, sb)
    types = []
    async for event in aclient.runs.events(run_id, idle_timeout=1.0):
        types.append(event.type)
        if len(types) <= 2:
            await asyncio.sleep(1.2)  # a slow consumer, longer than idle_timeout
    assert types[-1] == "done" and len(types) > 10


def test_idle_timeout_is_checked_before_any_request(client: CoastyClient, sb: Any) -> None:
    before = sb.counters()
    for bad in (0, -1, float("nan"), "5"):
        with pytest.raises(InvalidRequestError, match="idle_timeout"):
            client.runs.events("run-1", idle_timeout=bad)  # type: ignore[arg-type]
    assert sb.counters() == before
