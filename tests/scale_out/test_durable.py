"""Durable waits: the graph pauses on the run, holds nothing, and webhooks wake it."""

from __future__ import annotations

import os
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_coasty import AsyncCoastyClient, CoastyClient, CoastyComputerTool, CoastyRunnable
from langchain_coasty.durable import RECHECK, thread_lock

from ._receiver import Receiver, serve, wait_until
from .agent_process import Events, HistoryPlanner

PLAIN_TASK = "Open the notes app and write a shopping list"


def _tool(sb: Any, **kwargs: Any) -> CoastyComputerTool:
    return CoastyComputerTool(
        api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id, **kwargs
    )


def _pending(agent: Any, cfg: dict[str, Any]) -> list[Any]:
    return [i.value for i in agent.get_state(cfg).interrupts]


# How Coasty may deliver: the envelope or the flat body (Coasty's cookbook mock), with or
# without GET /v1/idempotency/{key}; the receiver verifies and resumes sync or async.
DELIVERIES = [
    pytest.param("envelope", True, "sync", id="envelope-lookup"),
    pytest.param("flat", False, "sync", id="flat-no-lookup"),
    pytest.param("envelope", False, "sync", id="envelope-no-lookup"),
    pytest.param("flat", False, "async", id="flat-no-lookup-async"),
]


@pytest.mark.parametrize(("body", "lookup", "receiver_mode"), DELIVERIES)
def test_webhooks_drive_a_durable_wait_through_a_pause(
    sb: Any, body: str, lookup: bool, receiver_mode: str
) -> None:
    sb.configure(webhook_retry_base=0.05, webhook_body=body, idempotency_lookup=lookup)
    client: Any = (
        CoastyClient(api_key=sb.api_key, base_url=sb.base_url)
        if receiver_mode == "sync"
        else AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url)
    )
    events = Events()
    cfg: dict[str, Any] = {"configurable": {"thread_id": "durable-1"}, "callbacks": [events]}
    receiver = Receiver(client, None, {"callbacks": [events]})
    with serve(receiver.app) as url:
        tool = _tool(sb, wait="durable", webhook_url=f"{url}/hooks")
        agent = create_agent(HistoryPlanner(), [tool], checkpointer=InMemorySaver())
        receiver.graph = agent

        # 1. The call creates the run and pauses at once on a coasty_wait interrupt.
        with thread_lock("durable-1"):
            out = agent.invoke({"messages": [HumanMessage("get my statement")]}, cfg)
            (wait,) = [i.value for i in out["__interrupt__"]]
            counters = sb.counters()
        assert wait["type"] == "coasty_wait"
        assert wait["machine_id"] == sb.machine_id
        assert wait["idempotency_key"].startswith("lc-")
        run_id = wait["run_id"]
        assert counters["stream_connections"] == 0 and counters["open_streams"] == 0

        # 2. run.awaiting_human -> the receiver resumes -> the agent's question is an interrupt.
        question = wait_until(
            lambda: [v for v in _pending(agent, cfg) if "action_requests" in v],
            "the Coasty question to surface",
        )[0]
        assert question["coasty"]["run_id"] == run_id
        assert question["coasty"]["question"]
        assert [e["type"] for e in events.seen][-1] == "awaiting_human"

        # 3. A person answers; the run resumes; run.succeeded wakes the thread to its end.
        with thread_lock("durable-1"):
            agent.invoke(Command(resume="use the work account"), cfg)
        final = wait_until(
            lambda: (
                (m := agent.get_state(cfg).values["messages"][-1]).type == "ai"
                and not m.tool_calls
                and m
            ),
            "the final answer",
        )
        assert final.content.startswith(f"final: Coasty run {run_id} succeeded")
        tool_message = agent.get_state(cfg).values["messages"][-2]
        assert isinstance(tool_message, ToolMessage) and tool_message.status == "success"
        artifact = tool_message.artifact  # a dict once it went through the checkpointer
        assert (
            artifact["status"] if isinstance(artifact, dict) else artifact.status
        ) == "succeeded"

        # A forged delivery is refused.
        forged = httpx.post(
            f"{url}/hooks",
            content=b'{"id":"evt_x","type":"run.succeeded","created":1,"data":{"id":"'
            + run_id.encode()
            + b'","metadata":{"idempotency_key":"'
            + wait["idempotency_key"].encode()
            + b'"}}}',
            headers={"Coasty-Signature": "t=1,v1=00"},
        )
        assert forged.status_code == 400

    assert not receiver.errors
    kinds = [(kind, outcome.status) for kind, outcome in receiver.outcomes]
    assert ("run.awaiting_human", "resumed") in kinds
    assert receiver.rejected == 1
    seqs = [e["seq"] for e in events.seen]
    assert seqs == list(range(1, len(seqs) + 1))  # every event once, in order
    assert events.seen[-1]["type"] == "done"
    counters = sb.counters()
    assert counters["runs_created"] == 1
    assert counters["resumes"] == 1
    assert {k: v for k, v in counters["runs_by_status"].items() if v} == {"succeeded": 1}
    assert counters["open_streams"] == 0
    deliveries = sb.webhook_deliveries()
    assert {d["event_type"] for d in deliveries} >= {"run.awaiting_human", "run.succeeded"}
    if receiver_mode == "sync":
        client.close()


def _normalise(text: str) -> str:
    return re.sub(r"(?<=Coasty run )\S+", "<run>", text)  # whatever shape the ids have


