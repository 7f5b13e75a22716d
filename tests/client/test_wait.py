"""`runs.wait` against the sandbox: the sync and async twins time out with the same error."""

from __future__ import annotations

import re
from typing import Any

import pytest

from langchain_coasty import APITimeoutError, AsyncCoastyClient, CoastyClient, RunStatus

pytestmark = pytest.mark.usefixtures("framing")

TIMED_OUT = re.compile(
    r"Run (?P<run>\S+) did not finish within 0\.3 s \(last event seq (?P<seq>\d+)\); "
)


def wait_error(call: Any) -> APITimeoutError:
    with pytest.raises(APITimeoutError) as info:
        call()
    return info.value


async def async_wait_error(call: Any) -> APITimeoutError:
    with pytest.raises(APITimeoutError) as info:
        await call()
    return info.value


async def test_a_paused_run_times_out_alike_in_both_twins(
    client: CoastyClient, aclient: AsyncCoastyClient, sb: Any
) -> None:
    run = client.runs.create(machine_id=sb.machine_id, task="Log in with the password")
    with client.runs.events(run.id) as stream:
        pause = next(event for event in stream if event.type == "awaiting_human")

    sync_error = wait_error(lambda: client.runs.wait(run.id, timeout=0.3))
    async_error = await async_wait_error(lambda: aclient.runs.wait(run.id, timeout=0.3))

    assert type(sync_error) is type(async_error) is APITimeoutError
    assert vars(sync_error) == vars(async_error)
    assert str(sync_error) == str(async_error)
    assert sync_error.run_id == run.id and sync_error.idempotency_key is None
    match = TIMED_OUT.match(str(sync_error))
    assert match and match["run"] == run.id and int(match["seq"]) == pause.seq
    assert client.runs.get(run.id).status is RunStatus.AWAITING_HUMAN  # waiting never cancels


async def test_a_busy_run_times_out_alike_in_both_twins(
    client: CoastyClient, aclient: AsyncCoastyClient, sb: Any
) -> None:
    sb.load_scenarios([{"name": "long", "match": "long job", "steps": 400, "pace": 0.05}])
    run = client.runs.create(machine_id=sb.machine_id, task="a long job")

    sync_error = wait_error(lambda: client.runs.wait(run.id, timeout=0.3))
    async_error = await async_wait_error(lambda: aclient.runs.wait(run.id, timeout=0.3))

    for error in (sync_error, async_error):
        assert type(error) is APITimeoutError and error.run_id == run.id
        match = TIMED_OUT.match(str(error))
        assert match and match["run"] == run.id, str(error)
    assert set(vars(sync_error)) == set(vars(async_error))
    assert not client.runs.get(run.id).is_terminal
    client.runs.cancel(run.id)


async def test_wait_without_a_deadline_returns_the_finished_run_in_both_twins(
    client: CoastyClient, aclient: AsyncCoastyClient, sb: Any
) -> None:
    first = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
    second = await aclient.runs.create(machine_id=sb.machine_id, task="Open the calculator")
    assert client.runs.wait(first.id).status is RunStatus.SUCCEEDED
    assert (await aclient.runs.wait(second.id)).status is RunStatus.SUCCEEDED
