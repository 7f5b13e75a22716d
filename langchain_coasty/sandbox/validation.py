"""Request validation for the sandbox, following the published RunRequest, ProvisionRequest
and UpdateMachineRequest schemas.

Each check returns a ``Problem`` that names the offending field and its limit, which the
app turns into a 422 ``VALIDATION_ERROR`` (message and ``details`` both name them). The
readers of raw input (``load_json``, ``parse_count``) raise ``InvalidInput`` carrying one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

RUN_STATUSES = (
    "queued",
    "running",
    "awaiting_human",
    "succeeded",
    "failed",
    "cancelled",
    "timed_out",
)
CUA_VERSIONS = ("v1", "v3", "v4", "v5")
ON_AWAITING_HUMAN = ("pause", "fail", "cancel")
LLM_PROVIDERS = ("managed", "anthropic", "openai")
IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_\-:]{1,128}$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_JSON_DEPTH = 100
MAX_COUNT_DIGITS = 20


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation failure: which field, which limit, and a sentence naming both."""

    field: str
    limit: str
    message: str
    code: str = "VALIDATION_ERROR"

    def details(self) -> dict[str, str]:
        return {"field": self.field, "limit": self.limit}


class InvalidInput(Exception):
    """Raised by the readers of raw input; answered with ``status`` and the problem."""

    def __init__(self, problem: Problem, status: int = 422) -> None:
        super().__init__(problem.message)
        self.problem = problem
        self.status = status


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def load_json(raw: bytes) -> Any:
    """Parse a JSON body nested at most ``MAX_JSON_DEPTH`` containers deep (else a 400)."""
    deep = Problem(
        "body",
        f"at most {MAX_JSON_DEPTH} levels of nesting",
        f"The request body is nested more than {MAX_JSON_DEPTH} levels deep.",
    )
    try:
        value = json.loads(raw)
    except RecursionError:
        raise InvalidInput(deep, 400) from None
    except ValueError as exc:
        message = f"The request body is not valid JSON: {exc}."
        raise InvalidInput(Problem("body", "a JSON object", message), 400) from exc
    if isinstance(value, dict | list) and _too_deep(value, MAX_JSON_DEPTH):
        raise InvalidInput(deep, 400)
    return value


def parse_count(field: str, raw: str, low: int, high: int | None = None) -> int:
    """Read a decimal integer in ``low..high`` (no ``high``: at most 20 digits) from text."""
    limit = f"in {low}..{high}" if high is not None else f">= {low}"
    shown = repr(raw) if len(raw) <= 40 else f"{len(raw)} characters"
    # str.isdigit alone accepts "²" and other digits that int() refuses, and int() refuses
    # more than 4,300 digits.
    if raw.isascii() and raw.isdigit() and len(raw) <= MAX_COUNT_DIGITS:
        value = int(raw)
        if low <= value and (high is None or value <= high):
            return value
    if high is None:
        limit = f"{limit}, at most {MAX_COUNT_DIGITS} digits"
    problem = Problem(
        field, limit.removeprefix("in "), f"{field} must be an integer {limit} (got {shown})."
    )
    raise InvalidInput(problem)


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _string(
    body: dict[str, Any], field: str, *, min_len: int = 0, max_len: int | None, nullable: bool
) -> Problem | None:
    if field not in body:
        return None
    value = body[field]
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        kind = "a string or null" if nullable else "a string"
        return Problem(field, kind, f"{field} must be {kind}.")
    if len(value) < min_len or (max_len is not None and len(value) > max_len):
        limit = f"{min_len}..{max_len}" if max_len is not None else f">= {min_len}"
        return Problem(
            field,
            limit,
            f"{field} must be {limit} characters long (got {len(value)}).",
        )
    return None


