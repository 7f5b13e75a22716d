"""The chaos soak, small: LangGraph agents under every sandbox fault at once (see ``soak``)."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from .soak import SoakSettings, run_soak


@pytest.mark.parametrize("framing", ["envelope", "flat", "cookbook"])
async def test_small_chaos_soak_loses_nothing_and_leaves_nothing_running(
    sb: Any, framing: Literal["envelope", "flat", "cookbook"]
) -> None:
    settings = SoakSettings(calls=24, concurrency=12, time_limit=60, framing=framing)
    report = await run_soak(sb.base_url, sb.api_key, settings)
    assert report["framing"] == framing
    assert report["problems"] == [], report
    assert report["runs_created"] == report["tool_calls"] == 24
    assert report["events_lost"] == report["events_duplicated"] == 0
    assert report["runs_non_terminal"] == 0
    assert report["interrupts_answered"] == report["paused_calls"] == 8
    cancelled, expected = report["cancelled_on_server"].split("/")
    assert cancelled == expected != "0"
    # Faults fired on both sides: creates and streams.
    fired = report["faults_fired"]
    create = ("create_refuse", "create_rate_limit", "create_lose_response")
    stream = ("stream_cut_abrupt", "stream_cut_clean", "stream_duplicate", "stream_stall")
    assert sum(fired.get(f, 0) for f in create) > 0, fired
    assert sum(fired.get(f, 0) for f in stream) > 0, fired
