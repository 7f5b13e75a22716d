"""Benchmark 3b: ten thousand concurrent runs at Coasty's pace (one step every 5 s), one process.

Runs are started at an even rate over a ramp shorter than a run, so that all of them are
under way at once for a while (the peak is reported); each is ``CoastyRunnable.ainvoke`` with
an async callback handler that checks every run's ``seq`` order and notes each event's
latency: the handler's ``time.time()`` less the sandbox's ``ts`` stamp on the event (both
processes share the machine's clock). The level runs in a fresh interpreter whose
open-file limit is raised to its hard limit when the soft one is too low for the streams
(one connection each over HTTP/1.1); the sandbox runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
from array import array
from collections import Counter
from typing import Any

from benchmarks import _paths
from benchmarks._harness import Sandbox, current_rss_bytes, percentile
from benchmarks.scale import EVENTS_FIXED, EVENTS_PER_STEP, _OpenStreams, _server_duration

P99_TARGET_MS = 50.0
"""The issue's bound on the event-to-callback latency at this level."""
_FD_HEADROOM = 512


def fd_limits(needed: int) -> dict[str, int]:
    """Raise the soft open-file limit to the hard one (as the sandbox does); report both."""
    from langchain_coasty.sandbox.server import raise_open_file_limit

    default, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = raise_open_file_limit() if default < needed else default
    return {"default_soft": default, "soft": soft, "hard": hard, "needed": needed}


def open_fds() -> int:
    """File descriptors this process holds now (Linux /proc; -1 elsewhere)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


class _Book:
    """What the handler saw: per-run order, latencies (float32, no list per event), counts."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.broken: set[str] = set()
        self.latency_ms = array("f")
        self.events = 0
        self.unstamped = 0

    def see(self, event: Any) -> None:
        now = time.time()
        run_id = event["run_id"]
        seq = event["seq"]
        if seq != self.last.get(run_id, 0) + 1:
            self.broken.add(run_id)
        self.last[run_id] = seq
        self.events += 1
        ts = event.get("ts")
        if ts is None:
            self.unstamped += 1
        else:
            self.latency_ms.append((now - ts) * 1000.0)


async def _level(
    base_url: str,
    machine_id: str,
    task: str,
    n: int,
    ramp_s: float,
    expected_events: int,
    backend: str,
) -> dict[str, Any]:
    limits = fd_limits(n + _FD_HEADROOM)
    handler_base = _paths.need("langchain_coasty.callbacks", "AsyncCoastyCallbackHandler")
    client_cls = _paths.need("langchain_coasty.client", "AsyncCoastyClient")
    runnable_cls = _paths.need("langchain_coasty.runnable", "CoastyRunnable")
    book = _Book()  # replaced after the warm-up run: the handler reads it when called

    class Watch(handler_base):  # type: ignore[misc, valid-type]
        async def on_coasty_event(self, event: Any) -> None:
            book.see(event)

    # Each open stream holds a connection: the client's limit must cover them all.
    client = client_cls(
        api_key=_paths.API_KEY, base_url=base_url, max_connections=None, http_backend=backend
    )
    runnable = runnable_cls(
        api_key=_paths.API_KEY, base_url=base_url, machine_id=machine_id, async_client=client
    )
    config = {"callbacks": [Watch()]}
    alone = await runnable.ainvoke(task)  # warms imports, the pools and the loop
    book = _Book()
    gc.collect()
    rss0 = current_rss_bytes()
    in_flight = peak_in_flight = 0
    peak_fds = open_fds()
    peak_rss = rss0
    results: list[Any] = []

    async def one() -> None:
        nonlocal in_flight, peak_in_flight
        in_flight += 1
        peak_in_flight = max(peak_in_flight, in_flight)
        try:
            results.append(await runnable.ainvoke(task, config))
        except Exception as exc:  # counted: the level's errors
            results.append(exc)
        finally:
            in_flight -= 1

    async def sample() -> None:
        nonlocal peak_fds, peak_rss
        while True:
            peak_fds = max(peak_fds, open_fds())
            peak_rss = max(peak_rss, current_rss_bytes())
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for i in range(n):
        # start times on an even schedule, whatever the loop's own delays
        delay = t0 + ramp_s * i / n - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    sampler.cancel()
    await client.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    statuses = Counter(
        str(getattr(r, "status", "?")).split(".")[-1].lower() for r in results if r not in errors
    )
    complete = sum(
        1 for rid, last in book.last.items() if last == expected_events and rid not in book.broken
    )
    lat = sorted(book.latency_ms)
    return {
        "runs": n,
        "ramp_s": ramp_s,
        "backend": backend,
        "scripted_run_s": _server_duration(alone),
        "wall_s": wall,
        "peak_in_flight": peak_in_flight,
        "events": book.events,
        "events_unstamped": book.unstamped,
        "runs_all_events_in_order": complete,
        "errors": len(errors),
        "first_errors": [f"{type(e).__name__}: {e}"[:200] for e in errors[:3]],
        "statuses": dict(statuses),
        "latency_ms": {
            "p50": percentile(lat, 50),
            "p99": percentile(lat, 99),
            "max": lat[-1] if lat else float("nan"),
        },
        "client_cpu_s": cpu,
        "client_cpu_ms_per_run": cpu / n * 1000,
        "peak_rss_mib": peak_rss / 2**20,
        "rss_per_run_kib": (peak_rss - rss0) / n / 1024,
        "peak_open_fds": peak_fds,
        "fd_limit": limits,
    }


