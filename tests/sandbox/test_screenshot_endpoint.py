"""GET /v1/machines/{id}/screenshot: a real image per machine that follows its runs."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
from PIL import Image, ImageChops

from langchain_coasty.sandbox import CoastySandbox
from tests.sandbox.conftest import create, events_until
from tests.sandbox.test_machines import booted

STEPS = [
    {"action": "navigate", "args": {"url": "https://portal.example/login"}},
    {"action": "click", "args": {"target": "the Sign in button"}},
]


def shot(api: httpx.Client, machine_id: str) -> tuple[dict[str, Any], Image.Image]:
    response = api.get(f"/v1/machines/{machine_id}/screenshot")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    image = Image.open(io.BytesIO(base64.b64decode(body["image_b64"], validate=True)))
    image.load()
    assert body["machine_id"] == machine_id and body["mime_type"] == "image/jpeg"
    assert image.format == "JPEG" and image.size == (body["width"], body["height"])
    return body, image


def differ(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is not None


def test_the_screen_follows_each_step_and_the_pause(api: httpx.Client, sb: CoastySandbox) -> None:
    pauses = [
        {"after_step": n, "reason": "login", "question": f"Approve login {n}?"} for n in (1, 2)
    ]
    steps = [{**s, "reasoning": "r", "summary": "s", "output": "o"} for s in STEPS]
    sb.load_scenarios([{"match": "portal", "steps": steps, "pauses": pauses}])
    machine_id = sb.machine_id
    _, idle = shot(api, machine_id)
    run = create(api, machine_id, "Open the supplier portal")
    seen = events_until(api, run["id"], "awaiting_human")
    _, first = shot(api, machine_id)  # step 1 under the pause banner
    api.post(f"/v1/runs/{run['id']}/resume", json={"note": "yes"})
    events_until(api, run["id"], "awaiting_human", after=seen[-1]["seq"])
    _, second = shot(api, machine_id)  # step 2 under the banner
    api.post(f"/v1/runs/{run['id']}/resume", json={"note": "yes"})
    events_until(api, run["id"], "done")
    _, after = shot(api, machine_id)  # step 2, the banner gone
    assert differ(idle, first) and differ(first, second) and differ(second, after)
    other, _ = shot(api, "m-sandbox-2")  # another machine has its own screen
    assert other["machine_id"] == "m-sandbox-2"


def test_a_provisioned_machine_has_a_screen_black_while_stopped(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    machine = booted(api, sb)
    _, running = shot(api, machine["id"])
    assert api.post(f"/v1/machines/{machine['id']}/stop").status_code == 200
    sb.advance_clock(1)
    _, stopped = shot(api, machine["id"])
    assert stopped.convert("L").getextrema()[1] < 160 and differ(running, stopped)
    api.delete(f"/v1/machines/{machine['id']}")
    gone = api.get(f"/v1/machines/{machine['id']}/screenshot")
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "INVALID_STATE"


def test_unknown_machines_and_missing_keys_are_refused(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    missing = api.get("/v1/machines/m-nope/screenshot")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    anonymous = httpx.get(f"{sb.base_url}/v1/machines/{sb.machine_id}/screenshot")
    assert anonymous.status_code == 401


def test_a_reset_clears_the_screens(api: httpx.Client, sb: CoastySandbox) -> None:
    _, before = shot(api, sb.machine_id)
    run = create(api, sb.machine_id, "Open the pricing page")
    events_until(api, run["id"], "step")
    _, during = shot(api, sb.machine_id)
    assert differ(before, during)
    sb.reset()
    _, after = shot(api, sb.machine_id)
    assert not differ(before, after)
