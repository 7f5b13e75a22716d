"""Response models: runs, run events, pages and idempotency lookups (machines: `_machine_models`).

Parsing is tolerant: unknown fields are kept (``extra="allow"``) and unknown event types
pass through, because Coasty adds fields within /v1 without notice.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, field_serializer

from langchain_coasty.client._machine_models import Machine, MachinesPage

__all__ = [
    "CreateResult",
    "CuaVersionInfo",
    "IdempotencyLookup",
    "Machine",
    "MachinesPage",
    "ModelInfo",
    "ModelsResponse",
    "Run",
    "RunEvent",
    "RunStatus",
    "RunsPage",
]


class RunStatus(StrEnum):
    """Lifecycle status of a run."""

    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_HUMAN = "awaiting_human"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        """True for succeeded, failed, cancelled and timed_out."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
)


class Run(BaseModel):
    """A Coasty run (RunResponse). `webhook_secret` is only set on the create response.

    `result` and `error` stay plain dicts (`run.result["..."]`); `passed`, `summary`,
    `error_code` and `error_message` read their documented fields, typed.
    """

    model_config = ConfigDict(extra="allow")

    id: str
    object: str = "agent.run"
    status: RunStatus
    machine_id: str | None = None
    task: str | None = None
    cua_version: str | None = None
    instructions: str | None = None
    max_steps: int | None = None
    on_awaiting_human: str | None = None
    steps_completed: int = 0
    credits_charged: int = 0
    cost_cents: int = 0
    credits_remaining: int | None = None
    """The wallet balance in cents after this response (its X-Credits-Remaining), when sent."""
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    awaiting_human_reason: str | None = None
    metadata: dict[str, Any] | None = None
    llm: dict[str, Any] | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    created_at: str | None = None
    started_at: str | None = None
    awaiting_human_since: str | None = None
    finished_at: str | None = None
    request_id: str | None = None

    @field_serializer("status")
    def _status_as_text(self, status: RunStatus) -> str:
        # Plain text in dumps, so checkpointers store the run without registering the enum.
        return RunStatus(status).value

    @property
    def is_terminal(self) -> bool:
        """True once the run can no longer change."""
        return RunStatus(self.status).is_terminal

    @property
    def cost_usd(self) -> float:
        """Notional cost so far in US dollars (1 credit = 1 cent)."""
        return self.cost_cents / 100

    @property
    def passed(self) -> bool | None:
        """``result.passed``: whether the agent judged the task done (None when not given)."""
        value = (self.result or {}).get("passed")
        return value if isinstance(value, bool) else None

    @property
    def summary(self) -> str | None:
        """``result.summary``: what the agent did, in its words (None when not given)."""
        return _str(self.result or {}, "summary")

    @property
    def error_code(self) -> str | None:
        """``error.code`` of a run that did not succeed (e.g. MAX_STEPS_EXCEEDED)."""
        return _str(self.error or {}, "code")

    @property
    def error_message(self) -> str | None:
        """``error.message``: why the run did not succeed, in words."""
        return _str(self.error or {}, "message")


class RunsPage(BaseModel):
    """One page of `GET /v1/runs`."""

    model_config = ConfigDict(extra="allow")

    object: str = "list"
    data: list[Run]
    has_more: bool = False
    request_id: str | None = None


class ModelInfo(BaseModel):
    """One model of `GET /v1/models`."""

    model_config = ConfigDict(extra="allow")

    id: str
    description: str | None = None


class CuaVersionInfo(BaseModel):
    """One CUA version of `GET /v1/models` (pass its `id` as a run's `cua_version`)."""

    model_config = ConfigDict(extra="allow")

    id: str
    description: str | None = None
    avg_step_time: str | None = None
    features: list[str] = []
    latest: bool = False


class ModelsResponse(BaseModel):
    """The result of `GET /v1/models`: what this key may use."""

    model_config = ConfigDict(extra="allow")

    models: list[ModelInfo] = []
    cua_versions: list[CuaVersionInfo] = []
    action_types: list[str] = []
    request_id: str | None = None


