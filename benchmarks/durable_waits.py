"""Benchmark 9: N durable waits from one process, each thread resumed by its run's webhook.

The waits run in a fresh interpreter (``python -m benchmarks.durable_waits``) so that its
memory is its own. It serves its webhook receiver (Starlette on uvicorn, on the same event
loop as the graph), starts N LangGraph threads (InMemorySaver) whose node calls
``CoastyRunnable(wait="durable")`` and, while all N wait, samples its TCP connections to the
sandbox, its memory above the same process before the threads started and its CPU. The
sandbox's runs then end and its webhooks resume the threads: ``averify_run_webhook``, then
``aresume_from_webhook`` with an async callback handler that records every event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import resource
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any, TypedDict

import httpx
import psutil

from benchmarks import _paths
from benchmarks._harness import Sandbox, free_port, percentile

EVENTS_FIXED = 5
EVENTS_PER_STEP = 5
CONNECTIONS_TARGET = 10
"""The issue's target: no connection per waiting run; at most this many while N wait."""
START_CONCURRENCY = 10
"""Threads started at once: the fan-out of the creates (as a caller of 10,000 would gate
it); the client's pool keeps about this many idle connections afterwards."""
FD_HEADROOM = 1024
SAMPLE_EVERY = 0.25


def fd_limit(need: int, pid: int | None = None) -> tuple[int, int]:
    """Raise a process's soft fd limit to its hard limit when below ``need``; return it."""
    if pid is None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < need and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return resource.getrlimit(resource.RLIMIT_NOFILE)
    proc = psutil.Process(pid)
    soft, hard = proc.rlimit(psutil.RLIMIT_NOFILE)
    if soft < need and soft < hard:
        proc.rlimit(psutil.RLIMIT_NOFILE, (hard, hard))
    limits: tuple[int, int] = proc.rlimit(psutil.RLIMIT_NOFILE)
    return limits


class _State(TypedDict, total=False):
    task: str
    status: str


