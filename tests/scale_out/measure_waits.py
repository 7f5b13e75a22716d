"""Measure N durable waits against N streaming waits from one process.

Run it: ``python tests/scale_out/measure_waits.py [--runs 1000] [--pace 4] [--window 5]``.

A sandbox runs in its own process (so its work is not counted). Each mode runs in a fresh
child process: N graph threads each call ``CoastyRunnable`` from a node (one run per thread,
InMemorySaver); once all N runs are under way the child samples, for ``--window`` seconds
while the runs work, its open TCP connections to Coasty, its resident memory (above the
same process before the N threads started) and its CPU use. Durable threads are then woken
with ``RECHECK`` once their runs have ended, and every thread must finish with a succeeded
run. Prints a Markdown table and one JSON line per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import socket
import subprocess
import sys
import time
from typing import Any, TypedDict

N_DEFAULT = 1000
SAMPLE_EVERY = 0.25


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _State(TypedDict, total=False):
    task: str
    status: str


async def _child(
    mode: str, base_url: str, api_key: str, machine: str, n: int, window: float
) -> None:
    import psutil
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command

    from langchain_coasty import CoastyRunnable
    from langchain_coasty.durable import RECHECK
    from langchain_coasty.sandbox import SandboxControl

    runnable = CoastyRunnable(
        api_key=api_key, base_url=base_url, machine_id=machine, wait=mode, max_retries=5
    )

    async def work(state: _State, config: RunnableConfig) -> _State:
        run = await runnable.ainvoke(state["task"], config)
        return {"status": run.status.value}

    builder = StateGraph(_State)
    builder.add_node("work", work)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    control = SandboxControl(base_url)
    proc = psutil.Process()
    port = int(base_url.rsplit(":", 1)[1])

    def connections() -> int:
        return sum(
            1
            for c in proc.net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
        )

    def cfg(i: int) -> RunnableConfig:
        return {"configurable": {"thread_id": f"{mode}-{i}"}}

    # Warm up the code paths with one thread, then take the baseline.
    warm = await graph.ainvoke({"task": "Open the notes app (warm-up)"}, cfg(-1))
    if mode == "durable":
        run_id = warm["__interrupt__"][0].value["run_id"]
        await runnable.get_async_client().runs.wait(run_id, timeout=120)
        await graph.ainvoke(Command(resume=RECHECK), cfg(-1))
    control.reset()
    gc.collect()
    base_rss = proc.memory_info().rss

    tasks = [
        asyncio.ensure_future(graph.ainvoke({"task": f"Open the notes app, note {i}"}, cfg(i)))
        for i in range(n)
    ]
    started = time.monotonic()
    # "Under way": every run created, and every stream opened (streaming) or every thread
    # paused on its durable wait.
    while True:
        counters = control.counters()
        ready = counters["runs_created"] >= n
        if mode == "stream":
            ready = ready and counters["stream_connections"] >= n
        else:
            ready = ready and all(t.done() for t in tasks)
        if ready:
            break
        if time.monotonic() - started > 300:
            raise SystemExit(f"{mode}: the {n} waits did not start within 300 s")
        await asyncio.sleep(SAMPLE_EVERY)
    setup_s = time.monotonic() - started

    gc.collect()
    samples: list[tuple[int, int]] = []
    cpu0, t0 = proc.cpu_times(), time.monotonic()
    while time.monotonic() - t0 < window:
        await asyncio.sleep(SAMPLE_EVERY)
        samples.append((connections(), proc.memory_info().rss))
    cpu1, t1 = proc.cpu_times(), time.monotonic()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    during = control.counters()
    running = during["runs_by_status"]
    still_working = running.get("running", 0) + running.get("queued", 0)

    finish_start = time.monotonic()
    if mode == "durable":
        while control.counters()["runs_by_status"].get("succeeded", 0) < n:
            if time.monotonic() - finish_start > 600:
                raise SystemExit("durable: runs did not finish within 600 s")
            await asyncio.sleep(SAMPLE_EVERY)
        woken = time.monotonic()
        gate = asyncio.Semaphore(100)

        async def wake(i: int) -> Any:
            async with gate:
                return await graph.ainvoke(Command(resume=RECHECK), cfg(i))

        results = await asyncio.gather(*(wake(i) for i in range(n)))
        wake_s = time.monotonic() - woken
    else:
        results = await asyncio.gather(*tasks)
        wake_s = 0.0
    statuses = {r.get("status") for r in results}
    assert statuses == {"succeeded"}, statuses
    counters = control.counters()
    assert counters["runs_created"] == n, counters["runs_created"]

    report = {
        "mode": mode,
        "runs": n,
        "runs_working_during_window": still_working,
        "setup_s": round(setup_s, 2),
        "window_s": round(t1 - t0, 2),
        "connections_max": max(c for c, _ in samples),
        "connections_mean": round(sum(c for c, _ in samples) / len(samples), 1),
        "rss_above_baseline_mb": round((max(r for _, r in samples) - base_rss) / 2**20, 1),
        "rss_mb": round(max(r for _, r in samples) / 2**20, 1),
        "cpu_percent_of_one_core": round(100 * cpu_s / (t1 - t0), 1),
        "event_streams_open": during["open_streams"],
        "stream_connections_total": counters["stream_connections"],
        "wake_all_s": round(wake_s, 2),
    }
    print(json.dumps(report))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=N_DEFAULT)
    parser.add_argument("--pace", type=float, default=4.0, help="sandbox seconds per step")
    parser.add_argument("--window", type=float, default=5.0, help="seconds of sampling")
    parser.add_argument("--modes", default="durable,stream")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _raise_fd_limit()
    api_key = "sk-coasty-test-" + "0" * 32
    if args.child:
        asyncio.run(
            _child(args.child, args.base_url, api_key, "m-sandbox-1", args.runs, args.window)
        )
        return

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen(
        [
            *(sys.executable, "-m", "langchain_coasty.sandbox.cli", "--port", str(port)),
            *("--pace", str(args.pace), "--log-level", "warning"),
        ],
        env={**os.environ, "COASTY_API_KEY": api_key},
    )
    try:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base_url}/v1/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("the sandbox did not start") from None
                time.sleep(0.1)
        reports = []
        for mode in args.modes.split(","):
            out = subprocess.run(
                [
                    *(sys.executable, __file__, "--child", mode, "--base-url", base_url),
                    *("--runs", str(args.runs), "--window", str(args.window)),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            reports.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(reports[-1]), flush=True)
    finally:
        sandbox.terminate()
        sandbox.wait(10)

    print(f"\n{args.runs} waits from one process (sandbox pace {args.pace} s/step):\n")
    print(
        "| wait | event streams open | TCP connections to Coasty | memory above baseline "
        "| CPU (% of one core) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for r in reports:
        print(
            f"| {r['mode']} | {r['event_streams_open']} | {r['connections_max']} "
            f"| {r['rss_above_baseline_mb']} MB | {r['cpu_percent_of_one_core']} % |"
        )


if __name__ == "__main__":
    main()
