"""Every budget, timeout and retry setting is checked at construction and at call time.

And a ready ``client=`` is honoured on both paths: the async path builds its clients from
that client's configuration (a bring-your-own model key included), not from ``api_key``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_coasty import CoastyClient, CoastyComputerTool, CoastyRunnable, CoastyToolkit

KEY = "sk-coasty-test-0123456789abcdef"
CLASSES = (CoastyRunnable, CoastyComputerTool, CoastyToolkit)
LIMITS = {
    "max_cost_usd": "a positive number of US dollars",
    "idle_timeout": "a positive number of seconds",
    "timeout": "a positive number of seconds",
    "max_retries": "an integer in 0..100",
    "max_steps": "an integer in 1..1000",
    "deadline_seconds": "an integer in 1..86400",
    "awaiting_human_timeout_seconds": "an integer in 1..86400",
}
NUMBERS = ("max_cost_usd", "idle_timeout", "timeout")
junk = st.one_of(
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(-float("inf")),
)


def bad_value(field: str) -> st.SearchStrategy[Any]:
    if field in NUMBERS:
        return st.one_of(junk, st.floats(max_value=0), st.integers(max_value=0))
    low, high = {"max_retries": (0, 100), "max_steps": (1, 1000)}.get(field, (1, 86400))
    out_of_range = st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1))
    return st.one_of(
        junk,
        out_of_range,
        st.floats(allow_nan=False).filter(lambda v: v != int(v) if math.isfinite(v) else True),
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_bad_settings_are_refused_at_construction_naming_field_and_limit(data: Any) -> None:
    field = data.draw(st.sampled_from(sorted(LIMITS)))
    value = data.draw(bad_value(field))
    cls = data.draw(st.sampled_from(CLASSES))
    with pytest.raises(ValueError) as info:
        cls(api_key=KEY, machine_id="m-1", **{field: value})
    text = str(info.value)
    assert f"Invalid setting `{field}`" in text and LIMITS[field] in text


@settings(max_examples=60, deadline=None)
@given(
    cost=st.floats(min_value=0.01, max_value=1e6),
    idle=st.floats(min_value=0.01, max_value=1e6),
    retries=st.integers(0, 100),
    steps=st.integers(1, 1000),
)
def test_good_settings_are_kept(cost: float, idle: float, retries: int, steps: int) -> None:
    for cls in CLASSES:
        obj = cls(
            api_key=KEY,
            machine_id="m-1",
            max_cost_usd=cost,
            idle_timeout=idle,
            max_retries=retries,
            max_steps=steps,
        )
        assert (obj.max_cost_usd, obj.idle_timeout, obj.max_retries) == (cost, idle, retries)


@pytest.mark.parametrize(("field", "value"), [("max_cost_usd", -1), ("idle_timeout", -1)])
async def test_a_setting_changed_later_is_refused_before_any_request(
    sb: Any, field: str, value: float
) -> None:
    tool = CoastyComputerTool(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)
    setattr(tool, field, value)
    runnable = CoastyRunnable(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)
    setattr(runnable, field, value)
    before = sb.counters()
    # The tool hands the error to the planner (handle_tool_error), naming field and limit.
    assert f"Invalid setting `{field}`" in tool.invoke({"task": "Open the notes app"})
    assert f"Invalid setting `{field}`" in await tool.ainvoke({"task": "Open the notes app"})
    with pytest.raises(ValueError, match=f"Invalid setting `{field}`"):
        await runnable.ainvoke("Open the notes app")
    assert sb.counters()["create_calls"] == before["create_calls"]


async def test_a_given_client_is_used_on_both_paths(
    sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COASTY_API_KEY", raising=False)
    byok = "sk-ant-byok-0123456789abcdef"
    client = CoastyClient(
        api_key=sb.api_key, base_url=sb.base_url, llm_api_key=byok, llm_provider="anthropic"
    )
    tool = CoastyComputerTool(client=client, machine_id=sb.machine_id)
    assert tool.api_key is None  # only the client knows the key
    first = tool.invoke(
        {"type": "tool_call", "id": "c1", "name": tool.name, "args": {"task": "Open notes"}}
    )
    message = await tool.ainvoke(
        {"type": "tool_call", "id": "c2", "name": tool.name, "args": {"task": "Open notes"}}
    )
    runs = client.runs.list().data
    assert len(runs) == 2
    llm = [run.llm for run in runs]
    assert llm[0] == llm[1] and llm[0] is not None
    assert llm[0]["provider"] == "anthropic" and llm[0]["key_source"] == "header"
    assert first.status == message.status == "success"


@pytest.mark.parametrize("url", ["https://coasty.ai\n", " https://coasty.ai", "coasty.ai", ""])
def test_a_base_url_that_cannot_work_is_refused_at_construction(url: str) -> None:
    for cls in CLASSES:
        with pytest.raises(ValueError, match="base_url"):
            cls(api_key=KEY, machine_id="m-1", base_url=url)
    tool = CoastyComputerTool(api_key=KEY, base_url="https://coasty.ai/v1/")
    assert tool.get_client().base_url == "https://coasty.ai"  # the docs' form is accepted
