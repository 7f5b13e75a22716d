"""From settings and a call's input to one validated ``RunRequest`` and its idempotency key.

Settings and call input are merged here and nowhere else; the merged fields are validated
once, into the client's ``RunRequest``, which the client then sends as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from langchain_coasty._engine.settings import check_settings
from langchain_coasty.client import RunRequest, new_idempotency_key, run_request
from langchain_coasty.human import AwaitingHumanPolicy

if TYPE_CHECKING:
    from langchain_coasty._engine.settings import CoastySettings, WaitMode
    from langchain_coasty._graph import GraphContext

__all__ = ["RUN_FIELDS", "CoastyInput", "RunPlan", "build_request"]

CoastyInput: TypeAlias = str | dict[str, Any]
"""A task string, or a dict of RunRequest fields (``task``, ``machine_id``, ...)."""

# The RunRequest fields a caller may set; ``on_awaiting_human`` is this layer's policy instead.
RUN_FIELDS = tuple(name for name in RunRequest.model_fields if name != "on_awaiting_human")
_INPUT_EXTRAS = ("idempotency_key", "on_awaiting_human", "wait")


@dataclass(frozen=True)
class RunPlan:
    """What one call will create: the request, its idempotency key, the pause policy, the wait."""

    request: RunRequest
    key: str
    policy: AwaitingHumanPolicy
    wait: WaitMode = "stream"

    @property
    def body(self) -> dict[str, Any]:
        """The JSON fields the request sets."""
        return self.request.model_dump(mode="json", exclude_unset=True)


def build_request(
    settings: CoastySettings,
    input: CoastyInput,
    ctx: GraphContext | None,
    *,
    extra_instructions: str | None = None,
) -> RunPlan:
    """The run a call creates (deterministic for the same logical call), its key and policy.

    ``extra_instructions`` (a tool call's own guidance) are appended to the instructions the
    settings or the input give.
    """
    check_settings(settings)
    if isinstance(input, str):
        given: dict[str, Any] = {"task": input}
    elif isinstance(input, Mapping):
        given = dict(input)
    else:
        raise TypeError(
            f"CoastyRunnable input must be a task string or a dict of run fields, "
            f"not {type(input).__name__}"
        )
    unknown = sorted(set(given) - set(RUN_FIELDS) - set(_INPUT_EXTRAS))
    if unknown:
        raise ValueError(
            f"Unknown run field(s) {', '.join(unknown)}; accepted: "
            + ", ".join((*RUN_FIELDS, *_INPUT_EXTRAS))
        )
    fields = _merged_fields(settings, given, extra_instructions)
    for name in ("task", "machine_id"):
        if not fields.get(name):
            raise ValueError(
                f"Missing `{name}`: pass it in the input"
                + (" or set machine_id on the runnable/tool" if name == "machine_id" else "")
                + "."
            )
    policy = given.get("on_awaiting_human") or settings.on_awaiting_human
    if policy not in ("interrupt", "return", "fail") and not callable(policy):
        raise ValueError(
            "`on_awaiting_human` must be 'interrupt', 'return', 'fail' or a callable, "
            f"not {policy!r:.60}"
        )
    wait = given.get("wait") or settings.wait
    if wait not in ("stream", "durable"):
        raise ValueError(f"wait must be 'stream' or 'durable', not {wait!r}")
    if wait == "durable" and (ctx is None or not ctx.has_checkpointer or not ctx.thread_id):
        raise ValueError(
            "wait='durable' pauses the LangGraph graph until the run's outcome resumes it, so "
            "it needs to run inside a graph compiled with a checkpointer (and a thread_id); "
            "use wait='stream' elsewhere."
        )
    key = given.get("idempotency_key") or (ctx.idempotency_key(fields) if ctx else None)
    key = str(key) if key else new_idempotency_key()
    metadata = fields.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValueError(f"`metadata` must be a dict, not {type(metadata).__name__}")
    meta = dict(metadata or {})
    meta.update(ctx.metadata(key) if ctx else {"idempotency_key": key})
    fields["metadata"] = meta
    return RunPlan(request=run_request(fields), key=key, policy=policy, wait=wait)


def _merged_fields(
    settings: CoastySettings, given: Mapping[str, Any], extra_instructions: str | None
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in RUN_FIELDS:
        value = settings.run_metadata if name == "metadata" else getattr(settings, name, None)
        if value is not None:
            fields[name] = value
    if settings.awaiting_human_timeout_seconds is None:
        # Sent as null: "wait forever" on purpose, not whatever the server's default is.
        fields["awaiting_human_timeout_seconds"] = None
    for name in RUN_FIELDS:
        if given.get(name) is not None:
            fields[name] = given[name]
    if settings.run_metadata and isinstance(given.get("metadata"), Mapping):
        fields["metadata"] = {**settings.run_metadata, **given["metadata"]}
    if extra_instructions:
        base = fields.get("instructions")
        fields["instructions"] = f"{base}\n\n{extra_instructions}" if base else extra_instructions
    return fields
