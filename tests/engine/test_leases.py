"""The run engine renews the lease of the run's machine: every third of it, and over a pause."""

from __future__ import annotations

import time

import pytest

from langchain_coasty._engine.session import RunSession
from langchain_coasty._engine.settings import CoastySettings
from langchain_coasty.machines import MachineLease


def session(pause_timeout: int | None) -> RunSession:
    settings = CoastySettings(
        api_key="sk-coasty-test-x", awaiting_human_timeout_seconds=pause_timeout
    )
    found = RunSession(settings, None, None)
    found.lease = MachineLease("mch_test_1", "thread", ttl_minutes=30)
    return found


def test_a_lease_is_renewed_every_third_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    run = session(1800)
    start = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: start + 9 * 60)
    assert run.lease_renewal() is None  # 9 minutes into a 30-minute lease
    monkeypatch.setattr(time, "monotonic", lambda: start + 11 * 60)
    assert run.lease_renewal() == ("mch_test_1", 30)
    assert run.lease_renewal() is None  # renewed just now


@pytest.mark.parametrize(("timeout", "minutes"), [(1800, 40), (60, 30), (None, 30), (86400, 1450)])
def test_a_pause_stretches_the_lease_over_its_timeout(timeout: int | None, minutes: int) -> None:
    assert session(timeout).lease_renewal(for_pause=True) == ("mch_test_1", minutes)


def test_no_machine_of_ours_no_renewal() -> None:
    run = RunSession(CoastySettings(api_key="sk-coasty-test-x"), None, None)
    assert run.lease_renewal() is None and run.lease_renewal(for_pause=True) is None
