"""Benchmark 3: many concurrent runs from one process via ``CoastyRunnable.abatch``.

Each level runs in a fresh interpreter (``python -m benchmarks.scale``) so that its peak RSS
belongs to that level alone. The baseline is one run of the same scenario on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from benchmarks import _paths
from benchmarks._harness import AUTH, Sandbox, current_rss_bytes, peak_rss_bytes, summary

# events a run emits around its steps (2 status at the start; text, status, done at the end)
EVENTS_FIXED = 5
EVENTS_PER_STEP = 5


class _OpenStreams:
    """Samples the sandbox's open_streams counter in a thread; keeps the maximum."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.wait(0.1):
                try:
                    c = http.get(self.base_url + "/_sandbox/counters").json()
                    self.peak = max(self.peak, int(c.get("open_streams", 0)))
                except (httpx.HTTPError, ValueError):
                    pass

    def __enter__(self) -> _OpenStreams:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _server_duration(run: Any) -> float | None:
    """How long the sandbox took to play the run on its own (created -> finished)."""
    stamps = [getattr(run, "created_at", None), getattr(run, "finished_at", None)]
    try:
        start, end = (s if isinstance(s, datetime) else datetime.fromisoformat(s) for s in stamps)
    except (TypeError, ValueError):
        return None
    return (end - start).total_seconds()


