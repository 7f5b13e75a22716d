"""Ground, predict, sessions and machine actions over real HTTP, checked against the contract."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from langchain_coasty.sandbox import CoastySandbox
from langchain_coasty.sandbox.screens import ELEMENTS, ScreenState, render
from tests.sandbox.conftest import make_client


def shot(width: int = 1280, height: int = 800, machine: str = "m-sandbox-1") -> str:
    """A base64 PNG of the sandbox screen at ``width`` x ``height``."""
    image = Image.open(io.BytesIO(render(ScreenState(machine), mime_type="image/png")))
    out = io.BytesIO()
    image.resize((width, height)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def center(name: str) -> tuple[int, int]:
    return next(e for e in ELEMENTS if e.name == name).center


@pytest.fixture
def live(sb: CoastySandbox) -> Any:
    """A client with a live-shaped key (the sandbox bills live keys)."""
    with make_client(sb, headers={"X-API-Key": "sk-coasty-live-" + "ab" * 24}) as client:
        yield client


def test_ground_finds_a_drawn_element_in_the_screenshots_real_size(api: httpx.Client) -> None:
    x, y = center("sign in button")
    full = api.post("/v1/ground", json={"screenshot": shot(), "element": "the Sign in button"})
    assert full.status_code == 200, full.text
    assert (full.json()["x"], full.json()["y"]) == (x, y)
    assert (full.json()["screen_width"], full.json()["screen_height"]) == (1280, 800)
    half = api.post("/v1/ground", json={"screenshot": shot(640, 400), "element": "sign in"})
    assert (half.json()["x"], half.json()["y"]) == (x // 2, y // 2)
    asked = api.post(
        "/v1/ground",
        json={"screenshot": shot(), "element": "sign in", "screen_width": 2560},
    ).json()
    assert (asked["screen_width"], asked["screen_height"], asked["x"]) == (2560, 800, x * 2)


def test_ground_answers_inside_the_screen_for_an_unknown_element(api: httpx.Client) -> None:
    body = {"screenshot": shot(800, 600), "element": "a purple unicorn"}
    first, again = (
        api.post("/v1/ground", json=body).json(),
        api.post("/v1/ground", json=body).json(),
    )
    assert 0 <= first["x"] < 800 and 0 <= first["y"] < 600
    assert (first["x"], first["y"]) == (again["x"], again["y"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"element": "x"}, "screenshot"),
        ({"screenshot": "A" * 99, "element": "x"}, "screenshot"),
        ({"screenshot": "!" * 200, "element": "x"}, "screenshot"),
        (
            {"screenshot": base64.b64encode(b"not an image" * 20).decode(), "element": "x"},
            "screenshot",
        ),
        ({"screenshot": shot(), "element": ""}, "element"),
        ({"screenshot": shot(), "element": "x", "screen_width": 100}, "screen_width"),
        ({"screenshot": shot(), "element": "x", "screen_height": 5000}, "screen_height"),
        ({"screenshot": shot(), "element": "x", "extra": 1}, "extra"),
    ],
)
def test_ground_rejects_what_the_contract_refuses(
    api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = api.post("/v1/ground", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == field


def test_predict_follows_the_plan_of_its_instruction_over_the_trajectory(
    api: httpx.Client,
) -> None:
    instruction = "Type 'ada@example.com' into the email field and press Sign in"
    first = api.post(
        "/v1/predict",
        json={"screenshot": shot(), "instruction": instruction, "max_actions": 1},
    ).json()
    assert first["status"] == "continue"
    assert first["actions"][0]["action_type"] == "click"
    assert (first["actions"][0]["params"]["x"], first["actions"][0]["params"]["y"]) == center(
        "email field"
    )
    whole = api.post("/v1/predict", json={"screenshot": shot(), "instruction": instruction}).json()
    assert [a["action_type"] for a in whole["actions"]] == ["click", "type_text", "click"]
    assert whole["actions"][1]["params"] == {"text": "ada@example.com"}
    assert len(whole["raw_code"]) == 3 and whole["reasoning"]
    trajectory = [{"screenshot": shot(), "actions": whole["actions"]}]
    after = api.post(
        "/v1/predict",
        json={"screenshot": shot(), "instruction": instruction, "trajectory": trajectory},
    ).json()
    assert after["status"] == "done" and after["actions"][0]["action_type"] == "done"
    lost = api.post("/v1/predict", json={"screenshot": shot(), "instruction": "Fly away"}).json()
    assert lost["status"] == "fail"
    only = api.post(
        "/v1/predict",
        json={
            "screenshot": shot(),
            "instruction": instruction,
            "tools": ["type_text"],
            "include_raw_code": False,
        },
    ).json()
    assert [a["action_type"] for a in only["actions"]] == ["type_text"]
    assert "raw_code" not in only


def test_predict_is_billed_on_live_keys_and_free_on_test_keys_and_replays(
    api: httpx.Client, live: httpx.Client, sb: CoastySandbox
) -> None:
    body = {"screenshot": shot(), "instruction": "click the pricing link"}
    free = api.post("/v1/predict", json=body)
    assert free.json()["usage"]["billed"] is False and free.json()["usage"]["credits_charged"] == 0
    key = {"Idempotency-Key": "predict-1"}
    paid = live.post("/v1/predict", json=body, headers=key)
    usage = paid.json()["usage"]
    assert usage["billed"] is True and usage["credits_charged"] == 5
    assert sum(line["credits"] for line in usage["breakdown"]) == 5
    assert paid.headers["x-credits-charged"] == "5"
    replay = live.post("/v1/predict", json=body, headers=key)
    assert replay.headers["x-coasty-idempotent-replay"] == "true"
    assert replay.json()["actions"] == paid.json()["actions"]
    assert replay.json()["usage"]["credits_charged"] == 0
    counters = sb.counters()
    assert counters["cua_credits_live"] == 5 and counters["predict_calls"] == 2
    reused = live.post("/v1/predict", json={**body, "instruction": "other"}, headers=key)
    assert reused.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_session_keeps_its_trajectory_steps_and_expires(
    live: httpx.Client, sb: CoastySandbox
) -> None:
    created = live.post(
        "/v1/sessions",
        json={"screen_width": 1280, "screen_height": 800, "max_trajectory_length": 2},
    ).json()
    sid = created["session_id"]
    assert sid.startswith("ses_") and created["screen_size"] == "1280x800"
    instruction = "Search for 'pricing'"
    steps = []
    for _ in range(4):
        step = live.post(
            f"/v1/sessions/{sid}/predict", json={"screenshot": shot(), "instruction": instruction}
        ).json()
        steps.append(step)
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert [s["actions"][0]["action_type"] for s in steps] == [
        "click",
        "type_text",
        "click",
        "done",
    ]
    assert steps[-1]["status"] == "done"
    info = live.get(f"/v1/sessions/{sid}").json()
    assert info["step_count"] == 4
    assert info["total_credits_used"] == 1 + sum(s["usage"]["credits_charged"] for s in steps)
    # The trajectory kept is bounded: the last steps cost the 2-step trajectory line.
    assert {"item": "trajectory", "credits": 1, "count": 2} in steps[-1]["usage"]["breakdown"]
    assert [s["session_id"] for s in live.get("/v1/sessions").json()["sessions"]] == [sid]
    reset = live.post(f"/v1/sessions/{sid}/reset").json()
    assert (reset["status"], reset["session_id"]) == ("ok", sid)
    again = live.post(
        f"/v1/sessions/{sid}/predict", json={"screenshot": shot(), "instruction": instruction}
    ).json()
    assert again["actions"][0]["action_type"] == "click"  # the plan starts over after a reset
    sb.advance_clock(7201)
    gone = live.get(f"/v1/sessions/{sid}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "SESSION_NOT_FOUND"
    assert live.get("/v1/sessions").json()["sessions"] == []


def test_session_delete_and_unknown_sessions(api: httpx.Client) -> None:
    sid = api.post("/v1/sessions", json={}).json()["session_id"]
    assert api.get(f"/v1/sessions/{sid}").json()["screen_size"] == "1920x1080"
    assert api.delete(f"/v1/sessions/{sid}").json()["status"] == "ok"
    missing = api.post(
        f"/v1/sessions/{sid}/predict", json={"screenshot": shot(), "instruction": "x"}
    )
    assert missing.status_code == 404
    bad = api.post("/v1/sessions", json={"max_trajectory_length": 21})
    assert bad.json()["error"]["details"]["field"] == "max_trajectory_length"


def test_actions_change_the_machines_screen(api: httpx.Client) -> None:
    machine = "m-sandbox-2"
    before = api.post(f"/v1/machines/{machine}/actions", json={"command": "screenshot"}).json()
    other = api.post("/v1/machines/m-sandbox-3/actions", json={"command": "screenshot"}).json()
    x, y = center("search box")
    bx, by = center("search button")
    batch = api.post(
        f"/v1/machines/{machine}/actions/batch",
        json={
            "steps": [
                {"command": "click", "parameters": {"x": x, "y": y}},
                {"command": "type", "parameters": {"text": "pricing"}},
                {"command": "key_press", "parameters": {"keys": ["enter"]}},
                {"command": "click", "parameters": {"x": bx, "y": by}},
            ]
        },
    ).json()
    assert batch["completed_count"] == 4 and batch["failed_count"] == 0
    assert batch["results"][0]["result"] == {"clicked": "search box"}
    after = api.post(f"/v1/machines/{machine}/actions", json={"command": "screenshot"}).json()
    assert after["screenshot"].startswith("data:image/png;base64,")
    assert after["screenshot"] != before["screenshot"]
    unchanged = api.post("/v1/machines/m-sandbox-3/actions", json={"command": "screenshot"})
    assert unchanged.json()["screenshot"] == other["screenshot"]


def test_action_parameter_variants_and_failures(api: httpx.Client) -> None:
    path = "/v1/machines/m-sandbox-1/actions"
    for params in ({"key": "enter"}, {"keys": ["ctrl", "a"]}):
        assert api.post(path, json={"command": "key_press", "parameters": params}).json()["success"]
    scroll = api.post(path, json={"command": "scroll", "parameters": {"clicks": -3}}).json()
    assert scroll["result"] == {"direction": "down", "amount": 3}
    for params in (
        {"from_x": 1, "from_y": 2, "to_x": 3, "to_y": 4},
        {"x1": 1, "y1": 2, "x2": 3, "y2": 4},
    ):
        drag = api.post(path, json={"command": "drag", "parameters": params}).json()
        assert drag["result"] == {"from": [1, 2], "to": [3, 4]}
    outside = api.post(path, json={"command": "click", "parameters": {"x": 5000, "y": 1}}).json()
    assert outside["success"] is False and "outside" in outside["error"]
    batch = api.post(
        "/v1/machines/m-sandbox-1/actions/batch",
        json={"steps": [{"command": "click"}, {"command": "screenshot"}]},
    ).json()
    assert batch["aborted"] is True and len(batch["results"]) == 1
    unknown = api.post(path, json={"command": "teleport"})
    assert unknown.json()["error"]["details"]["field"] == "command"
    assert api.post("/v1/machines/nope/actions", json={"command": "screenshot"}).status_code == 404


def test_models_follow_the_contract(api: httpx.Client) -> None:
    assert "click" in api.get("/v1/models").json()["action_types"]
