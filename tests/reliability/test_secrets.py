"""Secret hygiene: complete flows with sentinel secrets, and everything observable searched.

A sentinel Coasty API key, a sentinel BYOK LLM key and the run's webhook secret go through
an agent run that pauses and resumes (``astream_events``), a runnable run, failing calls and
serialization, while DEBUG logs of every logger, every callback, every custom event, every
stream part, reprs, dumps and exception texts are captured. No sentinel may appear there;
the webhook secret stays reachable by the developer on the run artifact, and by a webhook
receiver in the secret store the tool was given (a LangGraph store here).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from langchain_coasty import (
    AsyncCoastyClient,
    CoastyClient,
    CoastyComputerTool,
    CoastyError,
    CoastyRunnable,
    CoastyToolkit,
    averify_run_webhook,
)
from langchain_coasty.webhook_secrets import NAMESPACE
from tests.fakes import ScriptedChatModel

API_KEY = f"sk-coasty-test-SENTINELAPI{secrets.token_hex(8)}"
LLM_KEY = f"sk-byok-SENTINELLLM{secrets.token_hex(8)}"
LOGIN_TASK = "Log in to the payroll portal and download the March payslip"


class Everything(BaseCallbackHandler):
    """Records the arguments of every callback LangChain makes."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_") and name != "on_":

            def record(*args: Any, **kwargs: Any) -> None:
                object.__getattribute__(self, "seen").append(f"{name} {args!r} {kwargs!r}")

            return record
        return object.__getattribute__(self, name)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name} {text}")


@pytest.fixture
def logs() -> Iterator[Capture]:
    capture = Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(previous)


def leaks(text: str, *sentinels: str) -> list[str]:
    return [s[:24] for s in sentinels if s and s in text]


def _planner() -> Any:
    call = {
        "name": "coasty_computer",
        "args": {"task": LOGIN_TASK},
        "id": "c1",
        "type": "tool_call",
    }
    return ScriptedChatModel(
        script=[AIMessage(content="", tool_calls=[call]), AIMessage(content="done")]
    )


