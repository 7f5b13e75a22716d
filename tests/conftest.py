"""Shared test configuration.

The ``coasty_sandbox`` fixture (a local Coasty server, reset for each test) comes from the
package's pytest plugin, registered through the ``pytest11`` entry point.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis caches what it learns (examples, the source's constants, with file paths) in a
# directory of its own: keep it out of the source tree.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="coasty-hypothesis-"))


@pytest.fixture
def sb(coasty_sandbox: Any) -> Any:
    """The reset local Coasty sandbox, under a short name."""
    return coasty_sandbox


FRAMINGS = ("envelope", "flat", "cookbook")
"""How the sandbox streams events: the OpenAPI's envelope, the docs' flat framing, and the
cookbook mock's behaviour (flat, and a paused run's stream ends without ``done``)."""


@pytest.fixture(params=FRAMINGS)
def framing(request: pytest.FixtureRequest, sb: Any) -> str:
    """Run the test once per framing (``pytestmark = pytest.mark.usefixtures("framing")``)."""
    framing: str = request.param
    if framing == "cookbook":
        sb.configure(event_framing="flat", end_stream_at_pause=True)
    else:
        sb.configure(event_framing=framing)
    return framing


@pytest.fixture(autouse=True)
def _fresh_progress() -> None:
    """Each test starts with an empty in-process registry of followed runs."""
    from langchain_coasty._engine.progress import DELIVERED_RUNS

    DELIVERED_RUNS.clear()
