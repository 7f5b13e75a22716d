"""``CoastySettings``: the connection, run defaults, budgets and pause policy of the front ends.

``CoastyRunnable``, the tools and the toolkit are all ``CoastySettings``; their clients live in
one ``ClientCache`` that a toolkit shares with its tools, so they share connection pools.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import weakref
from collections.abc import AsyncGenerator
from typing import Any, Literal, TypeAlias

from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator

from langchain_coasty.client import AsyncCoastyClient, CoastyClient, RunRequest, check_base_url
from langchain_coasty.human import AwaitingHumanPolicy
from langchain_coasty.machines import policy_of
from langchain_coasty.screens import SCREEN_MOMENTS, ScreenLimits, ScreenMoment
from langchain_coasty.webhook_secrets import WebhookSecretStore, as_secret_store

__all__ = [
    "DEFAULT_PAUSE_TIMEOUT",
    "ClientCache",
    "CoastySettings",
    "WaitMode",
    "check_settings",
]

DEFAULT_PAUSE_TIMEOUT = 1800
"""How long a run waits for a person by default (seconds) before Coasty ends it."""

_MAX_SECONDS = 1_000_000  # beyond this, OS timers overflow
_RUN_DEFAULTS = ("max_steps", "deadline_seconds", "awaiting_human_timeout_seconds")


def _run_field_limit(name: str) -> tuple[str, Any]:
    """The limit text and check of a run default, from ``RunRequest``'s own constraints."""
    bounds = {type(m).__name__: m for m in RunRequest.model_fields[name].metadata}
    least, most = bounds["Ge"].ge, bounds["Le"].le
    return f"an integer in {least}..{most}, or None", lambda v: _integer(v, least, most)


_LIMITS: dict[str, tuple[str, Any]] = {
    # field: (what it must be, the check of a value that is not None)
    "max_cost_usd": ("a positive number of US dollars, or None", lambda v: _number(v, 1e9)),
    "idle_timeout": (
        f"a positive number of seconds up to {_MAX_SECONDS}, or None",
        lambda v: _number(v, _MAX_SECONDS),
    ),
    "timeout": (
        f"a positive number of seconds up to {_MAX_SECONDS}",
        lambda v: _number(v, _MAX_SECONDS),
    ),
    "max_retries": ("an integer in 0..100", lambda v: _integer(v, 0, 100)),
    "screens": ("a ScreenLimits, True or False", lambda v: isinstance(v, ScreenLimits | bool)),
    "screens_at": (
        "a tuple of distinct moments among 'step', 'pause', 'end'",
        lambda v: _moments(v),
    ),
    # The run defaults take their bounds from the client's RunRequest: written once.
    **{name: _run_field_limit(name) for name in _RUN_DEFAULTS},
}

WaitMode: TypeAlias = Literal["stream", "durable"]
"""How a call waits for its run (``CoastySettings.wait``)."""