async def test_durable_result_is_the_streaming_result(sb: Any) -> None:
    results = {}
    for mode in ("stream", "durable"):
        agent = create_agent(
            HistoryPlanner(task=PLAIN_TASK), [_tool(sb, wait=mode)], checkpointer=InMemorySaver()
        )
        cfg: dict[str, Any] = {"configurable": {"thread_id": f"same-{mode}"}}
        out = await agent.ainvoke({"messages": [HumanMessage("notes")]}, cfg)
        if mode == "durable":
            (wait,) = out["__interrupt__"]
            async with AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
                await client.runs.wait(wait.value["run_id"], timeout=20)
            out = await agent.ainvoke(Command(resume=RECHECK), cfg)
        message = out["messages"][-2]
        assert isinstance(message, ToolMessage)
        results[mode] = message
    stream, durable = results["stream"], results["durable"]
    assert _normalise(durable.content) == _normalise(stream.content)
    for name in ("status", "steps_completed", "result", "credits_charged", "cost_cents"):
        assert getattr(durable.artifact, name) == getattr(stream.artifact, name), name
    log = [e["type"] for e in durable.artifact.event_log]
    assert log == [e["type"] for e in stream.artifact.event_log]
    assert isinstance(out["messages"][-1], AIMessage)
    assert sb.counters()["runs_created"] == 2


def test_durable_wait_needs_a_graph_with_a_checkpointer(sb: Any) -> None:
    runnable = CoastyRunnable(
        api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id, wait="durable"
    )
    with pytest.raises(ValueError, match="checkpointer"):
        runnable.invoke("Open the notes app")
    assert sb.counters()["runs_created"] == 0


def test_oversized_or_unclaimed_deliveries_are_refused_without_an_api_call(sb: Any) -> None:
    from langchain_coasty.durable import verify_run_webhook
    from langchain_coasty.webhooks import MAX_PAYLOAD_BYTES, WebhookVerificationError

    lookups: list[str] = []
    with CoastyClient(
        api_key=sb.api_key,
        base_url=sb.base_url,
        http_client=httpx.Client(
            base_url=sb.base_url, event_hooks={"request": [lambda r: lookups.append(r.url.path)]}
        ),
    ) as client:
        huge = b'{"data": {"pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}}'
        fresh = f"t={int(time.time())},v1={'0' * 64}"  # well formed and recent, not authentic
        with pytest.raises(WebhookVerificationError, match="limit"):
            verify_run_webhook(client, huge, fresh)
        with pytest.raises(WebhookVerificationError, match="idempotency key"):
            verify_run_webhook(client, b'{"data": {"id": "r"}}', fresh)
        with pytest.raises(WebhookVerificationError, match="too old"):
            verify_run_webhook(client, b'{"data": {"id": "r"}}', "t=1,v1=00")
    assert lookups == []


@pytest.mark.slow
def test_a_durable_wait_is_woken_by_another_process_through_a_postgres_store(
    sb: Any, postgres_dsn: str
) -> None:
    """Process A creates the run and pauses; this process verifies and resumes, with the
    secret A kept in a PostgresStore: flat bodies, no idempotency lookup, no metadata."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    from langchain_coasty.webhook_secrets import NAMESPACE

    from .conftest import run_agent_process

    sb.configure(webhook_retry_base=0.05, webhook_body="flat", idempotency_lookup=False)
    thread = f"pg-durable-{uuid.uuid4().hex[:8]}"
    events = Events()
    cfg: dict[str, Any] = {"configurable": {"thread_id": thread}, "callbacks": [events]}
    with (
        PostgresSaver.from_conn_string(postgres_dsn) as saver,
        PostgresStore.from_conn_string(postgres_dsn) as store,
        CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client,
    ):
        saver.setup()
        store.setup()
        receiver = Receiver(client, None, {"callbacks": [events]}, secrets=store)
        with serve(receiver.app) as url:
            hook = f"{url}/hooks"
            tool = _tool(sb, wait="durable", webhook_url=hook, webhook_secrets=store)
            receiver.graph = agent = create_agent(HistoryPlanner(), [tool], checkpointer=saver)
            with thread_lock(thread):  # no delivery is handled before A's checkpoint exists
                first = run_agent_process(
                    sb,
                    *("start", "--saver", f"postgres:{postgres_dsn}", "--thread", thread),
                    *("--wait", "durable", "--webhook-url", hook),
                    *("--secrets", f"postgres:{postgres_dsn}"),
                )
            (wait,) = first["interrupts"]
            assert wait["type"] == "coasty_wait" and first["pid"] != os.getpid()
            run_id = wait["run_id"]
            kept = store.get(NAMESPACE, run_id)
            assert kept is not None and kept.value["secret"].startswith("whsec_")

            question = wait_until(
                lambda: [v for v in _pending(agent, cfg) if "action_requests" in v],
                "the Coasty question to surface here",
            )[0]
            assert question["coasty"]["run_id"] == run_id
            with thread_lock(thread):
                agent.invoke(Command(resume="use the work account"), cfg)
            final = wait_until(
                lambda: (
                    (m := agent.get_state(cfg).values["messages"][-1]).type == "ai"
                    and not m.tool_calls
                    and m
                ),
                "the final answer",
            )
            assert final.content.startswith(f"final: Coasty run {run_id} succeeded")

    assert not receiver.errors and receiver.rejected == 0
    assert ("run.awaiting_human", "resumed") in [(k, o.status) for k, o in receiver.outcomes]
    seqs = [e["seq"] for e in events.seen]
    assert seqs == list(range(1, len(seqs) + 1)) and events.seen[-1]["type"] == "done"
    counters = sb.counters()
    assert counters["runs_created"] == 1 and counters["resumes"] == 1
    assert {k: v for k, v in counters["runs_by_status"].items() if v} == {"succeeded": 1}
