"""Response models of the step-by-step endpoints: ground, predict, sessions and machine actions.

Tolerant like the run models (unknown fields kept). Every billed answer carries `usage`;
`replayed` and `idempotency_key` say whether a keyed call was answered from its first try.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ActionResult",
    "BatchActionResult",
    "GroundResult",
    "PredictedAction",
    "Prediction",
    "Session",
    "SessionInfo",
    "SessionMutation",
    "SessionPrediction",
    "SessionsPage",
    "Usage",
    "UsageLine",
]


class UsageLine(BaseModel):
    """One line of a call's cost breakdown (its credits sum to `credits_charged`)."""

    model_config = ConfigDict(extra="allow")

    item: str
    credits: int
    count: int | None = None


class Usage(BaseModel):
    """What one call cost (UsageInfo): tokens, credits (1 credit = 1 cent), whether billed."""

    model_config = ConfigDict(extra="allow")

    input_tokens: int = 0
    output_tokens: int = 0
    credits_charged: int = 0
    cost_cents: int = 0
    breakdown: list[UsageLine] | None = None
    billed: bool | None = None
    """False on test keys and on idempotent replays (which charge nothing)."""


class _Keyed(BaseModel):
    """The answer of a keyed call, with its key and whether it was a replay."""

    model_config = ConfigDict(extra="allow")

    request_id: str | None = None
    idempotency_key: str | None = None
    replayed: bool = False


class GroundResult(_Keyed):
    """`POST /v1/ground`: where the described element is, in the screen space echoed."""

    x: int
    y: int
    screen_width: int
    screen_height: int
    usage: Usage = Usage()


class PredictedAction(BaseModel):
    """One proposed action (ActionResponse): `action_type` and its `params`."""

    model_config = ConfigDict(extra="allow")

    action_type: str
    params: dict[str, Any] = {}
    description: str | None = None
    raw_code: str | None = None


PredictStatus = Literal["continue", "done", "fail"]


class Prediction(_Keyed):
    """`POST /v1/predict`: the next actions, and whether the task goes on, is done or failed."""

    actions: list[PredictedAction] = []
    status: str = "continue"
    raw_code: list[str] = []
    reasoning: str | None = None
    cua_version: str | None = None
    screen_width: int | None = None
    screen_height: int | None = None
    usage: Usage = Usage()

    @property
    def done(self) -> bool:
        """True when the agent says the task is finished (or failed): stop stepping."""
        return self.status in ("done", "fail")


class SessionPrediction(Prediction):
    """`POST /v1/sessions/{id}/predict`: the next actions of step `step` of the session."""

    session_id: str
    step: int = 0


class Session(_Keyed):
    """`POST /v1/sessions`: a new stateful session and when it expires (idle TTL)."""

    session_id: str
    cua_version: str | None = None
    screen_size: str | None = None
    created_at: str | None = None
    expires_at: str | None = None
    usage: Usage = Usage()


class SessionInfo(BaseModel):
    """One session of `GET /v1/sessions` or `GET /v1/sessions/{id}`."""

    model_config = ConfigDict(extra="allow")

    session_id: str
    cua_version: str | None = None
    screen_size: str | None = None
    step_count: int = 0
    created_at: str | None = None
    expires_at: str | None = None
    total_credits_used: int = 0
    request_id: str | None = None


class SessionsPage(BaseModel):
    """`GET /v1/sessions`: the active sessions of this key."""

    model_config = ConfigDict(extra="allow")

    sessions: list[SessionInfo] = []
    request_id: str | None = None


class SessionMutation(BaseModel):
    """The answer of a session delete or reset."""

    model_config = ConfigDict(extra="allow")

    status: str
    session_id: str
    request_id: str | None = None


class ActionResult(_Keyed):
    """`POST /v1/machines/{id}/actions`: whether the command worked, and what it returned."""

    machine_id: str
    command: str
    success: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    duration_ms: int = 0
    screenshot: str | None = None
    """A post-action screenshot as a data URI (browser commands), when sent."""


class BatchActionResult(_Keyed):
    """`POST /v1/machines/{id}/actions/batch`: per-step results, and whether it stopped early."""

    machine_id: str
    results: list[ActionResult] = []
    completed_count: int = 0
    failed_count: int = 0
    aborted: bool = False
