"""langchain-tests' standard unit suite for CoastyComputerTool."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ToolsUnitTests

from langchain_coasty import CoastyComputerTool


class TestCoastyComputerToolUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[CoastyComputerTool]:
        return CoastyComputerTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"api_key": "sk-coasty-test-unit", "machine_id": "m-1"}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"task": "Open the notes app and write a shopping list"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"COASTY_API_KEY": "sk-coasty-test-env", "COASTY_BASE_URL": "http://127.0.0.1:9"},
            {"machine_id": "m-1"},
            {"api_key": "sk-coasty-test-env", "base_url": "http://127.0.0.1:9"},
        )


class TestCoastyComputerToolLlmPicksMachine(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[CoastyComputerTool]:
        return CoastyComputerTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"api_key": "sk-coasty-test-unit"}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"task": "Open the notes app", "machine_id": "m-2"}
