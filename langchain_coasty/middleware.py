"""``CoastyMiddleware`` for LangChain 1.x ``create_agent``, and the orphaned-pause cleanup.

A Coasty pause is an interrupt the person may never answer: Agent Chat UI lets them type a
new message instead, adding a stub ``ToolMessage`` for the pending tool call and starting
a new run of the thread. The Coasty run that was waiting would stay ``awaiting_human``
(and hold its machine) until its pause timeout. ``CoastyMiddleware.before_agent`` looks at
the thread when it moves on, finds the Coasty tool calls that were answered by something
other than the tool (so their runs are no longer awaited) and cancels the runs still paused
for them. Hand-built graphs call ``cancel_orphaned_pauses`` from a node instead.

The runs are found by the metadata every run created in a graph carries
(``langchain_thread_id``, ``langchain_tool_call_id``) among the newest paused runs of the
account (``GET /v1/runs?status=awaiting_human``, at most 200).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NotRequired

from langchain.agents.middleware import AgentMiddleware, AgentState
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime

from langchain_coasty._engine.settings import CoastySettings
from langchain_coasty._graph import THREAD_ID_KEY, TOOL_CALL_ID_KEY
from langchain_coasty.client import (
    AsyncCoastyClient,
    CoastyClient,
    ConflictError,
    NotFoundError,
    Run,
    RunStatus,
)
from langchain_coasty.machines import (
    MachinePerThread,
    arelease_thread_machine,
    release_thread_machine,
)
from langchain_coasty.step_tools import (
    SESSION_STATE_KEY,
    arelease_thread_session,
    release_thread_session,
)

__all__ = [
    "CoastyMiddleware",
    "acancel_orphaned_pauses",
    "cancel_orphaned_pauses",
    "orphaned_tool_calls",
]

logger = logging.getLogger("langchain_coasty")

DEFAULT_TOOL_NAMES = ("coasty_computer",)
_LIST_LIMIT = 200  # the most one GET /v1/runs returns


def orphaned_tool_calls(
    messages: Sequence[BaseMessage], tool_names: Iterable[str] = DEFAULT_TOOL_NAMES
) -> list[str]:
    """Ids of the last AI turn's Coasty tool calls answered by something other than the tool.

    Only the last AI message is looked at: a pause is orphaned when the thread moves on
    right after it, and older turns were checked when they were the last.
    """
    names = set(tool_names)
    last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    if last is None or not last.tool_calls:
        return []
    calls = {c["id"] for c in last.tool_calls if c["name"] in names and c.get("id")}
    answered: list[str] = []
    for message in messages[messages.index(last) + 1 :]:
        if (
            isinstance(message, ToolMessage)
            and message.tool_call_id in calls
            and not _carries_a_run(message.artifact)
        ):
            answered.append(message.tool_call_id)
    return answered


def cancel_orphaned_pauses(
    messages: Sequence[BaseMessage],
    client: CoastyClient,
    *,
    thread_id: str | None,
    tool_names: Iterable[str] = DEFAULT_TOOL_NAMES,
) -> list[str]:
    """Cancel the paused runs of tool calls the thread moved on from; their run ids."""
    calls = orphaned_tool_calls(messages, tool_names)
    if not calls or not thread_id:
        return []
    page = client.runs.list(status=RunStatus.AWAITING_HUMAN, limit=_LIST_LIMIT)
    cancelled = []
    for run in _parked(page.data, thread_id, calls):
        with contextlib.suppress(ConflictError, NotFoundError):  # it ended meanwhile
            client.runs.cancel(run.id)
            cancelled.append(run.id)
    _log(cancelled, thread_id)
    return cancelled


async def acancel_orphaned_pauses(
    messages: Sequence[BaseMessage],
    client: AsyncCoastyClient,
    *,
    thread_id: str | None,
    tool_names: Iterable[str] = DEFAULT_TOOL_NAMES,
) -> list[str]:
    """Async twin of ``cancel_orphaned_pauses``."""
    calls = orphaned_tool_calls(messages, tool_names)
    if not calls or not thread_id:
        return []
    page = await client.runs.list(status=RunStatus.AWAITING_HUMAN, limit=_LIST_LIMIT)
    cancelled = []
    for run in _parked(page.data, thread_id, calls):
        with contextlib.suppress(ConflictError, NotFoundError):
            await client.runs.cancel(run.id)
            cancelled.append(run.id)
    _log(cancelled, thread_id)
    return cancelled


class CoastyState(AgentState[Any]):
    """The agent state with the thread's Coasty session (``coasty_next_action``)."""

    coasty_session_id: NotRequired[str | None]


