"""Verify and parse Coasty webhook deliveries, with a secret you kept or the run's own.

Coasty signs each delivery with `Coasty-Signature: t=<unix>,v1=<hex>` (the legacy
`X-Coasty-Signature` header carries the same value), where the hex is
HMAC-SHA256(secret, f"{t}.".encode() + raw_body). Verify against the raw request bytes,
before any JSON parsing or re-encoding by a web framework.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from langchain_coasty._lru import BoundedDict
from langchain_coasty.client import NotFoundError, Run

if TYPE_CHECKING:
    from langchain_coasty.client import AsyncCoastyClient, CoastyClient

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "SIGNATURE_HEADERS",
    "WebhookEvent",
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


class WebhookVerificationError(ValueError):
    """The delivery is not authentic, too old or too new, or not a webhook event."""


class WebhookEvent(BaseModel):
    """A verified webhook delivery: `run.succeeded`, `run.awaiting_human`, ..."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str
    created: int
    data: dict[str, Any]

    @property
    def run(self) -> Run:
        """The run this event is about (its `webhook_secret` is always null here)."""
        return Run.model_validate(self.data)


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
    if not isinstance(signature_header, str) or not signature_header.strip():
        raise WebhookVerificationError("Missing signature header")
    if len(signature_header) > _MAX_HEADER_CHARS:
        raise WebhookVerificationError("Malformed signature header: too long")
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not isinstance(key, str) or not key:
        raise WebhookVerificationError("No webhook secret to verify with")

    timestamp, signatures = _parse_header(signature_header)
    age = int(time.time()) - timestamp
    if age > tolerance:
        raise WebhookVerificationError(f"Signature timestamp is too old ({age} s)")
    if age < -tolerance:
        raise WebhookVerificationError("Signature timestamp is too far in the future")

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
    except ValueError:
        raise WebhookVerificationError("The payload is not JSON") from None
    try:
        return WebhookEvent.model_validate(body)
    except ValidationError:
        raise WebhookVerificationError("The payload is not a Coasty webhook event") from None


_secrets: BoundedDict[str, tuple[str, SecretStr]] = BoundedDict(4096)
"""Signing secrets fetched so far, by idempotency key: (run id, secret)."""


def _claimed_key(payload: bytes) -> tuple[str, str]:
    """The (idempotency key, run id) an unverified delivery claims; only used to look up."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WebhookVerificationError(
            f"Webhook body is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    try:
        data = json.loads(payload)["data"]
        key, run_id = data["metadata"]["idempotency_key"], data["id"]
    except (ValueError, KeyError, TypeError):
        raise WebhookVerificationError(
            "The delivery names no run with an idempotency key in its metadata; "
            "verify it with verify_webhook and the secret you kept"
        ) from None
    if not isinstance(key, str) or not isinstance(run_id, str):
        raise WebhookVerificationError("The delivery's run metadata is malformed")
    return key, run_id


def _remember(key: str, run_id: str, result: Any) -> SecretStr:
    if not isinstance(result, Mapping) or result.get("id") != run_id:
        raise WebhookVerificationError("The idempotency key does not belong to this run")
    secret = result.get("webhook_secret")
    if not isinstance(secret, str) or not secret:
        raise WebhookVerificationError("The run was created without a webhook_url")
    value = SecretStr(secret)
    _secrets.put(key, (run_id, value))
    return value


def _cached(key: str, run_id: str) -> SecretStr | None:
    found = _secrets.get(key)
    return found[1] if found is not None and found[0] == run_id else None


def verify_run_webhook(
    client: CoastyClient, payload: bytes, signature_header: str, *, tolerance: int = 300
) -> WebhookEvent:
    """``verify_webhook`` with the run's secret fetched from Coasty (no secret store needed).

    The secret comes with the original create response, which ``GET /v1/idempotency/{key}``
    returns for 24 h; the key is in the run's metadata. Raises ``WebhookVerificationError``.
    """
    key, run_id = _claimed_key(payload)
    secret = _cached(key, run_id)
    if secret is None:
        try:
            lookup: Callable[[str], Any] = client.idempotency.get
            secret = _remember(key, run_id, lookup(key).result)
        except NotFoundError:
            raise WebhookVerificationError("No create with this idempotency key") from None
    return verify_webhook(payload, signature_header, secret, tolerance=tolerance)


async def averify_run_webhook(
    client: AsyncCoastyClient, payload: bytes, signature_header: str, *, tolerance: int = 300
) -> WebhookEvent:
    """Async twin of ``verify_run_webhook``."""
    key, run_id = _claimed_key(payload)
    secret = _cached(key, run_id)
    if secret is None:
        try:
            secret = _remember(key, run_id, (await client.idempotency.get(key)).result)
        except NotFoundError:
            raise WebhookVerificationError("No create with this idempotency key") from None
    return verify_webhook(payload, signature_header, secret, tolerance=tolerance)
