"""Shared test configuration.

The ``coasty_sandbox`` fixture (a local Coasty server, reset for each test) comes from the
package's pytest plugin, registered through the ``pytest11`` entry point.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def sb(coasty_sandbox: Any) -> Any:
    """The reset local Coasty sandbox, under a short name."""
    return coasty_sandbox


@pytest.fixture(autouse=True)
def _fresh_progress() -> None:
    """Each test starts with an empty in-process registry of followed runs."""
    from langchain_coasty._engine.progress import DELIVERED_RUNS

    DELIVERED_RUNS.clear()
