"""Benchmark 6: import cost in fresh interpreters, and which heavy stacks an import drags in."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from benchmarks._harness import summary

BASELINE = "import langchain_core.tools"
# ``import langchain_core.tools`` is itself lazy; this is what loading a LangChain tool costs.
BASETOOL = "from langchain_core.tools import BaseTool"
CANDIDATES = {
    "BaseTool (reference)": BASETOOL,
    "import langchain_coasty": "import langchain_coasty",
    "CoastyClient": "from langchain_coasty import CoastyClient",
    "CoastyRunnable": "from langchain_coasty import CoastyRunnable",
    "CoastyComputerTool": "from langchain_coasty import CoastyComputerTool",
    "CoastyCallbackHandler": "from langchain_coasty import CoastyCallbackHandler",
}
# Stacks that only the graph features (langgraph) or the sandbox (starlette, uvicorn) need.
HEAVY = ("langgraph", "langchain.agents", "starlette", "uvicorn")

_PROBE = """
import sys, time, json
t0 = time.perf_counter()
exec(sys.argv[1])
dt = time.perf_counter() - t0
heavy = sorted({m.split('.')[0] if not m.startswith('langchain.') else 'langchain.agents'
                for m in sys.modules
                if m.split('.')[0] in ('langgraph', 'starlette', 'uvicorn')
                or m.startswith('langchain.agents')})
print(json.dumps({"seconds": dt, "heavy": heavy, "modules": len(sys.modules)}))
"""


def probe(statement: str) -> dict[str, Any]:
    """Run one import statement in a fresh interpreter; time it and list heavy modules loaded."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, statement], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
        return {"error": last.split(":", 1)[0]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(trials: int = 7) -> dict[str, Any]:
    """Time each import against ``import langchain_core.tools`` with trials interleaved."""
    base_times: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    heavy: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for _ in range(trials):
        base_times.append(probe(BASELINE)["seconds"])
        for name, stmt in CANDIDATES.items():
            if name in errors:
                continue
            r = probe(stmt)
            if "error" in r:
                errors[name] = r["error"]
                continue
            times[name].append(r["seconds"])
            heavy[name] = r["heavy"]
    rows: dict[str, Any] = {}
    for name, ts in times.items():
        if not ts:
            continue
        ratios = [t / b for t, b in zip(ts, base_times, strict=False)]
        to_tool = [t / b for t, b in zip(ts, times["BaseTool (reference)"], strict=False)]
        rows[name] = {
            "ms": summary([t * 1000 for t in ts]),
            "ratio": summary(ratios),
            "ratio_to_basetool": summary(to_tool),
            "heavy_modules": heavy.get(name, []),
        }
    return {
        "baseline": {"statement": BASELINE, "ms": summary([t * 1000 for t in base_times])},
        "candidates": rows,
        "missing": errors,
    }
