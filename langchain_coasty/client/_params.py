"""Request parameters, checked client-side against the documented limits.

A bad value raises `InvalidRequestError` naming the field and its limit before anything
is sent, so a mistake costs no request, no credit and no idempotency key.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticSerializationError

from langchain_coasty.client._errors import InvalidRequestError
from langchain_coasty.client._models import RunStatus

__all__ = [
    "LlmConfig",
    "ProvisionRequest",
    "RunRequest",
    "new_idempotency_key",
    "provision_request",
    "provision_request_body",
    "run_request",
    "run_request_body",
]

_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_\-:]{1,128}")

# What a person (or an LLM) needs to fix a rejected value, keyed by field path.
_LIMITS: dict[str, str] = {
    "machine_id": "a string of 1..128 characters",
    "task": "a string of 1..16000 characters",
    "cua_version": "one of v1, v3, v4, v5",
    "instructions": "a string of at most 16000 characters, or null",
    "system_prompt": "a string of at most 32000 characters, or null",
    "model": "a string, or null",
    "max_steps": "an integer in 1..1000",
    "deadline_seconds": "an integer in 1..86400, or null",
    "on_awaiting_human": "one of pause, fail, cancel",
    "awaiting_human_timeout_seconds": "an integer in 1..86400, or null",
    "webhook_url": "an http(s) URL of at most 2048 characters (https for Coasty), or null",
    "metadata": "an object with at most 50 keys, or null",
    "llm": "an object with provider (managed, anthropic, openai) and optional model names",
    "llm.provider": "one of managed, anthropic, openai",
    "llm.model": "a string of 1..512 characters, or null",
    "llm.grounding_model": "a string of 1..512 characters, or null",
    "llm.compaction_model": "a string of 1..512 characters, or null",
    "llm.code_agent_model": "a string of 1..512 characters, or null",
    "note": "a string of at most 2000 characters, or null",
    "limit": "an integer in 1..200",
    "status": "one of " + ", ".join(RunStatus),
    "idempotency_key": "1..128 characters of [A-Za-z0-9_-:]",
    "llm_provider": "anthropic or openai (required with llm_api_key)",
    "llm_api_key": "a string of 16..512 visible ASCII characters",
    "run_id": "a non-empty string",
    "after": "an integer >= 0",
    "max_retries": "an integer >= 0",
    "timeout": "a positive number of seconds up to 1000000, or None",
    "idle_timeout": "a positive number of seconds up to 1000000, or None",
    "stream_read_timeout": "a positive number of seconds up to 1000000",
    "max_connections": "an integer >= 1, or None",
    "api_key": "a Coasty key (sk-coasty-live-... or sk-coasty-test-...): visible ASCII only",
    "base_url": "an http(s) URL of the API host, such as https://coasty.ai (a trailing /v1 "
    "is accepted), without whitespace, query or fragment",
}
# The same, for the fields of a ProvisionRequest (whose metadata has other limits).
_MACHINE_LIMITS: dict[str, str] = {
    "display_name": "a string of 1..64 characters",
    "os_type": "one of linux, windows",
    "desktop_enabled": "true or false",
    "cpu_cores": "an integer in 1..16, or None",
    "memory_gb": "an integer in 1..64, or None",
    "storage_gb": "an integer in 8..500, or None",
    "restore_from_snapshot": "true, false or None",
    "ttl_minutes": "an integer in 5..10080 (minutes), or None",
    "metadata": "at most 16 entries of string keys (<= 64 chars) and string values "
    "(<= 256 chars), or None",
}
_UPDATE_LIMITS = {"ttl_minutes": "0 (clears the lease) or an integer in 5..10080 (minutes)"}
_LIMITS.update(
    {
        "machine_status": "one of creating, provisioning, starting, running, stopping, "
        "stopped, restarting, suspended, deleting, terminated, error",
        "poll_interval": "a positive number of seconds up to 1000000, or None",
    }
)
_MAX_SECONDS = 1_000_000  # beyond this, OS timers overflow
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")

_ModelName = Field(default=None, min_length=1, max_length=512)


class LlmConfig(BaseModel):
    """Opt-in BYOK model selection (the key itself travels in a header, never in the body)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    provider: Literal["managed", "anthropic", "openai"] = "managed"
    model: str | None = _ModelName
    grounding_model: str | None = _ModelName
    compaction_model: str | None = _ModelName
    code_agent_model: str | None = _ModelName


