"""Event payloads and the typed callback hooks."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.callbacks import dispatch_custom_event
from langchain_core.runnables import RunnableLambda

from langchain_coasty.callbacks import (
    COASTY_EVENT,
    MAX_STRING,
    AsyncCoastyCallbackHandler,
    CoastyCallbackHandler,
    event_payload,
)
from langchain_coasty.client import RunEvent


def test_payload_is_small_and_secret_free() -> None:
    event = RunEvent(
        seq=3,
        type="tool_result",
        data={
            "output": "y" * 10_000,
            "webhook_secret": "whsec_x",
            "nested": {"api_key": "sk-coasty-live-x", "ok": True, "items": list(range(500))},
        },
    )
    payload = event_payload(event, run_id="r", machine_id="m")
    assert (payload["run_id"], payload["machine_id"], payload["seq"]) == ("r", "m", 3)
    assert payload["type"] == "tool_result"
    assert len(payload["data"]["output"]) < MAX_STRING + 50
    assert "webhook_secret" not in payload["data"]
    assert "api_key" not in payload["data"]["nested"]
    assert len(payload["data"]["nested"]["items"]) == 51
    assert "sk-coasty" not in repr(payload) and "whsec" not in repr(payload)


class Hooks(CoastyCallbackHandler):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def on_coasty_event(self, event: Any) -> None:
        self.calls.append(("event", event["seq"]))

    def on_coasty_step(self, event: Any) -> None:
        self.calls.append(("step", event["seq"]))

    def on_coasty_done(self, event: Any) -> None:
        self.calls.append(("done", event["seq"]))


def _payload(seq: int, kind: str) -> dict[str, Any]:
    return {"run_id": "r", "machine_id": None, "seq": seq, "type": kind, "data": {}}


def test_handler_routes_events_to_typed_hooks() -> None:
    handler = Hooks()
    run_id = uuid.uuid4()
    handler.on_custom_event(COASTY_EVENT, _payload(1, "step"), run_id=run_id)
    handler.on_custom_event(COASTY_EVENT, _payload(2, "text"), run_id=run_id)
    handler.on_custom_event(COASTY_EVENT, _payload(3, "done"), run_id=run_id)
    handler.on_custom_event("other_event", _payload(4, "done"), run_id=run_id)
    assert handler.calls == [
        ("event", 1),
        ("step", 1),
        ("event", 2),
        ("event", 3),
        ("done", 3),
    ]


def test_handler_receives_dispatched_custom_events() -> None:
    handler = Hooks()

    def emit(_: Any) -> None:
        dispatch_custom_event(COASTY_EVENT, _payload(1, "step"))

    RunnableLambda(emit).invoke(None, {"callbacks": [handler]})
    assert handler.calls == [("event", 1), ("step", 1)]


async def test_async_handler_routes_events() -> None:
    seen: list[str] = []

    class AsyncHooks(AsyncCoastyCallbackHandler):
        async def on_coasty_event(self, event: Any) -> None:
            seen.append("event")

        async def on_coasty_awaiting_human(self, event: Any) -> None:
            seen.append("awaiting_human")

    handler = AsyncHooks()
    await handler.on_custom_event(COASTY_EVENT, _payload(1, "awaiting_human"), run_id=uuid.uuid4())
    assert seen == ["event", "awaiting_human"]
