"""verify_webhook: every rejection case, with vectors computed here; both body shapes; the
secret store and ``verify_run_webhook`` against the sandbox."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from langchain_coasty import (
    AsyncCoastyClient,
    CoastyClient,
    CoastyRunnable,
    WebhookEvent,
    WebhookVerificationError,
    averify_run_webhook,
    verify_run_webhook,
    verify_webhook,
)
from langchain_coasty.webhook_secrets import (
    BaseStoreWebhookSecrets,
    InMemoryWebhookSecrets,
    WebhookSecretStore,
    as_secret_store,
)
from langchain_coasty.webhooks import WebhookSecretNotFoundError

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
    "body", [b"not json", b"[1, 2]", b"null"], ids=["not-json", "array", "null"]
)
def test_signed_body_that_is_not_a_json_object_is_rejected(body: bytes) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, header(body), SECRET)


@pytest.mark.parametrize(
    "body",
    [b'{"id": "evt_1"}', b'{"id": 1, "type": "x", "created": "y"}'],
    ids=["missing-fields", "odd-types"],
)
def test_signed_body_with_missing_or_odd_fields_is_read_tolerantly(body: bytes) -> None:
    event = verify_webhook(body, header(body), SECRET)
    assert event.raw == json.loads(body)
    assert event.run_id is None and event.created is None


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


# -- both published body shapes, and close variants ----------------------------------------

FLAT = {
    "event": "run.succeeded",
    "run_id": "3c1f",
    "status": "succeeded",
    "result": {"summary": "done"},
    "error": None,
    "awaiting_human_reason": None,
    "created_at": "2026-12-01T10:00:00Z",
}


@pytest.mark.parametrize(
    "body",
    [
        EVENT,
        FLAT,
        {"type": "run.succeeded", "run": {"id": "3c1f", "status": "succeeded"}, "created": 1},
        {"type": "succeeded", "id": "3c1f", "object": "agent.run", "status": "succeeded"},
        {"event": "run.succeeded", "run_id": "3c1f", "id": "evt_9", "created": "1700000000"},
        {"type": "run.succeeded", "data": {"run_id": "3c1f"}, "created_at": 1_700_000_000.5},
    ],
    ids=["envelope", "flat", "run-key", "bare-status-run-at-top", "event-id-and-run-id", "data"],
)
def test_every_body_shape_gives_the_same_event_fields(body: dict[str, object]) -> None:
    raw = json.dumps(body).encode()
    event = verify_webhook(raw, header(raw), SECRET)
    assert (event.type, event.run_id) == ("run.succeeded", "3c1f")
    assert event.data["id"] == "3c1f"
    assert event.raw == body
    assert event.created is None or isinstance(event.created, int)


def test_flat_body_keeps_its_fields_and_reads_its_time() -> None:
    raw = json.dumps({**FLAT, "brand_new": 1}).encode()
    event = verify_webhook(raw, header(raw), SECRET)
    assert event.id is None
    assert event.created == 1_796_119_200  # 2026-12-01T10:00:00Z
    assert event.run.status == "succeeded" and event.run.result == {"summary": "done"}
    dumped = event.model_dump(mode="json")
    assert dumped["brand_new"] == 1 and dumped["status"] == "succeeded"
    assert event.dedupe_key == "3c1f:run.succeeded:1796119200"
    assert WebhookEvent.model_validate(dumped).run_id == "3c1f"  # a dump reads back the same
    enveloped = verify_webhook(BODY, header(), SECRET)
    assert enveloped.dedupe_key == "evt_0123abcd"


@pytest.mark.parametrize(
    "body",
    [
        {"event": "run.succeeded"},  # no run
        {"event": "run.succeeded", "run_id": 7},
        {"type": "run.succeeded", "id": "3c1f"},  # an id, but nothing says it is a run
        {"event": "run.succeeded", "run_id": "r", "created_at": "yesterday"},
        {"event": "run.succeeded", "run_id": "r", "id": 5},
        {"event": 5, "run_id": "r"},
    ],
)
def test_signed_bodies_without_a_type_or_a_run_are_read_with_nones(body: dict[str, object]) -> None:
    raw = json.dumps(body).encode()
    event = verify_webhook(raw, header(raw), SECRET)  # authentic: accepted, read tolerantly
    assert event.raw == body
    assert event.type is None or event.type.startswith("run.") or event.type == "x"
    assert event.run_id in (None, "r", "7")


# -- the secret store, and verify_run_webhook against the sandbox ---------------------------


def test_in_memory_store_is_bounded_and_never_shows_a_secret() -> None:
    store = InMemoryWebhookSecrets(maxsize=2)
    for run_id in ("a", "b", "c"):
        store.put(run_id, SecretStr(f"whsec_{run_id}"))
    assert store.get("a") is None  # the least recently used went
    found = store.get("c")
    assert found is not None and found.get_secret_value() == "whsec_c"
    assert "whsec" not in repr(store) + repr(found)
    assert isinstance(store, WebhookSecretStore)
    assert asyncio.run(store.aget("b")) == SecretStr("whsec_b")


def test_a_langgraph_store_is_adapted_under_its_own_namespace() -> None:
    from langgraph.store.memory import InMemoryStore

    base = InMemoryStore()
    store = as_secret_store(base)
    assert isinstance(store, BaseStoreWebhookSecrets)
    store.put("run-1", SecretStr("whsec_1"))
    item = base.get(("coasty", "webhook_secrets"), "run-1")
    assert item is not None and item.value == {"secret": "whsec_1"}
    assert asyncio.run(store.aget("run-1")) == SecretStr("whsec_1")
    assert store.get("run-2") is None
    assert "whsec" not in repr(store)
    with pytest.raises(TypeError, match="WebhookSecretStore"):
        as_secret_store({"run-1": "whsec_1"})  # type: ignore[arg-type]
    # A LangGraph store given to the tool or the runnable is adapted the same way.
    runnable = CoastyRunnable(api_key="sk-coasty-test-0", webhook_secrets=base)
    assert isinstance(runnable.webhook_secrets, BaseStoreWebhookSecrets)
    assert runnable.webhook_secrets.store is base
    with pytest.raises(ValidationError, match="WebhookSecretStore"):
        CoastyRunnable(api_key="sk-coasty-test-0", webhook_secrets={"run-1": "whsec_1"})


def _signed(body: dict[str, Any], secret: str) -> tuple[bytes, str]:
    raw = json.dumps(body).encode()
    return raw, header(raw, secret=secret)


def _flat(run_id: str) -> dict[str, Any]:
    return {**FLAT, "run_id": run_id}


def test_the_engine_keeps_the_secret_where_the_receiver_finds_it(sb: Any) -> None:
    sb.configure(idempotency_lookup=False)
    store = InMemoryWebhookSecrets()
    runnable = CoastyRunnable(
        api_key=sb.api_key,
        base_url=sb.base_url,
        machine_id=sb.machine_id,
        webhook_url=f"{sb.base_url}/hooks/nobody",
        webhook_secrets=store,
    )
    run = runnable.invoke("Open the notes app")
    assert run.webhook_secret is None  # never at rest on the result: the store has it
    kept = store.get(run.id)
    assert kept is not None
    secret = kept.get_secret_value()
    assert secret.startswith("whsec_")
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        raw, signature = _signed(_flat(run.id), secret)
        event = verify_run_webhook(client, raw, signature, secrets=store)
        assert (event.type, event.run_id) == ("run.succeeded", run.id)
        _, forged = _signed(_flat(run.id), "whsec_forged")
        with pytest.raises(WebhookVerificationError, match="No signature matches"):
            verify_run_webhook(client, raw, forged, secrets=store)
        # Another store (another process) has no secret, and there is no lookup to ask.
        with pytest.raises(WebhookSecretNotFoundError, match="idempotency key"):
            verify_run_webhook(client, raw, signature, secrets=InMemoryWebhookSecrets())


def test_the_idempotency_lookup_is_a_fallback_when_the_body_names_a_key(sb: Any) -> None:
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        run = client.runs.create(
            machine_id=sb.machine_id,
            task="Open the notes app",
            webhook_url=f"{sb.base_url}/hooks/nobody",
            metadata={"idempotency_key": "lookup-key-1"},
            idempotency_key="lookup-key-1",
        )
        assert run.webhook_secret is not None
        secret = run.webhook_secret.get_secret_value()
        body = {**EVENT, "data": {**EVENT["data"], "id": run.id, "metadata": run.metadata}}
        raw, signature = _signed(body, secret)
        store = InMemoryWebhookSecrets()
        assert verify_run_webhook(client, raw, signature, secrets=store).run_id == run.id
        assert store.get(run.id) == SecretStr(secret)  # kept for the next delivery

        sb.configure(idempotency_lookup=False)
        assert verify_run_webhook(client, raw, signature, secrets=store).run_id == run.id
        with pytest.raises(WebhookSecretNotFoundError, match="no create with this"):
            verify_run_webhook(client, raw, signature, secrets=InMemoryWebhookSecrets())


class _SyncOnly:
    """A store with no async methods: used from async code through a worker thread."""

    def __init__(self) -> None:
        self.items: dict[str, SecretStr] = {}
        self.threads: set[int] = set()

    def put(self, run_id: str, secret: SecretStr) -> None:
        self.threads.add(threading.get_ident())
        self.items[run_id] = secret

    def get(self, run_id: str) -> SecretStr | None:
        self.threads.add(threading.get_ident())
        return self.items.get(run_id)


async def test_async_twins_use_the_store_without_blocking_the_loop(sb: Any) -> None:
    sb.configure(webhook_body="flat", idempotency_lookup=False)
    store = _SyncOnly()
    runnable = CoastyRunnable(
        api_key=sb.api_key,
        base_url=sb.base_url,
        machine_id=sb.machine_id,
        webhook_url=f"{sb.base_url}/hooks/nobody",
        webhook_secrets=store,
    )
    run = await runnable.ainvoke("Open the notes app")
    assert run.webhook_secret is None
    kept = await asyncio.to_thread(store.get, run.id)  # off the loop: the store is sync-only
    assert kept is not None
    raw, signature = _signed(_flat(run.id), kept.get_secret_value())
    async with AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url) as client:
        event = await averify_run_webhook(client, raw, signature, secrets=store)
        assert event.run_id == run.id
        with pytest.raises(WebhookSecretNotFoundError):
            await averify_run_webhook(client, raw, signature, secrets=InMemoryWebhookSecrets())
    assert threading.get_ident() not in store.threads