async def _level(
    sb: Sandbox,
    task: str,
    n: int,
    expected_events: int,
    backend: str = "httpx",
    async_client: Any = None,
) -> dict[str, Any]:
    """The baseline run, then ``n`` at once; ``async_client``: the runnable's, if not its own."""
    # The async handler, as recommended for async code: a sync handler makes LangChain hand
    # every event to a worker thread (see finding 3).
    base = _paths.need("langchain_coasty.callbacks", "AsyncCoastyCallbackHandler")
    seqs: dict[str, list[int]] = defaultdict(list)

    class Collect(base):  # type: ignore[misc, valid-type]
        async def on_coasty_event(self, event: Any) -> None:
            get = event.get if isinstance(event, dict) else lambda k: getattr(event, k, None)
            seqs[str(get("run_id"))].append(int(get("seq")))

    extra: dict[str, Any] = {} if async_client is None else {"async_client": async_client}
    if backend != "httpx":
        from langchain_coasty import AsyncCoastyClient

        extra["async_client"] = AsyncCoastyClient(
            api_key=_paths.API_KEY, base_url=sb.base_url, http_backend=backend
        )
    runnable = _paths.runnable(sb, **extra)
    # the baseline: one run alone (also warms imports, pools and the loop)
    t0 = time.perf_counter()
    alone = await runnable.ainvoke(task)
    single = time.perf_counter() - t0
    scripted = _server_duration(alone)
    rss0 = current_rss_bytes()
    with _OpenStreams(sb.base_url) as streams:
        c0, t0 = time.process_time(), time.perf_counter()
        results = await runnable.abatch(
            [task] * n, config={"callbacks": [Collect()]}, return_exceptions=True
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss_bytes()
    errors = [f"{type(r).__name__}: {r}"[:200] for r in results if isinstance(r, BaseException)]
    statuses: dict[str, int] = defaultdict(int)
    for r in results:
        if not isinstance(r, BaseException):
            statuses[str(getattr(r, "status", "?")).split(".")[-1].lower()] += 1
    complete = sum(1 for s in seqs.values() if s == list(range(1, expected_events + 1)))
    return {
        "runs": n,
        "wall_s": wall,
        "single_run_s": single,
        "ratio_to_single_run": wall / single,
        "scripted_run_s": scripted,
        "ratio_to_scripted": wall / scripted if scripted else None,
        "peak_rss_per_run_kib": (peak - rss0) / n / 1024,
        "rss_before_mib": rss0 / 2**20,
        "peak_rss_mib": peak / 2**20,
        "runs_all_events_in_order": complete,
        "statuses": dict(statuses),
        "errors": len(errors),
        "first_errors": errors[:3],
        "peak_open_streams": streams.peak,
        "cpu_ms_per_run": cpu / n * 1e3,
    }


async def _raw_level(sb: Sandbox, task: str, n: int, expected_events: int) -> dict[str, Any]:
    """Baseline: the same n runs with raw httpx + httpx-sse on one AsyncClient."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    body = {"machine_id": sb.machine_id, "task": task}
    async with httpx.AsyncClient(
        base_url=sb.base_url, headers=AUTH, timeout=300, limits=limits
    ) as http:

        async def one() -> list[int]:
            key = {"Idempotency-Key": uuid.uuid4().hex}
            run_id = (await http.post("/v1/runs", json=body, headers=key)).json()["id"]
            seqs: list[int] = []
            async with aconnect_sse(http, "GET", f"/v1/runs/{run_id}/events") as source:
                async for sse in source.aiter_sse():
                    event = json.loads(sse.data)
                    seqs.append(int(event["seq"]))
                    if event["type"] == "done":
                        break
            return seqs

        await one()
        rss0 = current_rss_bytes()
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        wall = time.perf_counter() - t0
    complete = sum(1 for r in results if r == list(range(1, expected_events + 1)))
    return {
        "runs": n,
        "wall_s": wall,
        "peak_rss_per_run_kib": (peak_rss_bytes() - rss0) / n / 1024,
        "runs_all_events_in_order": complete,
        "errors": sum(isinstance(r, BaseException) for r in results),
    }


def run_level(
    sb: Sandbox, n: int, steps: int, pace: float, raw: bool = False, backend: str = "httpx"
) -> dict[str, Any]:
    """One level in a fresh interpreter; returns its figures."""
    sb.reset()
    task = _paths.paced_task(sb, steps, pace)
    events = EVENTS_FIXED + EVENTS_PER_STEP * steps
    cmd = [sys.executable, "-m", "benchmarks.scale", "--base-url", sb.base_url]
    cmd += ["--machine-id", sb.machine_id, "--task", task, "--runs", str(n)]
    cmd += ["--events", str(events), "--backend", backend] + (["--raw"] if raw else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        err = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
        if "NotLanded" in err:
            raise _paths.NotLanded(err.split(":", 1)[-1].strip())
        return {"runs": n, "error": err[:300]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(
    sb: Sandbox,
    levels: tuple[int, ...] = (100, 500, 1000, 2000),
    steps: int = 4,
    pace: float = 1.5,
    trials: int = 2,
    raw_levels: tuple[int, ...] = (100, 500),
    max_trials_above: int = 500,
    aiohttp_levels: tuple[int, ...] = (500, 1000, 2000),
) -> dict[str, Any]:
    """Every level ``trials`` times (once above ``max_trials_above``); median and spread.

    The raw httpx baseline runs at ``raw_levels`` only: with one shared pool its CPU cost
    grows with the square of the concurrency (see BENCHMARKS.md), too slow for the budget.
    """
    out: dict[str, Any] = {
        "steps_per_run": steps,
        "events_per_run": EVENTS_FIXED + EVENTS_PER_STEP * steps,
        "pace_s": pace,
        "levels": {},
        "missing": {},
    }
    for n in levels:
        samples: list[dict[str, Any]] = []
        raws: list[dict[str, Any]] = []
        for _ in range(trials if n <= max_trials_above else 1):
            if n in raw_levels:
                raws.append(run_level(sb, n, steps, pace, raw=True))
            try:
                samples.append(run_level(sb, n, steps, pace))
            except _paths.NotLanded as exc:
                out["missing"]["runnable"] = str(exc)
                return out
        ok = [s for s in samples if "error" not in s]
        row: dict[str, Any] = {"trials": samples}
        if n in aiohttp_levels and _has_aiohttp():
            aio = run_level(sb, n, steps, pace, backend="aiohttp")
            row["aiohttp_trial"] = aio
            if "error" not in aio and aio.get("ratio_to_scripted") is not None:
                row["aiohttp_ratio_to_scripted"] = aio["ratio_to_scripted"]
                row["aiohttp_peak_open_streams"] = aio["peak_open_streams"]
                row["aiohttp_all_events_delivered"] = aio["runs_all_events_in_order"] == n
        raw_ok = [r for r in raws if "error" not in r]
        if raw_ok:
            row["raw_trials"] = raws
            row["raw_ratio_to_scripted"] = summary(
                [r["wall_s"] / s["scripted_run_s"] for r, s in zip(raw_ok, ok, strict=False)]
            )
            row["ratio_to_raw"] = summary(
                [s["wall_s"] / r["wall_s"] for r, s in zip(raw_ok, ok, strict=False)]
            )
            row["raw_all_events_delivered"] = all(r["runs_all_events_in_order"] == n for r in raws)
        if ok:
            for key in ("ratio_to_single_run", "ratio_to_scripted", "peak_rss_per_run_kib"):
                if ok[0].get(key) is not None:
                    row[key] = summary([s[key] for s in ok])
            row["all_events_delivered"] = all(s["runs_all_events_in_order"] == n for s in ok)
            row["errors"] = sum(s["errors"] for s in ok)
            row["peak_open_streams"] = max(s["peak_open_streams"] for s in ok)
        out["levels"][str(n)] = row
    return out


def _has_aiohttp() -> bool:
    import importlib.util

    return importlib.util.find_spec("httpx_aiohttp") is not None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-url", required=True)
    p.add_argument("--machine-id", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--raw", action="store_true", help="the raw httpx baseline")
    p.add_argument("--backend", default="httpx", help="the async client's http_backend")
    a = p.parse_args()
    sb = Sandbox(a.base_url, machine_ids=[a.machine_id])
    if a.raw:
        print(json.dumps(asyncio.run(_raw_level(sb, a.task, a.runs, a.events))))
    else:
        print(json.dumps(asyncio.run(_level(sb, a.task, a.runs, a.events, a.backend))))


if __name__ == "__main__":
    main()
