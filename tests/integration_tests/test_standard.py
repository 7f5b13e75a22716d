"""langchain-tests' standard integration suite for CoastyComputerTool, on the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ToolsIntegrationTests

from langchain_coasty import CoastyComputerTool


class TestCoastyComputerToolIntegration(ToolsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _sandbox_env(self, coasty_env: Any) -> None:
        """The tool fixture reads its key and base URL from the environment."""
        self.machine_id = coasty_env.machine_id

    @property
    def tool_constructor(self) -> type[CoastyComputerTool]:
        return CoastyComputerTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"machine_id": getattr(self, "machine_id", "m-sandbox-1"), "max_steps": 5}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"task": "Open the notes app and write a shopping list"}
