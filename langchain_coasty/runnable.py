"""``CoastyRunnable``: one Coasty run as a LangChain runnable (create, follow, pause, finish).

The engine here is shared with ``CoastyComputerTool``: it creates the run under an
idempotency key that survives LangGraph re-executions, follows the run's events exactly
once, applies the ``on_awaiting_human`` policy, enforces the client-side budgets and
cancels the run when the caller stops waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    AsyncCallbackManagerForToolRun,
    CallbackManagerForChainRun,
    CallbackManagerForToolRun,
)
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from langchain_coasty._graph import GraphContext, call_interrupt, graph_context
from langchain_coasty.callbacks import EventDispatcher, event_payload
from langchain_coasty.client import (
    AsyncCoastyClient,
    CoastyClient,
    CoastyError,
    ConflictError,
    CreateResult,
    Run,
    RunEvent,
    RunRequest,
)
from langchain_coasty.durable import durable_steps
from langchain_coasty.human import (
    AwaitingHumanPolicy,
    HumanAnswer,
    PauseRequest,
    build_pause_request,
    parse_answer,
)

if TYPE_CHECKING:
    from langchain_core.callbacks import AsyncCallbackManager, CallbackManager

__all__ = ["CoastyInput", "CoastyRunnable", "CoastySettings", "RunSession", "build_request"]

WaitMode: TypeAlias = Literal["stream", "durable"]
"""How a call waits for its run (``CoastySettings.wait``)."""

CoastyInput: TypeAlias = str | dict[str, Any]
"""A task string, or a dict of RunRequest fields (``task``, ``machine_id``, ...)."""

# The RunRequest fields a caller may set; ``on_awaiting_human`` is this layer's policy instead.
RUN_FIELDS = tuple(name for name in RunRequest.model_fields if name != "on_awaiting_human")
_INPUT_EXTRAS = ("idempotency_key", "on_awaiting_human", "wait")
_CANCEL_TIMEOUT = 5.0
_LOG_SIZE = 100


class CoastySettings(BaseModel):
    """Connection, run defaults, budgets and the pause policy shared by runnable and tools."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("COASTY_API_KEY", default=None)
    )
    """Coasty API key (``sk-coasty-live-...`` or ``sk-coasty-test-...``); env ``COASTY_API_KEY``."""
    base_url: str = Field(default_factory=from_env("COASTY_BASE_URL", default="https://coasty.ai"))
    """API base URL; env ``COASTY_BASE_URL``."""
    machine_id: str | None = None
    """Machine the runs target (the LLM may choose one when this is not set)."""
    cua_version: Literal["v1", "v3", "v4", "v5"] | None = None
    instructions: str | None = None
    """Appended to Coasty's agent prompt."""
    system_prompt: str | None = None
    model: str | None = None
    max_steps: int | None = None
    """Server-side cap on agent steps (1..1000)."""
    deadline_seconds: int | None = None
    """Server-side wall-clock budget of a run."""
    awaiting_human_timeout_seconds: int | None = None
    webhook_url: str | None = None
    run_metadata: dict[str, Any] | None = None
    """Metadata sent with every run (merged with the graph position)."""
    llm: dict[str, Any] | None = None
    on_awaiting_human: AwaitingHumanPolicy = "interrupt"
    """What to do when a run waits for a person; see ``langchain_coasty.human``."""
    wait: WaitMode = "stream"
    """How a call waits for its run: ``"stream"`` follows the event stream; ``"durable"``
    (inside a LangGraph graph with a checkpointer) pauses the graph with a ``coasty_wait``
    interrupt and holds nothing until it is resumed; see ``langchain_coasty.durable``."""
    max_cost_usd: float | None = None
    """Client-side budget: cancel the run once its notional cost passes this."""
    idle_timeout: float | None = None
    """Cancel the run when no event arrives for this many seconds."""
    timeout: float = 30.0
    """HTTP timeout of each API request."""
    max_retries: int = 2
    client: CoastyClient | None = Field(default=None, exclude=True)
    """A ready sync client to use instead of building one."""
    async_client: AsyncCoastyClient | None = Field(default=None, exclude=True)
    """A ready async client to use instead of building one."""

    _sync_client: CoastyClient | None = PrivateAttr(default=None)
    _async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncCoastyClient] = (
        PrivateAttr(default_factory=weakref.WeakKeyDictionary)
    )
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def get_client(self) -> CoastyClient:
        """The sync client (built once from the settings)."""
        if self.client is not None:
            return self.client
        with self._lock:
            if self._sync_client is None:
                self._sync_client = self.new_client()
            return self._sync_client

    def new_client(self) -> CoastyClient:
        """A fresh sync client from the settings (the caller closes it)."""
        return CoastyClient(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    def get_async_client(self) -> AsyncCoastyClient:
        """The async client for the running event loop (httpx pools are loop-bound)."""
        if self.async_client is not None:
            return self.async_client
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None:
                client = AsyncCoastyClient(
                    api_key=self.api_key,
                    base_url=self.base_url,
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                )
                self._async_clients[loop] = client
            return client

    def settings_dict(self) -> dict[str, Any]:
        """The settings as keyword arguments (clients included) for a sibling object."""
        return {name: getattr(self, name) for name in CoastySettings.model_fields}


# --- progress shared by re-executions in this process -------------------------------------


@dataclass
class _Progress:
    """What this process has already delivered for one run."""

    seq: int = 0
    pauses: list[PauseRequest] = field(default_factory=list)
    applied: int = 0
    done: bool = False
    owner: int = 0
    """Generation of the session delivering the events (the latest execution of the call)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, generation: int) -> int:
        """Hand delivery to the session ``generation`` if it is the newest; return the cursor.

        An async ``ToolNode`` leaves the sibling of an interrupted call running in the
        background, so its re-execution can overlap it: the newer session takes over.
        """
        with self.lock:
            self.owner = max(self.owner, generation)
            return self.seq

    def claim(self, generation: int, seq: int) -> bool:
        """Whether session ``generation`` delivers event ``seq`` (False: another one does)."""
        with self.lock:
            if generation != self.owner or seq <= self.seq:
                return False
            self.seq = seq
            return True


class _ProgressRegistry:
    """Bounded, thread-safe ``run_id -> _Progress`` map."""

    def __init__(self, maxsize: int = 4096) -> None:
        self._items: OrderedDict[str, _Progress] = OrderedDict()
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def note_key(self, key: str) -> bool:
        """Remember that a call with this idempotency key started here; True if one did before."""
        with self._lock:
            seen = key in self._keys
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._maxsize:
                self._keys.popitem(last=False)
            return seen

    def get(self, run_id: str) -> _Progress | None:
        with self._lock:
            item = self._items.get(run_id)
            if item is not None:
                self._items.move_to_end(run_id)
            return item

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._keys.clear()

    def get_or_create(self, run_id: str) -> _Progress:
        with self._lock:
            item = self._items.get(run_id)
            if item is None:
                item = self._items[run_id] = _Progress()
                while len(self._items) > self._maxsize:
                    self._items.popitem(last=False)
            return item


PROGRESS = _ProgressRegistry()
_GENERATIONS = itertools.count(1)


# --- one followed run --------------------------------------------------------------------


class _IdleTimeout(Exception):
    """No event arrived within ``idle_timeout``."""


class _Stop(Exception):
    """Stop following (a pause handed back to the caller)."""


@dataclass
class _Request:
    body: dict[str, Any]
    key: str
    policy: AwaitingHumanPolicy
    wait: WaitMode = "stream"


class RunSession:
    """Creates and follows one run; sync and async twins share the bookkeeping."""

    def __init__(
        self,
        settings: CoastySettings,
        input: CoastyInput,
        config: RunnableConfig | None,
        *,
        runtime: Any = None,
        allow_create: bool = True,
    ) -> None:
        self.settings = settings
        self.config: RunnableConfig = config or {}
        self.ctx: GraphContext | None = graph_context(config, runtime)
        self.request = build_request(settings, input, self.ctx) if allow_create else None
        self.dispatcher = EventDispatcher(None, self.ctx.stream_writer if self.ctx else None)
        self.run: Run | None = None
        self.progress = _Progress()
        self.log: deque[dict[str, Any]] = deque(maxlen=_LOG_SIZE)
        self.events_seen = 0
        self.stop_reason: str | None = None
        self.stop_note: str | None = None
        self.done = False
        self.cancel_sent = False
        self.generation = next(_GENERATIONS)
        self.webhook_secret: SecretStr | None = None
        # An earlier execution of this call in this process (a ToolNode sibling still running
        # in the background) delivers its own events: nothing to replay silently then.
        self._started_here = PROGRESS.note_key(self.request.key) if self.request else True
        self._silent_pauses = 0
        self._pauses_seen = 0
        self._pending_pause: tuple[PauseRequest, int] | None = None

    # -- shared bookkeeping --

    @property
    def policy(self) -> AwaitingHumanPolicy:
        return self.request.policy if self.request else self.settings.on_awaiting_human

    @property
    def interrupts(self) -> bool:
        """Whether pauses become LangGraph interrupts here."""
        return self.policy == "interrupt" and self.ctx is not None

    def child_run_inputs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self.run is not None
        meta = {"coasty_run_id": self.run.id, "coasty_machine_id": self.run.machine_id}
        return {"run_id": self.run.id, "task": self.run.task}, meta

    def attach(self, run: Run) -> int:
        """Start following ``run``; return the seq to stream after."""
        self.run = run
        if run.webhook_secret is not None:
            # Only the create response carries it: keep it for the final run (the artifact).
            self.webhook_secret = run.webhook_secret
        existing = PROGRESS.get(run.id)
        self.progress = PROGRESS.get_or_create(run.id)
        if existing is None and not self._started_here and self.interrupts and self.ctx:
            # Another process delivered the events before the answered pauses.
            self._silent_pauses = self.ctx.answered
        self._pauses_seen = len(self.progress.pauses)
        return self.progress.take(self.generation)

    def observe(self, event: RunEvent) -> tuple[bool, PauseRequest | None, bool]:
        """Book ``event``; return (deliver it, its pause request if a pause, silent replay)."""
        assert self.run is not None
        self.events_seen += 1
        pause: PauseRequest | None = None
        if event.type == "awaiting_human":
            self._pauses_seen += 1
            pause = build_pause_request(
                task=self.run.task or "",
                machine_id=self.run.machine_id,
                run_id=self.run.id,
                seq=event.seq,
                data=event.data,
            )
        if event.type == "done":
            self.done = True
        silent = self._silent_pauses > 0
        if silent and pause is not None and self._pauses_seen >= self._silent_pauses:
            self._silent_pauses = 0
        if not silent:
            self.log.append(_log_entry(event))
        return not silent, pause, silent

    def delivered(self, event: RunEvent) -> None:
        self.progress.seq = max(self.progress.seq, event.seq)
        if event.type == "done":
            self.progress.done = True

    def payload(self, event: RunEvent) -> Any:
        assert self.run is not None
        return event_payload(event, run_id=self.run.id, machine_id=self.run.machine_id)

    def over_budget(self, event: RunEvent) -> bool:
        limit = self.settings.max_cost_usd
        if limit is None or event.type != "billing" or self.cancel_sent:
            return False
        credits = event.credits_charged
        if credits is None:
            credits = event.cost_cents
        if credits is None or credits / 100 <= limit:
            return False
        self.stop_reason = "budget_exceeded"
        self.stop_note = (
            f"stopped: cost budget ${limit:.2f} exceeded (${credits / 100:.2f} charged)"
        )
        return True

    def pause_action(self, pause: PauseRequest, silent: bool) -> str:
        """Decide what a pause leads to: interrupt, return, fail or call."""
        if silent or self.interrupts:
            if self.ctx is not None and not self.ctx.has_checkpointer:
                return "no_checkpointer"
            self.progress.pauses.append(pause)
            return "interrupt"
        if self.policy in ("interrupt", "return"):
            self.stop_reason = "awaiting_human"
            note = (
                " (not inside a LangGraph graph, so the pause is handed back)"
                if self.policy == "interrupt"
                else ""
            )
            self.stop_note = f"paused: the run needs a person{note}"
            return "return"
        if self.policy == "fail":
            self.stop_reason = "awaiting_human"
            self.stop_note = "cancelled: the run needed a person and on_awaiting_human='fail'"
            return "fail"
        return "call"

    def answered(self, answer: Any, pause_index: int) -> HumanAnswer | None:
        """Record an answer; return it when it still has to be sent to the server."""
        parsed = parse_answer(answer)
        if pause_index <= self.progress.applied:
            return None
        if self._silent_pauses > 0:
            # Replaying another process's pauses: only the last answered one is ours to send.
            self.progress.applied = pause_index
            return None
        self.progress.applied = pause_index
        if parsed.action == "cancel":
            self.stop_reason = "rejected"
            self.stop_note = "cancelled by the person answering the pause" + (
                f": {parsed.note}" if parsed.note else ""
            )
        return parsed

    def no_checkpointer_error(self) -> RuntimeError:
        return RuntimeError(
            "A Coasty run paused for a person inside a LangGraph graph compiled without a "
            "checkpointer, so the interrupt could not be resumed. Compile the graph with a "
            "checkpointer (e.g. InMemorySaver) or set on_awaiting_human='return'. "
            f"The run {self.run.id if self.run else ''} was cancelled."
        )

    def finish(self, run: Run) -> Run:
        """The final run, with the compact event log and why following stopped."""
        update: dict[str, Any] = {"event_log": list(self.log)}
        if run.webhook_secret is None and self.webhook_secret is not None:
            update["webhook_secret"] = self.webhook_secret
        if self.stop_reason:
            update["stop_reason"] = self.stop_reason
            update["stop_note"] = self.stop_note
        return run.model_copy(update=update)

    # -- sync --

    def follow(self, client: CoastyClient, callbacks: CallbackManager | None) -> Iterator[RunEvent]:
        """Create (or reattach to) the run and yield its new events; ``self.result`` at end."""
        assert self.request is not None
        created = client.runs.create_with_response(
            idempotency_key=self.request.key, **self.request.body
        )
        if self.request.wait == "durable":
            yield from self.wait_durably(client, created, callbacks)
        else:
            yield from self.follow_existing(client, created.run, callbacks)

    def wait_durably(
        self, client: CoastyClient, created: CreateResult, callbacks: CallbackManager | None
    ) -> Iterator[RunEvent]:
        """Carry out a durable wait (``langchain_coasty.durable``); yields caught-up events."""
        self.attach(created.run)
        child = self._start_child(callbacks)
        steps = durable_steps(self, created)
        try:
            value: Any = None
            while True:
                try:
                    op = steps.send(value)
                except StopIteration:
                    break
                value = None
                if op.kind == "get":
                    value = client.runs.get(created.run.id)
                elif op.kind == "events":
                    value = self._read_events_sync(client, *op.arg)
                elif op.kind == "dispatch":
                    self.dispatcher.dispatch(op.arg)
                    assert op.event is not None
                    yield op.event
                elif op.kind == "apply":
                    self._apply_sync(client, op.arg)
                elif op.kind == "cancel":
                    self._cancel_sync(client)
                else:
                    value = cast(Any, self.policy)(op.arg)
                    if isinstance(value, Awaitable):
                        if asyncio.iscoroutine(value):
                            value.close()
                        raise TypeError(
                            "on_awaiting_human is an async callable: use ainvoke/astream."
                        )
        except BaseException as exc:
            if child is not None:
                child.on_chain_error(exc)
            raise
        if child is not None:
            child.on_chain_end({"status": self.result.status.value, "run_id": created.run.id})

    def _read_events_sync(
        self, client: CoastyClient, after: int, stop: Callable[[RunEvent], bool]
    ) -> list[RunEvent]:
        """Read events after ``after`` until ``stop`` says so (a short, bounded read)."""
        out: list[RunEvent] = []
        stream = client.runs.events(self.run.id if self.run else "", after=after)
        try:
            for event in stream:
                out.append(event)
                if stop(event):
                    break
        finally:
            stream.close()
        return out

    def follow_existing(
        self, client: CoastyClient, run: Run, callbacks: CallbackManager | None
    ) -> Iterator[RunEvent]:
        after = self.attach(run)
        child = self._start_child(callbacks)
        try:
            yield from self._follow_sync(client, after)
            self.result = self.finish(client.runs.get(run.id))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | GeneratorExit) and not self.done:
                self._cancel_sync(client)
            if child is not None:
                child.on_chain_error(exc)
            raise
        if child is not None:
            child.on_chain_end({"status": self.result.status.value, "run_id": run.id})

    def _start_child(self, callbacks: CallbackManager | None) -> CallbackManagerForChainRun | None:
        if callbacks is None:
            return None
        inputs, meta = self.child_run_inputs()
        manager = callbacks.copy()
        manager.add_tags(["coasty"])
        manager.add_metadata(meta)
        child = manager.on_chain_start(None, inputs, name="coasty_run")
        self.dispatcher = EventDispatcher(
            patch_config(self.config, callbacks=child.get_child()), self.dispatcher_writer
        )
        return child

    @property
    def dispatcher_writer(self) -> Any:
        return self.ctx.stream_writer if self.ctx else None

    def _replay_pauses_sync(self, client: CoastyClient) -> None:
        for index, pause in enumerate(list(self.progress.pauses), start=1):
            answer = call_interrupt(pause)
            self._apply_sync(client, self.answered(answer, index))

    def _follow_sync(self, client: CoastyClient, after: int) -> Iterator[RunEvent]:
        if self.interrupts:
            self._replay_pauses_sync(client)
        if self.progress.done:
            self.done = True
            return
        run_id = self.run.id if self.run else ""
        reader: CoastyClient | None = None
        if self.settings.idle_timeout and self.settings.client is None:
            # A client of its own, so that giving up can close the blocked connection.
            reader = self.settings.new_client()
            client_for_stream = reader
        else:
            client_for_stream = client
        stream = client_for_stream.runs.events(run_id, after=after)
        source: Iterable[RunEvent] = (
            _Pump(stream, self.settings.idle_timeout) if self.settings.idle_timeout else stream
        )
        try:
            for event in source:
                if not self.progress.claim(self.generation, event.seq):
                    return  # a re-execution of this call delivers the run's events now
                deliver, pause, silent = self.observe(event)
                if deliver:
                    self.dispatcher.dispatch(self.payload(event))
                self.delivered(event)
                if deliver:
                    yield event
                if self.over_budget(event):
                    self._cancel_sync(client)
                if pause is not None:
                    try:
                        self._pause_sync(client, pause, silent)
                    except _Stop:
                        return
                if event.type == "done":
                    return
        except _IdleTimeout:
            self._idle_sync(client)
        finally:
            if isinstance(source, _Pump):
                source.close()
                if reader is not None:
                    reader.close()
            else:
                stream.close()

    def _pause_sync(self, client: CoastyClient, pause: PauseRequest, silent: bool) -> None:
        action = self.pause_action(pause, silent)
        index = self._pauses_seen
        if action == "interrupt":
            self._apply_sync(client, self.answered(call_interrupt(pause), index))
        elif action == "no_checkpointer":
            self._cancel_sync(client)
            raise self.no_checkpointer_error()
        elif action == "return":
            raise _Stop
        elif action == "fail":
            self._cancel_sync(client)
        else:
            answer = cast(Any, self.policy)(pause)
            if isinstance(answer, Awaitable):
                if asyncio.iscoroutine(answer):
                    answer.close()
                raise TypeError(
                    "on_awaiting_human is an async callable: use ainvoke/astream, or a sync one."
                )
            self._apply_sync(client, self.answered(answer, index))

    def _apply_sync(self, client: CoastyClient, answer: HumanAnswer | None) -> None:
        if answer is None or self.run is None:
            return
        try:
            if answer.action == "resume":
                client.runs.resume(self.run.id, note=answer.note)
            else:
                self.cancel_sent = True
                client.runs.cancel(self.run.id)
        except ConflictError:
            pass  # already resumed or finished by an earlier execution

    def _cancel_sync(self, client: CoastyClient) -> None:
        if self.run is None or self.cancel_sent:
            return
        self.cancel_sent = True
        with contextlib.suppress(ConflictError):
            client.runs.cancel(self.run.id)

    def _idle_sync(self, client: CoastyClient) -> None:
        self.stop_reason = "idle_timeout"
        self.stop_note = (
            f"stopped: no event for {self.settings.idle_timeout:g}s; the run was cancelled"
        )
        with contextlib.suppress(CoastyError):
            self._cancel_sync(client)

    # -- async --

    async def afollow(
        self, client: AsyncCoastyClient, callbacks: AsyncCallbackManager | None
    ) -> AsyncGenerator[RunEvent, None]:
        """Async twin of ``follow``."""
        assert self.request is not None
        created = await client.runs.create_with_response(
            idempotency_key=self.request.key, **self.request.body
        )
        if self.request.wait == "durable":
            follow = self.await_durably(client, created, callbacks)
        else:
            follow = self.afollow_existing(client, created.run, callbacks)
        async with aclosing(follow) as events:
            async for event in events:
                yield event

    async def await_durably(
        self,
        client: AsyncCoastyClient,
        created: CreateResult,
        callbacks: AsyncCallbackManager | None,
    ) -> AsyncGenerator[RunEvent, None]:
        """Async twin of ``wait_durably``."""
        self.attach(created.run)
        child = await self._astart_child(callbacks)
        steps = durable_steps(self, created)
        try:
            value: Any = None
            while True:
                try:
                    op = steps.send(value)
                except StopIteration:
                    break
                value = None
                if op.kind == "get":
                    value = await client.runs.get(created.run.id)
                elif op.kind == "events":
                    value = await self._read_events_async(client, *op.arg)
                elif op.kind == "dispatch":
                    await self.dispatcher.adispatch(op.arg)
                    assert op.event is not None
                    yield op.event
                elif op.kind == "apply":
                    await self._apply_async(client, op.arg)
                elif op.kind == "cancel":
                    await self._acancel(client)
                else:
                    value = cast(Any, self.policy)(op.arg)
                    if isinstance(value, Awaitable):
                        value = await value
        except BaseException as exc:
            if child is not None:
                await child.on_chain_error(exc)
            raise
        if child is not None:
            await child.on_chain_end({"status": self.result.status.value, "run_id": created.run.id})

    async def _read_events_async(
        self, client: AsyncCoastyClient, after: int, stop: Callable[[RunEvent], bool]
    ) -> list[RunEvent]:
        out: list[RunEvent] = []
        stream = client.runs.events(self.run.id if self.run else "", after=after)
        try:
            async for event in stream:
                out.append(event)
                if stop(event):
                    break
        finally:
            await stream.aclose()
        return out

    async def afollow_existing(
        self, client: AsyncCoastyClient, run: Run, callbacks: AsyncCallbackManager | None
    ) -> AsyncGenerator[RunEvent, None]:
        after = self.attach(run)
        child = await self._astart_child(callbacks)
        try:
            async with aclosing(self._follow_async(client, after)) as events:
                async for event in events:
                    yield event
            self.result = self.finish(await client.runs.get(run.id))
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError | GeneratorExit) and not self.done:
                await self._acancel_shielded(client)
            if child is not None:
                await child.on_chain_error(exc)
            raise
        if child is not None:
            await child.on_chain_end({"status": self.result.status.value, "run_id": run.id})

    async def _astart_child(
        self, callbacks: AsyncCallbackManager | None
    ) -> AsyncCallbackManagerForChainRun | None:
        if callbacks is None:
            return None
        inputs, meta = self.child_run_inputs()
        manager = callbacks.copy()
        manager.add_tags(["coasty"])
        manager.add_metadata(meta)
        child = await manager.on_chain_start(None, inputs, name="coasty_run")
        self.dispatcher = EventDispatcher(
            patch_config(self.config, callbacks=child.get_child()), self.dispatcher_writer
        )
        return child

    async def _follow_async(
        self, client: AsyncCoastyClient, after: int
    ) -> AsyncGenerator[RunEvent, None]:
        if self.interrupts:
            for index, earlier in enumerate(list(self.progress.pauses), start=1):
                answer = call_interrupt(earlier)
                await self._apply_async(client, self.answered(answer, index))
        if self.progress.done:
            self.done = True
            return
        stream = client.runs.events(self.run.id if self.run else "", after=after)
        idle = self.settings.idle_timeout
        try:
            while True:
                try:
                    if idle:
                        event = await asyncio.wait_for(stream.__anext__(), idle)
                    else:
                        event = await stream.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    await self._aidle(client)
                    return
                if not self.progress.claim(self.generation, event.seq):
                    return  # a re-execution of this call delivers the run's events now
                deliver, pause, silent = self.observe(event)
                if deliver:
                    await self.dispatcher.adispatch(self.payload(event))
                self.delivered(event)
                if deliver:
                    yield event
                if self.over_budget(event):
                    await self._acancel(client)
                if pause is not None:
                    try:
                        await self._pause_async(client, pause, silent)
                    except _Stop:
                        return
                if event.type == "done":
                    return
        finally:
            await stream.aclose()

    async def _pause_async(
        self, client: AsyncCoastyClient, pause: PauseRequest, silent: bool
    ) -> None:
        action = self.pause_action(pause, silent)
        index = self._pauses_seen
        if action == "interrupt":
            await self._apply_async(client, self.answered(call_interrupt(pause), index))
        elif action == "no_checkpointer":
            await self._acancel(client)
            raise self.no_checkpointer_error()
        elif action == "return":
            raise _Stop
        elif action == "fail":
            await self._acancel(client)
        else:
            answer = cast(Any, self.policy)(pause)
            if isinstance(answer, Awaitable):
                answer = await answer
            await self._apply_async(client, self.answered(answer, index))

    async def _apply_async(self, client: AsyncCoastyClient, answer: HumanAnswer | None) -> None:
        if answer is None or self.run is None:
            return
        try:
            if answer.action == "resume":
                await client.runs.resume(self.run.id, note=answer.note)
            else:
                self.cancel_sent = True
                await client.runs.cancel(self.run.id)
        except ConflictError:
            pass  # already resumed or finished by an earlier execution

    async def _acancel(self, client: AsyncCoastyClient) -> None:
        if self.run is None or self.cancel_sent:
            return
        self.cancel_sent = True
        with contextlib.suppress(ConflictError):
            await client.runs.cancel(self.run.id)

    async def _acancel_shielded(self, client: AsyncCoastyClient) -> None:
        """Cancel on the server even though our own task is being cancelled."""
        if self.run is None or self.cancel_sent:
            return
        task = asyncio.ensure_future(self._acancel(client))
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, CoastyError):
            await asyncio.wait_for(asyncio.shield(task), _CANCEL_TIMEOUT)

    async def _aidle(self, client: AsyncCoastyClient) -> None:
        self.stop_reason = "idle_timeout"
        self.stop_note = (
            f"stopped: no event for {self.settings.idle_timeout:g}s; the run was cancelled"
        )
        with contextlib.suppress(CoastyError):
            await self._acancel(client)

    result: Run


class _Pump:
    """Reads a sync event stream in a helper thread so that waiting can time out."""

    def __init__(self, stream: Iterator[RunEvent], idle_timeout: float) -> None:
        self._stream = stream
        self._idle = idle_timeout
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="coasty-events", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for event in self._stream:
                self._queue.put(("event", event))
                if self._stopped.is_set():
                    break
            self._queue.put(("end", None))
        except BaseException as exc:  # handed to the reading thread
            self._queue.put(("error", exc))
        finally:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[RunEvent]:
        while True:
            try:
                kind, value = self._queue.get(timeout=self._idle)
            except queue.Empty:
                raise _IdleTimeout from None
            if kind == "event":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    def close(self) -> None:
        self._stopped.set()


def _log_entry(event: RunEvent) -> dict[str, Any]:
    data = event.data if isinstance(event.data, Mapping) else {}
    detail: Any = None
    for key in ("summary", "status", "question", "action", "credits_charged", "code", "text"):
        if data.get(key) is not None:
            detail = data[key]
            break
    entry: dict[str, Any] = {"seq": event.seq, "type": event.type}
    if detail is not None:
        entry["detail"] = detail[:200] if isinstance(detail, str) else detail
    return entry


def build_request(
    settings: CoastySettings, input: CoastyInput, ctx: GraphContext | None
) -> _Request:
    """The create body (deterministic for the same logical call), its key and the policy."""
    if isinstance(input, str):
        given: dict[str, Any] = {"task": input}
    elif isinstance(input, Mapping):
        given = dict(input)
    else:
        raise TypeError(
            f"CoastyRunnable input must be a task string or a dict of run fields, "
            f"not {type(input).__name__}"
        )
    unknown = sorted(set(given) - set(RUN_FIELDS) - set(_INPUT_EXTRAS))
    if unknown:
        raise ValueError(
            f"Unknown run field(s) {', '.join(unknown)}; accepted: "
            + ", ".join((*RUN_FIELDS, *_INPUT_EXTRAS))
        )
    body: dict[str, Any] = {}
    for name in RUN_FIELDS:
        value = settings.run_metadata if name == "metadata" else getattr(settings, name, None)
        if value is not None:
            body[name] = value
    for name in RUN_FIELDS:
        if given.get(name) is not None:
            body[name] = given[name]
    if settings.run_metadata and isinstance(given.get("metadata"), Mapping):
        body["metadata"] = {**settings.run_metadata, **given["metadata"]}
    for name in ("task", "machine_id"):
        if not body.get(name):
            raise ValueError(
                f"Missing `{name}`: pass it in the input"
                + (" or set machine_id on the runnable/tool" if name == "machine_id" else "")
                + "."
            )
    key = given.get("idempotency_key") or (ctx.idempotency_key(body) if ctx else None)
    if not key:
        key = f"lc-{uuid.uuid4().hex}"
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValueError(f"`metadata` must be a dict, not {type(metadata).__name__}")
    meta = dict(metadata or {})
    meta.update(ctx.metadata(key) if ctx else {"idempotency_key": key})
    body["metadata"] = meta
    policy = given.get("on_awaiting_human") or settings.on_awaiting_human
    if policy not in ("interrupt", "return", "fail") and not callable(policy):
        raise ValueError(
            "`on_awaiting_human` must be 'interrupt', 'return', 'fail' or a callable, "
            f"not {policy!r:.60}"
        )
    wait = given.get("wait") or settings.wait
    if wait not in ("stream", "durable"):
        raise ValueError(f"wait must be 'stream' or 'durable', not {wait!r}")
    if wait == "durable" and (ctx is None or not ctx.has_checkpointer or not ctx.thread_id):
        raise ValueError(
            "wait='durable' pauses the LangGraph graph until the run's outcome resumes it, so "
            "it needs to run inside a graph compiled with a checkpointer (and a thread_id); "
            "use wait='stream' elsewhere."
        )
    return _Request(body=body, key=str(key), policy=policy, wait=wait)


# --- the runnable ------------------------------------------------------------------------


class CoastyRunnable(RunnableSerializable[CoastyInput, Run], CoastySettings):
    """Runs a task on a Coasty machine and returns the finished ``Run``.

    Setup:
        Install ``langchain-coasty`` and set your key:

        .. code-block:: bash

            pip install -U langchain-coasty
            export COASTY_API_KEY="sk-coasty-test-..."

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyRunnable

            coasty = CoastyRunnable(machine_id="m-123", max_steps=30, max_cost_usd=1.0)

    Invocation:
        .. code-block:: python

            run = coasty.invoke("Download last month's invoices as PDF")
            run.status, run.result, run.cost_usd

            for event in coasty.stream({"task": "Open the CRM", "max_steps": 10}):
                print(event.seq, event.type, event.data)

            runs = await coasty.abatch(["task one", "task two"], {"max_concurrency": 2})

    Every event is also delivered as the LangChain custom event ``"coasty_event"`` and,
    inside a LangGraph graph, on ``stream_mode="custom"`` (see ``langchain_coasty.callbacks``).
    Inside a graph with a checkpointer, a pause becomes a LangGraph interrupt and the
    re-executed call reattaches to the same run (see ``langchain_coasty.human``).
    When following stops early, the returned run says why in ``stop_reason``
    (``budget_exceeded``, ``idle_timeout``, ``awaiting_human``, ``rejected``) and
    ``stop_note``; ``event_log`` holds a compact log of the delivered events.

    Inside a graph, ``wait="durable"`` pauses the graph on the run instead of following its
    stream (see ``langchain_coasty.durable``). Runs created in a graph carry ``metadata``
    naming the thread, checkpoint namespace, tool call and idempotency key (see
    ``langchain_coasty._graph.run_metadata``), so any process can find the thread again.
    """

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_coasty", "runnable"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "COASTY_API_KEY"}

    def invoke(
        self, input: CoastyInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Run:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(
        self, input: CoastyInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Run:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    def stream(  # type: ignore[override]
        self, input: CoastyInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[RunEvent]:
        """Yield the run's events as they happen."""
        events = self._transform_stream_with_config(
            iter([input]), cast(Any, self._stream_events), config, **kwargs
        )
        yield from cast(Iterator[RunEvent], events)

    async def astream(  # type: ignore[override]
        self, input: CoastyInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[RunEvent]:
        """Async twin of ``stream``."""

        async def one() -> AsyncIterator[CoastyInput]:
            yield input

        events = self._atransform_stream_with_config(
            one(), cast(Any, self._astream_events), config, **kwargs
        )
        async with aclosing(cast(AsyncGenerator[RunEvent, None], events)) as stream:
            async for event in stream:
                yield event

    def _invoke(
        self, input: CoastyInput, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Run:
        session = RunSession(self, input, config)
        for _ in session.follow(self.get_client(), run_manager.get_child()):
            pass
        return session.result

    async def _ainvoke(
        self,
        input: CoastyInput,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> Run:
        session = RunSession(self, input, config)
        async for _ in session.afollow(self.get_async_client(), run_manager.get_child()):
            pass
        return session.result

    def _stream_events(
        self,
        inputs: Iterator[CoastyInput],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> Iterator[RunEvent]:
        for input in inputs:
            session = RunSession(self, input, config)
            yield from session.follow(self.get_client(), run_manager.get_child())

    async def _astream_events(
        self,
        inputs: AsyncIterator[CoastyInput],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AsyncGenerator[RunEvent, None]:
        async for input in inputs:
            session = RunSession(self, input, config)
            follow = session.afollow(self.get_async_client(), run_manager.get_child())
            async with aclosing(follow) as events:
                async for event in events:
                    yield event


def child_callbacks(
    run_manager: CallbackManagerForToolRun | None,
) -> CallbackManager | None:
    """The callback manager under a tool run (``None`` when the tool runs without one)."""
    return run_manager.get_child() if run_manager is not None else None


def achild_callbacks(
    run_manager: AsyncCallbackManagerForToolRun | None,
) -> AsyncCallbackManager | None:
    """Async twin of ``child_callbacks``."""
    return run_manager.get_child() if run_manager is not None else None
