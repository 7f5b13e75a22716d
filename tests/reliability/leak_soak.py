"""Machine leak soak: agent threads with per-thread machines, faults, pauses, cancels and kills.

``make leak-soak`` (or ``python -m tests.reliability.leak_soak --threads 100``) starts a
sandbox that fails some provisionings into ``error``, loses create responses (machines and
runs), starts machines slowly and cuts event streams. Worker processes each run agent
threads at once (``create_agent`` + ``CoastyMiddleware``, ``MachinePerThread``, two tool
calls per thread so the second reuses the machine); a third of the threads pause for a
person and are answered, some are cancelled midway, and one worker is killed with SIGKILL
while its runs are going. Then the sandbox's machine ledger is read: every machine the
package created must be terminated, or, for the threads of the killed worker and the
cancelled ones, destroyed by its lease once the sandbox clock passes the lease; no thread
may have had more than one machine that came up.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

LEASE_MINUTES = 10
LOGIN_TASK = "Log in to the bank portal and download the March statement"
FAULTS: dict[str, Any] = {
    "machine_provision_fail_rate": 0.05,
    "machine_create_lose_response_rate": 0.1,
    "machine_start_delay_seconds": 0.3,
    "create_lose_response_rate": 0.1,
    "create_refuse_rate": 0.05,
    "retry_after": 1,
    "stream_cut_rate": 0.2,
    "stream_cut_mode": "random",
}


# --- a worker process ---------------------------------------------------------------------


async def _thread(index: int, prefix: str, base_url: str, api_key: str, cancel: bool) -> str:
    """One agent thread; returns how it ended."""
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    from langchain_coasty import (
        CoastyComputerTool,
        CoastyMiddleware,
        MachinePerThread,
        MachineSpec,
    )
    from tests.fakes import ScriptedChatModel, call

    pause = index % 3 == 0
    first = LOGIN_TASK if pause else f"Open the docs page {index}"
    tool = CoastyComputerTool(
        api_key=api_key,
        base_url=base_url,
        machine=MachinePerThread(MachineSpec(ttl_minutes=LEASE_MINUTES, ready_timeout=60)),
        max_retries=5,
        timeout=10,
    )
    model = ScriptedChatModel(
        script=[
            AIMessage("", tool_calls=[call("coasty_computer", f"{prefix}-{index}-a", task=first)]),
            AIMessage(
                "",
                tool_calls=[call("coasty_computer", f"{prefix}-{index}-b", task="Read the page")],
            ),
            AIMessage("done"),
        ]
    )
    agent = create_agent(
        model, [tool], middleware=[CoastyMiddleware(tool)], checkpointer=InMemorySaver()
    )
    config: Any = {"configurable": {"thread_id": f"{prefix}-{index}"}}

    async def go() -> str:
        out = await agent.ainvoke({"messages": [HumanMessage("go")]}, config)
        while out.get("__interrupt__"):
            answers = {i.id: "use the team account" for i in out["__interrupt__"]}
            out = await agent.ainvoke(Command(resume=answers), config)
        return "finished"

    task = asyncio.ensure_future(go())
    if cancel:
        await asyncio.sleep(random.uniform(0.5, 2.0))
        task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return "cancelled"
    except Exception as exc:  # a fault that outlasted the retries: the thread fails
        return f"failed: {type(exc).__name__}"


async def _worker(args: argparse.Namespace) -> None:
    random.seed(args.seed)
    cancels = set(random.sample(range(args.threads), max(1, args.threads // 10)))
    ends = await asyncio.gather(
        *(
            _thread(i, args.prefix, args.base_url, args.api_key, i in cancels)
            for i in range(args.threads)
        )
    )
    print(json.dumps(dict(collections.Counter(e.split(":")[0] for e in ends))), flush=True)


# --- the driver ---------------------------------------------------------------------------


@dataclass
class LeakReport:
    """What the soak found."""

    threads: int
    workers: int
    killed_workers: int
    thread_ends: dict[str, int]
    machines_created: int
    provision_failures: int
    terminated_by_package: int
    destroyed_by_lease: int
    left_running: int
    max_machines_up_per_thread: int
    threads_with_a_machine: int
    lease_minutes: int
    seconds: float

    def problems(self) -> list[str]:
        found = []
        if self.left_running:
            found.append(f"{self.left_running} machines left running after the lease")
        if self.max_machines_up_per_thread > 1:
            found.append(f"a thread had {self.max_machines_up_per_thread} machines")
        return found


def run_soak(threads: int = 100, workers: int = 4, kill: int = 1, seed: int = 11) -> LeakReport:
    """Run the soak and return its report (the sandbox runs in this process)."""
    from langchain_coasty.sandbox import CoastySandbox

    started = time.monotonic()
    per_worker = max(1, threads // workers)
    with CoastySandbox(pace=0.15) as sb:
        sb.configure(machine_phase_seconds=0.1)
        sb.inject(seed=seed, **FAULTS)
        procs = []
        for w in range(workers):
            cmd = [
                sys.executable, "-m", "tests.reliability.leak_soak", "--worker",
                "--base-url", sb.base_url, "--api-key", sb.api_key, "--prefix", f"w{w}",
                "--threads", str(per_worker), "--seed", str(seed + w),
            ]  # fmt: skip
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        victims = procs[workers - kill :] if kill else []
        for w, proc in enumerate(victims, start=workers - kill):
            # Kill it once a few of its threads have a machine running a run.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                running = [
                    m
                    for m in sb.machines()
                    if m["status"] == "running"
                    and (m.get("metadata") or {})
                    .get("langchain_thread_id", "")
                    .startswith(f"w{w}-")
                ]
                if len(running) >= max(1, per_worker // 4):
                    break
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        ends: collections.Counter[str] = collections.Counter()
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            if proc.returncode == 0 and out.strip():
                ends.update(json.loads(out.strip().splitlines()[-1]))
            elif proc in victims:
                ends["killed"] += per_worker
        ledger = [
            m for m in sb.machines() if (m.get("metadata") or {}).get("langchain_coasty") == "1"
        ]
        before = {m["id"]: m for m in ledger}
        sb.advance_clock(LEASE_MINUTES * 60 + 60)
        after = [m for m in sb.machines() if m["id"] in before]
        up: collections.Counter[str] = collections.Counter(
            (m.get("metadata") or {}).get("langchain_thread_id", "")
            for m in after
            if not m["provision_failed"]
        )
        report = LeakReport(
            threads=per_worker * workers,
            workers=workers,
            killed_workers=kill,
            thread_ends=dict(ends),
            machines_created=len(after),
            provision_failures=sum(1 for m in after if m["provision_failed"]),
            terminated_by_package=sum(1 for m in after if m["end_reason"] == "deleted"),
            destroyed_by_lease=sum(1 for m in after if m["end_reason"] == "ttl_expired"),
            left_running=sum(1 for m in after if m["status"] != "terminated"),
            max_machines_up_per_thread=max(up.values(), default=0),
            threads_with_a_machine=len(up),
            lease_minutes=LEASE_MINUTES,
            seconds=round(time.monotonic() - started, 1),
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill", type=int, default=1, help="workers killed with SIGKILL")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(_worker(args))
        return 0
    report = run_soak(args.threads, args.workers, args.kill, args.seed)
    print(json.dumps(report.__dict__, indent=2))
    for problem in report.problems():
        print(f"PROBLEM: {problem}")
    return 1 if report.problems() else 0


if __name__ == "__main__":
    raise SystemExit(main())
