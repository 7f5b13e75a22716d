"""Attacks on webhook verification: ``verify_webhook`` itself, then the cookbook receiver.

Every forged, altered, stale, early, malformed or oversized delivery is refused with
``WebhookVerificationError`` (never another exception), and at the receiver with a 4xx
before anything reaches the graph; a replayed genuine delivery is de-duplicated by event id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from langchain_coasty import CoastyClient, WebhookEvent, WebhookVerificationError, verify_webhook
from langchain_coasty.webhooks import MAX_PAYLOAD_BYTES

# Deterministic in the suite; COASTY_FUZZ_EXPLORE=1 draws new examples on every run.
DETERMINISTIC = not os.environ.get("COASTY_FUZZ_EXPLORE")
SECRET = "whsec_" + "ab12" * 12
EVENT = {
    "id": "evt_5eed",
    "type": "run.awaiting_human",
    "created": 1_800_000_000,
    "data": {"id": "run-1", "object": "agent.run", "status": "awaiting_human"},
}
BODY = json.dumps(EVENT).encode()


def signature(body: bytes, secret: str = SECRET, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def rejected(body: Any, header: Any, secret: Any = SECRET, **kw: Any) -> str:
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(body, header, secret, **kw)
    return str(caught.value)


def test_genuine_delivery_is_accepted() -> None:
    assert verify_webhook(BODY, signature(BODY), SECRET).id == "evt_5eed"
    assert verify_webhook(BODY, signature(BODY), SecretStr(SECRET)).id == "evt_5eed"


def test_tampered_body_wrong_secret_and_moved_timestamp() -> None:
    header = signature(BODY)
    assert "No signature matches" in rejected(BODY.replace(b"awaiting_human", b"succeeded"), header)
    assert "No signature matches" in rejected(BODY + b" ", header)
    assert "No signature matches" in rejected(BODY, signature(BODY, secret=SECRET + "x"))
    assert "No signature matches" in rejected(BODY, header, "whsec_other")
    t, digest = header.removeprefix("t=").split(",v1=")
    assert "No signature matches" in rejected(BODY, f"t={int(t) - 1},v1={digest}")


@pytest.mark.parametrize(
    ("offset", "why"), [(-301, "too old"), (-86_400 * 365, "too old"), (301, "future")]
)
def test_stale_and_future_timestamps(offset: int, why: str) -> None:
    t = int(time.time()) + offset
    assert why in rejected(BODY, signature(BODY, t=t))


def test_timestamps_inside_the_tolerance_pass() -> None:
    for offset in (-290, 290):
        assert verify_webhook(BODY, signature(BODY, t=int(time.time()) + offset), SECRET)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "v1=" + "0" * 64,
        "t=1700000000",
        "t=,v1=00",
        "t=abc,v1=00",
        "t=\u0661\u0662\u0663,v1=00",  # Arabic-Indic digits are digits, but not ASCII
        "t=1,t=2,v1=00",
        "t=" + "9" * 400 + ",v1=00",  # would overflow a float age
        "t=-5,v1=00",
        "garbage",
        "t=1;v1=00",
        "=,=",
        "t=1,v1=" + "0" * 64 + ",x" * 5000,  # oversized header
        "v0=" + "0" * 64 + ",t=1800000000",
    ],
)
def test_stripped_or_malformed_headers(header: str) -> None:
    assert rejected(BODY, header)


def test_header_of_the_wrong_type_and_missing_secret() -> None:
    assert "Missing signature header" in rejected(BODY, None)
    assert rejected(BODY, signature(BODY), "")
    assert rejected(BODY, signature(BODY), None)
    assert rejected(BODY.decode(), signature(BODY))  # str, not the raw bytes


def test_several_v1_values() -> None:
    good = signature(BODY)
    t, digest = good.removeprefix("t=").split(",v1=")
    bad = "0" * 64
    assert verify_webhook(BODY, f"t={t},v1={bad},v1={digest},v1={bad}", SECRET)
    assert verify_webhook(BODY, f"t={t}, v1={bad}, v0=legacy, v1={digest.upper()}", SECRET)
    assert rejected(BODY, f"t={t},v1={bad},v1={bad[:-1]}1")
    assert rejected(BODY, f"t={t},v0={digest}")  # only v1 counts
    assert rejected(BODY, f"t={t},v1={digest[:-2]}")  # truncated


def test_non_utf8_body() -> None:
    body = b'{"id": "evt_\xff\xfe", "type": "run.succeeded"}'
    assert "No signature matches" in rejected(body, signature(BODY))
    assert "not UTF-8" in rejected(body, signature(body))  # signed, yet not an event


def test_signed_but_not_a_json_object() -> None:
    for body in (b"not json", b"[]", b"null", b'"text"', b"[" * 100_000 + b"]" * 100_000):
        assert rejected(body, signature(body))


@pytest.mark.parametrize(
    "event",
    [
        {"id": "evt_1"},  # no type, no run
        {"type": "run.succeeded", "data": {"id": "run-1"}},  # no id, no created
        {"event": "succeeded", "run_id": "run-1", "created_at": "not a time"},
        {"type": 5, "id": 7, "created": float("inf"), "data": {"id": "run-1"}, "extra": [1]},
        {},
    ],
)
def test_an_authentic_delivery_is_read_tolerantly(event: dict[str, Any]) -> None:
    body = json.dumps(event).encode()
    parsed = verify_webhook(body, signature(body), SECRET)
    assert parsed.raw == json.loads(body)
    if "extra" in event:
        assert parsed.model_extra is not None and parsed.model_extra["extra"] == [1]
        assert (parsed.id, parsed.type, parsed.created) == ("7", None, None)


def test_oversized_body_is_refused_before_hashing() -> None:
    body = b'{"pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}'
    assert "larger than" in rejected(body, signature(body))
    assert "larger than" in rejected(BODY, signature(BODY), max_bytes=10)


def test_a_replay_within_the_window_verifies_so_receivers_deduplicate_by_event_id() -> None:
    header = signature(BODY)
    first = verify_webhook(BODY, header, SECRET)
    again = verify_webhook(BODY, header, SECRET)
    assert first.id == again.id  # the event id is what a receiver de-duplicates on


@settings(
    max_examples=150,
    deadline=None,
    derandomize=DETERMINISTIC,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(body=st.binary(max_size=2048), header=st.text(max_size=300), secret=st.text(max_size=40))
def test_arbitrary_input_only_ever_fails_with_the_typed_error(
    body: bytes, header: str, secret: str
) -> None:
    try:
        verify_webhook(body, header, secret)
    except WebhookVerificationError:
        return
    pytest.fail("an unsigned delivery was accepted")


@settings(max_examples=200, deadline=None, derandomize=DETERMINISTIC)
@given(position=st.integers(min_value=0, max_value=len(BODY) - 1), flip=st.integers(1, 255))
def test_any_single_byte_change_is_detected(position: int, flip: int) -> None:
    header = signature(BODY)
    tampered = bytearray(BODY)
    tampered[position] ^= flip
    with pytest.raises(WebhookVerificationError):
        verify_webhook(bytes(tampered), header, SECRET)


# --- the cookbook receiver, over HTTP -------------------------------------------------------


@pytest.mark.parametrize("shape", ["envelope", "flat"])
def test_cookbook_receiver_refuses_every_attack_before_the_graph(
    coasty_sandbox: Any, shape: str
) -> None:
    from tests.cookbook.conftest import load_recipe

    recipe = load_recipe("webhook_receiver/receiver.py")
    sb = coasty_sandbox
    sb.configure(webhook_body=shape, idempotency_lookup=shape == "envelope")
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        receiver = recipe.WebhookReceiver(client)
        with recipe.serve(receiver.app()) as url:
            endpoint = f"{url}/webhooks/coasty"
            receiver.attach(endpoint)
            thread_id = receiver.start("Pay the March invoice of ACME", sb.machine_id)
            assert receiver.finished[thread_id].wait(30)
            state_before = receiver.state(thread_id)
            stats_before = dict(receiver.stats)
            body, genuine = receiver.deliveries[0]
            run_id = WebhookEvent.model_validate(json.loads(body)).run_id
            kept = receiver.secrets.get(run_id)
            assert kept is not None
            secret = kept.get_secret_value()
            now = int(time.time())
            t, digest = genuine.removeprefix("t=").split(",v1=")

            def post(content: bytes, header: str | None) -> httpx.Response:
                headers = {"Content-Type": "application/json"}
                if header is not None:
                    headers["Coasty-Signature"] = header
                return httpx.post(endpoint, content=content, headers=headers, timeout=30)

            event = json.loads(body)
            forged = json.dumps({**event, "id": "evt_forged"}).encode()
            huge = json.dumps({**event, "id": "evt_huge", "pad": "x" * MAX_PAYLOAD_BYTES}).encode()
            not_utf8 = body.replace(b'"status"', b'"\xff\xfe"')  # in both body shapes
            attacks = {
                "tampered body": (body.replace(b"awaiting_human", b"succeeded"), genuine),
                "wrong secret": (forged, signature(forged, secret="whsec_guess")),
                "stale": (forged, signature(forged, secret, t=now - 3600)),
                "future": (forged, signature(forged, secret, t=now + 3600)),
                "stripped header": (forged, None),
                "empty header": (forged, ""),
                "malformed header": (forged, "t=x,v1=zz"),
                "v1 values all wrong": (forged, f"t={now},v1={'0' * 64},v1={digest}"),
                "non-UTF-8 body": (not_utf8, signature(not_utf8, secret)),
                "oversized body": (huge, signature(huge, secret)),
                "not a webhook": (b"\x00\x01", genuine),
            }
            statuses = {name: post(*attack).status_code for name, attack in attacks.items()}
            replay = post(body, genuine)
            several = post(body, f"t={t},v1={'0' * 64},v1={digest}")

    assert all(400 <= s < 500 for s in statuses.values()), statuses
    assert {s for name, s in statuses.items() if name != "oversized body"} == {400}, statuses
    assert statuses["oversized body"] == 413
    # A genuine delivery sent again (alone or among wrong v1 values) is a duplicate: 2xx so
    # Coasty stops retrying, and nothing reaches the graph a second time.
    assert (replay.status_code, replay.json()["outcome"]) == (200, "duplicate")
    assert (several.status_code, several.json()["outcome"]) == (200, "duplicate")
    assert receiver.stats["accepted"] == stats_before["accepted"]
    assert receiver.stats["rejected"] == stats_before["rejected"] + len(attacks)
    assert receiver.state(thread_id) == state_before


def test_forged_deliveries_to_verify_run_webhook_end_as_the_typed_error(sb: Any) -> None:
    from langchain_coasty.webhooks import verify_run_webhook

    sent: list[str] = []
    fresh = f"t={int(time.time())},v1={'0' * 64}"  # well formed and recent, not authentic
    deep = b'{"data": ' * 5000 + b"{}" + b"}" * 5000
    bad_key = json.dumps(
        {
            "type": "run.succeeded",
            "data": {"id": "run-1", "metadata": {"idempotency_key": "not a key!"}},
        }
    ).encode()
    cases = [
        (deep, fresh),
        (bad_key, fresh),
        (b'{"type": "run.succeeded", "data": {"id": "run-1"}}', fresh),
        (BODY, ""),  # unsigned
        (BODY, "t=1,v1=00"),  # stale
        (b"[" * 50_000, fresh),
        (b"\xff" * 10, fresh),
    ]
    with CoastyClient(
        api_key=sb.api_key,
        base_url=sb.base_url,
        http_client=httpx.Client(event_hooks={"request": [lambda r: sent.append(r.url.path)]}),
    ) as client:
        for body, header in cases:
            with pytest.raises(WebhookVerificationError):
                verify_run_webhook(client, body, header)
    assert sent == []  # nothing forged cost an API call


def test_the_cookbook_receiver_answers_4xx_to_anything_unsigned(sb: Any) -> None:
    from tests.cookbook.conftest import load_recipe

    recipe = load_recipe("webhook_receiver/receiver.py")
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        receiver = recipe.WebhookReceiver(client)
        with recipe.serve(receiver.app()) as url:
            endpoint = f"{url}/webhooks/coasty"
            receiver.attach(endpoint)
            bodies = [
                b"",
                b"null",
                b'{"data": ' * 5000 + b"{}" + b"}" * 5000,
                json.dumps({"event": "run.succeeded", "run_id": "x" * 10_000}).encode(),
                json.dumps({"data": {"metadata": {"idempotency_key": "bad key"}}}).encode(),
                BODY,
                b"\x00\xff",
            ]
            headers = [None, "", "garbage", "t=1,v1=00", f"t={int(time.time())},v1=zz"]
            statuses = set()
            for body in bodies:
                for sig in headers:
                    extra = {} if sig is None else {"Coasty-Signature": sig}
                    response = httpx.post(endpoint, content=body, headers=extra, timeout=30)
                    statuses.add(response.status_code)
    assert statuses == {400}, statuses
