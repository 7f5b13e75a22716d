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
import logging
import time
from collections.abc import AsyncGenerator, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from langchain_core.runnables.config import patch_config

from langchain_coasty._engine.ops import (
    ASYNC_POLICY_ERROR,
    NEXT_EVENT,
    AskPolicy,
    Attached,
    Cancel,
    CaptureScreen,
    CloseStream,
    Create,
    Deliver,
    DeliverScreen,
    GetRun,
    OpenStream,
    ReadEvents,
    RenewLease,
    Resume,
    Steps,
    StreamEnd,
)
from langchain_coasty._engine.session import RunSession
from langchain_coasty.callbacks import SCREENSHOT_EVENT, EventDispatcher
from langchain_coasty.client import (
    AsyncCoastyClient,
    AsyncEventStream,
    CoastyClient,
    CoastyError,
    ConflictError,
    EventStream,
    IdempotencyLookup,
    IdleTimeoutError,
    NotFoundError,
    RunEvent,
)
from langchain_coasty.webhook_secrets import akeep_secret, keep_secret

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManager,
        AsyncCallbackManagerForChainRun,
        CallbackManager,
        CallbackManagerForChainRun,
    )

__all__ = ["CANCEL_TIMEOUT", "drive_async", "drive_sync"]

logger = logging.getLogger("langchain_coasty")

CANCEL_TIMEOUT = 5.0
"""Longest wait for the cancel sent on the way out (async; sync: for finding a cut create)."""
_LOOKUP_POLL = 0.1


def drive_sync(
    session: RunSession, steps: Steps, client: CoastyClient, callbacks: CallbackManager | None
) -> Generator[RunEvent, None, None]:
    """Carry out ``steps`` with ``client``, yield each delivered event, set ``session.result``."""
    writer = session.ctx.stream_writer if session.ctx else None
    dispatcher = EventDispatcher(None, writer)
    child: CallbackManagerForChainRun | None = None
    stream: EventStream | None = None
    creating: str | None = None
    value: Any = None
    try:
        while True:
            try:
                op = steps.send(value)
            except StopIteration as stop:
                session.result = stop.value
                break
            value = None
            # the two per-event operations first, outside the match: they are the hot path
            if type(op) is Deliver:
                if dispatcher.listening:
                    dispatcher.dispatch(op.payload)
                yield op.event
                if op.delivered is not None:
                    op.delivered(op.event)
                if not op.then_next:
                    continue
                op = NEXT_EVENT
            if op is NEXT_EVENT:
                assert stream is not None
                try:
                    value = next(stream)
                except StopIteration:
                    value = StreamEnd.END
                except IdleTimeoutError:
                    value = StreamEnd.IDLE
                continue
            match op:
                case Create(plan=plan):
                    creating = plan.key
                    value = client.runs.create_request(plan.request, idempotency_key=plan.key)
                    creating = None
                    keep_secret(session.settings.webhook_secrets, value.run)
                case Attached():
                    child = _start_child(session, callbacks)
                    if child is not None:
                        events_to = child.get_child()
                        config = patch_config(session.config, callbacks=events_to)
                        dispatcher = EventDispatcher(config, writer, manager=events_to)
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
                case RenewLease(machine_id=machine_id, minutes=minutes):
                    try:
                        client.machines.update(machine_id, ttl_minutes=minutes)
                    except CoastyError as exc:
                        _lease_not_renewed(machine_id, exc)
                case DeliverScreen(payload=payload):
                    dispatcher.dispatch(payload, SCREENSHOT_EVENT)
                case CaptureScreen(machine_id=machine_id):
                    try:
                        value = client.machines.screenshot(machine_id)
                    except CoastyError as missing:  # a missing screen never fails the run
                        value = missing
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
            try:
                _cancel(client, session.run_id)
            except Exception as failed:
                session.cancel_failed(exc, session.run_id, failed)
        elif creating is not None and session.cancels_pending_create(exc):
            _cancel_pending_create(session, client, creating, exc)
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
    creating: str | None = None
    value: Any = None
    try:
        while True:
            try:
                op = steps.send(value)
            except StopIteration as stop:
                session.result = stop.value
                break
            value = None
            # the two per-event operations first, outside the match: they are the hot path
            if type(op) is Deliver:
                if dispatcher.listening:
                    await dispatcher.adispatch(op.payload)
                yield op.event
                if op.delivered is not None:
                    op.delivered(op.event)
                if not op.then_next:
                    continue
                op = NEXT_EVENT
            if op is NEXT_EVENT:
                assert stream is not None
                try:
                    value = await stream.__anext__()
                except StopAsyncIteration:
                    value = StreamEnd.END
                except IdleTimeoutError:
                    value = StreamEnd.IDLE
                continue
            match op:
                case Create(plan=plan):
                    creating = plan.key
                    value = await client.runs.create_request(plan.request, idempotency_key=plan.key)
                    creating = None
                    await akeep_secret(session.settings.webhook_secrets, value.run)
                case Attached():
                    child = await _astart_child(session, callbacks)
                    if child is not None:
                        aevents_to = child.get_child()
                        config = patch_config(session.config, callbacks=aevents_to)
                        dispatcher = EventDispatcher(config, writer, manager=aevents_to)
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
                case RenewLease(machine_id=machine_id, minutes=minutes):
                    try:
                        await client.machines.update(machine_id, ttl_minutes=minutes)
                    except CoastyError as exc:
                        _lease_not_renewed(machine_id, exc)
                case DeliverScreen(payload=payload):
                    await dispatcher.adispatch(payload, SCREENSHOT_EVENT)
                case CaptureScreen(machine_id=machine_id):
                    try:
                        value = await client.machines.screenshot(machine_id)
                    except CoastyError as missing:
                        value = missing
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
            failed = await _shielded(_acancel(client, session.run_id))
            if failed is not None:
                session.cancel_failed(exc, session.run_id, failed)
        elif creating is not None and session.cancels_pending_create(exc):
            await _shielded(_acancel_pending_create(session, client, creating, exc))
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


