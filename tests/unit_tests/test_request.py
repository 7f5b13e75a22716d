"""Request building (settings + input -> one RunRequest), construction and serialization."""

from __future__ import annotations

import pytest
from langchain_core.load import dumpd, dumps

from langchain_coasty import CoastyComputerTool, CoastyRunnable, CoastyToolkit
from langchain_coasty._engine.request import build_request

KEY = "sk-coasty-test-0123456789abcdef"


def test_request_merges_defaults_and_input() -> None:
    coasty = CoastyRunnable(
        api_key=KEY, machine_id="m-1", max_steps=20, run_metadata={"team": "ops"}
    )
    request = build_request(coasty, {"task": "t", "max_steps": 5, "metadata": {"a": 1}}, None)
    assert request.body["machine_id"] == "m-1"
    assert request.body["max_steps"] == 5
    assert request.body["metadata"]["team"] == "ops"
    assert request.body["metadata"]["a"] == 1
    assert request.body["metadata"]["idempotency_key"] == request.key
    assert request.key.startswith("lc-")
    assert build_request(coasty, "t", None).key != request.key


def test_request_honours_an_explicit_key_and_policy() -> None:
    coasty = CoastyRunnable(api_key=KEY, machine_id="m-1")
    request = build_request(
        coasty, {"task": "t", "idempotency_key": "my-key-1", "on_awaiting_human": "fail"}, None
    )
    assert request.key == "my-key-1"
    assert request.policy == "fail"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"task": "t", "colour": "red"}, "Unknown run field"),
        ({"machine_id": "m"}, "Missing `task`"),
        (42, "task string or a dict"),
    ],
)
def test_bad_input_is_explained(value: object, message: str) -> None:
    coasty = CoastyRunnable(api_key=KEY, machine_id="m-1")
    with pytest.raises((ValueError, TypeError), match=message):
        build_request(coasty, value, None)  # type: ignore[arg-type]


def test_machine_is_required_somewhere() -> None:
    with pytest.raises(ValueError, match="machine_id"):
        build_request(CoastyRunnable(api_key=KEY), "t", None)


def test_serialization_keeps_the_key_out() -> None:
    for obj in (
        CoastyRunnable(api_key=KEY, machine_id="m-1"),
        CoastyComputerTool(api_key=KEY, machine_id="m-1"),
    ):
        text = dumps(obj)
        assert KEY not in text
        assert KEY not in repr(obj)
        assert dumpd(obj)["kwargs"]["api_key"] == {
            "lc": 1,
            "type": "secret",
            "id": ["COASTY_API_KEY"],
        }


def test_tool_schema_depends_on_whether_the_machine_is_fixed() -> None:
    fixed = CoastyComputerTool(api_key=KEY, machine_id="m-1")
    free = CoastyComputerTool(api_key=KEY)
    assert set(fixed.tool_call_schema.model_json_schema()["properties"]) == {
        "task",
        "instructions",
    }
    assert "machine_id" in free.tool_call_schema.model_json_schema()["required"]
    assert fixed.name == "coasty_computer"
    assert fixed.response_format == "content_and_artifact"


def test_toolkit_tools_share_settings() -> None:
    tools = CoastyToolkit(api_key=KEY, machine_id="m-1", max_cost_usd=1.5).get_tools()
    assert [t.name for t in tools] == [
        "coasty_computer",
        "coasty_get_run",
        "coasty_resume_run",
        "coasty_cancel_run",
        "coasty_screenshot",
    ]
    assert all(getattr(t, "max_cost_usd", None) == 1.5 for t in tools)
    assert len({id(getattr(t, "client", None)) for t in tools}) == 1


def test_langgraph_is_not_imported_by_the_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, langchain_coasty.runnable, langchain_coasty.tools, "
        "langchain_coasty.callbacks, langchain_coasty.human; "
        "print(any(m.startswith('langgraph') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
