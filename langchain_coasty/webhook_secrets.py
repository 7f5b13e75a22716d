"""Where a webhook receiver finds a run's signing secret: a store keyed by run id.

Coasty returns a run's ``webhook_secret`` once, in the create response. The engine puts it
into ``CoastySettings.webhook_secrets`` as soon as the create returns, and
``verify_run_webhook`` reads it back by the run id a delivery names. The store sits
outside the graph: nothing of it enters a message, graph state, a checkpoint or a log.

* ``WebhookSecretStore``: the protocol (``put`` / ``get``; ``aput`` / ``aget`` when the store
  has them, else the sync methods run in a worker thread so an event loop never blocks).
* ``InMemoryWebhookSecrets``: bounded and process-wide by default (``default_secret_store``);
  enough when the receiver runs in the process that creates the runs.
* ``BaseStoreWebhookSecrets``: any LangGraph ``BaseStore`` (``InMemoryStore``,
  ``PostgresStore``, the LangGraph Platform store) under the namespace
  ``("coasty", "webhook_secrets")``, shared by every process that uses the same store.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import SecretStr

from langchain_coasty._lru import BoundedDict

if TYPE_CHECKING:
    from langgraph.store.base import BaseStore

    from langchain_coasty.client import Run

__all__ = [
    "NAMESPACE",
    "BaseStoreWebhookSecrets",
    "InMemoryWebhookSecrets",
    "WebhookSecretStore",
    "as_secret_store",
    "default_secret_store",
]

NAMESPACE: tuple[str, ...] = ("coasty", "webhook_secrets")
"""Namespace of the secrets in a LangGraph ``BaseStore``."""


@runtime_checkable
class WebhookSecretStore(Protocol):
    """Keeps each run's webhook secret by run id.

    Optional ``async def aput(run_id, secret)`` / ``async def aget(run_id)`` are used from
    async code when present.
    """

    def put(self, run_id: str, secret: SecretStr) -> None: ...

    def get(self, run_id: str) -> SecretStr | None: ...


class InMemoryWebhookSecrets:
    """A bounded in-process store: the least recently used secrets go past ``maxsize``."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._items: BoundedDict[str, SecretStr] = BoundedDict(maxsize)

    def put(self, run_id: str, secret: SecretStr) -> None:
        self._items.put(run_id, SecretStr(_text(secret)))

    def get(self, run_id: str) -> SecretStr | None:
        return self._items.get(run_id)

    async def aput(self, run_id: str, secret: SecretStr) -> None:
        self.put(run_id, secret)

    async def aget(self, run_id: str) -> SecretStr | None:
        return self.get(run_id)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"InMemoryWebhookSecrets({len(self)} runs)"


class BaseStoreWebhookSecrets:
    """Secrets in a LangGraph ``BaseStore``: item ``{"secret": ...}`` under key ``run_id``.

    Items are never indexed (``index=False``: no embedding of a secret). ``ttl_minutes``
    expires them on stores configured for TTLs; Coasty retries a delivery for a day at
    most, so a few days is plenty.
    """

    def __init__(
        self,
        store: BaseStore,
        *,
        namespace: tuple[str, ...] = NAMESPACE,
        ttl_minutes: float | None = None,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.ttl_minutes = ttl_minutes

    def _ttl(self) -> dict[str, Any]:
        return {} if self.ttl_minutes is None else {"ttl": self.ttl_minutes}

    def put(self, run_id: str, secret: SecretStr) -> None:
        value = {"secret": _text(secret)}
        self.store.put(self.namespace, run_id, value, index=False, **self._ttl())

    def get(self, run_id: str) -> SecretStr | None:
        return _secret_of(self.store.get(self.namespace, run_id))

    async def aput(self, run_id: str, secret: SecretStr) -> None:
        value = {"secret": _text(secret)}
        await self.store.aput(self.namespace, run_id, value, index=False, **self._ttl())

    async def aget(self, run_id: str) -> SecretStr | None:
        return _secret_of(await self.store.aget(self.namespace, run_id))

    def __repr__(self) -> str:
        return f"BaseStoreWebhookSecrets({type(self.store).__name__}, {self.namespace!r})"


def _text(secret: SecretStr | str) -> str:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def _secret_of(item: Any) -> SecretStr | None:
    value = getattr(item, "value", None)
    found = value.get("secret") if isinstance(value, dict) else None
    return SecretStr(found) if isinstance(found, str) and found else None


_DEFAULT = InMemoryWebhookSecrets()


def default_secret_store() -> InMemoryWebhookSecrets:
    """The process-wide store used when no other is chosen."""
    return _DEFAULT


def _is_base_store(value: object) -> bool:
    try:
        from langgraph.store.base import BaseStore
    except ImportError:  # pragma: no cover - LangGraph is optional
        return False
    return isinstance(value, BaseStore)


def as_secret_store(value: WebhookSecretStore | BaseStore | None) -> WebhookSecretStore:
    """A secret store from ``value``: a ``BaseStore`` is wrapped, ``None`` is the default."""
    if value is None:
        return _DEFAULT
    if _is_base_store(value):
        return BaseStoreWebhookSecrets(value)  # type: ignore[arg-type]
    if isinstance(value, WebhookSecretStore):
        return value
    raise TypeError(
        "webhook_secrets must be a WebhookSecretStore (put/get by run id) or a LangGraph "
        f"BaseStore, not {type(value).__name__}"
    )


async def aget_secret(store: WebhookSecretStore, run_id: str) -> SecretStr | None:
    """``store.get`` from async code, without blocking the loop."""
    aget = getattr(store, "aget", None)
    if aget is not None:
        found: SecretStr | None = await aget(run_id)
        return found
    return await asyncio.to_thread(store.get, run_id)


async def aput_secret(store: WebhookSecretStore, run_id: str, secret: SecretStr) -> None:
    """``store.put`` from async code, without blocking the loop."""
    aput = getattr(store, "aput", None)
    if aput is not None:
        await aput(run_id, secret)
    else:
        await asyncio.to_thread(store.put, run_id, secret)


def keep_secret(store: WebhookSecretStore | BaseStore | None, run: Run) -> None:
    """Put a just-created run's secret into ``store`` (nothing when it has none)."""
    if run.webhook_secret is not None:
        as_secret_store(store).put(run.id, run.webhook_secret)


async def akeep_secret(store: WebhookSecretStore | BaseStore | None, run: Run) -> None:
    """Async twin of ``keep_secret``."""
    if run.webhook_secret is not None:
        await aput_secret(as_secret_store(store), run.id, run.webhook_secret)
