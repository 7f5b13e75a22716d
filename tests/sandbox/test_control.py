"""The control plane, CoastySandbox's lifecycle, SandboxControl, the CLI and the plugin."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from langchain_coasty.sandbox import CoastySandbox, create_app
from tests.sandbox.conftest import (
    create,
    events_until,
    make_client,
    read_events,
    sandbox_process,
    wait_until,
)


def test_counters_reflect_what_happened(api: httpx.Client, sb: CoastySandbox) -> None:
    a = create(api, sb.machine_id, task="Approve the PO")
    b = create(api, sb.machine_id)
    events_until(api, a["id"], "awaiting_human")
    api.post(f"/v1/runs/{a['id']}/resume")
    read_events(api, a["id"])
    events = read_events(api, b["id"])
    api.post("/v1/runs", json={"machine_id": sb.machine_id})
    counters = sb.counters()
    assert counters["runs_created"] == 2
    assert counters["create_calls"] == 3
    assert counters["stream_connections"] == 3
    assert counters["open_streams"] == 0
    assert counters["resumes"] == 1 and counters["cancels"] == 0
    assert counters["events_emitted"] >= len(events) + 10
    assert counters["runs_by_status"]["succeeded"] == 2
    assert counters["faults_fired"] == {}


def test_reset_keeps_config_unless_asked(api: httpx.Client, sb: CoastySandbox) -> None:
    create(api, sb.machine_id)
    sb.configure(heartbeat_interval=2.5)
    sb.inject(create_refuse_rate=1.0)
    sb.load_scenarios([{"name": "x", "steps": 1}])
    sb.reset()
    assert sb.counters()["runs_created"] == 0
    assert api.get("/v1/runs").json()["data"] == []
    assert sb.info()["config"]["heartbeat_interval"] == 2.5
    assert sb.inject()["create_refuse_rate"] == 0
    assert sb.load_scenarios([]) == []
    sb.reset(config=True)
    assert sb.info()["config"]["heartbeat_interval"] == 15.0


def test_configure_rejects_unknown_settings(sb: CoastySandbox) -> None:
    assert sb.configure(pace=0.01)["pace"] == 0.01
    for settings in ({"speed": 1}, {"pace": -1}):
        with pytest.raises(ValueError):
            sb.configure(**settings)


def test_sandbox_starts_stops_fast_and_ends_open_streams(tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenarios.yaml"
    scenario_file.write_text("- {name: custom, match: hello, steps: 1}\n")
    started = time.monotonic()
    with CoastySandbox(scenarios=scenario_file, api_key="sk-coasty-test-fixed") as sandbox:
        assert time.monotonic() - started < 5
        assert sandbox.base_url.startswith("http://127.0.0.1:")
        assert sandbox.api_key == "sk-coasty-test-fixed"
        assert len(sandbox.machine_ids) >= 4
        with make_client(sandbox) as api:
            run = create(api, sandbox.machine_id, task="Approve hello")
            assert read_events(api, run["id"])[-1]["data"]["status"] == "succeeded"
            sandbox.reset()
            assert sandbox.load_scenarios([]) == ["custom"]  # constructor scenarios stay
            paused = create(api, sandbox.machine_id, task="Approve the budget")
            with api.stream("GET", f"/v1/runs/{paused['id']}/events") as stream:
                wait_until(lambda: sandbox.counters()["open_streams"] == 1)
                stopping = time.monotonic()
                sandbox.stop()
                stream.read()
            assert time.monotonic() - stopping < 3
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sandbox.base_url}/v1/health")


def test_cli_serves_with_scenarios_and_seed(tmp_path: Path) -> None:
    scenario_file = tmp_path / "s.json"
    scenario_file.write_text('[{"name": "cli", "match": "cli", "steps": 2}]')
    with sandbox_process("--scenarios", str(scenario_file), "--seed", "5", "--pace", "0") as ctl:
        assert ctl.load_scenarios([]) == ["cli"]
        assert ctl.inject(create_refuse_rate=0.5)["seed"] == 5
        ctl.clear_faults()
        machine = ctl.info()["machine_ids"][0]
        with httpx.Client(
            base_url=ctl.base_url, headers={"X-API-Key": "sk-coasty-test-cli"}
        ) as api:
            run = create(api, machine, task="cli task")
            events = read_events(api, run["id"])
        assert [e["type"] for e in events].count("step") == 2
        assert ctl.counters()["runs_created"] == 1


def test_cli_serves_the_flat_event_framing() -> None:
    with sandbox_process("--event-framing", "flat", "--pace", "0") as ctl:
        assert ctl.info()["config"]["event_framing"] == "flat"
        with httpx.Client(
            base_url=ctl.base_url, headers={"X-API-Key": "sk-coasty-test-cli"}
        ) as api:
            run = create(api, ctl.info()["machine_ids"][0])
            with api.stream("GET", f"/v1/runs/{run['id']}/events") as response:
                body = response.read().decode()
        assert body.startswith('id: 1\nevent: status\ndata: {"status":"queued","previous":null}')


def test_compatibility_settings_are_checked(sb: CoastySandbox) -> None:
    assert sb.configure(event_framing="flat")["event_framing"] == "flat"
    for settings in ({"event_framing": "json"}, {"event_framing": 1}):
        with pytest.raises(ValueError, match="event_framing"):
            sb.configure(**settings)


def test_control_plane_refuses_non_loopback_clients() -> None:
    with TestClient(create_app()) as client:
        response = client.get("/_sandbox/counters")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "FORBIDDEN"
        assert client.get("/v1/health").status_code == 200


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, langchain_coasty.sandbox.pytest_plugin, langchain_coasty.sandbox;"
        "heavy = {'starlette', 'uvicorn', 'httpx', 'yaml'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_allowed_host() -> None:
    with sandbox_process("--allowed-host", "devbox.lan") as ctl:
        url = f"{ctl.base_url}/v1/health"
        assert httpx.get(url, headers={"Host": "devbox.lan"}).status_code == 200
        assert httpx.get(url, headers={"Host": "evil.example"}).status_code == 421
    bad = subprocess.run(
        [sys.executable, "-m", "langchain_coasty.sandbox.cli", "--allowed-host", "a b"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "allowed_hosts" in bad.stderr