class CoastyMiddleware(AgentMiddleware[CoastyState, Any]):
    """Agent middleware for ``create_agent``: cancels Coasty runs whose pause was abandoned.

    Setup:
        ``pip install "langchain-coasty[langgraph]"``; the Coasty key as for the tool.

    Instantiation:
        .. code-block:: python

            from langchain.agents import create_agent
            from langchain_coasty import CoastyComputerTool
            from langchain_coasty.middleware import CoastyMiddleware

            tool = CoastyComputerTool(machine_id="m-123")
            agent = create_agent(
                model, [tool], middleware=[CoastyMiddleware(tool)], checkpointer=saver
            )

    ``settings`` (the tool itself, a toolkit, a runnable or ``CoastySettings``) gives the
    clients (default: ``COASTY_API_KEY`` / ``COASTY_BASE_URL``) and, for a tool, the tool
    name to watch. Each hook is switched by an option of its own:
    ``cancel_orphaned_pauses`` (``before_agent``) and ``release_thread_machines``
    (``after_agent``: when the settings use ``MachinePerThread``, the thread's machine is
    terminated at the end of the agent run, unless a run on it still waits for a person)
    and ``release_thread_sessions`` (``after_agent``: the thread's ``coasty_next_action``
    session, kept in the state as ``coasty_session_id``, is deleted).
    """

    state_schema = CoastyState

    def __init__(
        self,
        settings: CoastySettings | None = None,
        *,
        tool_names: Sequence[str] | None = None,
        cancel_orphaned_pauses: bool = True,
        release_thread_machines: bool = True,
        release_thread_sessions: bool = True,
    ) -> None:
        super().__init__()
        self.settings = settings if settings is not None else CoastySettings()
        own = getattr(settings, "name", None)
        if tool_names is None:
            tool_names = (own,) if isinstance(own, str) else DEFAULT_TOOL_NAMES
        self.tool_names = tuple(tool_names)
        self.cancels_orphaned_pauses = cancel_orphaned_pauses
        self.releases_thread_machines = release_thread_machines
        self.releases_thread_sessions = release_thread_sessions

    def before_agent(self, state: CoastyState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """When the thread moves on, cancel the paused runs nobody will answer."""
        # The client is only built (and the API only asked) when a call was abandoned.
        if self.cancels_orphaned_pauses and orphaned_tool_calls(state["messages"], self.tool_names):
            cancel_orphaned_pauses(
                state["messages"],
                self.settings.get_client(),
                thread_id=_thread_id(),
                tool_names=self.tool_names,
            )
        return None

    async def abefore_agent(
        self, state: CoastyState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async twin of ``before_agent``."""
        if self.cancels_orphaned_pauses and orphaned_tool_calls(state["messages"], self.tool_names):
            await acancel_orphaned_pauses(
                state["messages"],
                self.settings.get_async_client(),
                thread_id=_thread_id(),
                tool_names=self.tool_names,
            )
        return None

    def _thread_to_release(self) -> str | None:
        if not self.releases_thread_machines:
            return None
        if not isinstance(getattr(self.settings, "machine", None), MachinePerThread):
            return None
        return _thread_id()

    def after_agent(self, state: CoastyState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """At the end of the agent run, terminate the thread's machine (none left billing)."""
        thread_id = self._thread_to_release()
        if thread_id is not None:
            client = self.settings.get_client()
            page = client.runs.list(status=RunStatus.AWAITING_HUMAN, limit=_LIST_LIMIT)
            release_thread_machine(thread_id, client, keep=_paused_machines(page.data, thread_id))
        if self.releases_thread_sessions and state.get(SESSION_STATE_KEY):
            return release_thread_session(state, self.settings.get_client())
        return None

    async def aafter_agent(
        self, state: CoastyState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async twin of ``after_agent``."""
        thread_id = self._thread_to_release()
        if thread_id is not None:
            client = self.settings.get_async_client()
            page = await client.runs.list(status=RunStatus.AWAITING_HUMAN, limit=_LIST_LIMIT)
            keep = _paused_machines(page.data, thread_id)
            await arelease_thread_machine(thread_id, client, keep=keep)
        if self.releases_thread_sessions and state.get(SESSION_STATE_KEY):
            return await arelease_thread_session(state, self.settings.get_async_client())
        return None


def _paused_machines(runs: Iterable[Run], thread_id: str) -> frozenset[str]:
    """Machines of the thread's runs that still wait for a person (they keep their machine)."""
    return frozenset(
        run.machine_id
        for run in runs
        if run.status == RunStatus.AWAITING_HUMAN
        and (run.metadata or {}).get(THREAD_ID_KEY) == thread_id
        and run.machine_id
    )


def _carries_a_run(artifact: Any) -> bool:
    """Whether a ToolMessage's artifact is the tool's own run (so the tool answered it)."""
    if isinstance(artifact, Run):
        return True
    # A thread read back through LangGraph Server holds the artifact as a plain dict.
    return isinstance(artifact, Mapping) and "id" in artifact and "status" in artifact


def _parked(runs: Iterable[Run], thread_id: str, calls: Sequence[str]) -> list[Run]:
    wanted = set(calls)
    return [
        run
        for run in runs
        if run.status == RunStatus.AWAITING_HUMAN
        and (run.metadata or {}).get(THREAD_ID_KEY) == thread_id
        and (run.metadata or {}).get(TOOL_CALL_ID_KEY) in wanted
    ]


def _thread_id() -> str | None:
    try:
        value = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:  # not inside a runnable context
        return None
    return None if value is None else str(value)


def _log(cancelled: list[str], thread_id: str) -> None:
    for run_id in cancelled:
        logger.info(
            "Cancelled Coasty run %s: thread %s moved on without answering its pause",
            run_id,
            thread_id,
        )