class _Probe:
    """Samples this process's connections to the sandbox, its fds and the sandbox's fds."""

    def __init__(self, sandbox_port: int, sandbox_pid: int | None) -> None:
        self.proc = psutil.Process()
        self.port = sandbox_port
        self.sandbox = psutil.Process(sandbox_pid) if sandbox_pid else None
        self.peak_fds = 0
        self.sandbox_peak_fds = 0

    def connections(self) -> int:
        return sum(
            1
            for c in self.proc.net_connections(kind="tcp")
            if c.raddr and c.raddr.port == self.port and c.status == psutil.CONN_ESTABLISHED
        )

    def idle(self, client: Any) -> int:
        """Connections the client's pools keep alive, idle (no request of any run on them)."""
        pools = getattr(client, "_pools", None)
        http = [pools.general, *pools.opened()] if pools is not None else [client._http]
        count = 0
        for h in http:
            pool = getattr(getattr(h, "_transport", None), "_pool", None)
            count += sum(1 for c in getattr(pool, "connections", ()) if c.is_idle())
        return count

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds used so far by this process and by the sandbox."""
        mine = self.proc.cpu_times()
        theirs = 0.0
        if self.sandbox is not None:
            with contextlib.suppress(psutil.Error):
                t = self.sandbox.cpu_times()
                theirs = t.user + t.system
        return mine.user + mine.system, theirs

    def fds(self) -> None:
        self.peak_fds = max(self.peak_fds, self.proc.num_fds())
        if self.sandbox is not None:
            with contextlib.suppress(psutil.Error):
                self.sandbox_peak_fds = max(self.sandbox_peak_fds, self.sandbox.num_fds())


async def _child(a: argparse.Namespace) -> dict[str, Any]:
    """The level itself, in the fresh interpreter: serve, start, wait, resume, report."""
    import uvicorn
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from langchain_coasty.callbacks import AsyncCoastyCallbackHandler
    from langchain_coasty.durable import aresume_from_webhook, averify_run_webhook
    from langchain_coasty.webhooks import WebhookVerificationError

    n = a.waits
    limit = fd_limit(n + FD_HEADROOM)
    seqs: dict[str, list[int]] = defaultdict(list)

    class Record(AsyncCoastyCallbackHandler):
        """Keeps every event's seq, per run."""

        async def on_coasty_event(self, event: Any) -> None:
            seqs[str(event["run_id"])].append(int(event["seq"]))

    port = free_port()
    runnable = _paths.runnable(
        Sandbox(a.base_url, machine_ids=[a.machine_id]),
        wait="durable",
        webhook_url=f"http://127.0.0.1:{port}/hooks",
        max_retries=5,
    )
    client = runnable.get_async_client()

    async def work(state: _State, config: RunnableConfig) -> _State:
        run = await runnable.ainvoke(state["task"], config)
        return {"status": run.status.value}

    builder = StateGraph(_State)
    builder.add_node("work", work)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    graph = builder.compile(checkpointer=InMemorySaver())

    hooks = {"received": 0, "rejected": 0, "errors": 0}
    outcomes: Counter[str] = Counter()
    resumed: Counter[str] = Counter()
    latencies: list[float] = []
    resumed_at: list[float] = []
    finished_at: list[float] = []
    errors: list[str] = []
    resume_config: RunnableConfig = {"callbacks": [Record()]}

    async def receive(request: Request) -> JSONResponse:
        t0 = time.perf_counter()
        hooks["received"] += 1
        body = await request.body()
        try:
            event = await averify_run_webhook(
                client, body, request.headers.get("coasty-signature", "")
            )
        except WebhookVerificationError as exc:
            hooks["rejected"] += 1
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            outcome = await aresume_from_webhook(graph, event, config=resume_config, client=client)
        except Exception as exc:  # counted, and answered 500 so that the sandbox retries
            hooks["errors"] += 1
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return JSONResponse({"error": "resume failed"}, status_code=500)
        outcomes[outcome.status] += 1
        if outcome.status == "resumed":
            resumed[str(outcome.thread_id)] += 1
            latencies.append(time.perf_counter() - t0)
            resumed_at.append(time.time())
            with contextlib.suppress(TypeError, ValueError):
                finished_at.append(
                    datetime.fromisoformat(event.data.get("finished_at")).timestamp()
                )
        return JSONResponse({"status": outcome.status})

    app = Starlette(routes=[Route("/hooks", receive, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            backlog=4096,
            timeout_keep_alive=30,
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)

    probe = _Probe(int(a.base_url.rsplit(":", 1)[1]), a.sandbox_pid)

    def cfg(i: int | str) -> RunnableConfig:
        return {"configurable": {"thread_id": f"wait-{i}"}}

    async def until(what: str, done: Any, within: float) -> None:
        deadline = time.monotonic() + within
        while not done():
            probe.fds()
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out after {within:.0f} s waiting for {what}")
            await asyncio.sleep(SAMPLE_EVERY)

    # Warm the whole path (create, pause, webhook, resume, catch-up) with one fast thread.
    warmed = await graph.ainvoke({"task": a.warm_task}, cfg("warm-up"))
    warm_run = warmed["__interrupt__"][0].value["run_id"]
    await until("the warm-up thread's webhook", lambda: outcomes["resumed"] >= 1, 60)
    outcomes.clear()
    resumed.clear()
    for lst in (latencies, resumed_at, finished_at):
        lst.clear()
    seqs.clear()
    hooks["received"] = 0
    gc.collect()
    rss0 = probe.proc.memory_info().rss

    gate = asyncio.Semaphore(START_CONCURRENCY)
    paused = 0

    async def start(i: int) -> None:
        nonlocal paused
        async with gate:
            out = await graph.ainvoke({"task": a.task}, cfg(i))
        if out.get("__interrupt__"):
            paused += 1

    t_start = time.monotonic()
    starts = [asyncio.ensure_future(start(i)) for i in range(n)]
    setup_connections = 0
    while not all(t.done() for t in starts):
        setup_connections = max(setup_connections, probe.connections())
        probe.fds()
        if time.monotonic() - t_start > a.timeout:
            raise SystemExit(f"the {n} waits did not start within {a.timeout:.0f} s")
        await asyncio.sleep(SAMPLE_EVERY)
    start_errors = [t.exception() for t in starts if t.exception() is not None]
    setup_s = time.monotonic() - t_start
    all_waiting = paused == n and hooks["received"] == 0

    # While they wait: nothing per run should be held.
    gc.collect()
    samples: list[tuple[int, int]] = []
    held: list[int] = []  # established minus those idle in the client's keep-alive pools
    cpu0, t0 = probe.proc.cpu_times(), time.monotonic()
    while time.monotonic() - t0 < a.window and hooks["received"] == 0:
        idle = probe.idle(client)
        samples.append((probe.connections(), probe.proc.memory_info().rss))
        held.append(max(0, samples[-1][0] - idle))
        probe.fds()
        await asyncio.sleep(SAMPLE_EVERY)
    cpu1, t1 = probe.proc.cpu_times(), time.monotonic()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    waiting_for = (t1 - t0) if samples else 0.0

    # The runs end; their webhooks resume the threads.
    started_threads = n - len(start_errors)
    cpu_before = probe.cpu_s()
    await until("every thread resumed", lambda: outcomes["resumed"] >= started_threads, a.timeout)
    cpu_after = probe.cpu_s()
    async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as control:

        async def delivery_log() -> list[dict[str, Any]]:
            entries: list[dict[str, Any]] = (await control.get("/_sandbox/webhooks")).json()["data"]
            return entries

        # Settled: every thread's run has a delivered webhook in the sandbox's log.
        deadline = time.monotonic() + 60
        while True:
            log = [d for d in await delivery_log() if d["run_id"] != warm_run]
            if len({d["run_id"] for d in log if d["delivered"]}) >= started_threads:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the sandbox's deliveries did not settle within 60 s")
            await asyncio.sleep(SAMPLE_EVERY)
    final = [(await graph.aget_state(cfg(i))) for i in range(n)]
    expected = list(range(1, a.events + 1))
    server.should_exit = True
    await serving
    await client.close()

    succeeded = sum(1 for s in final if s.values.get("status") == "succeeded" and not s.next)
    by_run = Counter(d["run_id"] for d in log if d["delivered"])
    return {
        "waits": n,
        "events_per_run": a.events,
        "start_concurrency": START_CONCURRENCY,
        "fd_limit": list(limit),
        "setup_s": setup_s,
        "all_waiting_at_once": all_waiting,
        "paused": paused,
        "window_s": waiting_for,
        "connections_while_waiting_peak": max((c for c, _ in samples), default=None),
        "connections_while_waiting_mean": (
            sum(c for c, _ in samples) / len(samples) if samples else None
        ),
        "connections_held_while_waiting_peak": max(held, default=None),
        "connections_during_setup_peak": setup_connections,
        "rss_before_mib": rss0 / 2**20,
        "rss_per_wait_kib": ((max(r for _, r in samples) - rss0) / n / 1024 if samples else None),
        "cpu_percent_while_waiting": 100 * cpu_s / (t1 - t0) if t1 > t0 else None,
        "peak_open_fds": probe.peak_fds,
        "webhooks_received": hooks["received"],
        "rejected": hooks["rejected"],
        "resume_outcomes": dict(outcomes),
        "threads_resumed": len(resumed),
        "resumed_twice": sum(1 for v in resumed.values() if v > 1),
        "lost": n - len(resumed),
        "succeeded": succeeded,
        "errors": len(start_errors) + hooks["errors"] + (n - succeeded),
        "first_errors": ([f"{type(e).__name__}: {e}"[:200] for e in start_errors] + errors)[:3],
        "events_exactly_once_in_order": sum(1 for s in seqs.values() if s == expected),
        "runs_with_events": len(seqs),
        "resume_latency_ms": {
            "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000,
            "max": max(latencies, default=0.0) * 1000,
        },
        "cpu_ms_per_resume": 1000 * (cpu_after[0] - cpu_before[0]) / n,
        "sandbox_cpu_ms_per_resume": 1000 * (cpu_after[1] - cpu_before[1]) / n,
        "first_end_to_last_resume_s": (
            max(resumed_at) - min(finished_at) if resumed_at and finished_at else None
        ),
        "deliveries": len(log),
        "deliveries_retried": len(log) - len(by_run),
        "runs_delivered_more_than_once": sum(1 for v in by_run.values() if v > 1),
        "sandbox_peak_open_fds": probe.sandbox_peak_fds,
    }


def run(
    sb: Sandbox,
    waits: int = 10_000,
    steps: int = 1,
    pace: float = 180.0,
    window: float = 5.0,
    timeout: float = 900.0,
) -> dict[str, Any]:
    """One level in a fresh interpreter against ``sb``; returns its figures.

    ``pace`` (seconds a step) must outlast the start of all ``waits`` threads, so that all
    of them are waiting at once (``all_waiting_at_once`` says whether they were).
    """
    import subprocess

    sb.reset()
    sandbox_limit = fd_limit(waits + FD_HEADROOM, sb.process.pid) if sb.process else None
    task = _paths.paced_task(sb, steps, pace)
    warm = _paths.scenario_task(sb, "durable-warm-up", steps=1, pace=0)
    events = EVENTS_FIXED + EVENTS_PER_STEP * steps
    cmd = [sys.executable, "-m", "benchmarks.durable_waits", "--base-url", sb.base_url]
    cmd += ["--machine-id", sb.machine_id, "--task", task, "--warm-task", warm]
    cmd += ["--waits", str(waits), "--events", str(events), "--window", str(window)]
    cmd += ["--timeout", str(timeout)]
    if sb.process is not None:
        cmd += ["--sandbox-pid", str(sb.process.pid)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=2 * timeout)
    if out.returncode != 0:
        err = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
        return {"waits": waits, "error": err[:300]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result |= {"steps": steps, "pace_s": pace, "level_s": time.perf_counter() - t0}
    result["sandbox_fd_limit"] = list(sandbox_limit) if sandbox_limit else None
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-url", required=True)
    p.add_argument("--machine-id", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--warm-task", required=True)
    p.add_argument("--waits", type=int, required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--window", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--sandbox-pid", type=int)
    print(json.dumps(asyncio.run(_child(p.parse_args()))))


if __name__ == "__main__":
    main()
