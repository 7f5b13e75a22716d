"""``CoastyComputerTool`` and ``CoastyToolkit``: Coasty as tools for an LLM planner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from typing import Annotated, Any, ClassVar, Literal

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.messages.content import create_image_block
from langchain_core.runnables import ensure_config
from langchain_core.tools import BaseTool, BaseToolkit, InjectedToolArg, ToolException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from langchain_coasty._engine.drivers import drive_async, drive_sync
from langchain_coasty._engine.machine_call import (
    CheckedCall,
    amachine_for_call,
    check_call,
    machine_for_call,
    record_usage,
)
from langchain_coasty._engine.session import FollowedRun, RunSession
from langchain_coasty._engine.settings import CoastySettings
from langchain_coasty._engine.steps import call_steps, stream_steps
from langchain_coasty._tool_base import _CoastyTool, _tool_errors
from langchain_coasty.client import ConflictError, Run, RunStatus, Screenshot
from langchain_coasty.machines import MachineLease
from langchain_coasty.screens import ScreenLimits, ScreenPayload, bound, limits_of
from langchain_coasty.step_tools import CoastyActTool, CoastyGroundTool, CoastyNextActionTool

__all__ = [
    "CoastyCancelRunTool",
    "CoastyComputerTool",
    "CoastyGetRunTool",
    "CoastyResumeRunTool",
    "CoastyScreenshotTool",
    "CoastyToolkit",
]

_RESULT_CHARS = 1500


class ComputerTaskInput(BaseModel):
    """Arguments of ``coasty_computer`` when the developer fixed the machine."""

    task: str = Field(
        description="The complete task for the computer-use agent, in plain language, with "
        "every detail it needs (sites, names, values, what to return)."
    )
    instructions: str | None = Field(
        default=None, description="Optional extra guidance on how to do the task."
    )
    runtime: Annotated[Any, InjectedToolArg] = None


class ComputerTaskMachineInput(ComputerTaskInput):
    """Arguments of ``coasty_computer`` when the LLM picks the machine."""

    machine_id: str = Field(description="Id of the Coasty machine to run the task on.")


class RunIdInput(BaseModel):
    """A run to look at or stop."""

    run_id: str = Field(description="The Coasty run id (from an earlier tool result).")


class ResumeRunInput(BaseModel):
    """An answer to a paused run."""

    run_id: str = Field(description="The paused Coasty run id.")
    note: str | None = Field(
        default=None,
        description="The answer for the agent (e.g. the code, the approval, what to do next).",
    )


class ScreenshotInput(BaseModel):
    """Arguments of ``coasty_screenshot`` when the LLM picks the machine."""

    machine_id: str = Field(description="Id of the Coasty machine to look at.")


class NoInput(BaseModel):
    """Arguments of ``coasty_screenshot`` when the developer fixed the machine (none)."""


class CoastyComputerTool(_CoastyTool):
    """Delegates a desktop or browser task to Coasty's computer-use agent.

    Setup:
        Install ``langchain-coasty`` (with ``[langgraph]`` for agents) and set your key:

        .. code-block:: bash

            pip install -U "langchain-coasty[langgraph]"
            export COASTY_API_KEY="sk-coasty-test-..."

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyComputerTool

            tool = CoastyComputerTool(machine_id="m-123", max_steps=40, max_cost_usd=2.0)

    Invocation:
        .. code-block:: python

            tool.invoke({"task": "Export the Q3 sales report from the CRM as CSV"})

            # as a tool call (what an agent does): returns a ToolMessage with the Run
            # (and a compact event log) as artifact
            msg = tool.invoke({"type": "tool_call", "id": "call_1", "name": "coasty_computer",
                               "args": {"task": "Export the Q3 sales report"}})
            msg.artifact.status

        With an agent (pauses for a person become LangGraph interrupts):

        .. code-block:: python

            from langchain.agents import create_agent
            from langgraph.checkpoint.memory import InMemorySaver

            agent = create_agent(model, [tool], checkpointer=InMemorySaver())

    The content is a short summary for the LLM (status, result, steps, cost, run id);
    failed, timed-out and cancelled runs and API errors raise ``ToolException`` (returned
    to the LLM as an error message, with the error code and suggestion). Pauses follow
    ``on_awaiting_human``; events follow ``langchain_coasty.callbacks``.

    ``wait="durable"`` (with ``webhook_url``) creates the run and pauses the graph at once
    with a ``coasty_wait`` interrupt, holding no stream while the run works; a webhook
    receiver wakes the thread with ``langchain_coasty.durable.resume_from_webhook`` and the
    tool then returns the same content and artifact as with ``wait="stream"``.
    """

    name: str = "coasty_computer"
    description: str = (
        "Do a task on a real computer (desktop apps and web browser) with Coasty's "
        "computer-use agent: it clicks, types and navigates until the task is done, then "
        "reports the result. Use it for anything that needs a GUI or a logged-in website. "
        "Give one complete, self-contained task."
    )
    args_schema: Any = None

    @model_validator(mode="after")
    def _pick_schema(self) -> CoastyComputerTool:
        if self.args_schema is None:
            fixed = self.machine_id is not None or self.machine is not None
            self.args_schema = ComputerTaskInput if fixed else ComputerTaskMachineInput
        return self

    def _given(self, task: str, machine_id: str | None) -> dict[str, Any]:
        given: dict[str, Any] = {"task": task}
        if machine_id and self.machine_id is None and self.machine is None:
            given["machine_id"] = machine_id
        return given

    def _session(
        self,
        task: str,
        machine_id: str | None,
        instructions: str | None,
        runtime: Any,
        lease: MachineLease | None = None,
    ) -> RunSession:
        given = self._given(task, machine_id)
        if lease is not None:
            given["machine_id"] = lease.machine_id
        # Only input problems become tool errors here: an invalid answer to a pause must
        # reach LangGraph untouched so that the interrupt can be answered again.
        with _tool_errors(ValueError):
            session = RunSession.for_call(
                self,
                given,
                ensure_config(),
                runtime=runtime,
                action_name=self.name,
                extra_instructions=instructions,
            )
        session.lease = lease
        return session

    def _checked(self, task: str, instructions: str | None, runtime: Any) -> CheckedCall | None:
        """Under a ``machine=`` policy, the call checked before its machine is made."""
        if self.machine is None:
            return None
        with _tool_errors(ValueError):
            return check_call(
                self,
                self._given(task, None),
                ensure_config(),
                runtime=runtime,
                extra_instructions=instructions,
            )

    def _run(
        self,
        task: str,
        machine_id: str | None = None,
        instructions: str | None = None,
        runtime: Any = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, Run]:
        checked = self._checked(task, instructions, runtime)
        if checked is None:
            session = self._session(task, machine_id, instructions, runtime)
        callbacks = run_manager.get_child() if run_manager else None
        with _tool_errors(), machine_for_call(self, checked, ensure_config()) as lease:
            if lease is not None:
                session = self._session(task, None, instructions, runtime, lease)
            for _ in drive_sync(session, call_steps(session), self.get_client(), callbacks):
                pass
        assert session.result is not None
        record_usage(session.result, lease)
        return run_result(session.result)

    async def _arun(
        self,
        task: str,
        machine_id: str | None = None,
        instructions: str | None = None,
        runtime: Any = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, Run]:
        checked = self._checked(task, instructions, runtime)
        if checked is None:
            session = self._session(task, machine_id, instructions, runtime)
        callbacks = run_manager.get_child() if run_manager else None
        with _tool_errors():
            async with amachine_for_call(self, checked, ensure_config()) as lease:
                if lease is not None:
                    session = self._session(task, None, instructions, runtime, lease)
                client = self.get_async_client()
                follow = drive_async(session, call_steps(session), client, callbacks)
                async with aclosing(follow) as events:
                    async for _ in events:
                        pass
        assert session.result is not None
        record_usage(session.result, lease)
        return run_result(session.result)


class _RunByIdTool(_CoastyTool):
    """Shared base of the tools that call one ``client.runs`` method with a run id."""

    args_schema: Any = RunIdInput
    verb: ClassVar[Literal["get", "cancel"]]
    prefix: ClassVar[str] = ""

    def _run(
        self, run_id: str, run_manager: CallbackManagerForToolRun | None = None
    ) -> tuple[str, Run]:
        with _tool_errors():
            run: Run = getattr(self.get_client().runs, self.verb)(run_id)
        return self.prefix + describe_run(run), run

    async def _arun(
        self, run_id: str, run_manager: AsyncCallbackManagerForToolRun | None = None
    ) -> tuple[str, Run]:
        with _tool_errors():
            run: Run = await getattr(self.get_async_client().runs, self.verb)(run_id)
        return self.prefix + describe_run(run), run


class CoastyGetRunTool(_RunByIdTool):
    """Looks up a Coasty run: status, progress, cost, result.

    Setup:
        Part of ``CoastyToolkit``; needs ``COASTY_API_KEY``.

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyGetRunTool

            get_run = CoastyGetRunTool()

    Invocation:
        .. code-block:: python

            get_run.invoke({"run_id": "8f0c..."})
    """

    name: str = "coasty_get_run"
    description: str = "Get the current status, progress, cost and result of a Coasty run."
    verb: ClassVar[Literal["get", "cancel"]] = "get"


class CoastyCancelRunTool(_RunByIdTool):
    """Stops a Coasty run (queued, running or paused); billing stops with it.

    Setup:
        Part of ``CoastyToolkit``; needs ``COASTY_API_KEY``.

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyCancelRunTool

            cancel_run = CoastyCancelRunTool()

    Invocation:
        .. code-block:: python

            cancel_run.invoke({"run_id": "8f0c..."})
    """

    name: str = "coasty_cancel_run"
    description: str = "Cancel a Coasty run that is queued, running or waiting for an answer."
    verb: ClassVar[Literal["get", "cancel"]] = "cancel"
    prefix: ClassVar[str] = "Cancelled. "


class CoastyResumeRunTool(_CoastyTool):
    """Answers a paused Coasty run, then follows it to its end or its next pause.

    Setup:
        Part of ``CoastyToolkit``; needs ``COASTY_API_KEY``.

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyResumeRunTool

            resume_run = CoastyResumeRunTool()

    Invocation:
        .. code-block:: python

            resume_run.invoke({"run_id": "8f0c...", "note": "The code is 481516"})

    A further pause is handed back the same way (``on_awaiting_human="return"``), so the
    planner can answer it with this tool again. Events already delivered by this process
    for the run are not delivered again.
    """

    name: str = "coasty_resume_run"
    description: str = (
        "Answer a Coasty run that is waiting for a person (status awaiting_human) and let "
        "it continue; returns when the run finishes or needs another answer."
    )
    args_schema: Any = ResumeRunInput

    def _run(
        self,
        run_id: str,
        note: str | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, Run]:
        client = self.get_client()
        session = self._follower()
        callbacks = run_manager.get_child() if run_manager else None
        with _tool_errors(), _not_paused(run_id):
            run = client.runs.resume(run_id, note=note)
            for _ in drive_sync(session, stream_steps(session, run), client, callbacks):
                pass
        assert session.result is not None
        return run_result(session.result)

    async def _arun(
        self,
        run_id: str,
        note: str | None = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, Run]:
        client = self.get_async_client()
        session = self._follower()
        callbacks = run_manager.get_child() if run_manager else None
        with _tool_errors(), _not_paused(run_id):
            run = await client.runs.resume(run_id, note=note)
            follow = drive_async(session, stream_steps(session, run), client, callbacks)
            async with aclosing(follow) as events:
                async for _ in events:
                    pass
        assert session.result is not None
        return run_result(session.result)

    def _follower(self) -> RunSession:
        """A session that hands a further pause back (unless the policy is a callable)."""
        settings: CoastySettings = self
        if self.on_awaiting_human in ("interrupt", "return"):
            settings = CoastySettings(**{**self.settings_dict(), "on_awaiting_human": "return"})
            self.share_clients_with(settings)
        return RunSession.for_existing(settings, ensure_config(), action_name=self.name)


class CoastyScreenshotTool(_CoastyTool):
    """Shows a vision planner the machine's screen now, as a LangChain image content block.

    Setup:
        Part of ``CoastyToolkit``; needs ``COASTY_API_KEY`` and a chat model that reads images.

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyScreenshotTool

            screenshot = CoastyScreenshotTool(machine_id="m-123")

    Invocation:
        .. code-block:: python

            msg = screenshot.invoke({"type": "tool_call", "id": "call_1",
                                     "name": "coasty_screenshot", "args": {}})
            msg.content[1]  # {"type": "image", "base64": "...", "mime_type": "image/jpeg"}

    The ToolMessage content is a text block and an image block (bounded by ``screens``, 1280
    px wide and 200 KB by default); the artifact is the screen's details without the bytes.
    """

    name: str = "coasty_screenshot"
    description: str = (
        "Look at a Coasty machine's screen right now: returns a picture of it. Use it to see "
        "where things stand before delegating a task, or to check a result afterwards."
    )
    args_schema: Any = None

    @model_validator(mode="after")
    def _pick_schema(self) -> CoastyScreenshotTool:
        if self.args_schema is None:
            self.args_schema = NoInput if self.machine_id is not None else ScreenshotInput
        return self

    def _target(self, machine_id: str | None) -> str:
        target = self.machine_id or machine_id
        if not target:
            raise ToolException("coasty_screenshot needs a machine_id.")
        return target

    def _run(
        self, machine_id: str | None = None, run_manager: CallbackManagerForToolRun | None = None
    ) -> tuple[list[dict[str, Any]], ScreenPayload]:
        target = self._target(machine_id)
        with _tool_errors():
            shot = self.get_client().machines.screenshot(target)
        return screen_content(shot, limits_of(self.screens) or ScreenLimits())

    async def _arun(
        self,
        machine_id: str | None = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[list[dict[str, Any]], ScreenPayload]:
        target = self._target(machine_id)
        with _tool_errors():
            shot = await self.get_async_client().machines.screenshot(target)
        return screen_content(shot, limits_of(self.screens) or ScreenLimits())


def screen_content(
    shot: Screenshot, limits: ScreenLimits
) -> tuple[list[dict[str, Any]], ScreenPayload]:
    """ToolMessage content (a text and an image block) and artifact for one screenshot."""
    screen = bound(
        shot.image,
        mime_type=shot.mime_type,
        width=shot.width,
        height=shot.height,
        machine_id=shot.machine_id,
        captured_at=shot.captured_at,
        limits=limits,
    )
    if "data" not in screen:
        raise ToolException(f"The screen of machine {shot.machine_id}: {screen['omitted']}")
    details: ScreenPayload = {k: v for k, v in screen.items() if k != "data"}  # type: ignore[assignment]
    text = (
        f"The screen of machine {shot.machine_id} at {shot.captured_at or 'now'} "
        f"({screen['width']}x{screen['height']} px)."
    )
    image = create_image_block(base64=screen["data"], mime_type=screen["mime_type"])
    return [{"type": "text", "text": text}, dict(image)], details


class CoastyToolkit(BaseToolkit, CoastySettings):
    """The Coasty tools for a planner: run a task, look at, answer and cancel runs, see the screen.

    Setup:
        .. code-block:: bash

            pip install -U "langchain-coasty[langgraph]"
            export COASTY_API_KEY="sk-coasty-test-..."

    Instantiation:
        .. code-block:: python

            from langchain_coasty import CoastyToolkit

            toolkit = CoastyToolkit(machine_id="m-123", on_awaiting_human="return")
            tools = toolkit.get_tools()
            # coasty_computer, coasty_get_run, coasty_resume_run, coasty_cancel_run,
            # coasty_screenshot

    Invocation:
        .. code-block:: python

            agent = create_agent(model, toolkit.get_tools(), checkpointer=InMemorySaver())

    With ``on_awaiting_human="return"`` a pause comes back to the planner as the tool
    result, and the planner answers it with ``coasty_resume_run``. With ``step_tools=True``
    it also has ``coasty_ground``, ``coasty_act`` and ``coasty_next_action``, for a planner
    that drives the machine itself, step by step (``approve_text`` is ``coasty_act``'s).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    step_tools: bool = False
    """Also the step-by-step tools: ground, act, next action."""
    approve_text: bool = False
    """``coasty_act`` asks a person before it types text (a LangGraph interrupt)."""

    def get_tools(self) -> list[BaseTool]:
        """The tools, sharing this toolkit's settings and clients (sync and async)."""
        settings = self.settings_dict()
        if settings["client"] is None:
            settings["client"] = self.get_client()
        tools: list[_CoastyTool] = [
            CoastyComputerTool(**settings),
            CoastyGetRunTool(**settings),
            CoastyResumeRunTool(**settings),
            CoastyCancelRunTool(**settings),
            CoastyScreenshotTool(**settings),
        ]
        if self.step_tools:
            tools += [
                CoastyGroundTool(**settings),
                CoastyActTool(**settings, approve_text=self.approve_text),
                CoastyNextActionTool(**settings),
            ]
        for tool in tools:
            self.share_clients_with(tool)
        return list(tools)


# --- what the LLM reads -----------------------------------------------------------------


def describe_run(run: Run) -> str:
    """One compact paragraph about a run."""
    parts = [f"Coasty run {run.id} is {RunStatus(run.status).value}"]
    parts.append(f"after {run.steps_completed} steps (cost ${run.cost_usd:.2f})")
    text = " ".join(parts) + "."
    if run.status == RunStatus.AWAITING_HUMAN and run.awaiting_human_reason:
        text += f" It is waiting for a person: {run.awaiting_human_reason}."
    if run.result:
        text += f" Result: {_short(run.result)}"
    if run.error:
        text += f" Error: {_short(run.error)}"
    return text


def run_result(run: FollowedRun) -> tuple[str, Run]:
    """Content and artifact for a followed run; raise ``ToolException`` when it did not succeed."""
    content, artifact = _run_result(run)
    if run.machine is not None:
        content = f"{content} {run.machine.describe()}"
    return content, artifact


def _run_result(run: FollowedRun) -> tuple[str, Run]:
    reason, note = run.stop_reason, run.stop_note
    status = RunStatus(run.status)
    cost = f"${run.cost_usd:.2f}"
    if reason == "awaiting_human" and status == RunStatus.AWAITING_HUMAN:
        question = _last_question(run.event_log) or run.awaiting_human_reason
        question = (question or "see the run").rstrip(".")
        return (
            f"Coasty run {run.id} is paused and needs an answer: {question}. "
            f"{run.steps_completed} steps so far ({cost}). Answer it with coasty_resume_run "
            f'(run_id="{run.id}", note="<the answer>"), or stop it with coasty_cancel_run '
            f'(run_id="{run.id}").',
            run,
        )
    if reason == "budget_exceeded" and status == RunStatus.CANCELLED:
        return (
            f"Coasty run {run.id} {note}; the run was cancelled after {run.steps_completed} "
            f"steps." + (f" Partial result: {_short(run.result)}" if run.result else ""),
            run,
        )
    if status == RunStatus.SUCCEEDED:
        result = _short(run.result) if run.result else "(no result data)"
        return (
            f"Coasty run {run.id} succeeded in {run.steps_completed} steps ({cost}). "
            f"Result: {result}",
            run,
        )
    error = run.error or {}
    if status == RunStatus.TIMED_OUT and _pause_expired(run, error):
        question = _last_question(run.event_log) or run.awaiting_human_reason
        asked = f" ({question.rstrip('.')})" if question else ""
        raise ToolException(
            f"Coasty run {run.id} timed out waiting for a person: nobody answered its "
            f"pause{asked} within its awaiting_human_timeout_seconds, so the run ended after "
            f"{run.steps_completed} steps ({cost}) and an answer given now cannot reach it. "
            "Start a new run if the task still needs doing."
        )
    code = error.get("code") or status.value.upper()
    message = error.get("message") or note or ""
    text = f"Coasty run {run.id} {status.value} after {run.steps_completed} steps ({cost})"
    text += f": {code}" + (f": {message}" if message else "")
    if note and note not in text:
        text += f" ({note})"
    if error.get("suggestion"):
        text += f" Suggestion: {error['suggestion']}"
    if run.ended_before_call:
        text += (
            " This tool call's run had already ended: a retry of the same tool call reports "
            "that run again rather than start a second one; make a new tool call to try again."
        )
    raise ToolException(text)


@contextmanager
def _not_paused(run_id: str) -> Iterator[None]:
    """Say so when a resume finds the run not waiting for an answer."""
    try:
        yield
    except ConflictError as exc:
        raise ToolException(
            f"Coasty run {run_id} is not waiting for an answer ({exc.code}: {exc.message}). "
            "Use coasty_get_run to see its status."
        ) from exc


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _RESULT_CHARS else text[:_RESULT_CHARS] + "..."


def _pause_expired(run: FollowedRun, error: dict[str, Any]) -> bool:
    """Whether a timed-out run ended because its pause was not answered in time."""
    if error.get("code") == "AWAITING_HUMAN_TIMEOUT":
        return True
    # A server that names it otherwise: the run's last step was a pause.
    steps = [e["type"] for e in run.event_log if e.get("type") not in ("error", "status", "done")]
    return bool(steps) and steps[-1] == "awaiting_human" and error.get("code") is None


def _last_question(log: list[dict[str, Any]]) -> str | None:
    for entry in reversed(log):
        if entry.get("type") == "awaiting_human" and entry.get("detail"):
            return str(entry["detail"])
    return None
