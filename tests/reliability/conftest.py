"""Shared helpers of the reliability suite: sandbox, fast retry clocks, a flaky proxy."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_coasty.callbacks import CoastyCallbackHandler, CoastyEventPayload
from langchain_coasty.client import _base_client as client_module

from ._proxy import TcpProxy

LONG_JOB = [{"name": "long", "match": "long job", "steps": 400, "pace": 0.05}]
"""A run that keeps going for ~16 s unless something stops it."""


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry and reconnect backoff without waiting, so a spent budget shows in milliseconds."""

    async def no_wait(_delay: float) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(client_module, "_asleep", no_wait)
    monkeypatch.setattr(client_module, "_sleep", lambda _delay: None)


@pytest.fixture
def proxy(sb: Any) -> Iterator[TcpProxy]:
    """A loopback proxy in front of the sandbox that tests can take down and bring back."""
    with TcpProxy(int(sb.base_url.rsplit(":", 1)[1])) as p:
        yield p


class StepSeen(CoastyCallbackHandler):
    """Signals once a run has completed its first step (the run is under way)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.run_ids: set[str] = set()

    def on_coasty_event(self, event: CoastyEventPayload) -> None:
        self.run_ids.add(event["run_id"])

    def on_coasty_step(self, event: CoastyEventPayload) -> None:
        self.started.set()

    async def wait(self, within: float = 15.0) -> None:
        assert await asyncio.to_thread(self.started.wait, within), "the run never started"
