"""Run every benchmark against a sandbox in a separate process; print, write JSON and BENCHMARKS.md.

Usage: ``python -m benchmarks.run [--tiny] [--only stream,latency,...] [--no-markdown]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import (
    durable_waits,
    http2,
    imports,
    latency,
    overhead,
    paced,
    per_run,
    recovery,
    report,
    scale,
    stream,
)
from benchmarks._harness import machine_info, sandbox_process

HERE = Path(__file__).resolve().parent

FULL: dict[str, Any] = {
    "stream": {"events": 100_000, "trials": 2},
    "latency": {"steps": 300, "pace": 0.005, "poll_steps": 15, "poll_pace": 0.77, "trials": 3},
    "scale": {
        "levels": (100, 500, 1000, 2000),
        "steps": 4,
        "pace": 1.5,
        "trials": 2,
        "max_trials_above": 100,
    },
    "recovery": {"events": 3000, "max_frames": 30, "trials": 3},
    "overhead": {"requests": 500, "trials": 5},
    "imports": {"trials": 5},
    "per_run": {"runs": 200, "trials": 3, "steps": 3},
    "paced": {
        "levels": (
            (10_000, "aiohttp", "off"),
            (10_000, "aiohttp", "tuned"),
            (10_000, "httpx", "off"),
        ),
        "steps": 16,
        "pace": 5.0,
        "ramp_s": 60.0,
    },
    "http2": {"levels": (1000, 2000), "steps": 4, "pace": 1.5},
    "durable_waits": {"waits": 10_000, "steps": 1, "pace": 150.0, "window": 10.0},
}
TINY: dict[str, Any] = {
    "stream": {"events": 300, "trials": 1},
    "latency": {"steps": 30, "pace": 0.01, "poll_steps": 3, "poll_pace": 0.4, "trials": 1},
    "scale": {
        "levels": (4,),
        "steps": 2,
        "pace": 0.05,
        "trials": 1,
        "raw_levels": (4,),
        "aiohttp_levels": (4,),
    },
    "recovery": {"events": 150, "max_frames": 20, "trials": 1},
    "overhead": {"requests": 20, "trials": 1},
    "imports": {"trials": 1},
    "per_run": {"runs": 5, "trials": 1, "steps": 2},
    "paced": {
        "levels": ((6, "aiohttp", "tuned"), (6, "httpx", "default")),
        "steps": 2,
        "pace": 0.1,
        "ramp_s": 0.2,
    },
    "http2": {"levels": (4,), "steps": 2, "pace": 0.05},
    "durable_waits": {"waits": 10, "steps": 1, "pace": 3.0, "window": 0.5, "timeout": 120.0},
}
ORDER = (
    "imports",
    "overhead",
    "per_run",
    "stream",
    "latency",
    "recovery",
    "scale",
    "http2",
    "paced",
    "durable_waits",
)


def run_all(sizes: dict[str, Any], only: tuple[str, ...] = ORDER) -> dict[str, Any]:
    """Run the selected benchmarks at the given sizes; return the results document."""
    results: dict[str, Any] = {"machine": machine_info(), "sizes": sizes, "benchmarks": {}}
    started = time.perf_counter()
    if "imports" in only:
        results["benchmarks"]["imports"] = _timed(lambda: imports.run(**sizes["imports"]))
    with sandbox_process(pace=0.0) as sb:
        modules = {"overhead": overhead, "stream": stream, "latency": latency, "per_run": per_run}
        modules |= {"recovery": recovery, "scale": scale, "http2": http2, "paced": paced}
        modules |= {"durable_waits": durable_waits}
        for name in ORDER[1:]:
            if name in only:
                sb.reset()
                sb.configure(pace=0.0)
                mod = modules[name]
                results["benchmarks"][name] = _timed(lambda m=mod, n=name: m.run(sb, **sizes[n]))
    results["total_seconds"] = time.perf_counter() - started
    results["machine"]["load_average_1m_end"] = machine_info()["load_average_1m"]
    return results


def _timed(fn: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    out: dict[str, Any] = fn()
    out["seconds"] = round(time.perf_counter() - t0, 2)
    print(f"  ... done in {out['seconds']:.1f} s", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tiny", action="store_true", help="tiny sizes (smoke run)")
    p.add_argument("--only", default=",".join(ORDER), help="comma-separated subset")
    p.add_argument("--no-markdown", action="store_true", help="do not rewrite BENCHMARKS.md")
    p.add_argument(
        "--render", metavar="JSON", help="only re-render BENCHMARKS.md from a results file"
    )
    a = p.parse_args(argv)
    if a.render:
        results = json.loads(Path(a.render).read_text())
        (HERE / "BENCHMARKS.md").write_text(report.markdown(results))
        print(report.table(results))
        return 0
    only = tuple(x.strip() for x in a.only.split(",") if x.strip())
    sizes = TINY if a.tiny else FULL
    results = run_all(sizes, only)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    text = json.dumps(results, indent=2, default=str)
    (out_dir / f"results-{stamp}.json").write_text(text)
    (out_dir / "latest.json").write_text(text)
    print(report.table(results))
    if not a.tiny and not a.no_markdown and set(only) == set(ORDER):
        (HERE / "results.json").write_text(text + "\n")
        (HERE / "BENCHMARKS.md").write_text(report.markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