class IdempotencyLookup(BaseModel):
    """The result of `GET /v1/idempotency/{key}`: a finished call's stored result, or processing."""

    model_config = ConfigDict(extra="allow")

    status: str
    request_id: str | None = None
    result: Any = None
    original_status: int | None = None

    @property
    def is_completed(self) -> bool:
        """True when the stored result is available."""
        return self.status == "completed"


class CreateResult(BaseModel):
    """A created run, whether the server replayed an earlier create, and the key used."""

    run: Run
    replayed: bool
    idempotency_key: str


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    return value if isinstance(value, dict) else None


class RunEvent(BaseModel):
    """One event of a run's stream. Accessors return None when a field is absent."""

    model_config = ConfigDict(extra="allow")

    seq: int
    type: str
    data: dict[str, Any] = {}
    ts: float | None = None

    @property
    def is_done(self) -> bool:
        """True for the final `done` event."""
        return self.type == "done"

    @property
    def status(self) -> str | None:
        """New status (status event) or final status (done event)."""
        return _str(self.data, "status")

    @property
    def previous_status(self) -> str | None:
        """Status before a status change."""
        return _str(self.data, "previous")

    @property
    def text(self) -> str | None:
        """Text of a text or reasoning event."""
        return _str(self.data, "text")

    @property
    def step(self) -> int | None:
        """Step number of a step, tool_call or tool_result event."""
        return _int(self.data, "step")

    @property
    def steps_completed(self) -> int | None:
        """Steps completed so far."""
        return _int(self.data, "steps_completed")

    @property
    def max_steps(self) -> int | None:
        """The run's step cap (step event)."""
        return _int(self.data, "max_steps")

    @property
    def summary(self) -> str | None:
        """One-line summary of a step."""
        return _str(self.data, "summary")

    @property
    def tool_call_id(self) -> str | None:
        """Id of a tool_call / tool_result pair."""
        return _str(self.data, "id")

    @property
    def action(self) -> str | None:
        """Action of a tool_call (click, type, navigate, ...)."""
        return _str(self.data, "action")

    @property
    def args(self) -> dict[str, Any] | None:
        """Arguments of a tool_call."""
        return _dict(self.data, "args")

    @property
    def ok(self) -> bool | None:
        """Whether a tool_result succeeded."""
        value = self.data.get("ok")
        return value if isinstance(value, bool) else None

    @property
    def output(self) -> str | None:
        """Output of a tool_result."""
        return _str(self.data, "output")

    @property
    def credits(self) -> int | None:
        """Credits of this billing event."""
        return _int(self.data, "credits")

    @property
    def credits_charged(self) -> int | None:
        """Total credits charged so far (billing, awaiting_human)."""
        return _int(self.data, "credits_charged")

    @property
    def cost_cents(self) -> int | None:
        """Total notional cost so far in cents (billing)."""
        return _int(self.data, "cost_cents")

    @property
    def reason(self) -> str | None:
        """Why the agent needs a human (awaiting_human)."""
        return _str(self.data, "reason")

    @property
    def question(self) -> str | None:
        """What the agent asks the human (awaiting_human)."""
        return _str(self.data, "question")

    @property
    def note(self) -> str | None:
        """The note a run was resumed with (resumed)."""
        return _str(self.data, "note")

    @property
    def result(self) -> dict[str, Any] | None:
        """Final result (done)."""
        return _dict(self.data, "result")

    @property
    def error(self) -> dict[str, Any] | None:
        """Error payload: the error event itself, or `data.error` of done."""
        if self.type == "error":
            return self.data
        return _dict(self.data, "error")

    @property
    def code(self) -> str | None:
        """Error code (error event)."""
        return _str(self.data, "code")

    @property
    def message(self) -> str | None:
        """Error message (error event)."""
        return _str(self.data, "message")
