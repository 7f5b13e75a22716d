"""`runs.create_request` against the sandbox: a RunRequest validated once, sent as is."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from langchain_coasty import AsyncCoastyClient, CoastyClient, InvalidRequestError, RunStatus
from langchain_coasty.client import RunRequest, new_idempotency_key, run_request

TASK = "Open the calculator"


@pytest.fixture
async def acounted(sb: Any, sent: list[httpx.Request]) -> AsyncIterator[AsyncCoastyClient]:
    """An async sandbox client that records each request it sends."""

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http = httpx.AsyncClient(event_hooks={"request": [record]})
    async with (
        http,
        AsyncCoastyClient(api_key=sb.api_key, base_url=sb.base_url, http_client=http) as c,
    ):
        yield c


def posted(sent: list[httpx.Request]) -> list[dict[str, Any]]:
    """The bodies of the creates sent."""
    return [json.loads(r.content) for r in sent if r.method == "POST" and r.url.path == "/v1/runs"]


def test_create_request_sends_only_the_fields_set(
    counted: CoastyClient, sent: list[httpx.Request], sb: Any
) -> None:
    request = run_request({"machine_id": sb.machine_id, "task": TASK, "metadata": {"t": "T-2"}})
    first = counted.runs.create_request(request, idempotency_key="graph:thread-1:call-1")
    again = counted.runs.create_request(request, idempotency_key="graph:thread-1:call-1")
    assert (first.replayed, again.replayed) == (False, True) and again.run.id == first.run.id
    assert first.run.metadata == {"t": "T-2"} and first.run.status is RunStatus.QUEUED
    assert first.idempotency_key == "graph:thread-1:call-1"
    assert (
        posted(sent) == [{"machine_id": sb.machine_id, "task": TASK, "metadata": {"t": "T-2"}}] * 2
    )
    assert sb.counters()["runs_created"] == 1
    assert counted.runs.wait(first.run.id, timeout=10).status is RunStatus.SUCCEEDED


async def test_async_create_request_omits_a_null_llm_and_mints_a_key(
    acounted: AsyncCoastyClient, sent: list[httpx.Request], sb: Any
) -> None:
    request = run_request({"machine_id": sb.machine_id, "task": TASK, "max_steps": 5, "llm": None})
    result = await acounted.runs.create_request(request)
    assert result.replayed is False and result.run.max_steps == 5
    assert re.fullmatch(r"lc-[0-9a-f]{32}", result.idempotency_key)
    assert sent[0].headers["idempotency-key"] == result.idempotency_key
    assert posted(sent) == [{"machine_id": sb.machine_id, "task": TASK, "max_steps": 5}]
    again = await acounted.runs.create_request(request, idempotency_key=result.idempotency_key)
    assert again.replayed is True and again.run.id == result.run.id
    assert (await acounted.runs.wait(result.run.id, timeout=10)).status is RunStatus.SUCCEEDED


def test_create_with_response_and_create_request_send_the_same_body(
    counted: CoastyClient, sent: list[httpx.Request], sb: Any
) -> None:
    fields: dict[str, Any] = {
        "machine_id": sb.machine_id,
        "task": TASK,
        "cua_version": "v4",
        "webhook_url": "http://127.0.0.1:9/hook",
        "llm": {"provider": "openai", "model": "gpt-5"},
    }
    counted.runs.create_with_response(**fields)
    counted.runs.create_request(run_request(fields))
    first, second = posted(sent)
    assert first == second
    assert first["cua_version"] == "v4" and first["webhook_url"] == fields["webhook_url"]
    assert (first["llm"]["provider"], first["llm"]["model"]) == ("openai", "gpt-5")
    assert "max_steps" not in first and "metadata" not in first


def test_a_create_validates_its_fields_once(
    counted: CoastyClient, sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    validate = RunRequest.model_validate

    def counting(obj: Any, **kwargs: Any) -> RunRequest:
        calls.append(obj)
        return validate(obj, **kwargs)

    monkeypatch.setattr(RunRequest, "model_validate", counting)
    counted.runs.create(machine_id=sb.machine_id, task=TASK)
    assert len(calls) == 1
    request = run_request({"machine_id": sb.machine_id, "task": TASK})
    calls.clear()
    counted.runs.create_request(request)
    assert calls == []


BAD_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"max_steps": 0}, "max_steps", "1..1000"),
    ({"task": ""}, "task", "1..16000"),
    ({"cua_version": "v2"}, "cua_version", "v1, v3, v4, v5"),
    ({"llm": {"provider": "mistral"}}, "llm.provider", "managed, anthropic, openai"),
    ({"budget_cents": 100}, "budget_cents", "RunRequest accepts only"),
]


@pytest.mark.parametrize(("override", "field", "limit"), BAD_FIELDS, ids=[b[1] for b in BAD_FIELDS])
def test_run_request_names_a_bad_field_before_anything_is_sent(
    counted: CoastyClient,
    sent: list[httpx.Request],
    sb: Any,
    override: dict[str, Any],
    field: str,
    limit: str,
) -> None:
    before = sb.counters()
    with pytest.raises(InvalidRequestError) as info:
        run_request({"machine_id": sb.machine_id, "task": TASK, **override})
    assert info.value.field == field and f"`{field}`" in str(info.value)
    assert limit in str(info.value)
    assert sb.counters() == before and sent == []


async def test_create_request_refuses_what_cannot_travel_before_anything_is_sent(
    counted: CoastyClient, acounted: AsyncCoastyClient, sent: list[httpx.Request], sb: Any
) -> None:
    before = sb.counters()
    base = {"machine_id": sb.machine_id, "task": TASK}
    bad = [
        (run_request({**base, "metadata": {"raw": b"\xff"}}), None, "metadata"),
        (run_request({**base, "metadata": {"text": "\ud800"}}), None, "metadata"),
        (run_request({**base, "webhook_url": "ftp://example.com/hook"}), None, "webhook_url"),
        (run_request(base), "has space", "idempotency_key"),
    ]
    for request, key, field in bad:
        with pytest.raises(InvalidRequestError) as info:
            counted.runs.create_request(request, idempotency_key=key)
        assert info.value.field == field
        with pytest.raises(InvalidRequestError) as ainfo:
            await acounted.runs.create_request(request, idempotency_key=key)
        assert str(ainfo.value) == str(info.value)
    with pytest.raises(TypeError, match="run_request"):
        counted.runs.create_request(dict(base))  # type: ignore[arg-type]
    assert sb.counters() == before and sent == []


def test_new_idempotency_key_is_fresh_and_accepted(counted: CoastyClient, sb: Any) -> None:
    keys = {new_idempotency_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(re.fullmatch(r"lc-[0-9a-f]{32}", key) for key in keys)
    key = keys.pop()
    result = counted.runs.create_request(
        run_request({"machine_id": sb.machine_id, "task": TASK}), idempotency_key=key
    )
    assert result.idempotency_key == key and counted.idempotency.get(key).is_completed
