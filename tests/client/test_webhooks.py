"""verify_webhook: every rejection case, with vectors computed here."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest

from langchain_coasty import WebhookEvent, WebhookVerificationError, verify_webhook

SECRET = "whsec_test_5f2b9c1e"
EVENT = {
    "id": "evt_0123abcd",
    "type": "run.succeeded",
    "created": 1_700_000_000,
    "data": {"id": "3c1f", "object": "agent.run", "status": "succeeded", "webhook_secret": None},
}
BODY = json.dumps(EVENT).encode()


def sign(body: bytes, secret: str = SECRET, t: int | None = None) -> tuple[int, str]:
    t = int(time.time()) if t is None else t
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return t, digest


def header(body: bytes = BODY, **kw: object) -> str:
    t, digest = sign(body, **kw)  # type: ignore[arg-type]
    return f"t={t},v1={digest}"


def test_valid_delivery_returns_the_parsed_event() -> None:
    event = verify_webhook(BODY, header(), SECRET)
    assert isinstance(event, WebhookEvent)
    assert (event.id, event.type, event.created) == ("evt_0123abcd", "run.succeeded", 1_700_000_000)
    assert event.run.status == "succeeded"
    assert event.run.webhook_secret is None


def test_any_of_several_v1_values_may_match_and_spaces_are_tolerated() -> None:
    t, digest = sign(BODY)
    value = f"t={t}, v1={'0' * 64}, v0=legacy, v1={digest.upper()}"
    assert verify_webhook(BODY, value, SECRET).id == "evt_0123abcd"


def test_legacy_x_coasty_signature_value_is_accepted() -> None:
    # The legacy header carries the same t=,v1= value: the caller passes whichever is present.
    headers = {"X-Coasty-Signature": header()}
    value = headers.get("Coasty-Signature") or headers["X-Coasty-Signature"]
    assert verify_webhook(BODY, value, SECRET).type == "run.succeeded"


def test_bytearray_payload_is_accepted() -> None:
    assert verify_webhook(bytearray(BODY), header(), SECRET).id == "evt_0123abcd"


# Headers are built when the test runs (not at collection), so their timestamps stay fresh.
@pytest.mark.parametrize(
    ("body", "make_header"),
    [
        (BODY + b" ", lambda: header()),
        (BODY, lambda: header(secret="whsec_other")),
        (BODY, lambda: f"t={int(time.time())},v1={'ab' * 32}"),
        (BODY, lambda: f"t={int(time.time())},v1=zzzz\u00e9"),
    ],
    ids=["tampered-body", "wrong-secret", "wrong-digest", "non-ascii-digest"],
)
def test_bad_signature_is_rejected(body: bytes, make_header: Callable[[], str]) -> None:
    with pytest.raises(WebhookVerificationError, match="No signature matches"):
        verify_webhook(body, make_header(), SECRET)


def test_too_old_timestamp_is_rejected_even_with_a_valid_signature() -> None:
    value = header(t=int(time.time()) - 301)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(BODY, value, SECRET)
    # A custom tolerance widens the window.
    assert verify_webhook(BODY, value, SECRET, tolerance=600).id == "evt_0123abcd"


def test_timestamp_too_far_in_the_future_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="future"):
        verify_webhook(BODY, header(t=int(time.time()) + 301), SECRET)


def test_timestamp_just_inside_the_window_is_accepted() -> None:
    assert verify_webhook(BODY, header(t=int(time.time()) - 250), SECRET).id
    assert verify_webhook(BODY, header(t=int(time.time()) + 250), SECRET).id


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "garbage",
        "v1=" + "a" * 64,
        "t=1700000000",
        "t=,v1=abc",
        "t=abc,v1=abc",
        "t=-5,v1=abc",
        "t=\u00b2,v1=abc",
        "t=1,t=2,v1=abc",
        "t=1700000000,v1=",
    ],
    ids=[
        "empty",
        "blank",
        "no-equals",
        "no-timestamp",
        "no-v1",
        "empty-t",
        "non-int-t",
        "negative-t",
        "unicode-digit-t",
        "duplicate-t",
        "empty-v1",
    ],
)
def test_malformed_header_is_rejected(value: str) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY, value, SECRET)


def test_non_utf8_body_is_rejected_with_the_same_error_type() -> None:
    body = b'{"id": "evt_1", "type": "run.failed", "created": 1, "data": {"x": "\xff\xfe"}}'
    with pytest.raises(WebhookVerificationError, match="UTF-8"):
        verify_webhook(body, header(body), SECRET)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"id": "evt_1"}', b'{"id": 1, "type": "x", "created": "y"}'],
    ids=["not-json", "array", "missing-fields", "wrong-types"],
)
def test_signed_body_that_is_not_an_event_is_rejected(body: bytes) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, header(body), SECRET)


def test_str_payload_and_missing_secret_are_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="bytes"):
        verify_webhook(BODY.decode(), header(), SECRET)  # type: ignore[arg-type]
    with pytest.raises(WebhookVerificationError, match="secret"):
        verify_webhook(BODY, header(), "")


def test_error_text_never_contains_the_secret_or_expected_digest() -> None:
    t, digest = sign(BODY)
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(BODY + b"x", f"t={t},v1={digest}", SECRET)
    text = str(info.value) + repr(info.value)
    assert SECRET not in text
    assert sign(BODY + b"x", t=t)[1] not in text
