"""Tools for a planner that drives a machine step by step: ground, act, next action.

``coasty_ground`` finds an element on the machine's current screen; ``coasty_act`` runs one
action or a short batch on it (and can show the new screen to a vision model);
``coasty_next_action`` asks a Coasty session what to do next on the current screen. The
session id is kept in the thread's state (``coasty_session_id``, which ``CoastyMiddleware``
declares and deletes when the agent run ends), so it survives interrupts and processes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.messages import ToolMessage
from langchain_core.runnables import ensure_config
from langchain_core.tools import InjectedToolArg, ToolException
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from langchain_coasty._graph import graph_context, plain_interrupt
from langchain_coasty._tool_base import _CoastyTool, _tool_errors
from langchain_coasty.client import (
    ActionResult,
    AsyncCoastyClient,
    BatchActionResult,
    CoastyClient,
    CoastyError,
    GroundResult,
    IdempotencyKeyReusedError,
    NotFoundError,
    Screenshot,
    SessionPrediction,
    machine_action,
    new_idempotency_key,
)
from langchain_coasty.machines import MachinePerThread, acall_machine, call_machine
from langchain_coasty.screens import ScreenLimits, bound

__all__ = [
    "SESSION_STATE_KEY",
    "CoastyActTool",
    "CoastyGroundTool",
    "CoastyNextActionTool",
    "arelease_thread_session",
    "release_thread_session",
]

logger = logging.getLogger("langchain_coasty")

SESSION_STATE_KEY = "coasty_session_id"
"""The thread-state key that holds the thread's Coasty session id."""
MAX_BATCH = 10


@dataclass(frozen=True)
class Screen:
    """One capture of a machine's screen."""

    image_b64: str
    mime_type: str
    width: int
    height: int


def _from_screenshot(shot: Screenshot) -> Screen:
    """The screen ``client.machines.screenshot`` returned."""
    return Screen(shot.image_b64, shot.mime_type, shot.width, shot.height)


def _image_block(screen: Screen, machine_id: str, limits: ScreenLimits) -> dict[str, Any]:
    """A LangChain image content block of the screen, within ``limits``."""
    payload = bound(
        base64.b64decode(screen.image_b64),
        mime_type=screen.mime_type,
        width=screen.width,
        height=screen.height,
        machine_id=machine_id,
        captured_at=None,
        limits=limits,
    )
    if "data" not in payload:
        return {"type": "text", "text": f"(screen left out: {payload.get('omitted')})"}
    return {"type": "image", "base64": payload["data"], "mime_type": payload["mime_type"]}


def _key(runtime: Any, body: Mapping[str, Any]) -> str | None:
    """The idempotency key that stays the same when LangGraph re-executes this call."""
    ctx = graph_context(ensure_config(), runtime)
    return None if ctx is None else ctx.idempotency_key(body)


class _MachineInput(BaseModel):
    machine_id: str | None = Field(
        default=None, description="Id of the Coasty machine (when the tool has none set)."
    )
    runtime: Annotated[Any, InjectedToolArg] = None


class _StepTool(_CoastyTool):
    """Shared base: the machine, its screen, and the bounds of images shown to the model."""

    screen_limits: ScreenLimits = Field(default_factory=ScreenLimits, exclude=True)

    def _machine(self, given: str | None, runtime: Any = None) -> str:
        """The machine to act on: the tool's, the call's, or the thread's (MachinePerThread)."""
        machine_id = self.machine_id or given
        if machine_id:
            return machine_id
        if not isinstance(self.machine, MachinePerThread):
            raise ToolException("No machine: pass machine_id (or set it on the tool).")
        thread_id, key = self._thread_call(runtime)
        with _tool_errors(ValueError):
            config = ensure_config()
            client = self.get_client()
            with call_machine(
                self.machine, client, thread_id=thread_id, call_key=key, config=config
            ) as lease:
                return lease.machine_id

    async def _amachine(self, given: str | None, runtime: Any = None) -> str:
        """Async twin of ``_machine``."""
        if self.machine_id or given or not isinstance(self.machine, MachinePerThread):
            return self._machine(given, runtime)
        thread_id, key = self._thread_call(runtime)
        with _tool_errors(ValueError):
            config = ensure_config()
            client = self.get_async_client()
            async with acall_machine(
                self.machine, client, thread_id=thread_id, call_key=key, config=config
            ) as lease:
                return lease.machine_id

    def _thread_call(self, runtime: Any) -> tuple[str | None, str]:
        ctx = graph_context(ensure_config(), runtime)
        key = _key(runtime, {"tool": self.name, "machine": "thread"}) or new_idempotency_key()
        return (ctx.thread_id if ctx is not None else None), key

    def _capture(self, client: CoastyClient, machine_id: str) -> Screen:
        with _tool_errors():
            return _from_screenshot(client.machines.screenshot(machine_id))

    async def _acapture(self, client: AsyncCoastyClient, machine_id: str) -> Screen:
        with _tool_errors():
            return _from_screenshot(await client.machines.screenshot(machine_id))


