"""The client against the sandbox set up the way Coasty's docs, cookbook and live API behave."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from langchain_coasty import (
    AsyncCoastyClient,
    CoastyClient,
    CoastyComputerTool,
    InvalidRequestError,
    RunStatus,
)

# ------------------------------------------------------------------------- base URL


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_with_or_without_v1_reaches_the_api(sb: Any, suffix: str) -> None:
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url + suffix) as client:
        assert client.base_url == sb.base_url
        run = client.runs.create(machine_id=sb.machine_id, task="Open the calculator")
        assert client.runs.wait(run.id, timeout=10).status is RunStatus.SUCCEEDED


async def test_the_documented_environment_value_works_for_the_async_client_and_the_tool(
    sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COASTY_API_KEY", sb.api_key)
    monkeypatch.setenv("COASTY_BASE_URL", f"{sb.base_url}/v1")
    async with AsyncCoastyClient() as client:
        assert (await client.health())["status"] == "ok"
    tool = CoastyComputerTool(machine_id=sb.machine_id)
    result = await tool.ainvoke({"task": "Open the calculator"})
    assert "succeeded" in str(result)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("https://coasty.ai/v1\n", "whitespace"),
        (" https://coasty.ai", "whitespace"),
        ("https://coasty .ai", "whitespace"),
        ("coasty.ai/v1", "scheme"),
        ("ftp://coasty.ai", "scheme"),
        ("https://", "scheme"),
        ("https://coasty.ai/v1?key=1", "query"),
        ("https://coasty.ai\x00", "control"),
    ],
)
def test_a_bad_base_url_is_refused_before_any_request(value: str, problem: str) -> None:
    def no_network(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    http = httpx.Client(transport=httpx.MockTransport(no_network))
    for make in (
        lambda: CoastyClient(api_key="sk-coasty-test-abc", base_url=value, http_client=http),
        lambda: AsyncCoastyClient(api_key="sk-coasty-test-abc", base_url=value),
    ):
        with pytest.raises(InvalidRequestError, match="base_url") as info:
            make()
        assert info.value.field == "base_url" and problem in str(info.value)