class RunRequest(BaseModel):
    """Body of `POST /v1/runs`, mirroring the published RunRequest schema."""

    model_config = ConfigDict(extra="forbid", strict=True)

    machine_id: str = Field(min_length=1, max_length=128)
    task: str = Field(min_length=1, max_length=16000)
    cua_version: Literal["v1", "v3", "v4", "v5"] = "v5"
    instructions: str | None = Field(default=None, max_length=16000)
    system_prompt: str | None = Field(default=None, max_length=32000)
    model: str | None = None
    max_steps: int = Field(default=50, ge=1, le=1000)
    deadline_seconds: int | None = Field(default=None, ge=1, le=86400)
    on_awaiting_human: Literal["pause", "fail", "cancel"] = "pause"
    awaiting_human_timeout_seconds: int | None = Field(default=None, ge=1, le=86400)
    webhook_url: str | None = Field(default=None, max_length=2048)
    metadata: dict[str, Any] | None = Field(default=None, max_length=50)
    llm: LlmConfig | None = None


class ProvisionRequest(BaseModel):
    """Body of `POST /v1/machines`, mirroring the published ProvisionRequest schema."""

    model_config = ConfigDict(extra="forbid", strict=True)

    display_name: str = Field(min_length=1, max_length=64)
    os_type: Literal["linux", "windows"] = "linux"
    desktop_enabled: bool = False
    cpu_cores: int | None = Field(default=None, ge=1, le=16)
    memory_gb: int | None = Field(default=None, ge=1, le=64)
    storage_gb: int | None = Field(default=None, ge=8, le=500)
    restore_from_snapshot: bool | None = None
    ttl_minutes: int | None = Field(default=None, ge=5, le=10080)
    """Auto-destroy lease from creation (5 minutes to 7 days): the last line of teardown."""
    metadata: dict[str, str] | None = None


def _summarize(value: object) -> str:
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    if isinstance(value, str) and len(value) > 40:
        return f"a string of {len(value)} characters"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def invalid(
    field: str,
    value: object = None,
    *,
    problem: str | None = None,
    limits: Mapping[str, str] = _LIMITS,
) -> InvalidRequestError:
    """The error for a rejected parameter, naming the field and its limit."""
    limit = limits.get(field, "see the API reference")
    detail = problem or f"got {_summarize(value)}"
    return InvalidRequestError(
        f"Invalid parameter `{field}`: must be {limit} ({detail}).", field=field, limit=limit
    )


def _from_machine_validation_error(exc: ValidationError) -> InvalidRequestError:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "body"
    if first["type"] == "extra_forbidden":
        return InvalidRequestError(
            f"Unknown parameter `{field}`: ProvisionRequest accepts only "
            + ", ".join(ProvisionRequest.model_fields)
            + ".",
            field=field,
            limit="a documented ProvisionRequest field",
        )
    if first["type"] == "missing":
        return invalid(field, problem="missing", limits=_MACHINE_LIMITS)
    value = first.get("input") if len(first["loc"]) == 1 else None
    return invalid(field, value, limits=_MACHINE_LIMITS)


def _check_machine_metadata(metadata: object) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, Mapping):
        raise invalid("metadata", metadata, limits=_MACHINE_LIMITS)
    if len(metadata) > 16:
        raise invalid("metadata", problem=f"got {len(metadata)} entries", limits=_MACHINE_LIMITS)
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > 64:
            raise invalid("metadata", problem=f"key {_summarize(key)}", limits=_MACHINE_LIMITS)
        if not isinstance(value, str) or len(value) > 256:
            problem = f"value of {key!r} is {_summarize(value)}"
            raise invalid("metadata", problem=problem, limits=_MACHINE_LIMITS)