# --- coasty_ground ------------------------------------------------------------------------


class GroundInput(_MachineInput):
    """Arguments of ``coasty_ground``."""

    element: str = Field(
        description='The element to find, described as a person would ("the Sign in button").'
    )


def _ground_text(element: str, spot: GroundResult, machine_id: str) -> str:
    return (
        f"{element!r} is at x={spot.x}, y={spot.y} on the screen of {machine_id} "
        f"({spot.screen_width}x{spot.screen_height}). Act there with coasty_act."
    )


class CoastyGroundTool(_StepTool):
    """Finds where a described element is on a machine's current screen (x, y).

    Setup:
        Part of ``CoastyToolkit(step_tools=True)``; needs ``COASTY_API_KEY``.

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyGroundTool

            ground = CoastyGroundTool(machine_id="m-123")

    Invocation:
        .. code-block:: python

            ground.invoke({"element": "the Sign in button"})  # "... is at x=1185, y=128 ..."

    The artifact is the ``GroundResult`` (coordinates in the screen's real size, and usage).
    """

    name: str = "coasty_ground"
    description: str = (
        "Find where a described UI element is on the machine's current screen; returns its "
        "x, y in screen pixels, ready for coasty_act."
    )
    args_schema: Any = GroundInput

    def _run(
        self,
        element: str,
        machine_id: str | None = None,
        runtime: Any = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, GroundResult]:
        machine = self._machine(machine_id, runtime)
        client = self.get_client()
        with _tool_errors(ValueError):
            screen = self._capture(client, machine)
            key = _key(runtime, {"tool": self.name, "element": element})
            try:
                spot = client.ground(screen, element, idempotency_key=key)
            except IdempotencyKeyReusedError:  # a re-executed call on a changed screen
                spot = client.ground(screen, element)
        return _ground_text(element, spot, machine), spot

    async def _arun(
        self,
        element: str,
        machine_id: str | None = None,
        runtime: Any = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, GroundResult]:
        machine = await self._amachine(machine_id, runtime)
        client = self.get_async_client()
        with _tool_errors(ValueError):
            screen = await self._acapture(client, machine)
            key = _key(runtime, {"tool": self.name, "element": element})
            try:
                spot = await client.ground(screen, element, idempotency_key=key)
            except IdempotencyKeyReusedError:
                spot = await client.ground(screen, element)
        return _ground_text(element, spot, machine), spot


# --- coasty_act ---------------------------------------------------------------------------


class ActionSpec(BaseModel):
    """One action: its name and parameters (a prediction's action fits as it is)."""

    model_config = ConfigDict(populate_by_name=True)

    action: str = Field(
        validation_alias=AliasChoices("action", "action_type", "command"),
        description="click, double_click, type, key_press, key_combo, scroll, drag, wait or "
        "screenshot (a prediction's type_text is type).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("params", "parameters"),
        description="click {x, y}; type {text}; key_press {keys: [...]} or {key}; scroll "
        "{x, y, direction, amount} or {clicks}; drag {from_x, from_y, to_x, to_y}; wait {ms}.",
    )


class ActInput(_MachineInput):
    """Arguments of ``coasty_act``."""

    actions: list[ActionSpec] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="The actions to do in order (one, or a short batch that stops at a failure).",
    )
    return_screen: bool = Field(
        default=False, description="Also return the screen after the actions, as an image."
    )


@dataclass
class _Plan:
    """The machine commands of one ``coasty_act`` call, and the waits between them."""

    steps: list[dict[str, Any]]
    waits: list[int]


def _plan(actions: Sequence[ActionSpec | Mapping[str, Any]]) -> _Plan:
    steps: list[dict[str, Any]] = []
    waits: list[int] = []
    for given in actions:
        spec = given if isinstance(given, ActionSpec) else ActionSpec.model_validate(given)
        command, params = machine_action(spec.action, spec.params)
        if command == "wait":
            waits.append(params["ms"])
        else:
            steps.append({"command": command, "parameters": params})
    return _Plan(steps, waits)


