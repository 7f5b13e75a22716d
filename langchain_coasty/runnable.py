"""``CoastyRunnable``: one Coasty run as a LangChain runnable (create, follow, pause, finish)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.runnables import RunnableConfig, RunnableSerializable

from langchain_coasty._engine.drivers import drive_async, drive_sync
from langchain_coasty._engine.machine_call import (
    CheckedCall,
    amachine_for_call,
    check_call,
    machine_for_call,
    on_machine,
    record_usage,
)
from langchain_coasty._engine.request import CoastyInput
from langchain_coasty._engine.session import FollowedRun, RunSession
from langchain_coasty._engine.settings import CoastySettings
from langchain_coasty._engine.steps import call_steps
from langchain_coasty.client import RunEvent
from langchain_coasty.machines import MachineLease
from langchain_coasty.screens import ScreenMoment

__all__ = ["CoastyInput", "CoastyRunnable", "FollowedRun"]


class CoastyRunnable(RunnableSerializable[CoastyInput, FollowedRun], CoastySettings):
    """Runs a task on a Coasty machine and returns the finished run (a ``FollowedRun``).

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
    Leaving early because the caller stopped waiting (``KeyboardInterrupt``, a cancelled
    task, closing ``stream``) cancels the run on the server.

    Inside a graph, ``wait="durable"`` pauses the graph on the run instead of following its
    stream (see ``langchain_coasty.durable``). Runs created in a graph carry ``metadata``
    naming the thread, checkpoint namespace, tool call and idempotency key (see
    ``langchain_coasty._graph.run_metadata``), so any process can find the thread again.
    The screen is captured at a pause only (``screens_at=("pause",)``); the tool also
    captures the end screen for its artifact. Add ``"end"`` when a pipeline wants it: each
    capture is one more request per run.
    """

    screens_at: tuple[ScreenMoment, ...] = ("pause",)

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
    ) -> FollowedRun:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(
        self, input: CoastyInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> FollowedRun:
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

    def _checked(self, input: CoastyInput, config: RunnableConfig) -> CheckedCall | None:
        """Under a ``machine=`` policy, the input checked before the machine is made."""
        return None if self.machine is None else check_call(self, input, config)

    def _session(
        self, input: CoastyInput, config: RunnableConfig, lease: MachineLease | None
    ) -> RunSession:
        given = input if lease is None else on_machine(input, lease.machine_id)
        session = RunSession.for_call(self, given, config)
        session.lease = lease
        return session

    def _invoke(
        self, input: CoastyInput, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> FollowedRun:
        checked = self._checked(input, config)
        with machine_for_call(self, checked, config) as lease:
            session = self._session(input, config, lease)
            steps = call_steps(session)
            for _ in drive_sync(session, steps, self.get_client(), run_manager.get_child()):
                pass
        assert session.result is not None
        record_usage(session.result, lease)
        return session.result

    async def _ainvoke(
        self,
        input: CoastyInput,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> FollowedRun:
        checked = self._checked(input, config)
        async with amachine_for_call(self, checked, config) as lease:
            session = self._session(input, config, lease)
            steps = call_steps(session)
            client = self.get_async_client()
            follow = drive_async(session, steps, client, run_manager.get_child())
            async with aclosing(follow) as events:
                async for _ in events:
                    pass
        assert session.result is not None
        record_usage(session.result, lease)
        return session.result

    def _stream_events(
        self,
        inputs: Iterator[CoastyInput],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> Iterator[RunEvent]:
        for input in inputs:
            checked = self._checked(input, config)
            with machine_for_call(self, checked, config) as lease:
                session = self._session(input, config, lease)
                steps = call_steps(session)
                yield from drive_sync(session, steps, self.get_client(), run_manager.get_child())
            record_usage(session.result, lease)

    async def _astream_events(
        self,
        inputs: AsyncIterator[CoastyInput],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AsyncGenerator[RunEvent, None]:
        async for input in inputs:
            checked = self._checked(input, config)
            async with amachine_for_call(self, checked, config) as lease:
                session = self._session(input, config, lease)
                steps = call_steps(session)
                client = self.get_async_client()
                follow = drive_async(session, steps, client, run_manager.get_child())
                async with aclosing(follow) as events:
                    async for event in events:
                        yield event
            record_usage(session.result, lease)
