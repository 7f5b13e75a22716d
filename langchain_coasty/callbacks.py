"""Turning Coasty run events into LangChain callbacks and LangGraph stream parts.

Every event of a run followed by ``CoastyRunnable`` or ``CoastyComputerTool`` is
delivered once, in ``seq`` order, through three channels:

* a LangChain custom event named ``"coasty_event"`` (``COASTY_EVENT``), seen by callback
  handlers (``on_custom_event``) and by ``astream_events(version="v2")`` as
  ``{"event": "on_custom_event", "name": "coasty_event", "data": payload}``;
* LangGraph's custom stream (``stream_mode="custom"``) when running inside a graph, as the
  chunk ``{"coasty_event": payload}``;
* the typed hooks of ``CoastyCallbackHandler`` / ``AsyncCoastyCallbackHandler``.

The payload is a small dict: ``{"run_id", "machine_id", "seq", "type", "data", "ts"}`` where
``data`` is the event's data with secrets removed and long strings capped, and ``ts`` is
when it happened in unix seconds: Coasty's stamp on a run event (None when the stream
carries none), this process's clock for the ``machine`` and ``screenshot`` payloads.

A captured screen (setting ``screens_at``: after a ``step``, at a ``pause``, at the ``end``)
goes through the same channels under its own name, so ``coasty_event`` stays the run's
events exactly once: the custom event ``"coasty_screenshot"`` (``SCREENSHOT_EVENT``), the
stream chunk ``{"coasty_screenshot": payload}`` (read it with ``screenshot_payload``) and the
hook ``on_coasty_screenshot``. The payload has ``type`` ``"screenshot"`` and the ``seq`` of
the event it follows; its ``data`` is
``{"at": "step" | "pause" | "end", "screen": ScreenPayload}`` (``langchain_coasty.screens``):
``machine_id``, ``captured_at``, ``mime_type``, ``width``, ``height``, ``size_bytes`` and
the bounded image as base64 ``data``, or instead ``omitted`` saying why it is left out
(over the bounds without Pillow, or unavailable) and how to fetch it
(``client.machines.screenshot(machine_id)``). ``CoastyRunnable.stream()`` does not yield it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict, cast
from uuid import UUID

from langchain_core.callbacks import (
    AsyncCallbackHandler,
    AsyncCallbackManager,
    BaseCallbackHandler,
    adispatch_custom_event,
    dispatch_custom_event,
)

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManager
    from langchain_core.runnables import RunnableConfig

    from langchain_coasty.client import RunEvent

__all__ = [
    "COASTY_EVENT",
    "SCREENSHOT_EVENT",
    "AsyncCoastyCallbackHandler",
    "CoastyCallbackHandler",
    "CoastyEventPayload",
    "coasty_payload",
    "screenshot_payload",
]

COASTY_EVENT = "coasty_event"
"""Name of the LangChain custom event (and key of the LangGraph custom stream chunk)."""
SCREENSHOT_EVENT = "coasty_screenshot"
"""Name of the custom event (and stream chunk key) of a captured screen (no run event)."""

MAX_STRING = 2000
_MAX_ITEMS = 50
_MAX_DEPTH = 6
_SECRET_WORDS = ("secret", "api_key", "apikey", "password", "token", "authorization")


class CoastyEventPayload(TypedDict):
    """What every channel receives for one run event."""

    run_id: str
    machine_id: str | None
    seq: int
    type: str
    data: dict[str, Any]
    ts: float | None


@functools.lru_cache(maxsize=4096)
def _is_secret(key: str) -> bool:
    """Whether a key names a secret (keys repeat across events: the answer is cached)."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


_PLAIN = frozenset({bool, int, float, type(None)})


