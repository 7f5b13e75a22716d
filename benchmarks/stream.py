"""Benchmark 1: throughput of one long run's event stream through each layer.

(a) raw httpx + httpx-sse loop (baseline), (b) ``client.runs.events``, (c)
``CoastyRunnable.stream``, (d) ``CoastyComputerTool`` inside a LangGraph agent with a
``CoastyCallbackHandler`` attached. Wall events/s and the client process's CPU per event
are both reported: the sandbox runs on the other core, so wall rate is capped by whichever
side is slower, while CPU per event is the caller's own cost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import connect_sse

from benchmarks import _paths
from benchmarks._harness import AUTH, Sandbox, summary


def raw_events(sb: Sandbox, run_id: str) -> int:
    """The baseline: the loop a user would write with httpx and httpx-sse."""
    n = 0
    timeout = httpx.Timeout(30.0, read=60.0)
    with (
        httpx.Client(base_url=sb.base_url, headers=AUTH, timeout=timeout) as http,
        connect_sse(http, "GET", f"/v1/runs/{run_id}/events") as source,
    ):
        for sse in source.iter_sse():
            event = json.loads(sse.data)
            n += 1
            if event["type"] == "done":
                break
    return n


def measure(fn: Callable[[], int]) -> dict[str, float]:
    """Run one path; return events, wall seconds and CPU seconds."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    n = fn()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {"events": n, "wall": wall, "cpu": cpu}


def run(sb: Sandbox, events: int = 100_000, trials: int = 3) -> dict[str, Any]:
    """Stream an ``events``-long run through each path, trials interleaved."""
    task = _paths.long_run_task(sb, events)
    paths: dict[str, Callable[[], int]] = {
        "raw": lambda: raw_events(sb, _paths.create_run(sb, task)),
        "client": lambda: _paths.client_events(sb, _paths.create_run(sb, task)),
        "runnable": lambda: _paths.runnable_stream(sb, task),
        "agent_tool": lambda: _paths.agent_tool(sb, task),
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    missing: dict[str, str] = {}
    # warm-up: one short run per path (imports, first connections)
    warm = _paths.long_run_task(sb, min(events, 200))
    for name, fn in {
        "raw": lambda: raw_events(sb, _paths.create_run(sb, warm)),
        "client": lambda: _paths.client_events(sb, _paths.create_run(sb, warm)),
        "runnable": lambda: _paths.runnable_stream(sb, warm),
        "agent_tool": lambda: _paths.agent_tool(sb, warm),
    }.items():
        try:
            fn()
        except _paths.NotLanded as exc:
            missing[name] = str(exc)
    for _ in range(trials):
        for name, fn in paths.items():
            if name in missing:
                continue
            sb.reset()
            task = _paths.long_run_task(sb, events)
            samples[name].append(measure(fn))
    base = samples["raw"]
    rows: dict[str, Any] = {}
    for name, ss in samples.items():
        if not ss:
            continue
        rate = [s["events"] / s["wall"] for s in ss]
        cpu_us = [s["cpu"] / s["events"] * 1e6 for s in ss]
        wall_us = [s["wall"] / s["events"] * 1e6 for s in ss]
        row: dict[str, Any] = {
            "events": int(ss[0]["events"]),
            "events_per_s": summary(rate),
            "wall_us_per_event": summary(wall_us),
            "cpu_us_per_event": summary(cpu_us),
            "ratio_to_raw": summary(
                [r / (b["events"] / b["wall"]) for r, b in zip(rate, base, strict=False)]
            ),
            "wall_overhead_us_per_event": summary(
                [w - b["wall"] / b["events"] * 1e6 for w, b in zip(wall_us, base, strict=False)]
            ),
            "cpu_overhead_us_per_event": summary(
                [c - b["cpu"] / b["events"] * 1e6 for c, b in zip(cpu_us, base, strict=False)]
            ),
        }
        rows[name] = row
    return {"events": events, "trials": trials, "paths": rows, "missing": missing}
