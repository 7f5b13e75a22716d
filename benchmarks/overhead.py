"""Benchmark 5: per-request overhead of ``client.runs.get`` against a raw httpx GET."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from benchmarks import _paths
from benchmarks._harness import AUTH, Sandbox, summary


def _raw_sync(sb: Sandbox, run_id: str, n: int) -> float:
    with httpx.Client(base_url=sb.base_url, headers=AUTH, timeout=30) as http:
        http.get(f"/v1/runs/{run_id}").json()
        t0 = time.perf_counter()
        for _ in range(n):
            r = http.get(f"/v1/runs/{run_id}")
            r.raise_for_status()
            r.json()
        return time.perf_counter() - t0


def _client_sync(sb: Sandbox, run_id: str, n: int) -> float:
    with _paths.client(sb) as c:
        c.runs.get(run_id)
        t0 = time.perf_counter()
        for _ in range(n):
            c.runs.get(run_id)
        return time.perf_counter() - t0


async def _raw_async(sb: Sandbox, run_id: str, n: int) -> float:
    async with httpx.AsyncClient(base_url=sb.base_url, headers=AUTH, timeout=30) as http:
        (await http.get(f"/v1/runs/{run_id}")).json()
        t0 = time.perf_counter()
        for _ in range(n):
            r = await http.get(f"/v1/runs/{run_id}")
            r.raise_for_status()
            r.json()
        return time.perf_counter() - t0


async def _client_async(sb: Sandbox, run_id: str, n: int) -> float:
    async with _paths.async_client(sb) as c:
        await c.runs.get(run_id)
        t0 = time.perf_counter()
        for _ in range(n):
            await c.runs.get(run_id)
        return time.perf_counter() - t0


def run(sb: Sandbox, requests: int = 1000, trials: int = 5) -> dict[str, Any]:
    """Sequential GETs of one run over a kept-alive connection, trials interleaved."""
    sb.reset()
    run_id = _paths.create_run(sb, "benchmark request overhead")
    pairs = {
        "sync": (
            lambda: _raw_sync(sb, run_id, requests),
            lambda: _client_sync(sb, run_id, requests),
        ),
        "async": (
            lambda: asyncio.run(_raw_async(sb, run_id, requests)),
            lambda: asyncio.run(_client_async(sb, run_id, requests)),
        ),
    }
    out: dict[str, Any] = {"requests": requests, "trials": trials, "missing": {}}
    for flavour, (raw, ours) in pairs.items():
        raw_us: list[float] = []
        our_us: list[float] = []
        for _ in range(trials):
            raw_us.append(raw() / requests * 1e6)
            try:
                our_us.append(ours() / requests * 1e6)
            except _paths.NotLanded as exc:
                out["missing"][flavour] = str(exc)
                break
        row: dict[str, Any] = {"raw_us_per_request": summary(raw_us)}
        if our_us:
            row["client_us_per_request"] = summary(our_us)
            row["ratio_to_raw"] = summary([o / r for o, r in zip(our_us, raw_us, strict=False)])
            row["overhead_us"] = summary([o - r for o, r in zip(our_us, raw_us, strict=False)])
        out[flavour] = row
    return out
