"""The records the engine keeps: the server settings, one run, one keyed create.

Plain state with no transitions of its own; ``engine`` owns every change to them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

from langchain_coasty.sandbox.scenarios import Plan

_CHOICES: dict[str, tuple[str, ...]] = {
    "event_framing": ("envelope", "flat"),
    "webhook_body": ("envelope", "flat"),
    "pause_event_detail": ("full", "reason", "bare"),
    "id_style": ("uuid", "live"),
}


@dataclass(slots=True)
class SandboxConfig:
    """Server settings changeable at runtime with ``POST /_sandbox/config``.

    Beyond the published OpenAPI, the sandbox can behave the way Coasty's docs, cookbook and
    live API do: ``event_framing`` ``"flat"`` sends ``id: <seq>``, ``event: <type>`` and the
    payload itself on ``data:`` (``"envelope"``: ``data: {seq, type, data, ts}``);
    ``end_stream_at_pause`` ends a paused run's stream cleanly, without ``done``, once it has
    sent everything up to the pause (and at once on a reconnect while the run is paused);
    ``pause_event_detail`` is what an ``awaiting_human`` event says: ``"full"`` (reason,
    question, kind, counters), ``"reason"`` (``{reason}``, the cookbook mock's) or ``"bare"``
    (neither reason nor question: only the run's ``awaiting_human_reason`` has it).
    ``error_flags`` false sends error envelopes without ``retryable`` and
    ``retry_with_same_idempotency_key`` (the prose docs' envelope); ``request_id_header`` false
    drops ``X-Coasty-Request-Id`` (as some live responses do); ``rate_limit_headers`` adds
    ``x-ratelimit-limit``/``-remaining``/``-reset`` (a Unix time) to every /v1 response;
    ``credits_headers`` sends a run's cost as ``X-Credits-Charged``/``X-Credits-Remaining``
    instead of ``credits_charged``/``cost_cents`` in its body.
    """

    pace: float = 0.0
    heartbeat_interval: float = 15.0
    rotation_seconds: float = 300.0
    webhook_retry_base: float = 1.0
    webhook_max_attempts: int = 5
    webhook_timeout: float = 5.0
    max_body_bytes: int = 1_048_576
    image_body_bytes: int = 16_777_216
    """The body limit of the calls that carry screenshots (ground, predict, session predict)."""
    webhook_body: str = "envelope"
    """Delivery body: ``envelope`` ``{id, type, created, data}`` or ``flat`` (Coasty's
    cookbook mock: ``{event, run_id, status, result, error, awaiting_human_reason,
    created_at}``)."""
    idempotency_lookup: bool = True
    """Serve ``GET /v1/idempotency/{key}`` (off: the route does not exist, a 404)."""
    event_framing: str = "envelope"
    end_stream_at_pause: bool = False
    pause_event_detail: str = "full"
    id_style: str = "uuid"
    """Run ids as UUIDs (the OpenAPI's examples) or ``live``: ``run_<hex>`` and machines
    ``mch_test_<hex>``, as the live API mints them (machine ids are fixed at start)."""
    error_flags: bool = True
    request_id_header: bool = True
    rate_limit_headers: bool = False
    credits_headers: bool = False
    machine_phase_seconds: float = 0.1
    """How long (sandbox seconds) each transient machine phase lasts: creating, provisioning
    and starting (a boot takes three), stopping, restarting."""

    def update(self, values: dict[str, Any]) -> None:
        """Apply known settings; raises ValueError on an unknown name or a bad value."""
        names = {f.name for f in fields(self)}
        for name, value in values.items():
            if name not in names:
                raise ValueError(f"unknown setting {name!r}; allowed: {sorted(names)}")
            _check_setting(name, getattr(self, name), value)
        for name, value in values.items():
            current = getattr(self, name)
            if isinstance(current, bool | str):
                setattr(self, name, value)
            else:
                setattr(self, name, int(value) if isinstance(current, int) else float(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_setting(name: str, current: object, value: object) -> None:
    """Raise ValueError unless ``value`` suits setting ``name`` (whose value is ``current``)."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
    elif isinstance(current, str):
        if value not in _CHOICES[name]:
            raise ValueError(f"{name} must be one of {', '.join(_CHOICES[name])}")
    elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0")


def iso(ts: float | None) -> str | None:
    """A Unix time as the API writes timestamps (ISO 8601, UTC, microseconds)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SandboxRun:
    """The sandbox's record of one run: its request, its state, and its event frames."""

    __slots__ = (
        "_changed",
        "awaiting_human_reason",
        "awaiting_human_since",
        "awaiting_human_timeout_seconds",
        "closed",
        "created_at",
        "credits_charged",
        "cua_version",
        "deadline_handle",
        "deadline_seconds",
        "driver",
        "dropped",
        "error",
        "finished_at",
        "frames",
        "id",
        "instructions",
        "key_kind",
        "llm",
        "machine_id",
        "max_steps",
        "metadata",
        "model",
        "on_awaiting_human",
        "plan",
        "result",
        "resume_waiter",
        "started_at",
        "status",
        "steps_completed",
        "system_prompt",
        "task",
        "webhook_secret",
        "webhook_url",
    )

    def __init__(
        self,
        body: dict[str, Any],
        key_kind: str,
        llm: dict[str, Any] | None,
        *,
        id_style: str = "uuid",
    ) -> None:
        self.id = f"run_{uuid.uuid4().hex[:24]}" if id_style == "live" else str(uuid.uuid4())
        self.key_kind = key_kind
        self.machine_id: str = body["machine_id"]
        self.task: str = body["task"]
        self.cua_version: str = body.get("cua_version", "v5")
        self.instructions: str | None = body.get("instructions")
        self.system_prompt: str | None = body.get("system_prompt")
        self.model: str | None = body.get("model")
        self.max_steps = int(body.get("max_steps", 50))
        deadline = body.get("deadline_seconds")
        self.deadline_seconds = int(deadline) if deadline is not None else None
        self.on_awaiting_human: str = body.get("on_awaiting_human", "pause")
        wait = body.get("awaiting_human_timeout_seconds")
        self.awaiting_human_timeout_seconds = int(wait) if wait is not None else None
        self.webhook_url: str | None = body.get("webhook_url")
        self.webhook_secret = f"whsec_{secrets.token_hex(24)}" if self.webhook_url else None
        self.metadata: dict[str, Any] | None = body.get("metadata")
        self.llm = llm
        self.status = "queued"
        self.steps_completed = 0
        self.credits_charged = 0
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.awaiting_human_reason: str | None = None
        self.created_at = time.time()
        self.started_at: float | None = None
        self.awaiting_human_since: float | None = None
        self.finished_at: float | None = None
        self.frames: list[bytes] = []
        self.closed = False
        self.dropped = False
        self.driver: asyncio.Task[None] | None = None
        self.deadline_handle: asyncio.TimerHandle | None = None
        self.resume_waiter: asyncio.Future[str | None] | None = None
        self.plan: Plan | None = None
        self._changed: asyncio.Event | None = None

    def notify(self) -> None:
        """Wake every stream waiting on this run."""
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    async def wait_changed(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()

    def to_json(self, request_id: str | None, *, include_secret: bool = False) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "agent.run",
            "status": self.status,
            "machine_id": self.machine_id,
            "task": self.task,
            "cua_version": self.cua_version,
            "instructions": self.instructions,
            "max_steps": self.max_steps,
            "deadline_seconds": self.deadline_seconds,
            "on_awaiting_human": self.on_awaiting_human,
            "awaiting_human_timeout_seconds": self.awaiting_human_timeout_seconds,
            "steps_completed": self.steps_completed,
            "credits_charged": self.credits_charged,
            "cost_cents": self.credits_charged,
            "result": self.result,
            "error": self.error,
            "awaiting_human_reason": self.awaiting_human_reason,
            "metadata": self.metadata,
            "llm": dict(self.llm) if self.llm is not None else None,
            "webhook_url": self.webhook_url,
            "webhook_secret": self.webhook_secret if include_secret else None,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "awaiting_human_since": iso(self.awaiting_human_since),
            "finished_at": iso(self.finished_at),
            "request_id": request_id,
        }


@dataclass(slots=True)
class IdempotencyRecord:
    """What a keyed create left behind: processing, or the original response to replay."""

    kind: str
    key: str
    body_hash: str
    request_id: str
    status: Literal["processing", "completed"] = "processing"
    original_status: int | None = None
    body: bytes | None = None


def body_hash(body: Any) -> str:
    """The digest that tells a repeat of a keyed create from another body (key order ignored)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
