"""Benchmark 5: per-request overhead of ``client.runs.get`` against a raw httpx GET.

Both are kept open side by side and alternate in blocks of ``block`` requests, so that
drift in the machine's load hits both the same way.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from benchmarks import _paths
from benchmarks._harness import AUTH, Sandbox, summary


def _sync_trial(sb: Sandbox, run_id: str, n: int, block: int) -> tuple[float, float]:
    raw_t = our_t = 0.0
    with (
        httpx.Client(base_url=sb.base_url, headers=AUTH, timeout=30) as http,
        _paths.client(sb) as c,
    ):
        http.get(f"/v1/runs/{run_id}").json()
        c.runs.get(run_id)
        for _ in range(max(1, n // block)):
            t0 = time.perf_counter()
            for _ in range(block):
                r = http.get(f"/v1/runs/{run_id}")
                r.raise_for_status()
                r.json()
            t1 = time.perf_counter()
            for _ in range(block):
                c.runs.get(run_id)
            t2 = time.perf_counter()
            raw_t += t1 - t0
            our_t += t2 - t1
    return raw_t, our_t


async def _async_trial(sb: Sandbox, run_id: str, n: int, block: int) -> tuple[float, float]:
    raw_t = our_t = 0.0
    async with (
        httpx.AsyncClient(base_url=sb.base_url, headers=AUTH, timeout=30) as http,
        _paths.async_client(sb) as c,
    ):
        (await http.get(f"/v1/runs/{run_id}")).json()
        await c.runs.get(run_id)
        for _ in range(max(1, n // block)):
            t0 = time.perf_counter()
            for _ in range(block):
                r = await http.get(f"/v1/runs/{run_id}")
                r.raise_for_status()
                r.json()
            t1 = time.perf_counter()
            for _ in range(block):
                await c.runs.get(run_id)
            t2 = time.perf_counter()
            raw_t += t1 - t0
            our_t += t2 - t1
    return raw_t, our_t


def run(sb: Sandbox, requests: int = 1000, trials: int = 5, block: int = 50) -> dict[str, Any]:
    """Sequential GETs of one run over a kept-alive connection, raw and client alternating."""
    sb.reset()
    run_id = _paths.create_run(sb, "benchmark request overhead")
    block = min(block, requests)
    count = max(1, requests // block) * block
    trials_by_flavour = {
        "sync": lambda: _sync_trial(sb, run_id, requests, block),
        "async": lambda: asyncio.run(_async_trial(sb, run_id, requests, block)),
    }
    out: dict[str, Any] = {"requests": count, "trials": trials, "block": block, "missing": {}}
    for flavour, trial in trials_by_flavour.items():
        raw_us: list[float] = []
        our_us: list[float] = []
        try:
            for _ in range(trials):
                raw_t, our_t = trial()
                raw_us.append(raw_t / count * 1e6)
                our_us.append(our_t / count * 1e6)
        except _paths.NotLanded as exc:
            out["missing"][flavour] = str(exc)
            continue
        out[flavour] = {
            "raw_us_per_request": summary(raw_us),
            "client_us_per_request": summary(our_us),
            "ratio_to_raw": summary([o / r for o, r in zip(our_us, raw_us, strict=False)]),
            "overhead_us": summary([o - r for o, r in zip(our_us, raw_us, strict=False)]),
        }
    return out
