"""Benchmark 2: event-to-callback latency, streaming against polling.

The sandbox stamps each event with ``ts`` (wall clock, when emitted); the caller notes
``time.time()`` when its code sees the event. Both processes share the machine's clock.
Polling ``GET /v1/runs/{id}`` is measured for real at a 1 s interval; the 10 s interval is
simulated from the same run's event stamps and the measured GET round trips
(see ``simulate_polling``).
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import httpx
from httpx_sse import connect_sse

from benchmarks import _paths
from benchmarks._harness import AUTH, Sandbox, percentile


def _lat_summary(lat_s: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in lat_s]
    return {
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "n": len(ms),
    }


def event_stamps(sb: Sandbox, run_id: str) -> dict[int, dict[str, Any]]:
    """Replay a finished run's stream: seq -> event (with the sandbox's ``ts``)."""
    out: dict[int, dict[str, Any]] = {}
    with (
        httpx.Client(base_url=sb.base_url, headers=AUTH, timeout=60) as http,
        connect_sse(http, "GET", f"/v1/runs/{run_id}/events") as source,
    ):
        for sse in source.iter_sse():
            ev = json.loads(sse.data)
            out[int(ev["seq"])] = ev
            if ev["type"] == "done":
                break
    return out


def _live(stamped: list[tuple[float, float]], opened: list[float]) -> list[float]:
    """Latencies of events emitted after the stream was connected (earlier ones are replay)."""
    if not opened:
        return []
    return [seen - ts for ts, seen in stamped if ts >= opened[0]]


def _hooked(sb: Sandbox) -> tuple[Any, list[float]]:
    """A CoastyClient whose http client notes when the first event stream response arrives."""
    opened: list[float] = []

    def hook(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/events"):
            opened.append(time.time())

    http = httpx.Client(timeout=httpx.Timeout(30.0, read=60.0), event_hooks={"response": [hook]})
    return _paths.client(sb, http_client=http), opened


def raw_stream_latency(sb: Sandbox, run_id: str) -> list[float]:
    """Baseline: raw httpx-sse loop, latency of each event at the point the loop sees it."""
    stamped: list[tuple[float, float]] = []
    with (
        httpx.Client(base_url=sb.base_url, headers=AUTH, timeout=60) as http,
        connect_sse(http, "GET", f"/v1/runs/{run_id}/events") as source,
    ):
        opened = [time.time()]
        for sse in source.iter_sse():
            ev = json.loads(sse.data)
            stamped.append((float(ev["ts"]), time.time()))
            if ev["type"] == "done":
                break
    return _live(stamped, opened)


def client_stream_latency(sb: Sandbox, run_id: str) -> list[float]:
    """``client.runs.events``: latency at the point the iterator yields each RunEvent."""
    stamped: list[tuple[float, float]] = []
    client, opened = _hooked(sb)
    with client:
        for ev in client.runs.events(run_id):
            stamped.append((float(ev.ts), time.time()))
    return _live(stamped, opened)


def callback_latency(sb: Sandbox, task: str | dict[str, Any]) -> list[float]:
    """CoastyRunnable.invoke with a CoastyCallbackHandler: latency at ``on_coasty_event``."""
    seen: list[tuple[int, float, str]] = []
    base = _paths.need("langchain_coasty.callbacks", "CoastyCallbackHandler")

    class Stamp(base):  # type: ignore[misc, valid-type]
        def on_coasty_event(self, event: Any) -> None:
            now = time.time()
            seen.append((int(event["seq"]), now, str(event["run_id"])))

    client, opened = _hooked(sb)
    with client:
        _paths.runnable(sb, client=client).invoke(task, config={"callbacks": [Stamp()]})
    if not seen:
        return []
    stamps = event_stamps(sb, seen[0][2])
    return _live([(float(stamps[seq]["ts"]), now) for seq, now, _ in seen], opened)


def poll(
    sb: Sandbox, run_id: str, interval: float
) -> tuple[list[tuple[float, dict[str, Any]]], list[float]]:
    """Poll GET /v1/runs/{id} on a fixed schedule until terminal; (arrival, run) and round trips."""
    seen: list[tuple[float, dict[str, Any]]] = []
    rtts: list[float] = []
    terminal = {"succeeded", "failed", "cancelled", "timed_out"}
    with httpx.Client(base_url=sb.base_url, headers=AUTH, timeout=30) as http:
        start = time.monotonic()
        k = 0
        while True:
            t0 = time.perf_counter()
            run = http.get(f"/v1/runs/{run_id}").json()
            rtts.append(time.perf_counter() - t0)
            seen.append((time.time(), run))
            if run.get("status") in terminal:
                break
            k += 1
            time.sleep(max(0.0, start + k * interval - time.monotonic()))
    return seen, rtts


def milestones(stamps: dict[int, dict[str, Any]]) -> list[tuple[float, Any]]:
    """Events a poller can observe: each step completed, and the terminal status (ts, predicate)."""
    out: list[tuple[float, Any]] = []
    for ev in stamps.values():
        data = ev.get("data") or {}
        if ev["type"] == "step" and isinstance(data.get("steps_completed"), int):
            k = data["steps_completed"]
            out.append((float(ev["ts"]), lambda r, k=k: (r.get("steps_completed") or 0) >= k))
        elif ev["type"] == "done":
            status = (ev.get("data") or {}).get("status")
            out.append((float(ev["ts"]), lambda r, s=status: r.get("status") == s))
    return out


def measured_polling(
    seen: list[tuple[float, dict[str, Any]]], stones: list[tuple[float, Any]]
) -> list[float]:
    """For each milestone: arrival of the first poll response that reflects it, minus its ts."""
    lat: list[float] = []
    for ts, pred in stones:
        for arrival, run in seen:
            if arrival >= ts and pred(run):
                lat.append(arrival - ts)
                break
    return lat


def simulate_polling(
    stones: list[tuple[float, Any]], rtts: list[float], interval: float, phases: int = 200
) -> list[float]:
    """Latency when polling every ``interval`` s at a random phase: wait for the next tick + RTT.

    The state a poll returns is read while the request is served, so a milestone is seen by the
    first poll sent at or after it; that response arrives one measured round trip later.
    """
    rng = random.Random(0)
    lat: list[float] = []
    for _ in range(phases):
        phase = rng.uniform(0, interval)
        for ts, _pred in stones:
            wait = (phase - ts) % interval
            lat.append(wait + rng.choice(rtts))
    return lat


def run(
    sb: Sandbox,
    steps: int = 300,
    pace: float = 0.005,
    poll_steps: int = 15,
    poll_pace: float = 0.77,
    trials: int = 3,
) -> dict[str, Any]:
    """Streaming latency on a paced run (raw, client, callback); polling at 1 s and 10 s."""
    out: dict[str, Any] = {"steps": steps, "pace_s": pace, "missing": {}}
    raw_l: list[float] = []
    cli_l: list[float] = []
    cb_l: list[float] = []
    for _ in range(trials):
        sb.reset()
        task = _paths.paced_task(sb, steps, pace)
        raw_l += raw_stream_latency(sb, _paths.create_run(sb, task, max_steps=steps))
        if "client" not in out["missing"]:
            try:
                cli_l += client_stream_latency(sb, _paths.create_run(sb, task, max_steps=steps))
            except _paths.NotLanded as exc:
                out["missing"]["client"] = str(exc)
        if "callback" not in out["missing"]:
            try:
                cb_l += callback_latency(sb, {"task": task, "max_steps": steps})
            except _paths.NotLanded as exc:
                out["missing"]["callback"] = str(exc)
    stream: dict[str, Any] = {"raw": _lat_summary(raw_l)}
    if cli_l:
        stream["client"] = _lat_summary(cli_l)
    if cb_l:
        stream["callback"] = _lat_summary(cb_l)
    for row in stream.values():
        row["p99_ratio_to_raw"] = row["p99_ms"] / stream["raw"]["p99_ms"]
    out["stream"] = stream

    # polling: a run whose milestones (steps, the end) are spread over poll_steps * poll_pace s
    sb.reset()
    run_id = _paths.create_run(sb, _paths.paced_task(sb, poll_steps, poll_pace))
    seen, rtts = poll(sb, run_id, 1.0)
    stones = milestones(event_stamps(sb, run_id))
    out["polling"] = {
        "milestones": len(stones),
        "1s_measured": _lat_summary(measured_polling(seen, stones)),
        "1s_simulated": _lat_summary(simulate_polling(stones, rtts, 1.0)),
        "10s_simulated": _lat_summary(simulate_polling(stones, rtts, 10.0)),
        "get_rtt_ms_p50": percentile([x * 1000 for x in rtts], 50),
    }
    return out