def _lease_not_renewed(machine_id: str, exc: CoastyError) -> None:
    """A failed renewal does not stop the run: the lease is only the last line of teardown."""
    logger.warning("Could not renew the lease of machine %s: %s", machine_id, exc)


def _cancel(client: CoastyClient, run_id: str) -> None:
    with contextlib.suppress(ConflictError):  # it ended meanwhile
        client.runs.cancel(run_id)


async def _acancel(client: AsyncCoastyClient, run_id: str) -> None:
    with contextlib.suppress(ConflictError):
        await client.runs.cancel(run_id)


def _cancel_pending_create(
    session: RunSession, client: CoastyClient, key: str, exc: BaseException
) -> None:
    """Find the run a create cut short may have started (by its key) and cancel it, bounded."""
    deadline = time.monotonic() + CANCEL_TIMEOUT
    while True:
        try:
            lookup = client.idempotency.get(key)
        except NotFoundError:
            return  # the create never took effect
        except CoastyError as failed:
            session.lookup_failed(exc, key, failed)
            return
        run_id = _created_run_id(lookup)
        if run_id is not None:
            try:
                _cancel(client, run_id)
            except CoastyError as failed:
                session.cancel_failed(exc, run_id, failed)
            return
        if lookup.is_completed or time.monotonic() >= deadline:
            return
        time.sleep(_LOOKUP_POLL)


async def _acancel_pending_create(
    session: RunSession, client: AsyncCoastyClient, key: str, exc: BaseException
) -> None:
    """Async twin of ``_cancel_pending_create``."""
    deadline = time.monotonic() + CANCEL_TIMEOUT
    while True:
        try:
            lookup = await client.idempotency.get(key)
        except NotFoundError:
            return
        except CoastyError as failed:
            session.lookup_failed(exc, key, failed)
            return
        run_id = _created_run_id(lookup)
        if run_id is not None:
            try:
                await _acancel(client, run_id)
            except CoastyError as failed:
                session.cancel_failed(exc, run_id, failed)
            return
        if lookup.is_completed or time.monotonic() >= deadline:
            return
        await asyncio.sleep(_LOOKUP_POLL)


def _created_run_id(lookup: IdempotencyLookup) -> str | None:
    result = lookup.result if lookup.is_completed else None
    run_id = result.get("id") if isinstance(result, dict) else None
    return run_id if isinstance(run_id, str) else None


async def _shielded(work: Coroutine[Any, Any, None]) -> BaseException | None:
    """Run ``work`` to its end even though our own task is being cancelled (bounded).

    Returns what went wrong, if anything, so that the caller can attach it to the exception
    that is leaving.
    """
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait_for(asyncio.shield(task), CANCEL_TIMEOUT)
    except (asyncio.CancelledError, TimeoutError) as stopped:
        return stopped
    except Exception as failed:
        return failed
    return None
