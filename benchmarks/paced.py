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
GC_THRESHOLDS = (2_000, 10, 1_000)
"""The collector's thresholds for a process that follows thousands of runs (see ``tune_gc``)."""


def tune_gc(*, off: bool = False) -> None:
    """What a long-lived process following thousands of runs does once it has started.

    The cyclic collector's passes walk the objects allocated since the last pass, and each
    of their references into the heap: with thousands of runs in flight that is tens of ms
    a young pass and over a second a full one, and the event loop stalls meanwhile.
    ``gc.freeze()`` moves everything built at start-up (modules, models, schemas) out of
    its reach, the thresholds make full passes rare; ``off`` stops automatic passes (a run
    leaves a handful of objects in cycles: collect them at a quiet moment).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if off:
        gc.disable()


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


class _GcPauses:
    """The garbage collector's pauses while the level runs (they stall the event loop).

    ``total_cpu_ms`` is the CPU those pauses took: far below their wall time, the process
    was waiting for a core (another process had it), not collecting.
    """

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.passes = [0, 0, 0]
        self.cpu_ms = 0.0
        self._start = self._cpu = 0.0
        gc.callbacks.append(self._hook)

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            self._cpu = time.thread_time()
            return
        took = (time.perf_counter() - self._start) * 1000
        self.passes[info.get("generation", 0)] += 1
        if took > 1.0:
            self.ms.append(took)
            self.cpu_ms += (time.thread_time() - self._cpu) * 1000

    def stop(self) -> None:
        gc.callbacks.remove(self._hook)

    def summary(self) -> dict[str, Any]:
        return {
            "passes_by_generation": self.passes,
            "over_1ms": len(self.ms),
            "max_ms": max(self.ms, default=0.0),
            "total_ms": sum(self.ms),
            "total_cpu_ms": self.cpu_ms,
        }


async def _level(
    base_url: str,
    machine_id: str,
    task: str,
    warm_task: str,
    n: int,
    ramp_s: float,
    expected_events: int,
    backend: str,
    gc_mode: str = "tuned",
    progress: bool = False,
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
    await runnable.ainvoke(warm_task)  # warms imports, the pools and the loop
    book = _Book()
    gc.collect()
    if gc_mode != "default":
        tune_gc(off=gc_mode == "off")
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
        ticks = 0
        while True:
            peak_fds = max(peak_fds, open_fds())
            peak_rss = max(peak_rss, current_rss_bytes())
            ticks += 1
            if progress and ticks % 10 == 0:
                print(
                    f"{time.perf_counter() - t0:6.1f} s: {len(tasks)} started, {in_flight} "
                    f"going, {len(results)} ended, {book.events} events, "
                    f"CPU {time.process_time() - cpu0:.1f} s, fds {open_fds()}",
                    file=sys.stderr,
                    flush=True,
                )
            await asyncio.sleep(0.5)

    pauses = _GcPauses()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    sampler = asyncio.create_task(sample())
    for i in range(n):
        # start times on an even schedule, whatever the loop's own delays
        delay = t0 + ramp_s * i / n - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    pauses.stop()
    sampler.cancel()
    if gc_mode == "off":
        gc.enable()
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
        "gc": gc_mode,
        "scripted_run_s": _scripted(results),
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
        "gc_pauses": pauses.summary(),
        "client_cpu_ms_per_run": cpu / n * 1000,
        "peak_rss_mib": peak_rss / 2**20,
        "rss_per_run_kib": (peak_rss - rss0) / n / 1024,
        "peak_open_fds": peak_fds,
        "fd_limit": limits,
    }


def _scripted(results: list[Any]) -> float | None:
    """The median time the sandbox took to play a run (created -> finished)."""
    spans = sorted(d for r in results if (d := _server_duration(r)) is not None)
    return spans[len(spans) // 2] if spans else None


def run_level(
    sb: Sandbox, runs: int, steps: int, pace: float, ramp_s: float, backend: str, gc_mode: str
) -> dict[str, Any]:
    """One paced level in a fresh interpreter, the sandbox's peak open streams alongside."""
    sb.reset()
    task = _paths.paced_task(sb, steps, pace)
    warm = _paths.paced_task(sb, 1, 0.0)
    events = EVENTS_FIXED + EVENTS_PER_STEP * steps
    cmd = [sys.executable, "-m", "benchmarks.paced", "--base-url", sb.base_url]
    cmd += ["--machine-id", sb.machine_id, "--task", task, "--warm-task", warm]
    cmd += ["--runs", str(runs), "--events", str(events), "--ramp", str(ramp_s)]
    cmd += ["--backend", backend, "--gc", gc_mode]
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
    levels: tuple[tuple[int, str, str], ...] = ((10_000, "aiohttp", "tuned"),),
    steps: int = 16,
    pace: float = 5.0,
    ramp_s: float = 60.0,
) -> dict[str, Any]:
    """Each level (runs, client backend, collector setting), a fresh interpreter each.

    The ramp scales with the level's size, so that every level starts runs at one rate.
    """
    top = max(n for n, _, _ in levels)
    out: dict[str, Any] = {"steps": steps, "pace_s": pace, "levels": {}}
    for n, backend, gc_mode in levels:
        ramp = ramp_s * n / top
        out["levels"][f"{n} {backend} {gc_mode}"] = run_level(
            sb, n, steps, pace, ramp, backend, gc_mode
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-url", required=True)
    p.add_argument("--machine-id", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--warm-task", required=True, help="a short run that warms the client up")
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--ramp", type=float, required=True)
    p.add_argument("--backend", default="httpx")
    p.add_argument("--gc", choices=("default", "tuned", "off"), default="tuned", help="tune_gc")
    p.add_argument("--progress", action="store_true", help="a line on stderr every 5 s")
    a = p.parse_args()
    level = _level(
        a.base_url,
        a.machine_id,
        a.task,
        a.warm_task,
        a.runs,
        a.ramp,
        a.events,
        a.backend,
        gc_mode=a.gc,
        progress=a.progress,
    )
    print(json.dumps(asyncio.run(level)))


if __name__ == "__main__":
    main()
