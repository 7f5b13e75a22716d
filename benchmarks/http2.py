"""Benchmark 8 (an experiment): the scale scenario over HTTP/2 cleartext (h2c, prior knowledge).

The unchanged sandbox app is served by hypercorn in one process; the runnable sends through
``httpx.AsyncClient(http2=True, http1=False)`` (``http1=False``: httpx speaks h2c only by
prior knowledge). The same hypercorn with the default client (HTTP/1.1) separates the server
change from the protocol; the usual uvicorn sandbox is the baseline. Each level runs in a
fresh interpreter (``python -m benchmarks.http2``), like ``scale``. hypercorn does not keep the
sandbox's 431 bound on a request's head (``sandbox.protocol`` is uvicorn's), so only the
streams are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import httpx

from benchmarks import _paths, scale
from benchmarks._harness import API_KEY, Sandbox, free_port, serve_process

MAX_STREAMS = 10_000
"""hypercorn's HTTP/2 concurrent streams per connection (its default is 100)."""

VARIANTS = ("uvicorn_http1", "hypercorn_http1", "hypercorn_http2", "hypercorn_http2_pools")


def missing() -> str | None:
    """Why the benchmark cannot run here, or None."""
    absent = [m for m in ("hypercorn", "h2") if importlib.util.find_spec(m) is None]
    return f"{' and '.join(absent)} not installed (pip install hypercorn h2)" if absent else None


def serve(port: int) -> None:
    """Serve a fresh sandbox with hypercorn (HTTP/1.1 and h2c) on loopback until SIGINT."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from langchain_coasty.sandbox.app import create_app
    from langchain_coasty.sandbox.protocol import MAX_HEAD_BYTES
    from langchain_coasty.sandbox.server import bind_socket

    sock = bind_socket("127.0.0.1", port)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.backlog = 4096
    config.keep_alive_timeout = 30
    config.h11_max_incomplete_size = MAX_HEAD_BYTES
    config.h2_max_header_list_size = MAX_HEAD_BYTES
    config.h2_max_concurrent_streams = MAX_STREAMS
    # Its default, 1000, ends a connection with GOAWAY after that many requests; httpcore then
    # fails the requests already on it (WriteError) instead of sending them again elsewhere.
    config.keep_alive_max_requests = 2**31
    config.accesslog = None
    config.loglevel = "WARNING"

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await hypercorn_serve(create_app(), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(main())


@contextlib.contextmanager
def hypercorn_process() -> Iterator[Sandbox]:
    """The hypercorn sandbox in its own process."""
    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.http2", "--serve", "--port", str(port)]
    with serve_process(cmd, f"http://127.0.0.1:{port}") as sb:
        yield sb


class _Connections:
    """Samples a process's established TCP connections to one port (psutil); keeps the peak."""

    def __init__(self, pid: int, port: int) -> None:
        self.pid, self.port, self.peak = pid, port, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        proc = psutil.Process(self.pid)
        while not self._stop.wait(0.25):
            try:
                conns = proc.net_connections(kind="tcp")
            except psutil.Error:
                return
            n = sum(1 for c in conns if c.raddr and c.raddr.port == self.port)
            self.peak = max(self.peak, n)

    def __enter__(self) -> _Connections:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _h2c(limits: httpx.Limits, verify: Any = True) -> httpx.AsyncClient:
    return httpx.AsyncClient(http2=True, http1=False, timeout=30, limits=limits, verify=verify)


def _http2_pools(client: Any) -> None:
    """Make the client's own run pools HTTP/2, one connection each (private: an experiment).

    httpcore lets one HTTP/2 connection carry at most 100 streams and queues the rest on it;
    the client's spread over run pools keeps each under that.
    """
    from langchain_coasty.client._pool import RunPools

    client._pools = RunPools(4096, client._limits(), _h2c)
    client._http = client._pools.general


