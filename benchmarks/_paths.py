"""The code paths under test, one function each, built from what the package exports."""

from __future__ import annotations

import importlib
import uuid
from typing import Any

import httpx

from benchmarks._harness import API_KEY, AUTH, Sandbox


class NotLanded(RuntimeError):
    """A layer the benchmark needs is not importable (yet)."""


def need(module: str, name: str) -> Any:
    """Import ``module.name`` or raise NotLanded naming it."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise NotLanded(f"{module}.{name} not available ({type(exc).__name__})") from None


def scenario_task(sb: Sandbox, name: str, **fields: Any) -> str:
    """Load a sandbox scenario (steps, events, pace, ...); return a task that selects it."""
    sb.load_scenarios([{"name": name, "match": f"\\b{name}\\b", **fields}])
    return f"benchmark run {name}"


def long_run_task(sb: Sandbox, events: int) -> str:
    """A run that emits exactly ``events`` events as fast as the sandbox can."""
    return scenario_task(sb, f"bench-{events}-events", events=events, pace=0)


def paced_task(sb: Sandbox, steps: int, pace: float) -> str:
    """A run of ``steps`` steps, one every ``pace`` seconds (5 events a step, 2 + 3 around).

    More than 50 steps needs ``max_steps`` on the create request (the API's default cap).
    """
    return scenario_task(
        sb, f"bench-{steps}-steps-{pace:g}s".replace(".", "_"), steps=steps, pace=pace
    )


def create_run(sb: Sandbox, task: str, **fields: Any) -> str:
    """Create a run with a raw POST; return its id."""
    body = {"machine_id": sb.machine_id, "task": task, **fields}
    headers = {**AUTH, "Idempotency-Key": uuid.uuid4().hex}
    r = httpx.post(sb.base_url + "/v1/runs", json=body, headers=headers, timeout=30)
    r.raise_for_status()
    return str(r.json()["id"])


def client(sb: Sandbox, **kwargs: Any) -> Any:
    """A CoastyClient on the sandbox."""
    cls = need("langchain_coasty.client", "CoastyClient")
    return cls(api_key=API_KEY, base_url=sb.base_url, **kwargs)


def async_client(sb: Sandbox, **kwargs: Any) -> Any:
    """An AsyncCoastyClient on the sandbox."""
    cls = need("langchain_coasty.client", "AsyncCoastyClient")
    return cls(api_key=API_KEY, base_url=sb.base_url, **kwargs)


def client_events(sb: Sandbox, run_id: str) -> int:
    """(b) ``client.runs.events``."""
    n = 0
    with client(sb) as c:
        for _ in c.runs.events(run_id):
            n += 1
    return n


def runnable(sb: Sandbox, **kwargs: Any) -> Any:
    """A CoastyRunnable on the sandbox."""
    cls = need("langchain_coasty.runnable", "CoastyRunnable")
    return cls(api_key=API_KEY, base_url=sb.base_url, machine_id=sb.machine_id, **kwargs)


def runnable_stream(sb: Sandbox, task: str) -> int:
    """(c) ``CoastyRunnable.stream``."""
    n = 0
    for _ in runnable(sb).stream(task):
        n += 1
    return n


def counting_handler() -> Any:
    """A CoastyCallbackHandler that counts the events it sees."""
    base = need("langchain_coasty.callbacks", "CoastyCallbackHandler")

    class Counter(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def on_coasty_event(self, event: Any) -> None:
            self.count += 1

    return Counter()


def fake_planner() -> Any:
    """A chat model that calls ``coasty_computer`` once, then answers: no LLM in the loop."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class Planner(BaseChatModel):
        task: str = ""

        @property
        def _llm_type(self) -> str:
            return "bench-planner"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

        def _generate(self, messages: list[BaseMessage], *a: Any, **k: Any) -> ChatResult:
            if any(isinstance(m, ToolMessage) for m in messages):
                msg = AIMessage(content="done")
            else:
                call = {"name": "coasty_computer", "args": {"task": self.task}, "id": "call_1"}
                msg = AIMessage(content="", tool_calls=[call])
            return ChatResult(generations=[ChatGeneration(message=msg)])

    return Planner


def agent_tool(sb: Sandbox, task: str) -> int:
    """(d) the tool inside a LangGraph ``create_agent`` with a callback handler attached."""
    tool_cls = need("langchain_coasty.tools", "CoastyComputerTool")
    try:
        from langchain.agents import create_agent
    except ImportError as exc:
        raise NotLanded(f"langchain.agents not available ({exc})") from None
    tool = tool_cls(api_key=API_KEY, base_url=sb.base_url, machine_id=sb.machine_id)
    handler = counting_handler()
    agent = create_agent(fake_planner()(task=task), tools=[tool])
    agent.invoke(
        {"messages": [{"role": "user", "content": "go"}]},
        config={"callbacks": [handler]},
    )
    return int(handler.count)