class ClientCache:
    """The sync client and one async client per event loop, built on first use.

    httpx's async pools are bound to the loop that opened them, hence one client per loop.
    A loop's client is closed on that loop when the loop shuts down: a suspended async
    generator is parked on the loop, and ``asyncio.run`` (like every runner that calls
    ``loop.shutdown_asyncgens()``) closes it there, which closes the client.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: CoastyClient | None = None
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncCoastyClient, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    def sync_client(self, settings: CoastySettings) -> CoastyClient:
        with self._lock:
            if self._sync is None:
                self._sync = CoastyClient(**settings.client_options())
            return self._sync

    def async_client(self, settings: CoastySettings) -> AsyncCoastyClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async.get(loop)
            if entry is None:
                client = AsyncCoastyClient(**settings.client_options())
                closer = _close_at_loop_shutdown(client)
                # Runs the generator to its first yield, registering it with this loop.
                with contextlib.suppress(StopIteration):
                    closer.asend(None).send(None)
                entry = self._async[loop] = (client, closer)
            return entry[0]

    def async_clients(self) -> list[AsyncCoastyClient]:
        """The async clients still open (one per live loop that used them)."""
        with self._lock:
            return [client for client, _ in self._async.values()]


async def _close_at_loop_shutdown(client: AsyncCoastyClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.close()


class CoastySettings(BaseModel):
    """Connection, run defaults, budgets and the pause policy shared by runnable and tools."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("COASTY_API_KEY", default=None)
    )
    """Coasty API key (``sk-coasty-live-...`` or ``sk-coasty-test-...``); env ``COASTY_API_KEY``."""
    base_url: str = Field(default_factory=from_env("COASTY_BASE_URL", default="https://coasty.ai"))
    """API base URL; env ``COASTY_BASE_URL``."""
    machine_id: str | None = None
    """Machine the runs target (the LLM may choose one when neither this nor ``machine`` is set)."""
    machine: Any = Field(default=None, exclude=True)
    """A machine policy instead of a fixed id: ``MachinePerThread(spec)``,
    ``MachinePerCall(spec)`` or a ``CoastyMachinePool``; see ``langchain_coasty.machines``."""
    cua_version: Literal["v1", "v3", "v4", "v5"] | None = None
    instructions: str | None = None
    """Appended to Coasty's agent prompt."""
    system_prompt: str | None = None
    model: str | None = None
    max_steps: int | None = None
    """Server-side cap on agent steps (1..1000)."""
    deadline_seconds: int | None = None
    """Server-side wall-clock budget of a run."""
    awaiting_human_timeout_seconds: int | None = DEFAULT_PAUSE_TIMEOUT
    """Server-side limit on a pause (1..86400 s; default 30 min), so an unanswered pause
    never holds a run forever; the run then ends ``timed_out``. ``None`` waits forever."""
    webhook_url: str | None = None
    run_metadata: dict[str, Any] | None = None
    """Metadata sent with every run (merged with the graph position)."""
    llm: dict[str, Any] | None = None
    on_awaiting_human: AwaitingHumanPolicy = "interrupt"
    """What to do when a run waits for a person; see ``langchain_coasty.human``."""
    wait: WaitMode = "stream"
    """How a call waits for its run: ``"stream"`` follows the event stream; ``"durable"``
    (inside a LangGraph graph with a checkpointer) pauses the graph with a ``coasty_wait``
    interrupt and holds nothing until it is resumed; see ``langchain_coasty.durable``."""
    max_cost_usd: float | None = None
    """Client-side budget: cancel the run once its notional cost passes this."""
    idle_timeout: float | None = None
    """Cancel the run when no event arrives for this many seconds."""
    screens: ScreenLimits | bool = True
    """Bounds of the machine screens put in a pause, the artifact and ``screenshot`` events
    (``ScreenLimits``: 1280 px wide, 200 KB by default); False leaves screens out."""
    screens_at: tuple[ScreenMoment, ...] = ("pause", "end")
    """When a call captures the screen: at a ``pause`` (in the payload), at the ``end`` (the
    artifact's ``screen``), after each ``step`` (a ``screenshot`` event each)."""
    timeout: float = 30.0
    """The longest one attempt of an API request may take, to the whole response (seconds)."""
    max_retries: int = 2
    client: CoastyClient | None = Field(default=None, exclude=True)
    """A ready sync client to use instead of building one."""
    async_client: AsyncCoastyClient | None = Field(default=None, exclude=True)
    """A ready async client to use instead of building one."""
    webhook_secrets: WebhookSecretStore | None = Field(default=None, exclude=True)
    """Where each run's webhook secret is kept by run id for ``verify_run_webhook`` (a
    ``WebhookSecretStore`` or a LangGraph ``BaseStore``); default: in memory, this process."""

    _clients: ClientCache = PrivateAttr(default_factory=ClientCache)

    @field_validator(*_LIMITS, mode="before")
    @classmethod
    def _within_limits(cls, value: Any, info: Any) -> Any:
        _check(info.field_name, value)
        return value

    @field_validator("machine", mode="before")
    @classmethod
    def _machine_policy(cls, value: Any) -> Any:
        return policy_of(value)

    @field_validator("base_url")
    @classmethod
    def _usable_base_url(cls, value: str) -> str:
        check_base_url(value)  # refused here, not at the first request (a newline from a file)
        return value

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _secret_store(cls, value: Any) -> WebhookSecretStore | None:
        try:
            return None if value is None else as_secret_store(value)
        except TypeError as exc:
            raise ValueError(str(exc)) from None  # reported as a ValidationError

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of a client built from these settings.

        With a ready ``client=`` (say one set up with a bring-your-own model key), the async
        clients are built from that client's configuration, so both paths send alike.
        """
        given = self.client or self.async_client
        if given is not None:
            return given.options()
        return {
            "api_key": self.api_key,
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }

    def get_client(self) -> CoastyClient:
        """The sync client (built once from the settings)."""
        if self.client is not None:
            return self.client
        return self._clients.sync_client(self)

    def get_async_client(self) -> AsyncCoastyClient:
        """The async client for the running event loop (httpx pools are loop-bound)."""
        if self.async_client is not None:
            return self.async_client
        return self._clients.async_client(self)

    def settings_dict(self) -> dict[str, Any]:
        """The settings as keyword arguments (clients included) for a sibling object."""
        return {name: getattr(self, name) for name in CoastySettings.model_fields}

    def share_clients_with(self, other: CoastySettings) -> None:
        """Make ``other`` use this object's clients (and so their connection pools)."""
        other._clients = self._clients


def check_settings(settings: CoastySettings) -> None:
    """Check the budgets, timeouts and run defaults again (they may have been assigned since)."""
    for name in _LIMITS:
        _check(name, getattr(settings, name))


def _check(name: str, value: Any) -> None:
    limit, ok = _LIMITS[name]
    if value is None and "None" in limit:
        return
    if value is None or not ok(value):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"Invalid setting `{name}`: must be {limit} (got {shown}).")


def _number(value: Any, most: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 < value <= most


def _moments(value: Any) -> bool:
    if not isinstance(value, tuple | list) or len(set(value)) != len(value):
        return False
    return all(isinstance(m, str) and m in SCREEN_MOMENTS for m in value)


def _integer(value: Any, least: int, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= most