def _integer(
    body: dict[str, Any], field: str, low: int, high: int, *, nullable: bool
) -> Problem | None:
    if field not in body:
        return None
    value = body[field]
    if value is None and nullable:
        return None
    limit = f"{low}..{high}"
    if not _is_int(value):
        return Problem(field, limit, f"{field} must be an integer in {limit}.")
    if not low <= int(value) <= high:
        return Problem(field, limit, f"{field} must be in {limit} (got {int(value)}).")
    return None


def _enum(body: dict[str, Any], field: str, allowed: tuple[str, ...]) -> Problem | None:
    if field not in body:
        return None
    if body[field] not in allowed:
        limit = "one of " + ", ".join(allowed)
        return Problem(field, limit, f"{field} must be {limit} (got {body[field]!r}).")
    return None


def _webhook_url(body: dict[str, Any]) -> Problem | None:
    problem = _string(body, "webhook_url", max_len=2048, nullable=True)
    if problem or body.get("webhook_url") is None:
        return problem
    limit = "an https URL (http is accepted for loopback hosts in the sandbox)"
    try:
        parts = urlsplit(str(body["webhook_url"]))
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return Problem("webhook_url", limit, f"webhook_url must be {limit}.")
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS:
        return None
    return Problem("webhook_url", limit, f"webhook_url must be {limit}.")


def _llm(body: dict[str, Any]) -> Problem | None:
    if "llm" not in body:
        return None
    llm = body["llm"]
    if not isinstance(llm, dict):
        return Problem("llm", "an object", "llm must be an object.")
    allowed = ("provider", "model", "grounding_model", "compaction_model", "code_agent_model")
    for key in llm:
        if key not in allowed:
            limit = "one of " + ", ".join(allowed)
            return Problem(
                f"llm.{key}",
                limit,
                f"llm.{key} is not allowed (llm accepts {limit}; "
                "send provider keys in the X-LLM-Api-Key header).",
            )
    if "provider" in llm and llm["provider"] not in LLM_PROVIDERS:
        limit = "one of " + ", ".join(LLM_PROVIDERS)
        return Problem(
            "llm.provider",
            limit,
            f"llm.provider must be {limit} (got {llm['provider']!r}).",
            code="LLM_PROVIDER_UNSUPPORTED",
        )
    for key in allowed[1:]:
        problem = _string(llm, key, min_len=1, max_len=512, nullable=True)
        if problem:
            return Problem(f"llm.{key}", problem.limit, f"llm.{problem.message}")
    return None


RUN_REQUEST_FIELDS = (
    "machine_id",
    "task",
    "cua_version",
    "instructions",
    "system_prompt",
    "model",
    "max_steps",
    "deadline_seconds",
    "on_awaiting_human",
    "awaiting_human_timeout_seconds",
    "webhook_url",
    "metadata",
    "llm",
)


def validate_run_request(body: Any) -> Problem | None:
    """Check a POST /v1/runs body against RunRequest; return the first problem found."""
    if not isinstance(body, dict):
        return Problem("body", "a JSON object", "The request body must be a JSON object.")
    for key in body:
        if key not in RUN_REQUEST_FIELDS:
            return Problem(
                str(key),
                "not allowed",
                f"Unknown field {key!r}: RunRequest does not allow additional properties "
                f"(allowed: {', '.join(RUN_REQUEST_FIELDS)}).",
            )
    for field in ("machine_id", "task"):
        if field not in body:
            return Problem(field, "required", f"{field} is required.")
    checks = (
        _string(body, "machine_id", min_len=1, max_len=128, nullable=False),
        _string(body, "task", min_len=1, max_len=16000, nullable=False),
        _enum(body, "cua_version", CUA_VERSIONS),
        _string(body, "instructions", max_len=16000, nullable=True),
        _string(body, "system_prompt", max_len=32000, nullable=True),
        _string(body, "model", max_len=None, nullable=True),
        _integer(body, "max_steps", 1, 1000, nullable=False),
        _integer(body, "deadline_seconds", 1, 86400, nullable=True),
        _enum(body, "on_awaiting_human", ON_AWAITING_HUMAN),
        _integer(body, "awaiting_human_timeout_seconds", 1, 86400, nullable=True),
        _webhook_url(body),
        _llm(body),
    )
    for problem in checks:
        if problem:
            return problem
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            return Problem("metadata", "an object or null", "metadata must be an object or null.")
        if len(metadata) > 50:
            return Problem(
                "metadata",
                "at most 50 keys",
                f"metadata must have at most 50 keys (got {len(metadata)}).",
            )
    return None


