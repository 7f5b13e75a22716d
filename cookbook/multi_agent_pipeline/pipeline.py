"""Multi-agent pipeline: a supervisor fans three tasks out to a pool of Coasty machines.

A ``CoastyMachinePool`` provisions the machines in parallel before the graph starts and
terminates every one of them when it ends (also on an error or Ctrl-C). The supervisor sends
each job to a worker node (``Send``); the workers run in parallel, each following one Coasty
run through ``CoastyRunnable(machine=pool)``, which borrows a free machine for the run and
gives it back after (a paused run keeps its machine until it is answered).
All runs' events arrive on one LangGraph custom stream (``{"coasty_event": payload}``, tagged
with run and machine). When a run needs a person its worker interrupts; the driver routes each
question to an automatic approver policy (sign-ins and one-time codes) or, for anything it
will not decide (payments), to a person: asked at the terminal when there is one, otherwise
approved with ``--yes`` or declined. The supervisor then collects the results and the cost.
LangGraph hands over a step's interrupts once every worker of that step has finished or
paused; each answer goes back to its own worker by interrupt id, in one ``Command(resume=...)``.

Run it (local sandbox unless COASTY_API_KEY and COASTY_BASE_URL are set)::

    python cookbook/multi_agent_pipeline/pipeline.py [--yes] [--pace 0.2]
"""

from __future__ import annotations

import argparse
import operator
import sys
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send

from langchain_coasty import CoastyMachinePool, CoastyRunnable, MachineSpec
from langchain_coasty.callbacks import coasty_payload
from langchain_coasty.examples import coasty_target

JOBS = {
    "leads": "Open the CRM and export this week's new leads to a CSV file",
    "statement": "Sign in to the bank portal and download the March statement",
    "invoice": "Pay the supplier invoice #1042 in the billing portal",
}


class Job(TypedDict):
    name: str
    task: str


class JobResult(TypedDict):
    name: str
    machine_id: str
    run_id: str
    status: str
    steps: int
    cost_usd: float
    result: Any


class PipelineState(TypedDict, total=False):
    """The supervisor's state: jobs in, one result per job out, then the total."""

    tasks: dict[str, str]
    jobs: list[Job]
    results: Annotated[list[JobResult], operator.add]
    total_cost_usd: float


def build_pipeline(pool: CoastyMachinePool, max_steps: int = 20) -> Any:
    """The supervisor graph on ``pool``'s machines (checkpointed, so pauses can be answered)."""
    settings = pool.settings

    def supervisor(state: PipelineState) -> PipelineState:
        return {"jobs": [Job(name=name, task=task) for name, task in state["tasks"].items()]}

    def fan_out(state: PipelineState) -> list[Send]:
        return [Send("worker", job) for job in state["jobs"]]

    def worker(job: Job, config: RunnableConfig) -> PipelineState:
        runnable = CoastyRunnable(
            api_key=settings.api_key,
            base_url=settings.base_url,
            machine=pool,
            max_steps=max_steps,
            on_awaiting_human="interrupt",
        )
        run = runnable.invoke(job["task"], config)
        result = JobResult(
            name=job["name"],
            machine_id=run.machine_id,
            run_id=run.id,
            status=run.status.value,
            steps=run.steps_completed or 0,
            cost_usd=run.cost_usd,
            result=run.result,
        )
        return {"results": [result]}

    def collect(state: PipelineState) -> PipelineState:
        return {"total_cost_usd": round(sum(r["cost_usd"] for r in state["results"]), 2)}

    graph = StateGraph(PipelineState)
    graph.add_node("supervisor", supervisor)
    graph.add_node("worker", worker)
    graph.add_node("collect", collect)
    graph.add_edge(START, "supervisor")
    graph.add_conditional_edges("supervisor", fan_out, ["worker"])
    graph.add_edge("worker", "collect")
    graph.add_edge("collect", END)
    return graph.compile(checkpointer=InMemorySaver())


def auto_approver(pause: dict[str, Any]) -> Any | None:
    """Approver policy: answer sign-ins and one-time codes, leave anything else to a person."""
    coasty = pause.get("coasty", {})
    text = f"{coasty.get('reason', '')} {coasty.get('question', '')}".lower()
    if "payment" in text or "pay " in text:
        return None
    if "sign in" in text or "one-time code" in text or "log in" in text:
        return {"decisions": [{"type": "respond", "message": "Use the team vault account."}]}
    return None


