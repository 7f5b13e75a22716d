"""Responses the client cannot parse end in a typed error naming the call, status and request id.

A captive portal or a proxy answering 200 with a page, and a body whose Content-Encoding is
corrupt, are what a real network does now and then; the sandbox serves neither, so a
transport plays them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from langchain_coasty import APIConnectionError, AsyncCoastyClient, CoastyClient, CoastyError

PORTAL = b"<html><body>Please sign in to the hotel Wi-Fi</body></html>"


def portal(request: httpx.Request) -> httpx.Response:
    headers = {"content-type": "text/html", "x-coasty-request-id": "req_portal"}
    return httpx.Response(200, headers=headers, content=PORTAL)


def corrupt(request: httpx.Request) -> httpx.Response:
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    return httpx.Response(200, headers=headers, content=b"definitely not gzip")


def clients(handler: Any) -> tuple[CoastyClient, AsyncCoastyClient]:
    sync = CoastyClient(
        api_key="sk-coasty-test-x",
        base_url="http://coasty.test",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    async_ = AsyncCoastyClient(
        api_key="sk-coasty-test-x",
        base_url="http://coasty.test",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    return sync, async_


@pytest.mark.parametrize(
    ("call", "endpoint"),
    [
        (lambda c: c.health(), "GET /v1/health"),
        (lambda c: c.runs.get("run-1"), "GET /v1/runs/run-1"),
        (lambda c: c.runs.list(), "GET /v1/runs"),
        (lambda c: c.runs.cancel("run-1"), "POST /v1/runs/run-1/cancel"),
        (lambda c: c.machines.list(), "GET /v1/machines"),
    ],
)
async def test_a_page_instead_of_json_is_a_typed_error(call: Any, endpoint: str) -> None:
    sync, async_ = clients(portal)
    with pytest.raises(CoastyError) as sync_error:
        call(sync)
    with pytest.raises(CoastyError) as async_error:
        await call(async_)
    for error in (sync_error.value, async_error.value):
        text = str(error)
        assert endpoint in text and "HTTP 200" in text and "req_portal" in text
        assert error.request_id == "req_portal"
    assert str(sync_error.value) == str(async_error.value)


async def test_a_corrupt_content_encoding_is_a_typed_error() -> None:
    sync, async_ = clients(corrupt)
    with pytest.raises(APIConnectionError, match="DecodingError"):
        sync.runs.get("run-1")
    with pytest.raises(APIConnectionError, match="DecodingError"):
        await async_.runs.get("run-1")
    with pytest.raises(APIConnectionError, match="DecodingError"):
        await asyncio.to_thread(sync.health)
