"""SSE: frame format, resuming by Last-Event-ID / ?after=, heartbeats, rotation, fan-out."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from httpx_sse import aconnect_sse

from langchain_coasty.sandbox import CoastySandbox
from tests.sandbox.conftest import (
    create,
    event_json,
    events_until,
    read_events,
    types,
    wait_until,
)

LOGIN_TASK = "Sign in to the CRM and export contacts"


def test_raw_frames_follow_the_documented_format(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id)
    read_events(api, run["id"])
    with api.stream("GET", f"/v1/runs/{run['id']}/events") as response:
        raw = response.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    first = frames[0].split("\n")
    assert first[0] == "id: 1"
    assert first[1] == "event: status"
    assert first[2].startswith("data: ")
    assert set(json.loads(first[2][6:])) == {"seq", "type", "data", "ts"}
    assert frames[-1].startswith(f"id: {len(frames)}\nevent: done\n")


def test_flat_frames_carry_seq_type_and_the_payload_itself(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    sb.configure(event_framing="flat")
    run = create(api, sb.machine_id, task=LOGIN_TASK)
    with api.stream("GET", f"/v1/runs/{run['id']}/events") as response:
        lines = response.iter_lines()
        head = [next(lines) for _ in range(4)]
    assert head[:2] == ["id: 1", "event: status"]
    assert json.loads(head[2][6:]) == {"status": "queued", "previous": None} and head[3] == ""


@pytest.mark.usefixtures("framing")
def test_resume_with_last_event_id_or_after(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id)
    everything = read_events(api, run["id"])
    assert read_events(api, run["id"], after=4) == everything[4:]
    with api.stream("GET", f"/v1/runs/{run['id']}/events", params={"after": 6}) as response:
        ids = [line[4:] for line in response.iter_lines() if line.startswith("id: ")]
    assert ids == [str(e["seq"]) for e in everything[6:]]
    with api.stream(
        "GET",
        f"/v1/runs/{run['id']}/events",
        params={"after": 2},
        headers={"Last-Event-ID": "5"},
    ) as response:
        ids = [line[4:] for line in response.iter_lines() if line.startswith("id: ")]
    assert ids[0] == "6"
    assert read_events(api, run["id"], after=len(everything)) == []


@pytest.mark.parametrize("value", ["-1", "abc", "1.5"])
def test_bad_cursor_is_422(api: httpx.Client, sb: CoastySandbox, value: str) -> None:
    run = create(api, sb.machine_id)
    response = api.get(f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": value})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "Last-Event-ID"
    response = api.get(f"/v1/runs/{run['id']}/events", params={"after": value})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "after"


@pytest.mark.usefixtures("framing")
def test_heartbeats_while_idle(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.configure(heartbeat_interval=0.05)
    run = create(api, sb.machine_id, task=LOGIN_TASK)
    pings = 0
    with api.stream("GET", f"/v1/runs/{run['id']}/events") as response:
        for line in response.iter_lines():
            if line == ": ping":
                pings += 1
                if pings == 3:
                    break
    assert pings == 3


@pytest.mark.usefixtures("framing")
def test_rotation_ends_the_connection_cleanly_before_done(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    sb.configure(rotation_seconds=0.2)
    run = create(api, sb.machine_id, task=LOGIN_TASK)
    first = read_events(api, run["id"])
    assert first[-1]["type"] == "awaiting_human"
    second = read_events(api, run["id"], after=first[-1]["seq"])
    assert second == []
    api.post(f"/v1/runs/{run['id']}/resume")
    rest = read_events(api, run["id"], after=first[-1]["seq"])
    assert rest[0]["seq"] == first[-1]["seq"] + 1 and rest[-1]["type"] == "done"
    assert sb.counters()["stream_connections"] == 3


@pytest.mark.usefixtures("framing")
def test_open_streams_are_counted_and_released(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, task=LOGIN_TASK)
    with api.stream("GET", f"/v1/runs/{run['id']}/events") as response:
        lines = response.iter_lines()
        assert next(lines) == "id: 1"
        wait_until(lambda: sb.counters()["open_streams"] == 1)
    wait_until(lambda: sb.counters()["open_streams"] == 0)


@pytest.mark.usefixtures("framing")
def test_reset_ends_open_streams(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id, task=LOGIN_TASK)
    events_until(api, run["id"], "awaiting_human")
    with api.stream("GET", f"/v1/runs/{run['id']}/events") as response:
        wait_until(lambda: sb.counters()["open_streams"] == 1)
        sb.reset()
        body = response.read().decode()
    assert "event: done" not in body
    assert api.get(f"/v1/runs/{run['id']}").status_code == 404


@pytest.mark.usefixtures("framing")
async def test_live_fan_out_to_concurrent_streams(sb: CoastySandbox) -> None:
    sb.load_scenarios([{"match": "paced", "steps": 4, "pace": 0.02}])
    headers = {"X-API-Key": sb.api_key}
    async with httpx.AsyncClient(base_url=sb.base_url, headers=headers, timeout=10) as client:
        created = await client.post(
            "/v1/runs", json={"machine_id": sb.machine_id, "task": "A paced task"}
        )
        run_id = created.json()["id"]

        async def follow() -> list[dict[str, object]]:
            events = []
            async with aconnect_sse(client, "GET", f"/v1/runs/{run_id}/events") as es:
                async for sse in es.aiter_sse():
                    events.append(event_json(sse.data, sse.id, sse.event))
            return events

        streams = await asyncio.gather(*(follow() for _ in range(5)))
    assert all(s == streams[0] for s in streams)
    assert types(streams[0])[-1] == "done"
    assert len([e for e in streams[0] if e["type"] == "step"]) == 4


@pytest.mark.usefixtures("framing")
def test_end_stream_at_pause_ends_a_paused_runs_stream_without_done(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    sb.configure(end_stream_at_pause=True)
    run = create(api, sb.machine_id, task=LOGIN_TASK)
    first = read_events(api, run["id"])
    assert types(first)[-2:] == ["status", "awaiting_human"]
    assert read_events(api, run["id"], after=first[-1]["seq"]) == []
    api.post(f"/v1/runs/{run['id']}/resume")
    rest = read_events(api, run["id"], after=first[-1]["seq"])
    assert types(rest)[0] == "resumed" and types(rest)[-1] == "done"
