"""Benchmark 4: time from a cut connection to the next event delivered, over many cuts.

The sandbox cuts every stream connection after a random 1..N frames (fault injection). The
cut happens right after a frame is sent, so the arrival of the last event before a reconnect
stands for the moment of the cut; recovery is the gap until the next new event arrives.
The baseline is a raw httpx-sse loop that reconnects at once with ``Last-Event-ID``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from httpx_sse import connect_sse

from benchmarks import _paths
from benchmarks._harness import AUTH, Sandbox, percentile


def _gaps(arrivals: list[tuple[float, int]], reconnects: list[float]) -> list[float]:
    """For each reconnect after the first request: next arrival minus the previous arrival."""
    gaps: list[float] = []
    times = [t for t, _ in arrivals]
    i = 0
    for r in reconnects[1:]:
        while i < len(times) and times[i] < r:
            i += 1
        if 0 < i < len(times):
            gaps.append(times[i] - times[i - 1])
    return gaps


def raw_recovering_stream(sb: Sandbox, run_id: str) -> tuple[list[tuple[float, int]], list[float]]:
    """Baseline: reconnect immediately with Last-Event-ID after any cut; drop duplicates."""
    arrivals: list[tuple[float, int]] = []
    requests: list[float] = []
    last = 0
    with httpx.Client(base_url=sb.base_url, headers=AUTH, timeout=30) as http:
        while True:
            requests.append(time.perf_counter())
            try:
                with connect_sse(
                    http, "GET", f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(last)}
                ) as source:
                    for sse in source.iter_sse():
                        ev = json.loads(sse.data)
                        if ev["seq"] <= last:
                            continue
                        last = ev["seq"]
                        arrivals.append((time.perf_counter(), last))
                        if ev["type"] == "done":
                            return arrivals, requests
            except httpx.TransportError:
                pass


def client_recovering_stream(
    sb: Sandbox, run_id: str
) -> tuple[list[tuple[float, int]], list[float]]:
    """``client.runs.events`` with a request hook noting each (re)connection."""
    arrivals: list[tuple[float, int]] = []
    requests: list[float] = []

    def hook(request: httpx.Request) -> None:
        if request.url.path.endswith("/events"):
            requests.append(time.perf_counter())

    http = httpx.Client(timeout=httpx.Timeout(30.0, read=60.0), event_hooks={"request": [hook]})
    with http, _paths.client(sb, http_client=http) as c:
        for ev in c.runs.events(run_id):
            arrivals.append((time.perf_counter(), ev.seq))
    return arrivals, requests


def _check(arrivals: list[tuple[float, int]], events: int) -> bool:
    return [s for _, s in arrivals] == list(range(1, events + 1))


def run(
    sb: Sandbox, events: int = 3000, max_frames: int = 30, trials: int = 3, mode: str = "abrupt"
) -> dict[str, Any]:
    """Many cuts per trial; gaps pooled over trials; p50/p99 and the ratio to the raw baseline."""
    out: dict[str, Any] = {"events": events, "cut_after_max_frames": max_frames, "mode": mode}
    samples: dict[str, list[float]] = {"raw": [], "client": []}
    exact: dict[str, bool] = {"raw": True, "client": True}
    missing: dict[str, str] = {}
    for trial in range(trials):
        for name, fn in (("raw", raw_recovering_stream), ("client", client_recovering_stream)):
            if name in missing:
                continue
            sb.reset()
            task = _paths.long_run_task(sb, events)
            run_id = _paths.create_run(sb, task)
            # run fully emitted before faults start, so only the cuts are timed
            sb.inject(
                seed=trial + 1,
                stream_cut_rate=1.0,
                stream_cut_max_frames=max_frames,
                stream_cut_mode=mode,
            )
            try:
                arrivals, requests = fn(sb, run_id)
            except _paths.NotLanded as exc:
                missing[name] = str(exc)
                continue
            finally:
                sb.clear_faults()
            exact[name] = exact[name] and _check(arrivals, events)
            samples[name] += _gaps(arrivals, requests)
    rows: dict[str, Any] = {}
    for name, gaps in samples.items():
        if not gaps:
            continue
        ms = [g * 1000 for g in gaps]
        rows[name] = {
            "cuts": len(ms),
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms),
            "exactly_once_in_order": exact[name],
        }
    if "raw" in rows and "client" in rows:
        rows["client"]["p50_ratio_to_raw"] = rows["client"]["p50_ms"] / rows["raw"]["p50_ms"]
        rows["client"]["p99_ratio_to_raw"] = rows["client"]["p99_ms"] / rows["raw"]["p99_ms"]
    out["paths"] = rows
    out["missing"] = missing
    return out
