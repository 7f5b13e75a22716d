"""The event-stream format, read line by line as the WHATWG HTML standard describes it (no I/O).

Lines end at CRLF, LF or CR (also when a CRLF is split across chunks); one leading byte
order mark is dropped; ``:`` lines are comments (heartbeats), reported as ``HEARTBEAT`` so
that a reader can look at its clock while a stream carries nothing else; a field line
without a colon is a field with an empty value; ``id`` without a NUL sets the last event id
(empty resets it); ``retry`` of ASCII digits sets the reconnection time; a blank line
dispatches the frame when it has data. A frame cut off by the end of the stream is dropped.
"""

from __future__ import annotations

from typing import Final

from httpx_sse import ServerSentEvent

__all__ = ["HEARTBEAT", "Heartbeat", "LineSplitter", "SSEDecoder"]


class Heartbeat:
    """The type of ``HEARTBEAT``."""

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT: Final = Heartbeat()
"""What ``SSEDecoder.decode`` returns for a comment line."""


class LineSplitter:
    """Cuts decoded text chunks into lines, whatever the line ends and the chunk borders."""

    def __init__(self) -> None:
        self._rest = ""
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        """The lines completed by ``text`` (without their line ends)."""
        if self._after_cr:
            self._after_cr = False
            if text.startswith("\n"):  # the LF of a CRLF whose CR ended the last chunk
                text = text[1:]
        if "\r" in text:
            self._after_cr = text.endswith("\r")
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        lines[0] = self._rest + lines[0]
        self._rest = lines.pop()
        return lines


class SSEDecoder:
    """Turns lines into frames (``ServerSentEvent``), ``HEARTBEAT`` for comments, else None."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._last_id = ""
        self._retry: int | None = None
        self._first = True

    def decode(self, line: str) -> ServerSentEvent | Heartbeat | None:
        if self._first:
            self._first = False
            if line.startswith("\ufeff"):
                line = line[1:]
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return HEARTBEAT
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(
            event=event or "message", data="\n".join(data), id=self._last_id, retry=self._retry
        )
