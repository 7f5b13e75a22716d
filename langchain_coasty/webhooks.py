"""Verify and parse Coasty webhook deliveries.

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
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from langchain_coasty.client._models import Run

__all__ = ["SIGNATURE_HEADERS", "WebhookEvent", "WebhookVerificationError", "verify_webhook"]

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