def provision_request(fields: Mapping[str, Any]) -> ProvisionRequest:
    """Validate ProvisionRequest fields once; `InvalidRequestError` names the field and limit."""
    _check_machine_metadata(fields.get("metadata"))
    try:
        return ProvisionRequest.model_validate(dict(fields))
    except ValidationError as exc:
        raise _from_machine_validation_error(exc) from None


def provision_request_body(request: ProvisionRequest) -> dict[str, Any]:
    """The JSON body of a validated provision request: the fields set, each JSON text."""
    if not isinstance(request, ProvisionRequest):
        raise TypeError(
            "Expected a ProvisionRequest (build one with provision_request), "
            f"not {type(request).__name__}."
        )
    body = request.model_dump(mode="json", include=request.model_fields_set)
    for name, value in body.items():
        try:
            json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except ValueError:  # a lone surrogate (UnicodeError is a ValueError)
            raise invalid(name, problem="not valid JSON text", limits=_MACHINE_LIMITS) from None
    return body


def _from_validation_error(exc: ValidationError) -> InvalidRequestError:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"] if not str(part).startswith(("function-", "lax-"))]
    # Pydantic appends the union branch / type tag (e.g. "str") to the location.
    field = ".".join(p for p in loc if p not in {"str", "int", "dict[str,any]", "LlmConfig"})
    if first["type"] == "extra_forbidden":
        if field == "llm.api_key":
            return InvalidRequestError(
                "Invalid parameter `llm.api_key`: the provider key is never sent in the body; "
                "pass it as `llm_api_key` to the client (it travels in the X-LLM-Api-Key header).",
                field=field,
                limit="not a body field",
            )
        if field in _LIMITS:
            return invalid(field, problem="unknown field")
        return InvalidRequestError(
            f"Unknown parameter `{field}`: RunRequest accepts only "
            + ", ".join(RunRequest.model_fields)
            + ".",
            field=field,
            limit="a documented RunRequest field",
        )
    if first["type"] == "missing":
        return invalid(field, problem="missing")
    return invalid(field, first.get("input"))


def run_request(fields: Mapping[str, Any]) -> RunRequest:
    """Validate RunRequest fields once; `InvalidRequestError` names the field and its limit."""
    try:
        return RunRequest.model_validate(dict(fields))
    except ValidationError as exc:
        raise _from_validation_error(exc) from None


def run_request_body(request: RunRequest) -> dict[str, Any]:
    """The JSON body of a validated request: the fields set, each checked to be JSON text."""
    if not isinstance(request, RunRequest):
        raise TypeError(
            f"Expected a RunRequest (build one with run_request), not {type(request).__name__}."
        )
    body: dict[str, Any] = {}
    for name in RunRequest.model_fields:
        if name not in request.model_fields_set:
            continue
        try:
            value = request.model_dump(mode="json", include={name})[name]
            json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (ValueError, PydanticSerializationError):  # UnicodeError is a ValueError
            raise invalid(
                name, problem="not valid JSON text (raw bytes, NaN/Infinity or a lone surrogate)"
            ) from None
        if value is None and name == "llm":
            continue  # not nullable in the API: None means "the platform default", i.e. omitted
        body[name] = value
    url = body.get("webhook_url")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise invalid("webhook_url", url)
    return body


def check_api_key(api_key: str) -> None:
    """A key must be able to travel in a header; the message never repeats it."""
    if not isinstance(api_key, str) or not _VISIBLE_ASCII.fullmatch(api_key):
        raise invalid("api_key", problem="empty, or not visible ASCII characters")


def check_base_url(base_url: object) -> str:
    """The API host without a trailing slash or ``/v1``: Coasty's docs give ``…/v1``, we add it."""
    if not isinstance(base_url, str) or not base_url:
        raise invalid("base_url", base_url)
    if any(char.isspace() for char in base_url):
        raise invalid("base_url", base_url, problem=f"holds whitespace: {base_url!r}")
    if not base_url.isprintable():
        raise invalid("base_url", base_url, problem=f"holds control characters: {base_url!r}")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("base_url", base_url, problem=f"no http(s) scheme and host: {base_url!r}")
    if parts.query or parts.fragment or base_url.endswith(("?", "#")):
        raise invalid("base_url", base_url, problem=f"has a query or fragment: {base_url!r}")
    url = base_url.rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")].rstrip("/")
    return url


