"""`client.machines.screenshot`, sync and async: a typed, decoded, bounded screen."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import pytest
from PIL import Image

from langchain_coasty import (
    APIConnectionError,
    AsyncCoastyClient,
    CoastyClient,
    InvalidRequestError,
    NotFoundError,
)
from langchain_coasty.client import Screenshot


def test_a_screenshot_is_a_decoded_image(client: CoastyClient, sb: Any) -> None:
    shot = client.machines.screenshot(sb.machine_id)
    assert isinstance(shot, Screenshot)
    image = Image.open(io.BytesIO(shot.image))
    image.load()
    assert (shot.width, shot.height) == image.size and shot.mime_type == "image/jpeg"
    assert shot.machine_id == sb.machine_id and shot.captured_at and shot.request_id
    assert shot.size_bytes == len(shot.image) and "image=" not in repr(shot)


async def test_the_async_twin(aclient: AsyncCoastyClient, sb: Any) -> None:
    shot = await aclient.machines.screenshot(sb.machine_id)
    assert shot.image[:3] == b"\xff\xd8\xff"  # JPEG
    with pytest.raises(NotFoundError):
        await aclient.machines.screenshot("m-nope")


def test_size_bound_and_bad_arguments(client: CoastyClient, sb: Any) -> None:
    with pytest.raises(APIConnectionError, match="max_bytes=1024"):
        client.machines.screenshot(sb.machine_id, max_bytes=1024)
    with pytest.raises(InvalidRequestError, match="max_bytes"):
        client.machines.screenshot(sb.machine_id, max_bytes=10)
    with pytest.raises(InvalidRequestError):
        client.machines.screenshot("")


GOOD = {
    "machine_id": "m-1",
    "image_b64": base64.b64encode(b"\xff\xd8\xff" + b"x" * 10).decode(),
    "mime_type": "image/jpeg",
    "width": 10,
    "height": 10,
    "captured_at": "2026-01-01T00:00:00Z",
    "request_id": "req_1",
}


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD, "image_b64": "not base64!!"},
        {**GOOD, "image_b64": None},
        {**GOOD, "width": 0},
        {k: v for k, v in GOOD.items() if k != "image_b64"},
        ["not", "an", "object"],
    ],
)
async def test_a_bad_body_is_a_typed_error(body: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "application/json", "x-coasty-request-id": "req_bad"}
        return httpx.Response(200, headers=headers, content=json.dumps(body).encode())

    options: dict[str, Any] = {
        "api_key": "sk-coasty-test-x",
        "base_url": "http://coasty.test",
        "max_retries": 0,
    }
    sync = CoastyClient(**options, http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    async_ = AsyncCoastyClient(
        **options, http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )
    with pytest.raises(APIConnectionError, match=r"unexpected Screenshot body.*req_bad"):
        sync.machines.screenshot("m-1")
    with pytest.raises(APIConnectionError, match="unexpected Screenshot body"):
        await async_.machines.screenshot("m-1")
    sync.close()
    await async_.close()
