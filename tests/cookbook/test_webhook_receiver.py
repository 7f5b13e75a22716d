"""The webhook receiver recipe in-process: verification, de-duplication, the waiting thread."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from langchain_coasty import CoastyClient
from tests.cookbook.conftest import load_recipe


@pytest.mark.parametrize(
    ("body", "lookup"), [("envelope", True), ("flat", False)], ids=["envelope", "flat-no-lookup"]
)
def test_payment_pause_is_refused_and_the_thread_finishes_cancelled(
    coasty_sandbox: Any, body: str, lookup: bool
) -> None:
    coasty_sandbox.configure(webhook_body=body, idempotency_lookup=lookup)
    recipe = load_recipe("webhook_receiver/receiver.py")
    with CoastyClient(api_key=coasty_sandbox.api_key, base_url=coasty_sandbox.base_url) as client:
        receiver = recipe.WebhookReceiver(client)
        with recipe.serve(receiver.app()) as url:
            endpoint = f"{url}/webhooks/coasty"
            receiver.attach(endpoint)
            thread_id = receiver.start("Pay the March invoice of ACME", coasty_sandbox.machine_id)
            assert receiver.finished[thread_id].wait(30)
            state = receiver.state(thread_id)
            assert state["webhooks"] == ["run.awaiting_human", "run.cancelled"]
            assert state["answers"] == ["cancelled"]
            assert client.runs.get(state["run_id"]).status.value == "cancelled"

            delivered, signature = receiver.deliveries[0]
            tampered = delivered.replace(b"awaiting_human", b"succeeded")
            headers = {"Content-Type": "application/json"}
            for content, sig in [
                (tampered, signature),  # body changed after signing
                (delivered, ""),  # no signature
                (delivered, "t=1,v1=" + "0" * 64),  # forged and stale
                (b"not json", signature),
            ]:
                response = httpx.post(
                    endpoint, content=content, headers={**headers, "Coasty-Signature": sig}
                )
                assert response.status_code == 400, (content[:40], sig)
            replay = httpx.post(
                endpoint, content=delivered, headers={**headers, "Coasty-Signature": signature}
            )
            assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"

    assert receiver.stats == {"accepted": 2, "duplicates": 1, "rejected": 4, "ignored": 0}
    delivered = coasty_sandbox.webhook_deliveries()
    assert {d["event_type"] for d in delivered} >= {"run.awaiting_human", "run.cancelled"}
    assert all(json.dumps(d).count(endpoint) for d in delivered)
