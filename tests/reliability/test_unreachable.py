"""Coasty going away mid-run: typed errors after the retry budget, no orphan, no hang.

A loopback proxy stands between the client and the sandbox: ``down()`` refuses
connections, ``silent()`` accepts them and never answers. The sandbox keeps its state,
so "the server returns" is ``up()`` and the run the call left behind can be looked at.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from langchain_coasty import (
    APIConnectionError,
    APITimeoutError,
    AsyncCoastyClient,
    CoastyClient,
    CoastyComputerTool,
    CoastyRunnable,
)

from ._proxy import TcpProxy
from .conftest import LONG_JOB, StepSeen

pytestmark = pytest.mark.usefixtures("fast_retries")

NON_TERMINAL = ("queued", "running", "awaiting_human")


def tool_call(task: str) -> dict[str, Any]:
    return {"type": "tool_call", "id": "call_1", "name": "coasty_computer", "args": {"task": task}}


def live_runs(sb: Any) -> int:
    by_status = sb.counters()["runs_by_status"]
    return sum(by_status[s] for s in NON_TERMINAL)


async def test_server_down_mid_run_names_the_run_which_can_be_recovered(
    sb: Any, proxy: TcpProxy
) -> None:
    sb.load_scenarios(LONG_JOB)
    client = AsyncCoastyClient(api_key=sb.api_key, base_url=proxy.base_url, timeout=2.0)
    tool = CoastyComputerTool(async_client=client, machine_id=sb.machine_id, max_steps=1000)
    seen = StepSeen()
    started = time.monotonic()
    call = asyncio.create_task(tool.ainvoke(tool_call("a long job"), {"callbacks": [seen]}))
    await seen.wait()
    proxy.down()
    message = await asyncio.wait_for(call, 20)
    elapsed = time.monotonic() - started

    assert isinstance(message, ToolMessage) and message.status == "error"
    (run_id,) = seen.run_ids
    assert run_id in message.content, message.content
    assert "ConnectError" in message.content
    assert elapsed < 15
    # Coasty comes back: the run the call left is found by its id and stopped.
    proxy.up()
    assert (await client.runs.get(run_id)).status.value == "running"
    assert (await client.runs.cancel(run_id)).status.value == "cancelled"
    assert live_runs(sb) == 0
    await client.close()


async def test_runnable_error_carries_the_run_id_when_the_server_goes_silent(
    sb: Any, proxy: TcpProxy
) -> None:
    sb.load_scenarios(LONG_JOB)
    client = AsyncCoastyClient(
        api_key=sb.api_key, base_url=proxy.base_url, timeout=1.0, stream_read_timeout=0.3
    )
    runnable = CoastyRunnable(async_client=client, machine_id=sb.machine_id, max_steps=1000)
    seen = StepSeen()
    call = asyncio.create_task(runnable.ainvoke("a long job", {"callbacks": [seen]}))
    await seen.wait()
    proxy.silent()
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        await asyncio.wait_for(call, 30)
    # Nine connection attempts, each bounded by the read timeout: no hang.
    assert time.monotonic() - started < 15
    (run_id,) = seen.run_ids
    assert caught.value.run_id == run_id
    assert run_id in str(caught.value)
    proxy.up()
    await client.runs.cancel(run_id)
    assert live_runs(sb) == 0
    await client.close()


def test_sync_tool_with_the_server_down_mid_run(sb: Any, proxy: TcpProxy) -> None:
    sb.load_scenarios(LONG_JOB)
    client = CoastyClient(api_key=sb.api_key, base_url=proxy.base_url, timeout=2.0)
    tool = CoastyComputerTool(client=client, machine_id=sb.machine_id, max_steps=1000)

    class DownAfterFirstStep(StepSeen):
        def on_coasty_step(self, event: Any) -> None:
            if not self.started.is_set():
                self.started.set()
                proxy.down()

    seen = DownAfterFirstStep()
    message = tool.invoke(tool_call("a long job"), {"callbacks": [seen]})
    assert message.status == "error"
    (run_id,) = seen.run_ids
    assert run_id in message.content
    proxy.up()
    client.runs.cancel(run_id)
    assert live_runs(sb) == 0
    client.close()


async def test_create_while_down_is_typed_and_starts_nothing(sb: Any, proxy: TcpProxy) -> None:
    proxy.down()
    client = AsyncCoastyClient(api_key=sb.api_key, base_url=proxy.base_url, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(APIConnectionError, match="ConnectError") as caught:
        await client.runs.create(machine_id=sb.machine_id, task="Open the notes app")
    assert time.monotonic() - started < 5
    # Never delivered, so provably nothing was started: no recovery hint is needed.
    assert caught.value.idempotency_key is None
    assert sb.counters()["create_calls"] == 0
    await client.close()


async def test_create_into_silence_reports_the_key_to_recover_with(
    sb: Any, proxy: TcpProxy
) -> None:
    proxy.silent()
    client = AsyncCoastyClient(api_key=sb.api_key, base_url=proxy.base_url, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        await client.runs.create(
            machine_id=sb.machine_id, task="Open the notes app", idempotency_key="rel-silent-1"
        )
    assert time.monotonic() - started < 10
    assert caught.value.idempotency_key == "rel-silent-1"
    assert "idempotency.get('rel-silent-1')" in str(caught.value)
    proxy.up()
    # The same call again attaches to whatever the first one did: one run at most.
    run = await client.runs.create(
        machine_id=sb.machine_id, task="Open the notes app", idempotency_key="rel-silent-1"
    )
    assert sb.counters()["runs_created"] == 1
    await client.runs.wait(run.id, timeout=10)
    await client.close()


async def test_lost_create_response_and_unreachable_lookup_report_the_key(sb: Any) -> None:
    """The run was created, its answer lost, and the lookup fails: the key finds it later."""
    sb.inject(
        create_lose_response_rate=1.0,
        errors=[
            {
                "method": "GET",
                "path": "/v1/idempotency/{key}",
                "status": 503,
                "code": "SERVICE_UNAVAILABLE",
                "times": 10,
            }
        ],
    )
    client = AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url, timeout=2.0)
    with pytest.raises(APIConnectionError) as caught:
        await client.runs.create(
            machine_id=sb.machine_id, task="Open the notes app", idempotency_key="rel-lost-1"
        )
    assert caught.value.idempotency_key == "rel-lost-1"
    sb.clear_faults()
    lookup = await client.idempotency.get("rel-lost-1")
    assert lookup.is_completed and isinstance(lookup.result, dict)
    assert sb.counters()["runs_created"] == 1
    await client.runs.wait(lookup.result["id"], timeout=10)
    assert live_runs(sb) == 0
    await client.close()


async def test_every_wait_is_bounded_against_a_silent_server(sb: Any, proxy: TcpProxy) -> None:
    sb.load_scenarios(LONG_JOB)
    client = AsyncCoastyClient(api_key=sb.api_key, base_url=proxy.base_url, timeout=0.5)
    run = await client.runs.create(machine_id=sb.machine_id, task="a long job", max_steps=1000)
    proxy.silent()
    for call in (
        lambda: client.runs.wait(run.id, timeout=1.0),
        lambda: client.runs.get(run.id),
        lambda: client.runs.cancel(run.id),
        lambda: client.health(),
    ):
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            await call()
        assert time.monotonic() - started < 5
    proxy.up()
    await client.runs.cancel(run.id)
    assert live_runs(sb) == 0
    await client.close()
