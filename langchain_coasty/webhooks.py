"""Verify and parse Coasty webhook deliveries, with a secret you kept or the run's own.

``verify_webhook`` checks a delivery with a secret you hold; ``verify_run_webhook`` finds
the secret of the run the delivery names in a ``WebhookSecretStore`` (where the tool and
the runnable put it when they create a run), or through the create's idempotency key.

Coasty signs each delivery with `Coasty-Signature: t=<unix>,v1=<hex>` (the legacy
`X-Coasty-Signature` header carries the same value), where the hex is
HMAC-SHA256(secret, f"{t}.".encode() + raw_body). Verify against the raw request bytes,
before any JSON parsing or re-encoding by a web framework.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)

from langchain_coasty._graph import IDEMPOTENCY_KEY_KEY
from langchain_coasty.client import NotFoundError, Run
from langchain_coasty.webhook_secrets import (
    BaseStoreWebhookSecrets,
    InMemoryWebhookSecrets,
    WebhookSecretStore,
    aget_secret,
    aput_secret,
    as_secret_store,
)

if TYPE_CHECKING:
    from langgraph.store.base import BaseStore

    from langchain_coasty.client import AsyncCoastyClient, CoastyClient

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "SIGNATURE_HEADERS",
    "BaseStoreWebhookSecrets",
    "InMemoryWebhookSecrets",
    "WebhookEvent",
    "WebhookSecretNotFoundError",
    "WebhookSecretStore",
    "WebhookVerificationError",
    "averify_run_webhook",
    "verify_run_webhook",
    "verify_webhook",
]

SIGNATURE_HEADERS = ("Coasty-Signature", "X-Coasty-Signature")
"""Header names that carry the signature, current first."""

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""Default bound on a delivery's size; a run's JSON is far smaller."""
_MAX_HEADER_CHARS = 8192
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_\-:]{1,128}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class WebhookVerificationError(ValueError):
    """The delivery is not authentic, too old or too new, or not a webhook event."""


class WebhookEvent(BaseModel):
    """A webhook delivery, in either published body shape, read into one form.

    Coasty's body is not published: the sandbox sends ``{id, type, created, data: <run>}``,
    Coasty's cookbook mock ``{event, run_id, status, result, error, awaiting_human_reason,
    created_at}``. Both, and close variants (``type`` or ``event``; the run under ``data``
    or ``run``, or at the top level with ``run_id`` or ``id``; ``created`` or ``created_at``
    as Unix seconds or ISO 8601), give the same fields. An authentic delivery is read
    tolerantly: what it lacks is ``None``, unknown fields pass through.
    """

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    """The event id, when the body has one (de-duplicate with ``dedupe_key``)."""
    type: str | None = None
    """``run.succeeded``, ``run.awaiting_human``, ... (a bare status gets the ``run.`` prefix)."""
    run_id: str | None = None
    created: int | None = None
    """When the event was created (Unix seconds), when the body says."""
    data: dict[str, Any] = {}
    """The run as the body gives it (the flat body's fields, with ``id`` set to the run id)."""

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _read_any_shape(cls, value: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if not isinstance(value, Mapping):
            return handler(value)
        event = handler(_normalize(value))
        event._raw = dict(value)
        return event

    @property
    def run(self) -> Run:
        """The run as the body gives it (its ``webhook_secret`` is always null here).

        A flat body carries only a few of the run's fields; ``client.runs.get(event.run_id)``
        has them all.
        """
        return Run.model_validate(self.data)

    @property
    def raw(self) -> dict[str, Any]:
        """The body as it was received."""
        return dict(self._raw)

    @property
    def dedupe_key(self) -> str:
        """What tells deliveries apart: the event id, else the run id, type and time."""
        return self.id or f"{self.run_id}:{self.type}:{self.created}"


_RUN_STATUSES = frozenset(
    {"queued", "running", "awaiting_human", "succeeded", "failed", "cancelled", "timed_out"}
)


def _locate_run(body: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """The run, run id and event id a body names (unchecked; see ``_normalize``)."""
    nested = next((body[k] for k in ("data", "run") if isinstance(body.get(k), Mapping)), None)
    if nested is not None:
        run = dict(nested)
        run_id = run.get("id") or run.get("run_id") or body.get("run_id")
        run.setdefault("id", run_id)
        return run, run_id, body.get("id")
    if body.get("run_id") is not None:
        run_id, event_id = body.get("run_id"), body.get("id")
    elif "status" in body or "object" in body:  # the run itself at the top level
        run_id, event_id = body.get("id"), None
    else:
        run_id = event_id = None
    run = {k: v for k, v in body.items() if k not in ("type", "event", "run_id")}
    run["id"] = run_id
    return run, run_id, event_id


def _normalize(body: Mapping[str, Any]) -> dict[str, Any]:
    kind = body.get("type") or body.get("event")
    kind = kind if isinstance(kind, str) and kind else None
    if kind in _RUN_STATUSES:
        kind = f"run.{kind}"
    run, run_id, event_id = _locate_run(body)
    created = next((body[k] for k in ("created", "created_at") if body.get(k) is not None), None)
    fields = {k: v for k, v in body.items() if k not in ("run", "data")}
    fields.update(
        id=_text(event_id),
        type=kind,
        run_id=_text(run_id),
        created=_unix(created),
        data=run,
    )
    return fields


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def _unix(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value) if math.isfinite(value) and abs(value) < 1e13 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())
    return None  # neither Unix seconds nor an ISO 8601 time


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookVerificationError("Malformed signature header: expected t=...,v1=...")
        name, value = name.strip(), value.strip()
        if name == "t":
            if (
                timestamp is not None
                or not (value.isascii() and value.isdigit())
                or len(value) > 12
            ):
                raise WebhookVerificationError("Malformed signature header: bad timestamp")
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value.lower())
    if timestamp is None:
        raise WebhookVerificationError("Malformed signature header: no timestamp (t=)")
    if not signatures:
        raise WebhookVerificationError("Malformed signature header: no v1 signature")
    return timestamp, signatures