PROVISION_REQUEST_FIELDS = (
    "display_name",
    "os_type",
    "desktop_enabled",
    "cpu_cores",
    "memory_gb",
    "storage_gb",
    "restore_from_snapshot",
    "ttl_minutes",
    "metadata",
)
OS_TYPES = ("linux", "windows")
MAX_MACHINE_METADATA = 16


def _boolean(body: dict[str, Any], field: str, *, nullable: bool) -> Problem | None:
    if field not in body or (body[field] is None and nullable):
        return None
    if not isinstance(body[field], bool):
        kind = "true, false or null" if nullable else "true or false"
        return Problem(field, kind, f"{field} must be {kind}.")
    return None


def _machine_metadata(body: dict[str, Any]) -> Problem | None:
    if "metadata" not in body:
        return None
    metadata = body["metadata"]
    limit = "at most 16 entries; keys <= 64 chars, values <= 256 chars"
    if not isinstance(metadata, dict):
        return Problem("metadata", limit, "metadata must be an object of strings.")
    if len(metadata) > MAX_MACHINE_METADATA:
        return Problem(
            "metadata", limit, f"metadata must have at most 16 entries (got {len(metadata)})."
        )
    for key, value in metadata.items():
        if len(key) > 64:
            return Problem(
                "metadata", limit, f"metadata keys must be <= 64 chars (got {len(key)})."
            )
        if not isinstance(value, str) or len(value) > 256:
            return Problem(
                "metadata", limit, f"metadata[{key[:64]!r}] must be a string of <= 256 chars."
            )
    return None


def validate_provision_request(body: Any) -> Problem | None:
    """Check a POST /v1/machines body against ProvisionRequest; return the first problem."""
    if not isinstance(body, dict):
        return Problem("body", "a JSON object", "The request body must be a JSON object.")
    for key in body:
        if key not in PROVISION_REQUEST_FIELDS:
            return Problem(
                str(key),
                "not allowed",
                f"Unknown field {key!r}: ProvisionRequest does not allow additional properties "
                f"(allowed: {', '.join(PROVISION_REQUEST_FIELDS)}).",
            )
    if "display_name" not in body:
        return Problem("display_name", "required", "display_name is required.")
    checks = (
        _string(body, "display_name", min_len=1, max_len=64, nullable=False),
        _enum(body, "os_type", OS_TYPES),
        _boolean(body, "desktop_enabled", nullable=False),
        _integer(body, "cpu_cores", 1, 16, nullable=True),
        _integer(body, "memory_gb", 1, 64, nullable=True),
        _integer(body, "storage_gb", 8, 500, nullable=True),
        _boolean(body, "restore_from_snapshot", nullable=True),
        _integer(body, "ttl_minutes", 5, 10080, nullable=True),
        _machine_metadata(body),
    )
    return next((problem for problem in checks if problem), None)


def validate_update_machine_request(body: Any) -> Problem | None:
    """Check a PATCH /v1/machines/{id} body: ``ttl_minutes`` 0 (clear) or 5..10080."""
    if not isinstance(body, dict):
        return Problem("body", "a JSON object", "The request body must be a JSON object.")
    for key in body:
        if key != "ttl_minutes":
            return Problem(
                str(key), "not allowed", f"Unknown field {key!r}: send only ttl_minutes."
            )
    limit = "0 (clears the lease) or 5..10080"
    if "ttl_minutes" not in body:
        return Problem("ttl_minutes", "required", "ttl_minutes is required.")
    value: Any = body["ttl_minutes"]
    if not _is_int(value) or not (int(value) == 0 or 5 <= int(value) <= 10080):
        return Problem("ttl_minutes", limit, f"ttl_minutes must be {limit} (got {value!r}).")
    return None


