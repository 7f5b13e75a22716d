"""A small run of the machine leak soak (the full one is ``make leak-soak``)."""

from __future__ import annotations

import pytest

from tests.reliability.leak_soak import run_soak


@pytest.mark.timeout(300)
def test_no_machine_is_left_running_by_threads_cancelled_failed_or_killed() -> None:
    report = run_soak(threads=12, workers=2, kill=1, seed=5)
    assert report.problems() == []
    assert report.left_running == 0 and report.max_machines_up_per_thread == 1
    # the killed worker's machines were not released by it: the lease destroyed them
    assert report.thread_ends.get("killed") == 6 and report.destroyed_by_lease >= 1
    # the finished threads released theirs at the end of their agent run
    assert report.terminated_by_package >= report.thread_ends.get("finished", 0) >= 1
    assert report.machines_created == report.terminated_by_package + report.destroyed_by_lease
