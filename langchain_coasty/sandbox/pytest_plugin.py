"""pytest plugin: the ``coasty_sandbox`` fixture.

One sandbox server runs for the whole session (pace 0, instant runs); each test gets it
reset: no runs, counters at zero, no faults, no custom scenarios, starting settings.
Registered through the ``pytest11`` entry point; it imports nothing heavy until used.
``COASTY_SANDBOX_ID_STYLE=live`` makes it mint ids the way the live API does. Machines:
``coasty_sandbox.machines()`` / ``.live_machines()`` list the machines a test created (assert
nothing is left running), ``coasty_sandbox.advance_clock(seconds)`` moves sandbox time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from langchain_coasty.sandbox.server import CoastySandbox


@pytest.fixture(scope="session")
def coasty_sandbox_server() -> Iterator[CoastySandbox]:
    """The session's sandbox server (not reset between tests; prefer ``coasty_sandbox``)."""
    from langchain_coasty.sandbox.server import CoastySandbox

    id_style = os.environ.get("COASTY_SANDBOX_ID_STYLE", "uuid")
    with CoastySandbox(pace=0.0, webhook_retry_base=0.01, id_style=id_style) as sandbox:
        yield sandbox


@pytest.fixture
def coasty_sandbox(coasty_sandbox_server: CoastySandbox) -> CoastySandbox:
    """A freshly reset local Coasty sandbox: ``.base_url``, ``.api_key``, ``.machine_id``."""
    coasty_sandbox_server.reset(config=True)
    return coasty_sandbox_server
