"""`client.ground`, `client.predict`, `client.sessions`, machine actions and `client.models`,
sync and async, against the sandbox over loopback."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image

from langchain_coasty import AsyncCoastyClient, CoastyClient, InvalidRequestError, NotFoundError
from langchain_coasty.client import (
    ActionResult,
    GroundResult,
    ModelsResponse,
    Prediction,
    ScreenshotLike,
    SessionPrediction,
)
from langchain_coasty.sandbox.screens import ELEMENTS, ScreenState, render

PNG = render(ScreenState("m-sandbox-1"), mime_type="image/png")
LIVE_KEY = "sk-coasty-live-" + "cd" * 24


def center(name: str) -> tuple[int, int]:
    return next(e for e in ELEMENTS if e.name == name).center


@dataclass
class Capture:
    """Shaped like the machines resource's screenshot."""

    image_b64: str


def small_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (255, 255, 255)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "screenshot",
    [
        PNG,
        base64.b64encode(PNG).decode(),
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
        Capture(base64.b64encode(PNG).decode()),
    ],
    ids=["bytes", "base64", "data-uri", "capture"],
)
def test_ground_accepts_every_screenshot_form(client: CoastyClient, screenshot: Any) -> None:
    spot = client.ground(screenshot, "the search button")
    assert isinstance(spot, GroundResult)
    assert (spot.x, spot.y) == center("search button")
    assert (spot.screen_width, spot.screen_height) == (1280, 800)
    assert spot.request_id and spot.idempotency_key and not spot.replayed
    assert isinstance(Capture("x"), ScreenshotLike)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.ground(b"", "x"), "screenshot"),
        (lambda c: c.ground("é" * 200, "x"), "screenshot"),
        (lambda c: c.ground("A" * 50, "x"), "screenshot"),
        (lambda c: c.ground(12, "x"), "screenshot"),
        (lambda c: c.ground(PNG, ""), "element"),
        (lambda c: c.ground(PNG, "x", screen_width=319), "screen_width"),
        (lambda c: c.ground(PNG, "x", screen_height=2161), "screen_height"),
        (lambda c: c.predict(PNG, "x", tools=["click", "click"]), "tools"),
        (lambda c: c.predict(PNG, "x", tools=["teleport"]), "tools"),
        (lambda c: c.predict(PNG, "x", max_actions=11), "max_actions"),
        (lambda c: c.predict(PNG, "x", cua_version="v2"), "cua_version"),
        (lambda c: c.predict(PNG, "x", trajectory=[{"screenshot": PNG}] * 21), "trajectory"),
        (lambda c: c.predict(PNG, "x", trajectory=[{"screenshot": "!"}]), "trajectory"),
        (lambda c: c.sessions.create(max_trajectory_length=21), "max_trajectory_length"),
        (lambda c: c.sessions.create(screen_width=4000), "screen_width"),
        (lambda c: c.sessions.create(metadata={str(i): i for i in range(33)}), "metadata"),
        (lambda c: c.sessions.get("bad id"), "session_id"),
        (lambda c: c.machines.actions("m-sandbox-1", "teleport"), "command"),
        (lambda c: c.machines.actions("m-sandbox-1", "click", timeout_ms=10), "timeout_ms"),
        (lambda c: c.machines.actions_batch("m-sandbox-1", []), "steps"),
        (lambda c: c.machines.actions_batch("m-sandbox-1", [{"command": "x"}] * 51), "steps"),
    ],
)
def test_requests_are_checked_before_sending(
    counted: CoastyClient, sent: list[httpx.Request], call: Any, field: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        call(counted)
    assert info.value.field == field and info.value.limit
    assert field in str(info.value)
    assert sent == []


def test_predict_sessions_and_actions_drive_a_machine(client: CoastyClient) -> None:
    prediction = client.predict(PNG, "Click the pricing link", trajectory=[])
    assert isinstance(prediction, Prediction) and prediction.status == "continue"
    assert prediction.actions[0].params == dict(
        zip(("x", "y"), center("pricing link"), strict=True)
    )
    session = client.sessions.create(screen_width=1280, screen_height=800, max_trajectory_length=2)
    assert session.session_id and session.screen_size == "1280x800"
    step = client.sessions.predict(session.session_id, PNG, "Search for 'pricing'")
    assert isinstance(step, SessionPrediction) and step.step == 1 and not step.done
    click = step.actions[0]
    result = client.machines.actions("m-sandbox-1", "click", click.params)
    assert isinstance(result, ActionResult) and result.success
    assert result.result == {"clicked": "search box"}
    batch = client.machines.actions_batch(
        "m-sandbox-1",
        [{"command": "type", "parameters": {"text": "pricing"}}, {"command": "screenshot"}],
    )
    assert batch.completed_count == 2 and batch.results[1].screenshot
    assert client.sessions.get(session.session_id).step_count == 1
    assert [s.session_id for s in client.sessions.list().sessions] == [session.session_id]
    assert client.sessions.reset(session.session_id).status == "ok"
    assert client.sessions.delete(session.session_id).session_id == session.session_id
    with pytest.raises(NotFoundError):
        client.sessions.predict(session.session_id, PNG, "Search for 'pricing'")


def test_models_are_typed(client: CoastyClient) -> None:
    models = client.models()
    assert isinstance(models, ModelsResponse) and models.cua_versions[-1].latest
    assert "click" in models.action_types


def test_a_lost_answer_is_collected_by_key_and_billed_once(sb: Any) -> None:
    sb.inject(cua_lose_response_rate=1.0)
    with CoastyClient(api_key=LIVE_KEY, base_url=sb.base_url, timeout=10.0) as client:
        prediction = client.predict(PNG, "click the docs link", idempotency_key="lost-1")
        assert prediction.actions[0].params == dict(
            zip(("x", "y"), center("docs link"), strict=True)
        )
        assert prediction.usage.credits_charged == 5 and prediction.usage.billed
    counters = sb.counters()
    assert counters["predict_calls"] == 1 and counters["cua_credits_live"] == 5
    assert counters["faults_fired"]["cua_lose_response"] >= 1


def test_a_retried_step_carries_the_same_key(
    sb: Any, counted: CoastyClient, sent: list[httpx.Request], sleeps: list[float]
) -> None:
    sb.inject(
        errors=[
            {
                "method": "POST",
                "path": "/v1/ground",
                "status": 503,
                "code": "SERVICE_UNAVAILABLE",
                "retryable": True,
                "times": 1,
            }
        ]
    )
    spot = counted.ground(PNG, "sign in button")
    assert (spot.x, spot.y) == center("sign in button")
    keys = [r.headers["idempotency-key"] for r in sent]
    assert len(keys) == 2 and keys[0] == keys[1] == spot.idempotency_key
    assert len(sleeps) == 1


def test_ground_without_a_request_id_header(sb: Any, client: CoastyClient) -> None:
    sb.configure(request_id_header=False)
    spot = client.ground(small_png(640, 400), "search box")
    assert spot.request_id  # from the body
    assert (spot.x, spot.y) == tuple(v // 2 for v in center("search box"))


async def test_the_async_client_is_the_twin(aclient: AsyncCoastyClient) -> None:
    spot = await aclient.ground(PNG, "email field")
    assert (spot.x, spot.y) == center("email field")
    prediction = await aclient.predict(PNG, "Type 'ada@example.com' in the email field")
    assert [a.action_type for a in prediction.actions] == ["click", "type_text"]
    session = await aclient.sessions.create()
    step = await aclient.sessions.predict(session.session_id, PNG, "click sign in")
    assert step.actions[0].action_type == "click"
    assert (await aclient.sessions.get(session.session_id)).step_count == 1
    assert len((await aclient.sessions.list()).sessions) == 1
    assert (await aclient.sessions.reset(session.session_id)).status == "ok"
    assert (await aclient.sessions.delete(session.session_id)).status == "ok"
    result = await aclient.machines.actions("m-sandbox-1", "key_press", {"key": "enter"})
    assert result.success
    batch = await aclient.machines.actions_batch("m-sandbox-1", [{"command": "screenshot"}])
    assert batch.results[0].success
    assert (await aclient.models()).models


async def test_a_machines_screenshot_is_a_screenshot_argument(sb: Any) -> None:
    from langchain_coasty import AsyncCoastyClient, CoastyClient
    from langchain_coasty.sandbox.screens import ELEMENTS

    box = next(e for e in ELEMENTS if e.name == "sign in button").box
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        shot = client.machines.screenshot(sb.machine_id)
        spot = client.ground(shot, "the Sign in button")
    assert box[0] <= spot.x <= box[2] and box[1] <= spot.y <= box[3]
    async with AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url) as aclient:
        shot = await aclient.machines.screenshot(sb.machine_id)
        again = await aclient.ground(shot, "the Sign in button")
    assert (again.x, again.y) == (spot.x, spot.y)
