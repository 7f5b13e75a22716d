"""Screens where people and models look: the pause, the artifact, the events, the screenshot tool.

Real graphs (``create_agent`` with a scripted chat model) against the sandbox over loopback;
each image is decoded with Pillow and the screens at a step, at the pause and at the end are
told apart by their pixels.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from PIL import Image, ImageChops

from langchain_coasty import (
    CoastyCallbackHandler,
    CoastyComputerTool,
    CoastyRunnable,
    CoastyToolkit,
    ScreenLimits,
)
from langchain_coasty.callbacks import CoastyEventPayload
from tests.fakes import ScriptedChatModel, call

LOGIN_TASK = "Log in to the supplier portal and download the March invoice"
PLAIN_TASK = "Open the notes app and write a shopping list"


def picture(screen: dict[str, Any]) -> Image.Image:
    """The decoded image of a screen payload, checked against what the payload says."""
    data = base64.b64decode(screen["data"], validate=True)
    assert len(data) == screen["size_bytes"]
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.size == (screen["width"], screen["height"])
    assert Image.MIME[image.format] == screen["mime_type"]  # type: ignore[index]
    return image


def banner(image: Image.Image) -> bool:
    """Whether the sandbox's amber "Waiting for a person" banner is on the screen."""
    r, g, b = image.convert("RGB").getpixel((image.width // 2, image.height * 450 // 800))
    return r > 200 and 120 < g < 200 and b < 80


def differ(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is not None


def computer(sb: Any, **kwargs: Any) -> CoastyComputerTool:
    return CoastyComputerTool(
        api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id, **kwargs
    )


def agent_for(tool: Any, task: str) -> Any:
    model = ScriptedChatModel(
        script=[AIMessage("", tool_calls=[call(tool.name, "call_1", task=task)]), AIMessage("ok")]
    )
    return create_agent(model, [tool], checkpointer=InMemorySaver())


class Screens(CoastyCallbackHandler):
    """Every screenshot payload delivered."""

    def __init__(self) -> None:
        self.shots: list[CoastyEventPayload] = []

    def on_coasty_screenshot(self, event: CoastyEventPayload) -> None:
        self.shots.append(event)


async def test_the_pause_and_the_artifact_carry_the_screen(sb: Any) -> None:
    agent = agent_for(computer(sb), LOGIN_TASK)
    cfg: Any = {"configurable": {"thread_id": "pause-screen"}}
    first = await agent.ainvoke({"messages": [HumanMessage("go")]}, cfg)
    (pending,) = first["__interrupt__"]
    block = pending.value["coasty"]
    paused = picture(block["screen"])
    assert block["screen"]["machine_id"] == sb.machine_id and block["screen"]["captured_at"]
    assert paused.width <= 1280 and block["screen"]["size_bytes"] <= 200_000
    description = pending.value["action_requests"][0]["description"]
    assert len(description) < 600 and block["screen"]["data"][:40] not in description
    assert banner(paused)  # the screen at the pause

    done = await agent.ainvoke(Command(resume={"decisions": [{"type": "approve"}]}), cfg)
    message = next(m for m in done["messages"] if isinstance(m, ToolMessage))
    assert "succeeded" in message.content and "base64" not in message.content
    assert isinstance(message.content, str) and len(message.content) < 2000
    final = picture(message.artifact.screen)
    assert differ(paused, final) and not banner(final)  # the banner is gone at the end


def test_bounds_are_configurable_and_screens_can_be_switched_off(sb: Any) -> None:
    small = computer(sb, screens=ScreenLimits(max_width=320, max_bytes=20_000))
    result = small.invoke(
        {"type": "tool_call", "id": "c1", "name": small.name, "args": {"task": PLAIN_TASK}}
    )
    screen = result.artifact.screen
    assert screen["width"] == 320 and screen["downscaled"] and screen["size_bytes"] <= 20_000
    picture(screen)

    off = computer(sb, screens=False, on_awaiting_human="return")
    paused = off.invoke(
        {"type": "tool_call", "id": "c2", "name": off.name, "args": {"task": LOGIN_TASK}}
    )
    assert paused.artifact.stop_reason == "awaiting_human" and paused.artifact.screen is None
    with pytest.raises(ValueError, match="screens_at"):
        computer(sb, screens_at=("sometimes",))


def test_return_mode_and_a_callable_policy_get_the_pause_screen(sb: Any) -> None:
    handed_back = computer(sb, on_awaiting_human="return").invoke(
        {"type": "tool_call", "id": "c1", "name": "coasty_computer", "args": {"task": LOGIN_TASK}}
    )
    assert handed_back.artifact.stop_reason == "awaiting_human"
    assert banner(picture(handed_back.artifact.screen))  # the screen at the pause

    seen: list[dict[str, Any]] = []

    def approver(pause: dict[str, Any]) -> str:
        seen.append(pause["coasty"]["screen"])
        return "approved"

    run = CoastyRunnable(
        api_key=sb.api_key,
        base_url=sb.base_url,
        machine_id=sb.machine_id,
        on_awaiting_human=approver,
        screens_at=("pause", "end"),  # the runnable's default is the pause only
    ).invoke(LOGIN_TASK)
    assert run.status == "succeeded" and len(seen) == 1
    assert banner(picture(seen[0])) and not banner(picture(run.screen))


def test_the_runnable_captures_only_the_pause_by_default(sb: Any) -> None:
    run = CoastyRunnable(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id).invoke(
        "Open the docs"
    )
    assert run.status == "succeeded" and run.screen is None  # no pause: no capture at all


async def test_screenshot_events_at_each_step_pause_and_end(sb: Any) -> None:
    screens = Screens()
    runnable = CoastyRunnable(
        api_key=sb.api_key,
        base_url=sb.base_url,
        machine_id=sb.machine_id,
        on_awaiting_human=lambda pause: "ok",
        screens_at=("step", "pause", "end"),
    )
    run = await runnable.ainvoke(LOGIN_TASK, {"callbacks": [screens]})
    moments = [s["data"]["at"] for s in screens.shots]
    assert moments.count("step") == run.steps_completed and moments.count("pause") == 1
    assert moments[-1] == "end" and all(s["type"] == "screenshot" for s in screens.shots)
    assert {s["run_id"] for s in screens.shots} == {run.id}
    images = [picture(s["data"]["screen"]) for s in screens.shots]
    # a step's screen is "the screen now" (the run goes on meanwhile); the one at the pause
    # is taken while the run waits, the one at the end after it finished
    assert banner(images[moments.index("pause")]) and not banner(images[-1])
    step_seqs = [s["seq"] for s in screens.shots if s["data"]["at"] == "step"]
    assert step_seqs == sorted(set(step_seqs))  # one per step event, in order


def test_a_missing_screen_never_fails_the_run_or_the_pause(sb: Any) -> None:
    sb.inject(
        errors=[
            {
                "method": "GET",
                "path": "/v1/machines/{id}/screenshot",
                "status": 404,
                "code": "NOT_FOUND",
                "times": 5,
            }
        ]
    )
    seen: list[dict[str, Any]] = []
    run = CoastyRunnable(
        api_key=sb.api_key,
        base_url=sb.base_url,
        machine_id=sb.machine_id,
        on_awaiting_human=lambda pause: seen.append(pause["coasty"]["screen"]) or "ok",
    ).invoke(LOGIN_TASK)
    assert run.status == "succeeded"
    for screen in (seen[0], run.screen):
        assert "data" not in screen and "unavailable (NOT_FOUND" in screen["omitted"]


def screenshot_planner() -> ScriptedChatModel:
    return ScriptedChatModel(
        script=[
            AIMessage("", tool_calls=[call("coasty_screenshot", "look_1")]),
            AIMessage("", tool_calls=[call("coasty_computer", "run_1", task=PLAIN_TASK)]),
            AIMessage("", tool_calls=[call("coasty_screenshot", "look_2")]),
            AIMessage("I looked before and after."),
        ]
    )


def image_of(message: ToolMessage) -> Image.Image:
    assert isinstance(message.content, list)
    text, block = message.content
    assert text["type"] == "text" and "screen of machine" in text["text"]
    assert block["type"] == "image" and block["mime_type"] == "image/jpeg"
    assert "data" not in message.artifact and message.artifact["width"] == block_size(block)
    return picture({**message.artifact, "data": block["base64"]})


def block_size(block: dict[str, Any]) -> int:
    return Image.open(io.BytesIO(base64.b64decode(block["base64"]))).width


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_vision_planner_looks_before_and_after(sb: Any, use_async: bool) -> None:
    toolkit = CoastyToolkit(api_key=sb.api_key, base_url=sb.base_url, machine_id=sb.machine_id)
    tools = toolkit.get_tools()
    assert [t.name for t in tools][-1] == "coasty_screenshot"
    agent = create_agent(screenshot_planner(), tools, checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": f"vision-{use_async}"}}
    given = {"messages": [HumanMessage("Look, write the list, look again")]}
    out = await agent.ainvoke(given, cfg) if use_async else agent.invoke(given, cfg)
    looks = [
        m for m in out["messages"] if isinstance(m, ToolMessage) and m.name == "coasty_screenshot"
    ]
    assert len(looks) == 2 and all(m.status == "success" for m in looks)
    before, after = (image_of(m) for m in looks)
    assert differ(before, after)  # the run's steps changed the screen
    # the planner's next model call saw the image block in the history
    assert out["messages"][-1].content == "I looked before and after."


def test_the_screenshot_tool_says_what_went_wrong(sb: Any) -> None:
    tool = CoastyToolkit(api_key=sb.api_key, base_url=sb.base_url).get_tools()[-1]
    message = tool.invoke(
        {"type": "tool_call", "id": "c1", "name": tool.name, "args": {"machine_id": "m-nope"}}
    )
    assert message.status == "error" and "NOT_FOUND" in message.content