def approval_request(machine_id: str, steps: Sequence[Mapping[str, Any]], name: str) -> Any:
    """The HITL-shaped interrupt payload asking a person to approve the text to be typed."""
    typed = [s["parameters"]["text"] for s in steps if s["command"] == "type"]
    return {
        "action_requests": [
            {
                "name": name,
                "args": {"text": text},
                "description": f"Type this text on {machine_id}?\n\n*Approve* types it, *Edit* "
                "changes the text first, *Reject* types nothing.",
            }
            for text in typed
        ],
        "review_configs": [
            {"action_name": name, "allowed_decisions": ["approve", "edit", "reject"]}
        ],
        "coasty": {"machine_id": machine_id, "kind": "approve_text", "texts": typed},
    }


def _apply_answer(answer: Any, steps: list[dict[str, Any]]) -> str | None:
    """Apply the person's decisions to the ``type`` steps; the reason when one was rejected."""
    decisions = answer.get("decisions") if isinstance(answer, Mapping) else None
    if decisions is None:
        decisions = [answer]
    typed = [s for s in steps if s["command"] == "type"]
    if len(decisions) == 1:
        decisions = decisions * len(typed)
    for step, decision in zip(typed, decisions, strict=False):
        kind = decision.get("type") if isinstance(decision, Mapping) else decision
        if kind in ("reject", "ignore", False):
            message = decision.get("message") if isinstance(decision, Mapping) else None
            return message or "the person rejected it"
        if kind == "edit" and isinstance(decision, Mapping):
            args = (decision.get("edited_action") or {}).get("args") or {}
            if isinstance(args.get("text"), str) and args["text"]:
                step["parameters"] = {**step["parameters"], "text": args["text"]}
        elif kind not in ("approve", "accept", True):
            raise ToolException(f"Unknown answer to the typing approval: {decision!r}")
    return None


def _act_text(result: ActionResult | BatchActionResult, plan: _Plan) -> str:
    results = result.results if isinstance(result, BatchActionResult) else [result]
    lines = []
    for n, item in enumerate(results, 1):
        outcome = "done" if item.success else f"FAILED: {item.error}"
        shown = f" -> {item.result}" if item.success and item.result else ""
        lines.append(f"{n}. {item.command} {outcome}{shown}")
    skipped = len(plan.steps) - len(results)
    if skipped:
        lines.append(f"({skipped} later action(s) not run after the failure)")
    return f"On {result.machine_id}: " + "; ".join(lines)