def run_level(
    sb: Sandbox, runs: int, steps: int, pace: float, ramp_s: float, backend: str
) -> dict[str, Any]:
    """One paced level in a fresh interpreter, the sandbox's peak open streams alongside."""
    sb.reset()
    task = _paths.paced_task(sb, steps, pace)
    events = EVENTS_FIXED + EVENTS_PER_STEP * steps
    cmd = [sys.executable, "-m", "benchmarks.paced", "--base-url", sb.base_url]
    cmd += ["--machine-id", sb.machine_id, "--task", task, "--runs", str(runs)]
    cmd += ["--events", str(events), "--ramp", str(ramp_s), "--backend", backend]
    budget = ramp_s + steps * pace * 3 + 120
    with _OpenStreams(sb.base_url) as streams:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=budget)
    if out.returncode != 0:
        err = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
        if "NotLanded" in err:
            return {"missing": err.split(":", 1)[-1].strip()}
        return {"runs": runs, "error": err[:300]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(steps_per_run=steps, pace_s=pace, events_per_run=events)
    result["peak_open_streams"] = streams.peak
    result["all_events_delivered"] = result["runs_all_events_in_order"] == runs
    result["met"] = (
        result["all_events_delivered"]
        and result["errors"] == 0
        and result["latency_ms"]["p99"] < P99_TARGET_MS
        and result["peak_open_fds"] <= result["fd_limit"]["soft"]
    )
    return result


def run(
    sb: Sandbox,
    runs: int = 10_000,
    steps: int = 16,
    pace: float = 5.0,
    ramp_s: float = 60.0,
    backends: tuple[str, ...] = ("httpx",),
) -> dict[str, Any]:
    """The paced level once per client backend."""
    levels = {b: run_level(sb, runs, steps, pace, ramp_s, b) for b in backends}
    return {"runs": runs, "steps": steps, "pace_s": pace, "ramp_s": ramp_s, "levels": levels}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-url", required=True)
    p.add_argument("--machine-id", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--ramp", type=float, required=True)
    p.add_argument("--backend", default="httpx")
    a = p.parse_args()
    level = _level(a.base_url, a.machine_id, a.task, a.runs, a.ramp, a.events, a.backend)
    print(json.dumps(asyncio.run(level)))


if __name__ == "__main__":
    main()