def person_at_terminal(assume_yes: bool) -> Callable[[dict[str, Any]], Any]:
    """Escalation: ask at the terminal if there is one; otherwise approve (--yes) or decline."""

    def ask(pause: dict[str, Any]) -> Any:
        coasty = pause.get("coasty", {})
        where = f"{coasty.get('machine_id')} / run {coasty.get('run_id')}"
        if sys.stdin.isatty() and not assume_yes:
            print(f"\n[{where}] {coasty.get('question')}")
            text = input("Approve? [y/N] or type a note: ").strip()
            if text.lower() in {"y", "yes"}:
                return {"decisions": [{"type": "approve"}]}
            if text and text.lower() not in {"n", "no"}:
                return {"decisions": [{"type": "respond", "message": text}]}
            return {"decisions": [{"type": "reject", "message": "Declined by a person."}]}
        if assume_yes:
            return {"decisions": [{"type": "respond", "message": "Approved (--yes)."}]}
        return {"decisions": [{"type": "reject", "message": "No person available; declined."}]}

    return ask


def run_pipeline(
    graph: Any,
    tasks: dict[str, str],
    person: Callable[[dict[str, Any]], Any],
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[PipelineState, list[dict[str, Any]]]:
    """Drive the graph to the end; returns its final state and the routing decisions made."""
    config: RunnableConfig = {"configurable": {"thread_id": f"pipeline-{uuid.uuid4().hex[:8]}"}}
    routed: list[dict[str, Any]] = []
    graph_input: Any = {"tasks": tasks}
    while graph_input is not None:
        answers: dict[str, Any] = {}
        for mode, chunk in graph.stream(graph_input, config, stream_mode=["updates", "custom"]):
            if mode == "custom" and on_event and (event := coasty_payload(chunk)) is not None:
                on_event(event)
            elif mode == "updates" and "__interrupt__" in chunk:
                for pause in chunk["__interrupt__"]:
                    answer = auto_approver(pause.value)
                    route = "policy" if answer is not None else "person"
                    if answer is None:
                        answer = person(pause.value)
                    answers[pause.id] = answer
                    coasty = pause.value.get("coasty", {})
                    decision = answer["decisions"][0]["type"]
                    routed.append(
                        {
                            "machine_id": coasty.get("machine_id"),
                            "run_id": coasty.get("run_id"),
                            "question": coasty.get("question"),
                            "route": route,
                            "decision": decision,
                        }
                    )
                    print(f"  pause on {coasty.get('machine_id')}: {route} -> {decision}")
        graph_input = Command(resume=answers) if answers else None
    state: PipelineState = graph.get_state(config).values
    return state, routed


def print_event(event: dict[str, Any]) -> None:
    """One line per step, pause and end, tagged with the machine."""
    data, kind = event.get("data", {}), event.get("type")
    tag = f"[{event.get('machine_id')}]"
    if kind == "step":
        print(f"  {tag} step {data.get('steps_completed')}: {data.get('summary', '')}")
    elif kind == "awaiting_human":
        print(f"  {tag} needs a person: {data.get('question') or data.get('reason')}")
    elif kind == "done":
        print(f"  {tag} done: {data.get('status')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Coasty multi-agent pipeline recipe")
    parser.add_argument("--pace", type=float, default=0.2, help="sandbox seconds per step")
    parser.add_argument("--yes", action="store_true", help="approve escalated pauses")
    parser.add_argument("--machines", type=int, default=3, help="machines in the pool")
    args = parser.parse_args(argv)
    with coasty_target(pace=args.pace) as target:
        settings = CoastyRunnable(api_key=target.api_key, base_url=target.base_url)
        print(f"Coasty: {target.label}; provisioning {args.machines} machines...")
        spec = MachineSpec(ttl_minutes=60)
        with CoastyMachinePool(args.machines, spec, settings=settings) as pool:
            print(f"Pool ready: {', '.join(pool.machine_ids)}")
            graph = build_pipeline(pool)
            counts: dict[str, int] = {}

            def on_event(event: dict[str, Any]) -> None:
                counts[event["run_id"]] = counts.get(event["run_id"], 0) + 1
                print_event(event)

            state, _ = run_pipeline(graph, JOBS, person_at_terminal(args.yes), on_event)
        client = settings.get_client()
        gone = all(client.machines.get(m).is_terminated for m in pool.machine_ids)
        print(f"Pool terminated: {'yes' if gone else 'NO'} ({len(pool.machine_ids)} machines)")
    print("\nResults:")
    for r in sorted(state["results"], key=lambda r: r["name"]):
        print(
            f"  {r['name']:<10} {r['machine_id']:<14} {r['status']:<10} {r['steps']} steps "
            f"${r['cost_usd']:.2f}  ({counts.get(r['run_id'], 0)} events)"
        )
    print(f"Total cost: ${state['total_cost_usd']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