def check_seconds(name: str, value: object, *, optional: bool = False) -> None:
    """A positive, finite number of seconds (or None when ``optional``)."""
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= _MAX_SECONDS
    ):
        raise invalid(name, value)


def check_max_connections(value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise invalid("max_connections", value)


def new_idempotency_key() -> str:
    """A fresh random Idempotency-Key for one logical create, to reuse on each of its retries."""
    return f"lc-{uuid.uuid4().hex}"


def check_idempotency_key(key: str | None) -> str:
    """Return the caller's key after checking it, or a fresh random one."""
    if key is None:
        return new_idempotency_key()
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise invalid("idempotency_key", key)
    return key


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def check_run_id(run_id: str) -> str:
    """Reject an empty or non-string run id before it reaches a URL."""
    if not isinstance(run_id, str) or not run_id.strip() or not _utf8(run_id):
        raise invalid("run_id", run_id)
    return run_id


def check_machine_id(machine_id: str) -> str:
    """Reject an empty, oversized or non-string machine id before it reaches a URL."""
    if (
        not isinstance(machine_id, str)
        or not machine_id.strip()
        or len(machine_id) > 128
        or not _utf8(machine_id)
    ):
        raise invalid("machine_id", machine_id)
    return machine_id


def check_ttl_update(ttl_minutes: int) -> dict[str, Any]:
    """The body of a lease update: 0 clears the lease, 5..10080 sets it from now."""
    if (
        isinstance(ttl_minutes, bool)
        or not isinstance(ttl_minutes, int)
        or not (ttl_minutes == 0 or 5 <= ttl_minutes <= 10080)
    ):
        raise invalid("ttl_minutes", ttl_minutes, limits=_UPDATE_LIMITS)
    return {"ttl_minutes": ttl_minutes}


def check_note(note: str | None) -> dict[str, Any]:
    """The body of a resume call."""
    if note is None:
        return {}
    if not isinstance(note, str) or len(note) > 2000 or not _utf8(note):
        raise invalid("note", note)
    return {"note": note}


def check_limit(limit: int) -> int:
    """The page size of a list call (`GET /v1/runs`, `GET /v1/machines`)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
        raise invalid("limit", limit)
    return limit


def check_list_params(status: RunStatus | str | None, limit: int) -> dict[str, Any]:
    """Query parameters of `GET /v1/runs`."""
    params: dict[str, Any] = {"limit": check_limit(limit)}
    if status is not None:
        value = getattr(status, "value", status)
        try:
            params["status"] = RunStatus(value).value
        except ValueError:
            raise invalid("status", value) from None
    return params


def check_after(after: int) -> int:
    """The resume cursor of an event stream."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise invalid("after", after)
    return after


def check_llm_headers(
    provider: str | None, api_key: str | None, model: str | None
) -> dict[str, str]:
    """Validate the BYOK client options and return the X-LLM-* headers they produce."""
    headers: dict[str, str] = {}
    if provider is not None:
        if provider not in ("anthropic", "openai"):
            raise invalid("llm_provider", provider)
        headers["X-LLM-Provider"] = provider
    if api_key is not None:
        if not isinstance(api_key, str):
            raise invalid("llm_api_key", problem=f"got a {type(api_key).__name__}")
        if not 16 <= len(api_key) <= 512:
            raise invalid("llm_api_key", problem=f"got {len(api_key)} characters")
        if not _VISIBLE_ASCII.fullmatch(api_key):
            raise invalid("llm_api_key", problem="not visible ASCII characters")
        if provider is None:
            raise invalid("llm_provider", problem="missing while llm_api_key is set")
        headers["X-LLM-Api-Key"] = api_key
    if model is not None:
        if not isinstance(model, str) or not 1 <= len(model) <= 512:
            raise invalid("llm.model", model)
        if not _VISIBLE_ASCII.fullmatch(model):
            raise invalid("llm.model", model, problem="not visible ASCII characters")
        headers["X-LLM-Model"] = model
    return headers