def _trim(value: Any, depth: int = 0) -> Any:
    kind = type(value)  # exact types first: the ABC checks below cost more than the work
    if kind in _PLAIN:
        return value
    if kind is str or (kind is not dict and isinstance(value, str)):
        if len(value) > MAX_STRING:
            return value[:MAX_STRING] + f"... [{len(value) - MAX_STRING} more chars]"
        return value
    if kind is not dict and isinstance(value, bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return "[...]"
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= _MAX_ITEMS:
                out["..."] = f"{len(value) - _MAX_ITEMS} more keys"
                break
            key = k if type(k) is str else str(k)
            if _is_secret(key):
                continue
            vk = type(v)
            if (vk is str and len(v) <= MAX_STRING) or vk in _PLAIN:
                out[key] = v
            else:
                out[key] = _trim(v, depth + 1)
        return out
    if isinstance(value, list | tuple):
        items = [_trim(v, depth + 1) for v in list(value)[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            items.append(f"... {len(value) - _MAX_ITEMS} more items")
        return items
    return _trim(str(value), depth)


def event_payload(event: RunEvent, *, run_id: str, machine_id: str | None) -> CoastyEventPayload:
    """Build the small, secret-free payload delivered for ``event``."""
    data = event.data if type(event.data) is dict or isinstance(event.data, Mapping) else {}
    return CoastyEventPayload(
        run_id=run_id,
        machine_id=machine_id,
        seq=int(event.seq),
        type=str(event.type),
        data=_trim(data),
        ts=event.ts,
    )


def coasty_payload(chunk: Any) -> CoastyEventPayload | None:
    """The Coasty event in a LangGraph custom-stream chunk (None when it is not one)."""
    if isinstance(chunk, Mapping):
        inner = chunk.get(COASTY_EVENT)
        if isinstance(inner, dict):
            return cast(CoastyEventPayload, inner)
        if "type" in chunk and "seq" in chunk and isinstance(chunk, dict):
            return cast(CoastyEventPayload, chunk)
    return None


def screenshot_payload(chunk: Any) -> CoastyEventPayload | None:
    """The ``screenshot`` payload in a LangGraph custom-stream chunk (None when it is not one)."""
    if isinstance(chunk, Mapping):
        inner = chunk.get(SCREENSHOT_EVENT)
        if isinstance(inner, dict) and inner.get("type") == "screenshot":
            return cast(CoastyEventPayload, inner)
    return None


class EventDispatcher:
    """Delivers payloads to LangChain custom events and LangGraph's custom stream."""

    def __init__(
        self,
        config: RunnableConfig | None,
        stream_writer: Callable[[Any], None] | None,
        *,
        manager: CallbackManager | AsyncCallbackManager | None = None,
    ) -> None:
        self._config = config
        self._writer = stream_writer
        # Resolved on first use, then kept: the config is fixed for the run, and building a
        # callback manager per event was most of the dispatch cost. A caller that holds the
        # run's child manager passes it (``manager``): nothing is built at all then.
        self._manager: CallbackManager | None = None
        self._amanager: AsyncCallbackManager | None = None
        self._listening: bool | None = None
        if manager is not None and manager.parent_run_id is not None:
            if isinstance(manager, AsyncCallbackManager):
                self._amanager = manager
            else:
                self._manager = manager
            self._listening = stream_writer is not None or bool(manager.handlers)

    @property
    def listening(self) -> bool:
        """Whether any channel takes the payloads (else building them is wasted work)."""
        if self._listening is None:
            self._listening = self._writer is not None or self._has_handlers()
        return self._listening

    def _has_handlers(self) -> bool:
        if self._config is None:
            return True  # the context's callbacks decide: keep LangChain's own path
        from langchain_core.runnables.config import ensure_config, get_callback_manager_for_config

        return bool(get_callback_manager_for_config(ensure_config(self._config)).handlers)

    def dispatch(self, payload: CoastyEventPayload, name: str = COASTY_EVENT) -> None:
        """Deliver ``payload`` (as the custom event ``name``) from sync code."""
        manager = self._manager
        if manager is None and self._config is not None:
            from langchain_core.runnables.config import (
                ensure_config,
                get_callback_manager_for_config,
            )

            manager = get_callback_manager_for_config(ensure_config(self._config))
            if manager.parent_run_id is not None:
                self._manager = manager
        if manager is not None and manager.parent_run_id is not None:
            manager.on_custom_event(name, payload, run_id=manager.parent_run_id)
        else:
            # No config (context-variable case) or no parent run: LangChain's own path.
            dispatch_custom_event(name, payload, config=self._config)
        if self._writer is not None:
            self._writer({name: payload})

    async def adispatch(self, payload: CoastyEventPayload, name: str = COASTY_EVENT) -> None:
        """Deliver ``payload`` (as the custom event ``name``) from async code."""
        manager = self._amanager
        if manager is None and self._config is not None:
            from langchain_core.runnables.config import (
                ensure_config,
                get_async_callback_manager_for_config,
            )

            manager = get_async_callback_manager_for_config(ensure_config(self._config))
            if manager.parent_run_id is not None:
                self._amanager = manager
        if manager is not None and manager.parent_run_id is not None:
            await manager.on_custom_event(name, payload, run_id=manager.parent_run_id)
        else:
            await adispatch_custom_event(name, payload, config=self._config)
        if self._writer is not None:
            self._writer({name: payload})


class CoastyCallbackHandler(BaseCallbackHandler):
    """Callback handler with typed hooks for Coasty run events.

    Setup:
        Subclass it and override the hooks you need; every hook is a no-op by default.

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyCallbackHandler

            class Printer(CoastyCallbackHandler):
                def on_coasty_step(self, event):
                    print(event["data"].get("summary"))

    Invocation:
        .. code-block:: python

            tool.invoke({"task": "Open the report"}, config={"callbacks": [Printer()]})

    ``on_coasty_event`` sees every run event; the typed hooks see the events of their type
    (``status``, ``step``, ``billing``, ``awaiting_human``, ``done``) and
    ``on_coasty_screenshot`` each captured screen. Each receives the payload described in
    this module's docstring.

    Under ``ainvoke``/``abatch`` LangChain calls a sync handler in a worker thread, one hop
    per event: prefer ``AsyncCoastyCallbackHandler`` there, or set ``run_inline = True`` on
    your subclass when its hooks are quick and never block (they then run on the event loop).
    """

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Route ``coasty_event`` custom events to the typed hooks."""
        if name == SCREENSHOT_EVENT and isinstance(data, dict):
            self.on_coasty_screenshot(data)  # type: ignore[arg-type]
            return None
        if name != COASTY_EVENT or not isinstance(data, dict):
            return None
        self.on_coasty_event(data)  # type: ignore[arg-type]
        hook = _HOOKS.get(str(data.get("type")))
        if hook is not None:
            getattr(self, hook)(data)
        return None

    def on_coasty_event(self, event: CoastyEventPayload) -> None:
        """Called for every run event."""

    def on_coasty_status(self, event: CoastyEventPayload) -> None:
        """Called when the run changes status (``data["status"]``)."""

    def on_coasty_step(self, event: CoastyEventPayload) -> None:
        """Called when the run completes a step."""

    def on_coasty_billing(self, event: CoastyEventPayload) -> None:
        """Called when credits are charged (``data["credits_charged"]`` is the total)."""

    def on_coasty_awaiting_human(self, event: CoastyEventPayload) -> None:
        """Called when the run pauses for a person (``data["question"]``)."""

    def on_coasty_done(self, event: CoastyEventPayload) -> None:
        """Called once, with the run's last event."""

    def on_coasty_screenshot(self, event: CoastyEventPayload) -> None:
        """Called when a screen is captured (``data["screen"]``, ``data["at"]``)."""


class AsyncCoastyCallbackHandler(AsyncCallbackHandler):
    """Async twin of ``CoastyCallbackHandler``: the same hooks, as coroutines.

    Setup:
        Subclass it and override the async hooks you need.

    Instantiation:
        .. code-block:: python

            class Recorder(AsyncCoastyCallbackHandler):
                async def on_coasty_event(self, event):
                    await queue.put(event)

    Invocation:
        .. code-block:: python

            await tool.ainvoke({"task": "Open the report"}, config={"callbacks": [Recorder()]})

    The hooks run inline (``run_inline = True``): LangChain awaits them in the run's own
    task, as it awaits any handler before the run goes on, instead of scheduling a task per
    event for them (at thousands of concurrent runs, that was most of an event's cost). Set
    ``run_inline = False`` on a subclass to have LangChain gather it with other handlers.
    """

    run_inline: bool = True

    async def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Route ``coasty_event`` custom events to the typed hooks."""
        if name == SCREENSHOT_EVENT and isinstance(data, dict):
            await self.on_coasty_screenshot(data)  # type: ignore[arg-type]
            return
        if name != COASTY_EVENT or not isinstance(data, dict):
            return
        await self.on_coasty_event(data)  # type: ignore[arg-type]
        hook = _HOOKS.get(str(data.get("type")))
        if hook is not None:
            await getattr(self, hook)(data)

    async def on_coasty_event(self, event: CoastyEventPayload) -> None:
        """Called for every run event."""

    async def on_coasty_status(self, event: CoastyEventPayload) -> None:
        """Called when the run changes status."""

    async def on_coasty_step(self, event: CoastyEventPayload) -> None:
        """Called when the run completes a step."""

    async def on_coasty_billing(self, event: CoastyEventPayload) -> None:
        """Called when credits are charged."""

    async def on_coasty_awaiting_human(self, event: CoastyEventPayload) -> None:
        """Called when the run pauses for a person."""

    async def on_coasty_done(self, event: CoastyEventPayload) -> None:
        """Called once, with the run's last event."""

    async def on_coasty_screenshot(self, event: CoastyEventPayload) -> None:
        """Called when a screen is captured."""


_HOOKS = {
    "status": "on_coasty_status",
    "step": "on_coasty_step",
    "billing": "on_coasty_billing",
    "awaiting_human": "on_coasty_awaiting_human",
    "done": "on_coasty_done",
}