async def _level(sb: Sandbox, task: str, n: int, events: int, mode: str) -> dict[str, Any]:
    """In the child: scale's level over HTTP/1.1, one HTTP/2 ``http_client``, or h2 run pools."""
    if mode == "http1":
        return await scale._level(sb, task, n, events)
    from langchain_coasty import AsyncCoastyClient

    if mode == "http2_pools":
        client = AsyncCoastyClient(api_key=API_KEY, base_url=sb.base_url)
        _http2_pools(client)
        out = await scale._level(sb, task, n, events, async_client=client)
        out["http_version"] = (await client._http.get(sb.base_url + "/v1/health")).http_version
        await client.close()
        return out
    async with _h2c(httpx.Limits()) as http:
        client = AsyncCoastyClient(api_key=API_KEY, base_url=sb.base_url, http_client=http)
        out = await scale._level(sb, task, n, events, async_client=client)
        out["http_version"] = (await http.get(sb.base_url + "/v1/health")).http_version
    return out


def run_level(sb: Sandbox, n: int, steps: int, pace: float, mode: str) -> dict[str, Any]:
    """One level against ``sb`` in a fresh interpreter; its figures and its TCP connections."""
    sb.reset()
    task = _paths.paced_task(sb, steps, pace)
    events = scale.EVENTS_FIXED + scale.EVENTS_PER_STEP * steps
    cmd = [sys.executable, "-m", "benchmarks.http2", "--base-url", sb.base_url]
    cmd += ["--machine-id", sb.machine_id, "--task", task, "--runs", str(n)]
    cmd += ["--events", str(events), "--mode", mode]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _Connections(proc.pid, httpx.URL(sb.base_url).port or 80) as conns:
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        err = stderr.strip().splitlines()[-1] if stderr.strip() else "failed"
        if "NotLanded" in err:
            raise _paths.NotLanded(err.split(":", 1)[-1].strip())
        return {"runs": n, "error": err[:300]}
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["peak_tcp_connections"] = conns.peak
    result["all_events_delivered"] = result["runs_all_events_in_order"] == n
    return result


def run(
    sb: Sandbox, levels: tuple[int, ...] = (500, 1000, 2000), steps: int = 4, pace: float = 1.5
) -> dict[str, Any]:
    """Every level once per variant, the three side by side; ratios to uvicorn over HTTP/1.1."""
    out: dict[str, Any] = {
        "steps_per_run": steps,
        "events_per_run": scale.EVENTS_FIXED + scale.EVENTS_PER_STEP * steps,
        "pace_s": pace,
        "levels": {},
        "missing": {},
    }
    if reason := missing():
        out["missing"]["hypercorn"] = reason
        return out
    out["server"] = {
        "hypercorn": metadata.version("hypercorn"),
        "h2": metadata.version("h2"),
        "h2_max_concurrent_streams": MAX_STREAMS,
    }
    with hypercorn_process() as hyper:
        for n in levels:
            try:
                row = {
                    "uvicorn_http1": run_level(sb, n, steps, pace, "http1"),
                    "hypercorn_http1": run_level(hyper, n, steps, pace, "http1"),
                    "hypercorn_http2": run_level(hyper, n, steps, pace, "http2"),
                    "hypercorn_http2_pools": run_level(hyper, n, steps, pace, "http2_pools"),
                }
            except _paths.NotLanded as exc:
                out["missing"]["runnable"] = str(exc)
                return out
            base = row["uvicorn_http1"].get("ratio_to_scripted")
            for name in VARIANTS[1:]:
                ratio = row[name].get("ratio_to_scripted")
                if base and ratio:
                    row[name]["ratio_to_uvicorn_http1"] = ratio / base
            out["levels"][str(n)] = row
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--serve", action="store_true", help="serve the hypercorn sandbox")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--base-url")
    p.add_argument("--machine-id")
    p.add_argument("--task")
    p.add_argument("--runs", type=int)
    p.add_argument("--events", type=int)
    p.add_argument("--mode", choices=("http1", "http2", "http2_pools"), default="http1")
    a = p.parse_args()
    if a.serve:
        serve(a.port)
        return
    sb = Sandbox(a.base_url, machine_ids=[a.machine_id])
    print(json.dumps(asyncio.run(_level(sb, a.task, a.runs, a.events, a.mode))))


if __name__ == "__main__":
    main()