def _signed_recently(signature_header: Any, tolerance: int) -> tuple[int, list[str]]:
    """The header's timestamp and signatures, when it is well formed and recent enough."""
    if not isinstance(signature_header, str) or not signature_header.strip():
        raise WebhookVerificationError("Missing signature header")
    if len(signature_header) > _MAX_HEADER_CHARS:
        raise WebhookVerificationError("Malformed signature header: too long")
    timestamp, signatures = _parse_header(signature_header)
    age = int(time.time()) - timestamp
    if age > tolerance:
        raise WebhookVerificationError(f"Signature timestamp is too old ({age} s)")
    if age < -tolerance:
        raise WebhookVerificationError("Signature timestamp is too far in the future")
    return timestamp, signatures


def verify_webhook(
    payload: bytes,
    signature_header: str,
    secret: str | SecretStr,
    *,
    tolerance: int = 300,
    max_bytes: int | None = MAX_PAYLOAD_BYTES,
) -> WebhookEvent:
    """Check a delivery's signature and age, then return the parsed event.

    `signature_header` is the value of `Coasty-Signature` (or legacy `X-Coasty-Signature`);
    any of several `v1=` values may match. A payload over `max_bytes` is refused before
    any work on it. Raises `WebhookVerificationError` otherwise.
    """
    if isinstance(payload, bytearray | memoryview):
        payload = bytes(payload)
    if not isinstance(payload, bytes):
        raise WebhookVerificationError("The payload must be the raw request body as bytes")
    if max_bytes is not None and len(payload) > max_bytes:
        raise WebhookVerificationError(f"The payload is larger than {max_bytes} bytes")
    timestamp, signatures = _signed_recently(signature_header, tolerance)
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not isinstance(key, str) or not key:
        raise WebhookVerificationError("No webhook secret to verify with")

    expected = (
        hmac.new(key.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
        .hexdigest()
        .encode()
    )
    # Compare against every candidate so timing does not reveal which one matched.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise WebhookVerificationError("No signature matches the payload")

    try:
        body = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise WebhookVerificationError("The payload is not UTF-8") from None
    except (ValueError, RecursionError):
        raise WebhookVerificationError("The payload is not JSON (or nested too deeply)") from None
    if not isinstance(body, Mapping):
        raise WebhookVerificationError("The payload is not a JSON object")
    try:
        return WebhookEvent.model_validate(body)
    except ValidationError:
        raise WebhookVerificationError("The payload is not a Coasty webhook event") from None


class WebhookSecretNotFoundError(WebhookVerificationError):
    """No secret is known for the run a delivery names (yet): answer 503 so Coasty retries.

    A delivery can come before the create response that carries the secret was handled.
    """


def _claims(payload: bytes, signature_header: Any, tolerance: int) -> tuple[str, str | None]:
    """The (run id, idempotency key) an unverified delivery claims; only used to look up.

    An oversized body and a missing, malformed or stale signature are refused first, so a
    forged delivery costs no parsing beyond that and no lookup.
    """
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise WebhookVerificationError("The payload must be the raw request body as bytes")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WebhookVerificationError(
            f"Webhook body is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    _, signatures = _signed_recently(signature_header, tolerance)
    if not any(_HEX_DIGEST.fullmatch(value) for value in signatures):
        raise WebhookVerificationError("The delivery is not signed (no v1 HMAC-SHA256 value)")
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        raise WebhookVerificationError("The payload is not JSON (or nested too deeply)") from None
    if not isinstance(body, Mapping):
        raise WebhookVerificationError("The payload is not a Coasty webhook event")
    run, run_id, _ = _locate_run(body)
    if not isinstance(run_id, str) or not run_id:
        raise WebhookVerificationError(
            "The delivery names no run; verify it with verify_webhook and the secret you kept"
        )
    meta = run.get("metadata") if isinstance(run.get("metadata"), Mapping) else body.get("metadata")
    key = meta.get(IDEMPOTENCY_KEY_KEY) if isinstance(meta, Mapping) else None
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        key = None  # absent or not a key Coasty could have issued: nothing to look up
    return run_id, key


def _not_found(run_id: str, key: str | None) -> WebhookSecretNotFoundError:
    run_id = run_id[:80]  # unverified input: keep the message short
    if key is None:
        return WebhookSecretNotFoundError(
            f"No webhook secret for run {run_id!r} in the secret store, and the delivery names "
            "no idempotency key to fetch it with"
        )
    return WebhookSecretNotFoundError(
        f"No webhook secret for run {run_id!r} in the secret store, and no create with this "
        "idempotency key (or no GET /v1/idempotency/{key} lookup)"
    )


def _looked_up(run_id: str, result: Any) -> SecretStr:
    if not isinstance(result, Mapping) or result.get("id") != run_id:
        raise WebhookVerificationError("The idempotency key does not belong to this run")
    secret = result.get("webhook_secret")
    if not isinstance(secret, str) or not secret:
        raise WebhookVerificationError("The run was created without a webhook_url")
    return SecretStr(secret)


def verify_run_webhook(
    client: CoastyClient,
    payload: bytes,
    signature_header: str,
    *,
    secrets: WebhookSecretStore | BaseStore | None = None,
    tolerance: int = 300,
) -> WebhookEvent:
    """``verify_webhook`` with the secret of the run the delivery names.

    The secret comes from ``secrets`` (the store the runs were created with; a LangGraph
    ``BaseStore`` works too; default: this process's), by run id. When it has none and the
    body names the create's idempotency key, ``GET /v1/idempotency/{key}`` (if Coasty
    serves it) returns the create response, secret included, for 24 h. Raises
    ``WebhookSecretNotFoundError`` when neither knows the run, ``WebhookVerificationError``
    when the delivery is not authentic.
    """
    run_id, key = _claims(payload, signature_header, tolerance)
    store = as_secret_store(secrets)
    secret = store.get(run_id)
    if secret is None:
        if key is None:
            raise _not_found(run_id, key)
        try:
            lookup: Callable[[str], Any] = client.idempotency.get
            secret = _looked_up(run_id, lookup(key).result)
        except NotFoundError:
            raise _not_found(run_id, key) from None
        store.put(run_id, secret)
    return verify_webhook(payload, signature_header, secret, tolerance=tolerance)


async def averify_run_webhook(
    client: AsyncCoastyClient,
    payload: bytes,
    signature_header: str,
    *,
    secrets: WebhookSecretStore | BaseStore | None = None,
    tolerance: int = 300,
) -> WebhookEvent:
    """Async twin of ``verify_run_webhook``."""
    run_id, key = _claims(payload, signature_header, tolerance)
    store = as_secret_store(secrets)
    secret = await aget_secret(store, run_id)
    if secret is None:
        if key is None:
            raise _not_found(run_id, key)
        try:
            secret = _looked_up(run_id, (await client.idempotency.get(key)).result)
        except NotFoundError:
            raise _not_found(run_id, key) from None
        await aput_secret(store, run_id, secret)
    return verify_webhook(payload, signature_header, secret, tolerance=tolerance)
