"""The event-stream reader, rule by rule of the WHATWG standard, and its bounds."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from langchain_coasty import CoastyClient
from langchain_coasty.client._sse import (
    HEARTBEAT,
    FrameTooLarge,
    LineSplitter,
    SSEDecoder,
)


def _by_line(chunks: tuple[str, ...], bounds: dict[str, int]) -> list[Any]:
    lines, decoder = LineSplitter(**bounds), SSEDecoder(**bounds)
    out = []
    for chunk in chunks:
        for line in lines.feed(chunk):
            frame = decoder.decode(line)
            if frame is not None and frame is not HEARTBEAT:
                out.append(frame)
    return out


def _by_chunk(chunks: tuple[str, ...], bounds: dict[str, int]) -> list[Any]:
    lines, decoder = LineSplitter(**bounds), SSEDecoder(**bounds)
    return [frame for chunk in chunks for frame in decoder.feed(lines.feed(chunk))]


def frames(*chunks: str, **bounds: int) -> list[Any]:
    """The frames of ``chunks`` read by the stream's chunk-at-a-time path, which must agree
    with the line-by-line reading of the standard."""
    try:
        expected = [(f.event, f.data, f.id, f.retry) for f in _by_line(chunks, bounds)]
    except FrameTooLarge:
        with pytest.raises(FrameTooLarge):
            _by_chunk(chunks, bounds)
        raise
    got = _by_chunk(chunks, bounds)
    assert [(f.event, f.data, f.id, f.retry) for f in got] == expected
    return got


def test_lf_crlf_and_cr_line_ends_and_a_crlf_split_across_chunks() -> None:
    for text in ("id: 1\ndata: a\n\n", "id: 1\r\ndata: a\r\n\r\n", "id: 1\rdata: a\r\r"):
        (frame,) = frames(text)
        assert (frame.id, frame.data) == ("1", "a")
    (frame,) = frames("id: 1\r", "\ndata: a\r", "\n\r", "\n")
    assert (frame.id, frame.data) == ("1", "a")
    assert [f.data for f in frames("data: a\r", "\r")] == ["a"]


def test_one_leading_byte_order_mark_is_dropped() -> None:
    (frame,) = frames("\ufeffid: 1\ndata: x\n\n")
    assert (frame.id, frame.data) == ("1", "x")
    (frame,) = frames("\ufeff", "data: x\n\n")
    assert frame.data == "x"
    (frame,) = frames("\ufeff\ufeffdata: x\n\n", "data: y\n\n")[-1:]
    assert frame.data == "y"  # only one BOM is dropped: the second makes an unknown field


def test_fields_without_a_colon_and_the_space_after_it() -> None:
    (frame,) = frames("data\n\n")  # a field with an empty value: still a frame
    assert frame.data == ""
    assert frames("data:no space\n\n")[0].data == "no space"
    assert frames("data:  two spaces\n\n")[0].data == " two spaces"
    assert frames("data: a\ndata: b\n\n")[0].data == "a\nb"
    assert frames("event: status\ndata: x\n\n")[0].event == "status"
    assert frames("data: x\n\n")[0].event == "message"
    assert frames("bogus: 1\ndata: x\n\n")[0].data == "x"  # unknown fields are ignored


def test_id_and_retry() -> None:
    got = frames("id: 7\ndata: a\n\n", "data: b\n\n", "id\ndata: c\n\n", "id: a\0b\ndata: d\n\n")
    assert [f.id for f in got] == ["7", "7", "", ""]  # sticky; empty resets; NUL ignored
    assert frames("retry: 1500\ndata: a\n\n")[0].retry == 1500
    assert frames("retry: 1.5\ndata: a\n\n")[0].retry is None
    assert frames("retry: ²\ndata: a\n\n")[0].retry is None


def test_comments_are_heartbeats_and_frames_without_data_are_dropped() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(": ping") is HEARTBEAT
    assert frames("event: status\n\n", "id: 3\n\n") == []
    assert frames("data: cut off by the end of the stream") == []


def test_a_line_or_a_frame_past_the_bound_is_refused_as_soon_as_it_passes() -> None:
    splitter = LineSplitter(max_chars=100)
    with pytest.raises(FrameTooLarge):
        for _ in range(10):
            splitter.feed("x" * 20)  # no line end: refused after 100 characters, not at EOF
    assert splitter.feed("\n") == [""]  # the oversized line was dropped, memory freed
    with pytest.raises(FrameTooLarge):
        frames("data: " + "y" * 60 + "\n" + "data: " + "y" * 60 + "\n", max_chars=100)
    assert frames("data: " + "z" * 90 + "\n\n", max_chars=100)[0].data == "z" * 90


def test_a_stream_that_starts_with_a_bom_keeps_its_first_event() -> None:
    # No real server here can be made to send a BOM, so the transport plays one.
    events = [{"seq": 1, "type": "status", "data": {"status": "running"}}]
    events.append({"seq": 2, "type": "done", "data": {"status": "succeeded"}})
    body = "\ufeff" + "".join(f"id: {e['seq']}\ndata: {json.dumps(e)}\n\n" for e in events)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=body.encode()
        )

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with CoastyClient(
        api_key="sk-coasty-test-x", base_url="http://coasty.test", http_client=http
    ) as c:
        assert [e.seq for e in c.runs.events("run-1")] == [1, 2]