async def test_no_secret_leaves_through_any_channel(
    coasty_sandbox: Any, logs: Capture, tmp_path: Path
) -> None:
    sb = coasty_sandbox
    observed: list[str] = []
    handler = Everything()
    client = AsyncCoastyClient(
        api_key=API_KEY, base_url=sb.base_url, llm_api_key=LLM_KEY, llm_provider="anthropic"
    )
    sync_client = CoastyClient(
        api_key=API_KEY, base_url=sb.base_url, llm_api_key=LLM_KEY, llm_provider="anthropic"
    )
    webhook_url = f"{sb.base_url}/hooks/not-listening"
    store = InMemoryStore()  # where a receiver in another process would find the secret
    tool = CoastyComputerTool(
        api_key=API_KEY,
        base_url=sb.base_url,
        async_client=client,
        client=sync_client,
        machine_id=sb.machine_id,
        webhook_url=webhook_url,
        webhook_secrets=store,
    )
    runnable = CoastyRunnable(
        api_key=API_KEY, base_url=sb.base_url, client=sync_client, machine_id=sb.machine_id
    )

    # 1. An agent whose call pauses, is answered through an interrupt, and finishes.
    model = ScriptedChatModel(
        script=[
            AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": "coasty_computer",
                        "args": {"task": LOGIN_TASK},
                        "id": "call_1",
                        "type": "tool_call",
                    }
                ],
            ),
            AIMessage(content="done"),
        ]
    )
    agent = create_agent(model, [tool], checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "secrets"}, "callbacks": [handler]}
    interrupt_id = None
    live_message: Any = None
    for payload in ({"messages": [HumanMessage("go")]}, None):
        if payload is None:
            payload = Command(resume={interrupt_id: "the code is 314159"})
        async for event in agent.astream_events(payload, config, version="v2"):
            observed.append(repr(event))
            if event["event"] == "on_tool_end":
                live_message = event["data"]["output"]
        state = await agent.aget_state(config)
        observed.append(repr(state))
        if state.interrupts:
            interrupt_id = state.interrupts[0].id
    async for part in agent.astream(
        {"messages": [HumanMessage("again")]},
        {"configurable": {"thread_id": "secrets-2"}},
        stream_mode=["custom", "updates", "messages", "values"],
    ):
        observed.append(repr(part))

    messages = (await agent.aget_state(config)).values["messages"]
    assert isinstance(live_message, ToolMessage)
    run = live_message.artifact
    # The engine kept the run's signing secret in the secret store, by run id, for
    # verify_run_webhook; the artifact (and so every checkpoint) does not carry it.
    kept = store.get(NAMESPACE, run.id)
    assert kept is not None
    webhook_secret = kept.value["secret"]
    assert webhook_secret.startswith("whsec_") and len(webhook_secret) > 20
    assert run.webhook_secret is None
    stored = next(m for m in messages if isinstance(m, ToolMessage)).artifact
    assert stored.get("webhook_secret") is None
    raw = json.dumps({"event": "run.succeeded", "run_id": run.id, "status": "succeeded"})
    stamp = int(time.time())
    digest = hmac.new(webhook_secret.encode(), f"{stamp}.{raw}".encode(), hashlib.sha256)
    event = await averify_run_webhook(
        client, raw.encode(), f"t={stamp},v1={digest.hexdigest()}", secrets=store
    )
    observed += [repr(event), event.model_dump_json(), repr(tool.webhook_secrets)]
    assert run.status.value == "succeeded"
    # ... but nothing the LLM reads carries it, nor any key.
    llm_facing = [repr(m.content) for m in messages] + [repr(m) for m in messages]
    assert leaks("\n".join(llm_facing), API_KEY, LLM_KEY, webhook_secret) == []

    # 1b. The same agent on a SQLite checkpoint file: the file holds no secret either.
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = tmp_path / "checkpoints.db"
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        on_disk = create_agent(_planner(), [tool], checkpointer=saver)
        disk_config: Any = {"configurable": {"thread_id": "secrets-on-disk"}}
        out = await on_disk.ainvoke({"messages": [HumanMessage("go")]}, disk_config)
        pause = out["__interrupt__"][0]
        out = await on_disk.ainvoke(Command(resume={pause.id: "314159"}), disk_config)
        assert "succeeded" in out["messages"][-2].content
        observed.append(repr(await on_disk.aget_state(disk_config)))
    file_bytes = path.read_bytes()
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            file_bytes += extra.read_bytes()
    disk_run_id = out["messages"][-2].artifact.id
    disk_secret = store.get(NAMESPACE, disk_run_id)
    assert disk_secret is not None
    assert disk_secret.value["secret"].encode() not in file_bytes
    assert API_KEY.encode() not in file_bytes and LLM_KEY.encode() not in file_bytes

    # 2. A runnable run and the toolkit tools, sync.
    result = runnable.invoke({"task": "Open the notes app", "webhook_url": webhook_url})
    observed += [repr(result), str(result), result.model_dump_json()]
    for extra in CoastyToolkit(client=sync_client, machine_id=sb.machine_id).get_tools()[1:]:
        observed.append(repr(extra.invoke({"run_id": result.id})))

    # 3. Failures: unknown run, rejected keys, refused parameters.
    failures: list[BaseException] = []
    for call in (
        lambda: sync_client.runs.get("no-such-run"),
        lambda: CoastyClient(api_key=API_KEY + "\n", base_url=sb.base_url),
        lambda: CoastyClient(
            api_key=API_KEY, base_url=sb.base_url, llm_api_key=LLM_KEY + "é", llm_provider="openai"
        ),
        lambda: CoastyClient(api_key=API_KEY, base_url=sb.base_url, llm_api_key=LLM_KEY),
        lambda: CoastyClient(
            api_key=API_KEY.replace("test", "bogus"), base_url=sb.base_url
        ).runs.list(),
        lambda: sync_client.runs.create(
            machine_id=sb.machine_id, task="x", llm={"api_key": LLM_KEY}
        ),
    ):
        with pytest.raises((CoastyError, ValueError)) as caught:
            call()
        failures.append(caught.value)
    observed += [f"{e!s} {e!r} {e.args!r}" for e in failures]
    observed.append(repr(tool.invoke({"task": "x" * 20000})))  # a tool error, as content

    # 4. Serialization and reprs of every object holding a secret.
    for obj in (tool, runnable, client, sync_client, run, tool.webhook_secrets):
        observed += [repr(obj), str(obj)]
    observed.append(repr(tool.model_dump()))
    observed += [dumps(tool), dumps(runnable), dumps(run), run.model_dump_json()]

    everything = "\n".join(observed + handler.seen + logs.lines)
    assert handler.seen and logs.lines and "coasty_event" in everything
    assert any("httpx" in line for line in logs.lines)  # DEBUG logs really were captured
    assert leaks(everything, API_KEY, LLM_KEY, webhook_secret) == []
    # The BYOK key did reach the server (its fingerprint is echoed), just never anywhere else.
    assert run.llm and run.llm.get("key_source") == "header"
    await client.close()
    sync_client.close()