def validate_resume_request(body: Any) -> Problem | None:
    """Check a POST /v1/runs/{id}/resume body against ResumeRunRequest."""
    if body is None:
        return None
    if not isinstance(body, dict):
        return Problem("body", "a JSON object", "The request body must be a JSON object.")
    for key in body:
        if key != "note":
            return Problem(
                str(key),
                "not allowed",
                f"Unknown field {key!r}: the resume body accepts only 'note'.",
            )
    return _string(body, "note", max_len=2000, nullable=True)


def validate_idempotency_key(key: str) -> Problem | None:
    """Check an Idempotency-Key value: 1..128 characters of [A-Za-z0-9_-:]."""
    if IDEMPOTENCY_KEY_RE.fullmatch(key):
        return None
    return Problem(
        "Idempotency-Key",
        "1..128 chars of [A-Za-z0-9_-:]",
        f"Idempotency-Key must be 1..128 characters of [A-Za-z0-9_-:] (got {len(key)} characters).",
    )


# -- the step-by-step endpoints: ground, predict, sessions, machine actions ---------------

PREDICT_TOOLS = (
    "click",
    "type_text",
    "key_press",
    "key_combo",
    "scroll",
    "drag",
    "move",
    "wait",
)
PREDICTED_ACTION_TYPES = (*PREDICT_TOOLS, "done", "fail")
ACTION_COMMANDS = (
    "screenshot",
    "click",
    "double_click",
    "click_with_modifiers",
    "type",
    "key_press",
    "key_combo",
    "scroll",
    "drag",
    "list_windows",
    "switch_to_window",
    "close_window",
    "minimize_window",
    "maximize_window",
    "restore_window",
    "arrange_windows",
    "move_window",
    "terminal_connect",
    "terminal_execute",
    "terminal_read",
    "terminal_clear",
    "terminal_close",
    "file_read",
    "file_exists",
    "directory_list",
    "file_write",
    "file_edit",
    "file_append",
    "file_delete",
    "directory_delete",
    "file_download",
    "file_list_downloads",
    "browser_open",
    "browser_navigate",
    "browser_click",
    "browser_type",
    "browser_get_dom",
    "browser_get_clickables",
    "browser_state",
    "browser_info",
    "browser_scroll",
    "browser_close",
    "browser_screenshot",
    "browser_wait",
    "browser_list_tabs",
    "browser_open_tab",
    "browser_close_tab",
    "browser_switch_tab",
    "browser_execute",
)
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_B64_RE = re.compile(r"^[A-Za-z0-9+/=]+$")
MAX_SCREENSHOT = 10_485_760


def _object(body: Any, name: str, fields: tuple[str, ...]) -> Problem | None:
    if not isinstance(body, dict):
        return Problem("body", "a JSON object", "The request body must be a JSON object.")
    for key in body:
        if key not in fields:
            return Problem(
                str(key),
                "not allowed",
                f"Unknown field {key!r}: {name} does not allow additional properties "
                f"(allowed: {', '.join(fields)}).",
            )
    return None


def _screenshot(body: dict[str, Any], field: str = "screenshot") -> Problem | None:
    if field not in body:
        return Problem(field, "required", f"{field} is required.")
    value = body[field]
    limit = f"base64 of 100..{MAX_SCREENSHOT} characters of [A-Za-z0-9+/=]"
    if not isinstance(value, str) or not 100 <= len(value) <= MAX_SCREENSHOT:
        size = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
        return Problem(field, limit, f"{field} must be {limit} (got {size}).")
    if not _B64_RE.fullmatch(value):
        return Problem(field, limit, f"{field} must be {limit} (other characters found).")
    return None


def _screen_size(body: dict[str, Any], *, nullable: bool) -> Problem | None:
    return _integer(body, "screen_width", 320, 3840, nullable=nullable) or _integer(
        body, "screen_height", 240, 2160, nullable=nullable
    )


