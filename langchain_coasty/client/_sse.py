"""The event-stream format, read line by line as the WHATWG HTML standard describes it (no I/O).

Lines end at CRLF, LF or CR (also when a CRLF is split across chunks); one leading byte
order mark is dropped; ``:`` lines are comments (heartbeats), reported as ``HEARTBEAT`` so
that a reader can look at its clock while a stream carries nothing else; a field line
without a colon is a field with an empty value; ``id`` without a NUL sets the last event id
(empty resets it); ``retry`` of ASCII digits sets the reconnection time; a blank line
dispatches the frame when it has data. A frame cut off by the end of the stream is dropped.
A line or a frame longer than its bound (``MAX_FRAME_CHARS`` by default) raises
``FrameTooLarge`` as soon as the bound is passed, so memory stays bounded.
"""

from __future__ import annotations

from typing import Final

from httpx_sse import ServerSentEvent

__all__ = [
    "HEARTBEAT",
    "MAX_FRAME_CHARS",
    "FrameTooLarge",
    "Heartbeat",
    "LineSplitter",
    "SSEDecoder",
]

MAX_FRAME_CHARS = 16 * 1024 * 1024
"""Default bound on one line and on one frame's data (characters): far above any event."""


class FrameTooLarge(Exception):
    """A line or a frame passed its bound."""


class Heartbeat:
    """The type of ``HEARTBEAT``."""

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT: Final = Heartbeat()
"""What ``SSEDecoder.decode`` returns for a comment line."""


class LineSplitter:
    """Cuts decoded text chunks into lines, whatever the line ends and the chunk borders."""

    def __init__(self, max_chars: int = MAX_FRAME_CHARS) -> None:
        self._rest = ""
        self._after_cr = False
        self._max = max_chars

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
        if len(self._rest) > self._max:
            self._rest = ""
            raise FrameTooLarge(f"a line longer than {self._max} characters")
        return lines


class SSEDecoder:
    """Turns lines into frames (``ServerSentEvent``), ``HEARTBEAT`` for comments, else None."""

    def __init__(self, max_chars: int = MAX_FRAME_CHARS) -> None:
        self._max = max_chars
        self._size = 0
        self._event = ""
        self._data: list[str] = []
        self._last_id = ""
        self._retry: int | None = None
        self._first = True

    def decode(self, line: str) -> ServerSentEvent | Heartbeat | None:
        """One line: the frame it completes, ``HEARTBEAT`` for a comment, else None."""
        bare = line[1:] if self._first and line.startswith("\ufeff") else line
        if bare[:1] == ":":
            self._first = False
            return HEARTBEAT
        frames = self.feed([line])
        return frames[0] if frames else None

    def feed(self, lines: list[str]) -> list[ServerSentEvent]:
        """The frames completed by ``lines``; comments are dropped (a reader looks at its
        clock once per chunk). One call per chunk, not per line: the stream's hot loop."""
        frames: list[ServerSentEvent] = []
        for line in lines:
            if self._first:
                self._first = False
                if line.startswith("\ufeff"):
                    line = line[1:]
            if not line:
                if self._data:
                    frames.append(self._frame())
                else:
                    self._event, self._size = "", 0
                continue
            if line[0] == ":":
                continue
            field, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if field == "data":
                self._size += len(value) + 1
                if self._size > self._max:
                    self._data, self._size = [], 0
                    raise FrameTooLarge(f"a frame with more than {self._max} characters of data")
                self._data.append(value)
            elif field == "event":
                self._event = value
            elif field == "id":
                if "\0" not in value:
                    self._last_id = value
            elif field == "retry" and value.isascii() and value.isdigit():
                self._retry = int(value)
        return frames

    def _frame(self) -> ServerSentEvent:
        data, event = self._data, self._event
        self._data, self._event, self._size = [], "", 0
        return ServerSentEvent(
            event=event or "message",
            data=data[0] if len(data) == 1 else "\n".join(data),
            id=self._last_id,
            retry=self._retry,
        )
