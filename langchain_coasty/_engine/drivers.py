"""The two drivers: carry out a step generator's operations with a sync or an async client.

They are the only sync/async twins above the client, and they decide nothing about the
run: every decision is in the step generators. What they own is I/O and its edges: the
``coasty_run`` child run in traces, event dispatch, the open stream (closed on every way
out), and the rule for leaving early: when the caller stops waiting (``KeyboardInterrupt``,
task cancellation, closing the event iterator) the run is cancelled on the server; a
LangGraph interrupt or an error leaves it as it is.

The idle timeout is enforced by the client's event stream in both drivers (its
``idle_timeout``: each read is bounded by the time left before the deadline, which moves
with every event), so neither driver needs a helper thread, a second client or a
cancelled read; the stream answers ``IdleTimeoutError`` and the steps decide what follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

from langchain_core.runnables.config import patch_config

from langchain_coasty._engine.ops import (
    ASYNC_POLICY_ERROR,
    AskPolicy,
    Attached,
    Cancel,
    CloseStream,
    Create,
    Deliver,
    GetRun,
    NextEvent,
    OpenStream,
    ReadEvents,
    Resume,
    Steps,
    StreamEnd,
)
from langchain_coasty._engine.session import RunSession
from langchain_coasty.callbacks import EventDispatcher
from langchain_coasty.client import (
    AsyncCoastyClient,
    AsyncEventStream,
    CoastyClient,
    CoastyError,
    ConflictError,
    EventStream,
    IdleTimeoutError,
    RunEvent,
)

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManager,
        AsyncCallbackManagerForChainRun,
        CallbackManager,
        CallbackManagerForChainRun,
    )

__all__ = ["CANCEL_TIMEOUT", "drive_async", "drive_sync"]

CANCEL_TIMEOUT = 5.0
"""Longest wait for the cancel sent when an async caller stops waiting."""


def drive_sync(
    session: RunSession, steps: Steps, client: CoastyClient, callbacks: CallbackManager | None
) -> Generator[RunEvent, None, None]:
    """Carry out ``steps`` with ``client``, yield each delivered event, set ``session.result``."""
    writer = session.ctx.stream_writer if session.ctx else None
    dispatcher = EventDispatcher(None, writer)
    child: CallbackManagerForChainRun | None = None
    stream: EventStream | None = None
    value: Any = None
    try:
        while True:
            try:
                op = steps.send(value)
            except StopIteration as stop:
                session.result = stop.value
                break
            value = None
            match op:
                # the two per-event operations first: they are the hot path
                case NextEvent():
                    assert stream is not None
                    try:
                        value = next(stream)
                    except StopIteration:
                        value = StreamEnd.END
                    except IdleTimeoutError:
                        value = StreamEnd.IDLE
                case Deliver(payload=payload, event=event):
                    dispatcher.dispatch(payload)
                    yield event
                case Create(plan=plan):
                    value = client.runs.create_request(plan.request, idempotency_key=plan.key)
                case Attached():
                    child = _start_child(session, callbacks)
                    if child is not None:
                        config = patch_config(session.config, callbacks=child.get_child())
                        dispatcher = EventDispatcher(config, writer)
                case GetRun(run_id=run_id):
                    value = client.runs.get(run_id)
                case ReadEvents(run_id=run_id, after=after, stop=stop_at):
                    value = []
                    with client.runs.events(run_id, after=after) as events:
                        for event in events:
                            value.append(event)
                            if stop_at(event):
                                break
                case OpenStream(run_id=run_id, after=after, idle_timeout=idle):
                    stream = client.runs.events(run_id, after=after, idle_timeout=idle)
                case CloseStream():
                    if stream is not None:
                        stream.close()
                        stream = None
                case Resume(run_id=run_id, note=note):
                    with contextlib.suppress(ConflictError):  # resumed by an earlier execution
                        client.runs.resume(run_id, note=note)
                case Cancel(run_id=run_id, quiet=quiet):
                    with contextlib.suppress(CoastyError if quiet else ConflictError):
                        client.runs.cancel(run_id)
                case AskPolicy(policy=policy, pause=pause):
                    value = policy(pause)
                    if inspect.isawaitable(value):
                        if inspect.iscoroutine(value):
                            value.close()
                        raise TypeError(ASYNC_POLICY_ERROR)
    except BaseException as exc:
        if stream is not None:
            stream.close()
            stream = None
        if session.cancels_on(exc):
            session.cancel_sent = True
            with contextlib.suppress(CoastyError):
                client.runs.cancel(session.run_id)
        if child is not None:
            child.on_chain_error(exc)
        raise
    finally:
        if stream is not None:
            stream.close()
        steps.close()
    if child is not None:
        assert session.result is not None
        child.on_chain_end({"status": session.result.status.value, "run_id": session.run_id})


async def drive_async(
    session: RunSession,
    steps: Steps,
    client: AsyncCoastyClient,
    callbacks: AsyncCallbackManager | None,
) -> AsyncGenerator[RunEvent, None]:
    """Async twin of ``drive_sync``."""
    writer = session.ctx.stream_writer if session.ctx else None
    dispatcher = EventDispatcher(None, writer)
    child: AsyncCallbackManagerForChainRun | None = None
    stream: AsyncEventStream | None = None
    value: Any = None
    try:
        while True:
            try:
                op = steps.send(value)
            except StopIteration as stop:
                session.result = stop.value
                break
            value = None
            match op:
                # the two per-event operations first: they are the hot path
                case NextEvent():
                    assert stream is not None
                    try:
                        value = await stream.__anext__()
                    except StopAsyncIteration:
                        value = StreamEnd.END
                    except IdleTimeoutError:
                        value = StreamEnd.IDLE
                case Deliver(payload=payload, event=event):
                    await dispatcher.adispatch(payload)
                    yield event
                case Create(plan=plan):
                    value = await client.runs.create_request(plan.request, idempotency_key=plan.key)
                case Attached():
                    child = await _astart_child(session, callbacks)
                    if child is not None:
                        config = patch_config(session.config, callbacks=child.get_child())
                        dispatcher = EventDispatcher(config, writer)
                case GetRun(run_id=run_id):
                    value = await client.runs.get(run_id)
                case ReadEvents(run_id=run_id, after=after, stop=stop_at):
                    value = []
                    async with client.runs.events(run_id, after=after) as events:
                        async for event in events:
                            value.append(event)
                            if stop_at(event):
                                break
                case OpenStream(run_id=run_id, after=after, idle_timeout=idle):
                    stream = client.runs.events(run_id, after=after, idle_timeout=idle)
                case CloseStream():
                    if stream is not None:
                        await stream.aclose()
                        stream = None
                case Resume(run_id=run_id, note=note):
                    with contextlib.suppress(ConflictError):  # resumed by an earlier execution
                        await client.runs.resume(run_id, note=note)
                case Cancel(run_id=run_id, quiet=quiet):
                    with contextlib.suppress(CoastyError if quiet else ConflictError):
                        await client.runs.cancel(run_id)
                case AskPolicy(policy=policy, pause=pause):
                    value = policy(pause)
                    if inspect.isawaitable(value):
                        value = await value
    except BaseException as exc:
        if stream is not None:
            await stream.aclose()
            stream = None
        if session.cancels_on(exc):
            session.cancel_sent = True
            await _cancel_shielded(client, session.run_id)
        if child is not None:
            await child.on_chain_error(exc)
        raise
    finally:
        if stream is not None:
            await stream.aclose()
        steps.close()
    if child is not None:
        assert session.result is not None
        await child.on_chain_end({"status": session.result.status.value, "run_id": session.run_id})


def _start_child(
    session: RunSession, callbacks: CallbackManager | None
) -> CallbackManagerForChainRun | None:
    if callbacks is None:
        return None
    inputs, meta = session.child_run_inputs()
    manager = callbacks.copy()
    manager.add_tags(["coasty"])
    manager.add_metadata(meta)
    return manager.on_chain_start(None, inputs, name="coasty_run")


async def _astart_child(
    session: RunSession, callbacks: AsyncCallbackManager | None
) -> AsyncCallbackManagerForChainRun | None:
    if callbacks is None:
        return None
    inputs, meta = session.child_run_inputs()
    manager = callbacks.copy()
    manager.add_tags(["coasty"])
    manager.add_metadata(meta)
    return await manager.on_chain_start(None, inputs, name="coasty_run")


async def _cancel_shielded(client: AsyncCoastyClient, run_id: str) -> None:
    """Cancel the run on the server even though our own task is being cancelled."""
    task = asyncio.ensure_future(client.runs.cancel(run_id))
    with contextlib.suppress(asyncio.CancelledError, TimeoutError, CoastyError):
        await asyncio.wait_for(asyncio.shield(task), CANCEL_TIMEOUT)