def _tools(body: dict[str, Any]) -> Problem | None:
    if body.get("tools") is None:
        return None
    tools = body["tools"]
    limit = "null or 1..8 distinct names of " + ", ".join(PREDICT_TOOLS)
    if (
        not isinstance(tools, list)
        or not 1 <= len(tools) <= 8
        or any(t not in PREDICT_TOOLS for t in tools)
        or len(set(tools)) != len(tools)
    ):
        return Problem("tools", limit, f"tools must be {limit}.")
    return None


def _booleans(body: dict[str, Any], *fields: str) -> Problem | None:
    return next((p for f in fields if (p := _boolean(body, f, nullable=False))), None)


def _predicted_action(action: Any, where: str) -> Problem | None:
    problem = _object(
        action, "ActionResponse", ("action_type", "params", "description", "raw_code")
    )
    if problem:
        return Problem(f"{where}.{problem.field}", problem.limit, problem.message)
    if action.get("action_type") not in PREDICTED_ACTION_TYPES:
        limit = "one of " + ", ".join(PREDICTED_ACTION_TYPES)
        return Problem(f"{where}.action_type", limit, f"{where}.action_type must be {limit}.")
    if "params" in action and not isinstance(action["params"], dict):
        return Problem(f"{where}.params", "an object", f"{where}.params must be an object.")
    return None


def _trajectory(body: dict[str, Any]) -> Problem | None:
    if "trajectory" not in body:
        return None
    steps = body["trajectory"]
    if not isinstance(steps, list) or len(steps) > 20:
        return Problem("trajectory", "at most 20 steps", "trajectory must be at most 20 steps.")
    for n, step in enumerate(steps):
        where = f"trajectory[{n}]"
        problem = _object(step, "TrajectoryStep", ("screenshot", "actions", "reasoning"))
        problem = problem or _screenshot(step)
        if problem:
            return Problem(f"{where}.{problem.field}", problem.limit, f"{where}: {problem.message}")
        actions = step.get("actions", [])
        if not isinstance(actions, list) or len(actions) > 10:
            limit = "at most 10 actions"
            return Problem(f"{where}.actions", limit, f"{where}.actions must be {limit}.")
        for m, action in enumerate(actions):
            problem = _predicted_action(action, f"{where}.actions[{m}]")
            if problem:
                return problem
        problem = _string(step, "reasoning", max_len=16000, nullable=False)
        if problem:
            return Problem(f"{where}.reasoning", problem.limit, f"{where}: {problem.message}")
    return None


def validate_ground_request(body: Any) -> Problem | None:
    """Check a POST /v1/ground body against GroundRequest."""
    fields = ("screenshot", "element", "screen_width", "screen_height")
    problem = _object(body, "GroundRequest", fields)
    if problem:
        return problem
    if "element" not in body:
        return Problem("element", "required", "element is required.")
    return (
        _screenshot(body)
        or _string(body, "element", min_len=1, max_len=32000, nullable=False)
        or _screen_size(body, nullable=True)
    )


PREDICT_REQUEST_FIELDS = (
    "screenshot",
    "instruction",
    "cua_version",
    "model",
    "system_prompt",
    "instructions",
    "screen_width",
    "screen_height",
    "trajectory",
    "max_actions",
    "tools",
    "include_reasoning",
    "include_raw_code",
    "llm",
)


def validate_predict_request(body: Any) -> Problem | None:
    """Check a POST /v1/predict body against PredictRequest."""
    problem = _object(body, "PredictRequest", PREDICT_REQUEST_FIELDS)
    if problem:
        return problem
    if "instruction" not in body:
        return Problem("instruction", "required", "instruction is required.")
    checks = (
        _screenshot(body),
        _string(body, "instruction", min_len=1, max_len=32000, nullable=False),
        _enum(body, "cua_version", CUA_VERSIONS),
        _string(body, "model", min_len=1, max_len=512, nullable=True),
        _string(body, "system_prompt", max_len=16000, nullable=True),
        _string(body, "instructions", max_len=16000, nullable=True),
        _screen_size(body, nullable=True),
        _trajectory(body),
        _integer(body, "max_actions", 1, 10, nullable=False),
        _tools(body),
        _booleans(body, "include_reasoning", "include_raw_code"),
        _llm(body),
    )
    return next((problem for problem in checks if problem), None)


