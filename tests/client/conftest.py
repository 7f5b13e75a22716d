"""Clients bound to the session sandbox (the `coasty_sandbox` fixture resets it per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

import langchain_coasty.client._base_client as client_module
from langchain_coasty import AsyncCoastyClient, CoastyClient


@pytest.fixture
def client(sb: Any) -> Iterator[CoastyClient]:
    """A sync client on the sandbox."""
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url, timeout=10.0) as c:
        yield c


@pytest.fixture
async def aclient(sb: Any) -> AsyncIterator[AsyncCoastyClient]:
    """An async client on the sandbox."""
    async with AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url, timeout=10.0) as c:
        yield c


@pytest.fixture
def fired(sb: Any) -> Callable[[], dict[str, int]]:
    """Faults fired since the test started (deltas, so a counter kept across resets is harmless)."""
    start = dict(sb.counters()["faults_fired"])

    def since_start() -> dict[str, int]:
        now = sb.counters()["faults_fired"]
        return {k: v - start.get(k, 0) for k, v in now.items() if v - start.get(k, 0)}

    return since_start


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the client's backoff delays instead of sleeping."""
    recorded: list[float] = []

    async def fake_asleep(delay: float) -> None:
        recorded.append(delay)

    monkeypatch.setattr(client_module, "_sleep", recorded.append)
    monkeypatch.setattr(client_module, "_asleep", fake_asleep)
    return recorded


@pytest.fixture
def sent() -> list[httpx.Request]:
    """Every request the `counted` client sends."""
    return []


@pytest.fixture
def counted(sb: Any, sent: list[httpx.Request]) -> Iterator[CoastyClient]:
    """A sync sandbox client that records each request it sends."""
    http = httpx.Client(event_hooks={"request": [sent.append]})
    with http, CoastyClient(api_key=sb.api_key, base_url=sb.base_url, http_client=http) as c:
        yield c
