"""Shared pieces: the sandbox in its own process, its control plane, timing and statistics."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

API_KEY = "sk-coasty-test-benchmarks"
AUTH = {"X-API-Key": API_KEY}


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sandbox:
    """A sandbox server running in a separate process on loopback, plus its control plane."""

    base_url: str
    process: subprocess.Popen[bytes] | None = None
    machine_ids: list[str] = field(default_factory=list)

    @property
    def machine_id(self) -> str:
        return self.machine_ids[0] if self.machine_ids else "m-sandbox-1"

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, self.base_url + "/_sandbox/" + path, json=body, timeout=30)
        r.raise_for_status()
        return r.json() if r.content else None

    def reset(self) -> None:
        self._control("POST", "reset")

    def configure(self, **config: Any) -> None:
        self._control("POST", "config", config)

    def load_scenarios(self, scenarios: list[dict[str, Any]], replace: bool = False) -> None:
        self._control("POST", "scenarios", {"scenarios": scenarios, "replace": replace})

    def inject(self, **faults: Any) -> None:
        self._control("POST", "faults", faults)

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = self._control("GET", "counters")
        return result


@contextlib.contextmanager
def sandbox_process(pace: float = 0.0, seed: int = 0) -> Iterator[Sandbox]:
    """Start ``python -m langchain_coasty.sandbox.cli`` on a free port, wait for health, stop it."""
    port = free_port()
    cmd = [sys.executable, "-m", "langchain_coasty.sandbox.cli", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--pace", str(pace), "--seed", str(seed)]
    with serve_process(cmd, f"http://127.0.0.1:{port}") as sb:
        yield sb


@contextlib.contextmanager
def serve_process(cmd: list[str], base_url: str) -> Iterator[Sandbox]:
    """Run ``cmd`` (a sandbox server on ``base_url``), wait for health, stop it with SIGINT."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"sandbox exited with {proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(base_url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox did not become healthy within 30 s")
            time.sleep(0.05)
        sb = Sandbox(base_url, proc)
        try:
            r = httpx.get(base_url + "/v1/machines", headers=AUTH, timeout=5)
            data = r.json().get("data", []) if r.status_code == 200 else []
            sb.machine_ids = [m["id"] for m in data if isinstance(m, dict) and "id" in m]
        except (httpx.HTTPError, ValueError):
            pass
        yield sb
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()


# ---------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and spread (min, max, and the relative half-range) over repeated trials."""
    vals = list(values)
    med = statistics.median(vals)
    lo, hi = min(vals), max(vals)
    spread = (hi - lo) / 2 / med if med else 0.0
    return {"median": med, "min": lo, "max": hi, "spread": spread, "n": len(vals)}


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """Run fn; return (result, wall seconds, process CPU seconds)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0, time.process_time() - c0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024


def current_rss_bytes() -> int:
    """Current resident set size (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        mem = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    versions: dict[str, str] = {}
    from importlib import metadata

    for dist in (
        "httpx",
        "httpx-sse",
        "langchain-core",
        "langgraph",
        "starlette",
        "uvicorn",
        "hypercorn",
        "h2",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": mem,
        "packages": versions,
    }