class CoastyActTool(_StepTool):
    """Runs one action or a short batch on a machine, optionally returning the new screen.

    Setup:
        Part of ``CoastyToolkit(step_tools=True)``; needs ``COASTY_API_KEY``.

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyActTool

            act = CoastyActTool(machine_id="m-123", approve_text=True)

    Invocation:
        .. code-block:: python

            act.invoke({"actions": [{"action": "click", "params": {"x": 640, "y": 213}}]})

    With ``approve_text``, actions that type text pause the graph first (a LangGraph
    interrupt shaped like LangChain's HITL request: approve, edit the text, or reject).
    A retried or re-executed tool call never acts twice (one idempotency key per call).
    """

    name: str = "coasty_act"
    description: str = (
        "Do actions on the machine: click {x, y}, type {text}, key_press {keys}, scroll, "
        "drag, wait. Set return_screen to see the screen afterwards."
    )
    args_schema: Any = ActInput
    approve_text: bool = False
    """Ask a person (a LangGraph interrupt) before any ``type`` action enters text."""

    def _prepare(self, machine: str, actions: Sequence[Any]) -> tuple[_Plan, str | None]:
        with _tool_errors(ValueError):
            plan = _plan(actions)
        rejected = None
        if self.approve_text and any(s["command"] == "type" for s in plan.steps):
            ctx = graph_context(ensure_config())
            if ctx is None or not ctx.has_checkpointer:
                raise ToolException(
                    "Typing needs a person's approval, which needs a LangGraph graph with a "
                    "checkpointer; nothing was typed."
                )
            answer = plain_interrupt(approval_request(machine, plan.steps, self.name))
            rejected = _apply_answer(answer, plan.steps)
        return plan, rejected

    def _run(
        self,
        actions: list[Any],
        machine_id: str | None = None,
        return_screen: bool = False,
        runtime: Any = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[Any, Any]:
        machine = self._machine(machine_id, runtime)
        plan, rejected = self._prepare(machine, actions)
        if rejected is not None:
            return f"Nothing was done on {machine}: typing was rejected ({rejected}).", None
        client = self.get_client()
        with _tool_errors(ValueError):
            for ms in plan.waits:
                time.sleep(ms / 1000)
            result: ActionResult | BatchActionResult | None = None
            key = _key(runtime, {"tool": self.name, "steps": plan.steps})
            if len(plan.steps) == 1:
                step = plan.steps[0]
                result = client.machines.actions(
                    machine, step["command"], step["parameters"], idempotency_key=key
                )
            elif plan.steps:
                result = client.machines.actions_batch(machine, plan.steps, idempotency_key=key)
            screen = self._capture(client, machine) if return_screen else None
        return self._answer(machine, plan, result, screen)

    async def _arun(
        self,
        actions: list[Any],
        machine_id: str | None = None,
        return_screen: bool = False,
        runtime: Any = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[Any, Any]:
        machine = await self._amachine(machine_id, runtime)
        plan, rejected = self._prepare(machine, actions)
        if rejected is not None:
            return f"Nothing was done on {machine}: typing was rejected ({rejected}).", None
        client = self.get_async_client()
        with _tool_errors(ValueError):
            for ms in plan.waits:
                await asyncio.sleep(ms / 1000)
            result: ActionResult | BatchActionResult | None = None
            key = _key(runtime, {"tool": self.name, "steps": plan.steps})
            if len(plan.steps) == 1:
                step = plan.steps[0]
                result = await client.machines.actions(
                    machine, step["command"], step["parameters"], idempotency_key=key
                )
            elif plan.steps:
                result = await client.machines.actions_batch(
                    machine, plan.steps, idempotency_key=key
                )
            screen = await self._acapture(client, machine) if return_screen else None
        return self._answer(machine, plan, result, screen)

    def _answer(
        self,
        machine: str,
        plan: _Plan,
        result: ActionResult | BatchActionResult | None,
        screen: Screen | None,
    ) -> tuple[Any, Any]:
        text = f"Waited on {machine}." if result is None else _act_text(result, plan)
        if screen is None:
            return text, result
        blocks = [{"type": "text", "text": text + "\nThe screen now:"}]
        blocks.append(_image_block(screen, machine, self.screen_limits))
        return blocks, result


# --- coasty_next_action -------------------------------------------------------------------


class NextActionInput(_MachineInput):
    """Arguments of ``coasty_next_action``."""

    instruction: str = Field(
        description="The task to work towards, in plain language (the same each step)."
    )


def _next_text(step: SessionPrediction) -> str:
    if step.status == "done":
        return f"Coasty says the task is done (step {step.step})."
    if step.status == "fail":
        why = step.reasoning or (step.actions[0].params if step.actions else "")
        return f"Coasty cannot see how to do it (step {step.step}): {why}"
    proposed = "; ".join(
        f"{a.action_type} {a.params}" + (f" ({a.description})" if a.description else "")
        for a in step.actions
    )
    return (
        f"Step {step.step}: Coasty proposes {proposed}. Do them with coasty_act (the "
        "actions fit as they are), then ask again."
    )


def _session_size(screen: Screen) -> tuple[int, int]:
    """The session's screen size: the machine's, within the contract's ranges."""
    return min(3840, max(320, screen.width or 1920)), min(2160, max(240, screen.height or 1080))


def _state_session(runtime: Any) -> str | None:
    state = getattr(runtime, "state", None)
    value = state.get(SESSION_STATE_KEY) if isinstance(state, Mapping) else None
    return value if isinstance(value, str) and value else None


def _session_key(runtime: Any) -> str | None:
    """The create key of the thread's session: the same when the call is re-executed."""
    ctx = graph_context(ensure_config(), runtime)
    if ctx is None or ctx.thread_id is None:
        return None
    material = f"{ctx.thread_id}|{ctx.checkpoint_ns}|{ctx.tool_call_id}|session"
    return "lc-ses-" + hashlib.sha256(material.encode()).hexdigest()[:40]


class CoastyNextActionTool(_StepTool):
    """Asks Coasty what to do next on the machine's current screen (a stateful session).

    Setup:
        Part of ``CoastyToolkit(step_tools=True)``; needs ``COASTY_API_KEY``. In
        ``create_agent``, add ``CoastyMiddleware(tool)``: it keeps the session id in the
        thread's state and deletes the session when the agent run ends.

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyNextActionTool

            next_action = CoastyNextActionTool(machine_id="m-123")

    Invocation:
        .. code-block:: python

            next_action.invoke({"instruction": "Sign in as ada@example.com"})

    The artifact is the ``SessionPrediction`` (actions, status, step, usage).
    """

    name: str = "coasty_next_action"
    description: str = (
        "Ask Coasty for the next actions towards an instruction, from the machine's current "
        "screen; it remembers the earlier steps of this thread. Returns actions for coasty_act, "
        "or says the task is done."
    )
    args_schema: Any = NextActionInput
    max_trajectory_length: int = Field(default=5, ge=1, le=20)
    """How many earlier steps the session keeps (1..20)."""
    _plain_session: str | None = None

    def _created(self, runtime: Any) -> str | None:
        return _state_session(runtime) if runtime is not None else self._plain_session

    def _finish(self, step: SessionPrediction, runtime: Any, known: str | None) -> tuple[Any, Any]:
        text = _next_text(step)
        call_id = getattr(runtime, "tool_call_id", None)
        if runtime is None:
            self._plain_session = step.session_id
        elif step.session_id != known and call_id:
            from langgraph.types import Command

            message = ToolMessage(text, artifact=step, tool_call_id=call_id, name=self.name)
            update = {SESSION_STATE_KEY: step.session_id, "messages": [message]}
            return Command(update=update), step
        return text, step

    def _run(
        self,
        instruction: str,
        machine_id: str | None = None,
        runtime: Any = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[Any, Any]:
        machine = self._machine(machine_id, runtime)
        client = self.get_client()
        known = self._created(runtime)
        with _tool_errors(ValueError):
            screen = self._capture(client, machine)
            key = _key(runtime, {"tool": self.name, "instruction": instruction})
            session_id = known
            for attempt in range(2):
                if session_id is None:
                    session_id = client.sessions.create(
                        max_trajectory_length=self.max_trajectory_length,
                        screen_width=_session_size(screen)[0],
                        screen_height=_session_size(screen)[1],
                        idempotency_key=_session_key(runtime) if attempt == 0 else None,
                    ).session_id
                try:
                    step = client.sessions.predict(
                        session_id, screen, instruction, idempotency_key=key
                    )
                    break
                except NotFoundError:  # expired or deleted: a new session
                    if attempt:
                        raise
                    session_id, key = None, None
        return self._finish(step, runtime, known)

    async def _arun(
        self,
        instruction: str,
        machine_id: str | None = None,
        runtime: Any = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[Any, Any]:
        machine = await self._amachine(machine_id, runtime)
        client = self.get_async_client()
        known = self._created(runtime)
        with _tool_errors(ValueError):
            screen = await self._acapture(client, machine)
            key = _key(runtime, {"tool": self.name, "instruction": instruction})
            session_id = known
            for attempt in range(2):
                if session_id is None:
                    created = await client.sessions.create(
                        max_trajectory_length=self.max_trajectory_length,
                        screen_width=_session_size(screen)[0],
                        screen_height=_session_size(screen)[1],
                        idempotency_key=_session_key(runtime) if attempt == 0 else None,
                    )
                    session_id = created.session_id
                try:
                    step = await client.sessions.predict(
                        session_id, screen, instruction, idempotency_key=key
                    )
                    break
                except NotFoundError:
                    if attempt:
                        raise
                    session_id, key = None, None
        return self._finish(step, runtime, known)


# --- the end of a thread ------------------------------------------------------------------


def release_thread_session(state: Mapping[str, Any], client: CoastyClient) -> dict[str, Any] | None:
    """Delete the thread's Coasty session (if any); the state update that forgets it.

    A session that cannot be deleted now is logged and forgotten: it bills nothing idle and
    expires on its own after 2 hours.
    """
    session_id = state.get(SESSION_STATE_KEY)
    if not session_id:
        return None
    try:
        client.sessions.delete(session_id)
    except NotFoundError:
        pass  # expired already
    except CoastyError as exc:
        logger.warning("Could not delete Coasty session %s (it expires idle): %s", session_id, exc)
    return {SESSION_STATE_KEY: None}


async def arelease_thread_session(
    state: Mapping[str, Any], client: AsyncCoastyClient
) -> dict[str, Any] | None:
    """Async twin of ``release_thread_session``."""
    session_id = state.get(SESSION_STATE_KEY)
    if not session_id:
        return None
    try:
        await client.sessions.delete(session_id)
    except NotFoundError:
        pass  # expired already
    except CoastyError as exc:
        logger.warning("Could not delete Coasty session %s (it expires idle): %s", session_id, exc)
    return {SESSION_STATE_KEY: None}
