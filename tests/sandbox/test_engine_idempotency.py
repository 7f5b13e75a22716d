"""The engine's idempotency state machine and create faults, driven directly (no HTTP)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from langchain_coasty.sandbox.engine import (
    MACHINE_IDS,
    CreateRefused,
    Engine,
    KeyInFlight,
    KeyReused,
    body_hash,
)
from langchain_coasty.sandbox.faults import FaultConfig

BODY = {"machine_id": MACHINE_IDS[0], "task": "Open the pricing page"}


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    engine = Engine()
    yield engine
    await engine.aclose()


def _slow_creates(engine: Engine, seconds: float = 5.0) -> None:
    engine.faults.set(FaultConfig(create_delay_seconds=seconds))


def _state(engine: Engine, key: str) -> str | None:
    record = engine.idempotency_record("test", key)
    return record.status if record is not None else None


def test_reserve_complete_replay() -> None:
    engine = Engine()
    digest = body_hash(BODY)
    record = engine.reserve("test", "k1", digest, "req_1")
    assert record.status == "processing" and record.body is None
    assert engine.idempotency_record("test", "k1") is record
    engine.complete(record, b'{"id":"r1"}')
    replay = engine.reserve("test", "k1", digest, "req_2")
    assert replay is record
    assert replay.status == "completed" and replay.original_status == 200
    assert replay.body == b'{"id":"r1"}'
    assert engine.counts["create_replays"] == 1


def test_a_second_reserve_while_processing_is_in_flight() -> None:
    engine = Engine()
    digest = body_hash(BODY)
    engine.reserve("test", "k1", digest, "req_1")
    with pytest.raises(KeyInFlight):
        engine.reserve("test", "k1", digest, "req_2")
    assert engine.counts["create_replays"] == 0


def test_another_body_under_the_same_key_is_reused_in_any_state() -> None:
    engine = Engine()
    record = engine.reserve("test", "k1", body_hash(BODY), "req_1")
    other = body_hash({**BODY, "task": "Something else"})
    with pytest.raises(KeyReused):
        engine.reserve("test", "k1", other, "req_2")
    engine.complete(record, b"{}")
    with pytest.raises(KeyReused):
        engine.reserve("test", "k1", other, "req_3")


def test_key_order_does_not_change_the_digest() -> None:
    assert body_hash({"a": 1, "b": 2}) == body_hash({"b": 2, "a": 1})


def test_keys_are_per_key_kind() -> None:
    engine = Engine()
    digest = body_hash(BODY)
    engine.reserve("test", "shared", digest, "req_1")
    live = engine.reserve("live", "shared", digest, "req_2")
    assert live.status == "processing"
    assert engine.idempotency_record("live", "shared") is live


def test_roll_back_frees_the_key() -> None:
    engine = Engine()
    digest = body_hash(BODY)
    record = engine.reserve("test", "k1", digest, "req_1")
    engine.roll_back(record)
    assert engine.idempotency_record("test", "k1") is None
    assert engine.reserve("test", "k1", digest, "req_2").status == "processing"


def test_roll_back_leaves_a_newer_reservation_of_the_key_alone() -> None:
    engine = Engine()
    digest = body_hash(BODY)
    stale = engine.reserve("test", "k1", digest, "req_1")
    engine.reset()
    fresh = engine.reserve("test", "k1", digest, "req_2")
    engine.roll_back(stale)
    assert engine.idempotency_record("test", "k1") is fresh


def test_roll_back_keeps_a_completed_record() -> None:
    engine = Engine()
    record = engine.reserve("test", "k1", body_hash(BODY), "req_1")
    engine.complete(record, b"{}")
    engine.roll_back(record)
    assert engine.idempotency_record("test", "k1") is record


async def test_submit_creates_then_replays_the_first_answer(engine: Engine) -> None:
    first = await engine.submit(dict(BODY), "test", key="k1", request_id="req_1")
    assert first.keyed and not first.replay and not first.lose_response
    run = json.loads(first.body)
    assert run["id"] in engine.runs and run["request_id"] == "req_1"
    assert _state(engine, "k1") == "completed"
    again = await engine.submit(dict(BODY), "test", key="k1", request_id="req_2")
    assert again.replay and again.keyed
    assert again.body == first.body
    assert engine.counts["runs_created"] == 1 and engine.counts["create_replays"] == 1


async def test_submit_without_a_key_always_creates(engine: Engine) -> None:
    a = await engine.submit(dict(BODY), "test", key=None, request_id="req_1")
    b = await engine.submit(dict(BODY), "test", key=None, request_id="req_2")
    assert not a.keyed and not a.replay and not b.replay
    assert json.loads(a.body)["id"] != json.loads(b.body)["id"]
    assert engine.idempotency == {}


async def test_submit_while_the_first_is_in_flight(engine: Engine) -> None:
    _slow_creates(engine, 0.2)
    first = asyncio.ensure_future(engine.submit(dict(BODY), "test", key="k1", request_id="r1"))
    await asyncio.sleep(0)
    assert _state(engine, "k1") == "processing"
    with pytest.raises(KeyInFlight):
        await engine.submit(dict(BODY), "test", key="k1", request_id="r2")
    with pytest.raises(KeyReused):
        await engine.submit({**BODY, "task": "Other"}, "test", key="k1", request_id="r3")
    created = await first
    replay = await engine.submit(dict(BODY), "test", key="k1", request_id="r4")
    assert replay.replay and replay.body == created.body
    assert engine.counts["runs_created"] == 1
    assert engine.faults.fired["create_delay"] == 1


async def test_a_failing_create_rolls_the_reservation_back(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("no capacity")

    monkeypatch.setattr(engine, "create", broken)
    with pytest.raises(RuntimeError):
        await engine.submit(dict(BODY), "test", key="k1", request_id="req_1")
    assert engine.idempotency_record("test", "k1") is None
    monkeypatch.undo()
    retry = await engine.submit(dict(BODY), "test", key="k1", request_id="req_2")
    assert not retry.replay and engine.counts["runs_created"] == 1


async def test_a_cancelled_create_rolls_the_reservation_back(engine: Engine) -> None:
    _slow_creates(engine)
    task = asyncio.ensure_future(engine.submit(dict(BODY), "test", key="k1", request_id="r1"))
    await asyncio.sleep(0)
    assert _state(engine, "k1") == "processing"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.idempotency_record("test", "k1") is None
    assert engine.counts["runs_created"] == 0


async def test_a_lost_response_still_completes_the_key(engine: Engine) -> None:
    engine.faults.set(FaultConfig(create_lose_response_rate=1.0))
    lost = await engine.submit(dict(BODY), "test", key="k1", request_id="req_1")
    assert lost.lose_response and engine.faults.fired["create_lose_response"] == 1
    replay = await engine.submit(dict(BODY), "test", key="k1", request_id="req_2")
    assert replay.replay and not replay.lose_response and replay.body == lost.body


def test_admit_create_refuses_by_fault() -> None:
    engine = Engine()
    engine.admit_create()
    engine.faults.set(FaultConfig(create_refuse_rate=1.0, retry_after=3))
    with pytest.raises(CreateRefused) as refused:
        engine.admit_create()
    assert refused.value.reason == "unavailable" and refused.value.retry_after == 3
    engine.faults.set(FaultConfig(create_rate_limit_rate=1.0))
    with pytest.raises(CreateRefused) as limited:
        engine.admit_create()
    assert limited.value.reason == "rate_limited" and limited.value.retry_after == 1
    assert engine.faults.fired == {"create_refuse": 1, "create_rate_limit": 1}
