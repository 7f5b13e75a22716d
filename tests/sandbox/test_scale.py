"""One process holds 1,000 concurrent runs, each with an open event stream, to `done`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
from httpx_sse import aconnect_sse

from langchain_coasty.sandbox import SandboxControl
from tests.sandbox.conftest import sandbox_process

RUNS = 1000
# httpcore scans its whole pool on every request, so spread the connections over clients.
CLIENTS = 25


async def test_thousand_concurrent_runs_with_open_streams() -> None:
    # The server gets a process (and a core) of its own; the clients run here.
    with sandbox_process("--pace", "0", "--log-level", "warning") as sb:
        await _thousand_runs(sb)


async def _thousand_runs(sb: SandboxControl) -> None:
    # Every run pauses for approval, so all 1,000 streams are open at once before any ends.
    key = "sk-coasty-test-scale"
    machine_id = sb.info()["machine_ids"][0]
    sb.load_scenarios([{"match": "^Approve invoice", "steps": 2, "pauses": [{"after_step": 1}]}])
    per_client = RUNS // CLIENTS + 10
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    headers = {"X-API-Key": key}
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=sb.base_url, headers=headers, limits=limits, timeout=60.0
                )
            )
            for _ in range(CLIENTS)
        ]
        paused = asyncio.Event()
        waiting = 0
        started = time.monotonic()

        async def one(i: int) -> list[str]:
            nonlocal waiting
            client = clients[i % CLIENTS]
            created = await client.post(
                "/v1/runs", json={"machine_id": machine_id, "task": f"Approve invoice {i}"}
            )
            assert created.status_code == 200, created.text
            run_id = created.json()["id"]
            seen: list[str] = []
            async with aconnect_sse(client, "GET", f"/v1/runs/{run_id}/events") as es:
                async for sse in es.aiter_sse():
                    seen.append(sse.event)
                    assert json.loads(sse.data)["seq"] == len(seen)
                    if sse.event == "awaiting_human":
                        waiting += 1
                        if waiting == RUNS:
                            paused.set()
                        await paused.wait()
                        resumed = await client.post(f"/v1/runs/{run_id}/resume")
                        assert resumed.status_code == 200
            return seen

        tasks = [asyncio.ensure_future(one(i)) for i in range(RUNS)]
        async with asyncio.timeout(90):
            await paused.wait()
            counters = await asyncio.to_thread(sb.counters)
            assert counters["open_streams"] == RUNS
            assert counters["runs_by_status"]["awaiting_human"] == RUNS
            results = await asyncio.gather(*tasks)
    assert all(seen[-1] == "done" for seen in results)
    assert all(seen.count("step") == 2 for seen in results)
    counters = sb.counters()
    assert counters["runs_by_status"]["succeeded"] == RUNS
    assert counters["open_streams"] == 0
    print(f"{RUNS} runs with open streams done in {time.monotonic() - started:.1f} s")