SESSION_REQUEST_FIELDS = (
    "cua_version",
    "model",
    "screen_width",
    "screen_height",
    "max_trajectory_length",
    "system_prompt",
    "instructions",
    "tools",
    "metadata",
    "llm",
)


def validate_session_request(body: Any) -> Problem | None:
    """Check a POST /v1/sessions body against CreateSessionRequest."""
    problem = _object(body, "CreateSessionRequest", SESSION_REQUEST_FIELDS)
    if problem:
        return problem
    checks = (
        _enum(body, "cua_version", CUA_VERSIONS),
        _string(body, "model", min_len=1, max_len=512, nullable=True),
        _screen_size(body, nullable=False),
        _integer(body, "max_trajectory_length", 1, 20, nullable=False),
        _string(body, "system_prompt", max_len=16000, nullable=True),
        _string(body, "instructions", max_len=16000, nullable=True),
        _tools(body),
        _llm(body),
    )
    problem = next((problem for problem in checks if problem), None)
    metadata = body.get("metadata")
    if problem or metadata is None:
        return problem
    limit = "an object of at most 32 keys and 16384 UTF-8 bytes, or null"
    if (
        not isinstance(metadata, dict)
        or len(metadata) > 32
        or len(json.dumps(metadata, ensure_ascii=False).encode()) > 16384
    ):
        return Problem("metadata", limit, f"metadata must be {limit}.")
    return None


def validate_session_predict_request(body: Any) -> Problem | None:
    """Check a POST /v1/sessions/{id}/predict body against SessionPredictRequest."""
    fields = ("screenshot", "instruction", "include_reasoning", "include_raw_code")
    problem = _object(body, "SessionPredictRequest", fields)
    if problem:
        return problem
    if "instruction" not in body:
        return Problem("instruction", "required", "instruction is required.")
    return (
        _screenshot(body)
        or _string(body, "instruction", min_len=1, max_len=32000, nullable=False)
        or _booleans(body, "include_reasoning", "include_raw_code")
    )


def validate_action_request(body: Any, where: str = "") -> Problem | None:
    """Check a POST /v1/machines/{id}/actions body (or one batch step) against ActionRequest."""
    problem = _object(body, "ActionRequest", ("command", "parameters", "timeout_ms"))
    if problem is None and "command" not in body:
        problem = Problem("command", "required", "command is required.")
    if problem is None:
        problem = _enum(body, "command", tuple(ACTION_COMMANDS))
    if problem is None and "parameters" in body:
        params = body["parameters"]
        limit = "an object of at most 1 MB as JSON"
        if not isinstance(params, dict) or len(json.dumps(params).encode()) > 1_000_000:
            problem = Problem("parameters", limit, f"parameters must be {limit}.")
    if problem is None:
        problem = _integer(body, "timeout_ms", 1000, 120000, nullable=True)
    if problem and where:
        return Problem(f"{where}.{problem.field}", problem.limit, f"{where}: {problem.message}")
    return problem


def validate_batch_request(body: Any) -> Problem | None:
    """Check a POST /v1/machines/{id}/actions/batch body against BatchActionRequest."""
    problem = _object(body, "BatchActionRequest", ("steps", "stop_on_error"))
    if problem:
        return problem
    steps = body.get("steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= 50:
        return Problem("steps", "1..50 actions", "steps must be a list of 1..50 actions.")
    for n, step in enumerate(steps):
        problem = validate_action_request(step, f"steps[{n}]")
        if problem:
            return problem
    return _boolean(body, "stop_on_error", nullable=False)
