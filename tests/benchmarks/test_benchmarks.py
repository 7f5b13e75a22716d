"""Every benchmark once, at a tiny size, against a sandbox in its own process, so none can rot.

No timing assertions: only that each benchmark runs end to end and reports what it should.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks import (
    durable_waits,
    http2,
    imports,
    latency,
    overhead,
    paced,
    per_run,
    recovery,
    report,
    run,
    scale,
    stream,
)
from benchmarks._harness import Sandbox, sandbox_process

TINY: dict[str, Any] = run.TINY


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with sandbox_process() as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> None:
    if "sb" in request.fixturenames:
        sandbox = request.getfixturevalue("sb")
        sandbox.reset()
        sandbox.clear_faults()


def test_import_keeps_graph_and_server_stacks_out() -> None:
    res = imports.run(**TINY["imports"])
    assert res["missing"] == {}
    for name in ("import langchain_coasty", "CoastyClient", "CoastyComputerTool", "CoastyRunnable"):
        assert res["candidates"][name]["heavy_modules"] == [], name


def test_request_overhead(sb: Sandbox) -> None:
    res = overhead.run(sb, **TINY["overhead"])
    assert res["missing"] == {}
    assert res["sync"]["ratio_to_raw"]["n"] == 1
    assert res["async"]["ratio_to_raw"]["n"] == 1


def test_stream_throughput_every_path_gets_every_event(sb: Sandbox) -> None:
    res = stream.run(sb, **TINY["stream"])
    assert res["missing"] == {}
    events = TINY["stream"]["events"]
    assert {p: row["events"] for p, row in res["paths"].items()} == {
        "raw": events,
        "client": events,
        "runnable": events,
        "agent_tool": events,
    }


def test_latency_streaming_and_polling(sb: Sandbox) -> None:
    res = latency.run(sb, **TINY["latency"])
    assert res["missing"] == {}
    events = 5 + 5 * TINY["latency"]["steps"]
    assert set(res["stream"]) == {"raw", "client", "callback"}
    for row in res["stream"].values():  # events emitted before the stream connected are left out
        assert 0 < row["n"] <= events
    polling = res["polling"]
    assert polling["milestones"] == TINY["latency"]["poll_steps"] + 1
    assert polling["1s_measured"]["n"] == polling["milestones"]


def test_recovery_exactly_once_over_cuts(sb: Sandbox) -> None:
    res = recovery.run(sb, **TINY["recovery"])
    assert res["missing"] == {}
    for row in res["paths"].values():
        assert row["exactly_once_in_order"]
        assert row["cuts"] > 0


def test_scale_all_events_delivered(sb: Sandbox) -> None:
    res = scale.run(sb, **TINY["scale"])
    assert res["missing"] == {}
    (n,) = TINY["scale"]["levels"]
    row = res["levels"][str(n)]
    assert row["errors"] == 0
    assert row["all_events_delivered"]
    assert row["aiohttp_all_events_delivered"]  # the aiohttp backend, side by side
    assert any("aiohttp" in r["figure"] for r in report.figures({"benchmarks": {"scale": res}}))


def test_paced_level_checks_order_latency_and_descriptors(sb: Sandbox) -> None:
    res = paced.run(sb, **TINY["paced"])
    assert len(res["levels"]) == 2  # two backends, both collector settings
    for key, row in res["levels"].items():
        assert row["gc"] == key.split()[2]  # the collector setting asked for
        assert_paced_level(row)
    figures = report.figures({"benchmarks": {"paced": res}})
    assert [f["bench"] for f in figures] == ["3b paced"] * 2


def assert_paced_level(row: dict[str, Any]) -> None:
    assert row["errors"] == 0
    assert row["all_events_delivered"]
    assert row["events"] == row["runs"] * row["events_per_run"]
    assert row["events_unstamped"] == 0  # every payload carried the sandbox's stamp
    assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"] < 10_000
    assert row["peak_in_flight"] > 1  # the runs overlapped
    assert 0 < row["peak_open_fds"] <= row["fd_limit"]["soft"]


def test_http2_every_event_delivered_over_http2(sb: Sandbox) -> None:
    pytest.importorskip("hypercorn")
    pytest.importorskip("h2")
    res = http2.run(sb, **TINY["http2"])
    assert res["missing"] == {}
    (n,) = TINY["http2"]["levels"]
    row = res["levels"][str(n)]
    for name in http2.VARIANTS:
        assert row[name]["errors"] == 0, name
        assert row[name]["all_events_delivered"], name
    assert row["hypercorn_http2"]["http_version"] == "HTTP/2"
    assert row["hypercorn_http2_pools"]["http_version"] == "HTTP/2"
    figures = report.figures({"benchmarks": {"http2": res}})
    assert any("HTTP/2" in r["figure"] for r in figures)


def test_http2_missing_server_is_a_recorded_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = http2.importlib.util.find_spec
    absent = {"hypercorn", "h2"}
    monkeypatch.setattr(
        http2.importlib.util, "find_spec", lambda name: None if name in absent else find_spec(name)
    )
    res = http2.run(Sandbox("http://127.0.0.1:9"), **TINY["http2"])
    assert res["levels"] == {}
    assert "hypercorn and h2 not installed" in res["missing"]["hypercorn"]
    assert any("not measured" in r["value"] for r in report.figures({"benchmarks": {"http2": res}}))


def test_report_renders_every_benchmark(sb: Sandbox) -> None:
    doc = {
        "machine": {"cpu": "x", "cpus": 2, "memory_gib": 1, "platform": "p"},
        "benchmarks": {"overhead": overhead.run(sb, requests=5, trials=1)},
        "total_seconds": 1.0,
    }
    doc["machine"] |= {"implementation": "CPython", "python": "3", "packages": {}}
    text = report.table(doc)
    assert "runs.get (sync)" in text
    assert "| 5 request |" in report.markdown(doc)


def test_per_run_cpu(sb: Sandbox) -> None:
    res = per_run.run(sb, **TINY["per_run"])
    for name in ("raw", "raw_async", "runnable", "agent_tool"):
        row = res["paths"][name]
        assert row["cpu_us_per_run"]["median"] > 0
        split = res["breakdown"][name]
        assert split["http"] > 0  # every path spends in HTTP; the shares add up to the CPU
        assert (
            abs(sum(split.values()) - row["cpu_us_per_run"]["median"])
            < 0.05 * row["cpu_us_per_run"]["median"] + 1
        )
    assert res["paths"]["agent_tool"]["baseline"] == "raw_async"
    assert any(r["bench"] == "7 per run" for r in report.figures({"benchmarks": {"per_run": res}}))


def test_durable_waits_resumed_by_webhooks_hold_no_connection(sb: Sandbox) -> None:
    res = durable_waits.run(sb, **TINY["durable_waits"])
    n = TINY["durable_waits"]["waits"]
    assert "error" not in res, res.get("error")
    assert res["all_waiting_at_once"]
    assert res["threads_resumed"] == res["succeeded"] == n
    assert res["lost"] == res["resumed_twice"] == res["errors"] == 0
    assert res["events_exactly_once_in_order"] == res["runs_with_events"] == n
    assert res["connections_held_while_waiting_peak"] < n  # no connection per waiting run
    assert res["resume_latency_ms"]["p50"] > 0 and res["first_end_to_last_resume_s"] > 0
    rows = report.figures({"benchmarks": {"durable_waits": res}})
    assert [r["met"] for r in rows if r["target"]] == [True, True, True]
