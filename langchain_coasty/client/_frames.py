"""Reading a run's SSE frames as events: both framings, duplicates and phantoms dropped (no I/O)."""

from __future__ import annotations

import json
import logging
from typing import Any

from httpx_sse import ServerSentEvent

from langchain_coasty.client._models import RunEvent

__all__: list[str] = []  # the stream's own parts: `_Cursor`, `_BadFrame`

logger = logging.getLogger("langchain_coasty.client")


class _BadFrame(Exception):
    """A frame that cannot be parsed; the stream reconnects from the cursor."""


_ENVELOPE_KEYS = ("seq", "type", "data")


def _line_seq(value: str) -> int | None:
    """The integer of an ``id:`` line, or None."""
    return int(value) if value.isascii() and value.isdigit() else None


class _Cursor:
    """Turns raw SSE frames into new events, dropping heartbeats, phantoms and duplicates.

    Two framings are read, decided frame by frame from what the frame holds: the envelope
    (``data: {seq, type, data}``, the OpenAPI's) and the flat form of Coasty's docs (``id:``
    is the seq, ``event:`` the type, ``data:`` the payload itself). A JSON object holding two
    of ``seq``, ``type`` and ``data`` is an envelope. An envelope that contradicts its own
    ``id:`` / ``event:`` lines is still read as an envelope (its fields are explicit), and the
    lines' values are kept on the event as ``sse_id`` / ``sse_event`` so nothing is dropped;
    the first such frame of a stream is logged.
    """

    def __init__(self, after: int, run_id: str | None = None) -> None:
        self.last_seq = after
        self.last_type: str | None = None
        self.duplicates = 0
        self.contradictions = 0
        self._run_id = run_id

    def accept(self, sse: ServerSentEvent) -> RunEvent | None:
        # httpx-sse yields an empty event (carrying the sticky last id) after each
        # heartbeat comment; frames without data carry no event.
        data = sse.data
        if not data or data.isspace():
            return None
        if '"seq"' not in data:
            return self._accept_tolerantly(sse)
        try:
            # Fast path: a well-formed envelope is parsed and validated in one pass (the hot loop).
            event = RunEvent.model_validate_json(data, strict=True)
        except ValueError:
            return self._accept_tolerantly(sse)
        if (sse.id and sse.id != str(event.seq)) or (
            sse.event != event.type and sse.event != "message"
        ):
            return self._accept_tolerantly(sse)
        return self._advance(event)

    def _advance(self, event: RunEvent) -> RunEvent | None:
        if event.seq <= self.last_seq:
            self.duplicates += 1
            return None
        self.last_seq = event.seq
        self.last_type = event.type
        return event

    def _accept_tolerantly(self, sse: ServerSentEvent) -> RunEvent | None:
        try:
            payload = json.loads(sse.data)
        except ValueError as exc:
            raise _BadFrame(f"frame data is not JSON: {sse.data[:80]!r}") from exc
        if isinstance(payload, dict) and sum(k in payload for k in _ENVELOPE_KEYS) >= 2:
            return self._envelope(sse, payload)
        return self._flat(sse, payload)

    def _flat(self, sse: ServerSentEvent, payload: Any) -> RunEvent | None:
        seq = _line_seq(sse.id)
        if seq is None:
            raise _BadFrame("frame has no integer seq (no envelope and no integer id: line)")
        if seq <= self.last_seq:
            self.duplicates += 1
            return None
        data = (
            payload if isinstance(payload, dict) else {} if payload is None else {"value": payload}
        )
        return self._advance(RunEvent.model_construct(seq=seq, type=sse.event, data=data, ts=None))

    def _envelope(self, sse: ServerSentEvent, payload: dict[str, Any]) -> RunEvent | None:
        line_seq = _line_seq(sse.id)
        seq = payload.get("seq")
        given_type = payload.get("type")
        extra = {k: v for k, v in payload.items() if k not in ("seq", "type", "data", "ts")}
        if isinstance(seq, bool) or not isinstance(seq, int):
            seq = line_seq
            if seq is None:
                raise _BadFrame("frame has no integer seq")
        elif line_seq is not None and line_seq != seq:
            extra["sse_id"] = sse.id
        if isinstance(given_type, str) and given_type and sse.event not in ("message", given_type):
            extra["sse_event"] = sse.event
        if "sse_id" in extra or "sse_event" in extra:
            self._contradiction(seq, given_type, sse)
        if seq <= self.last_seq:
            self.duplicates += 1
            return None
        data = payload.get("data")
        ts = payload.get("ts")
        event = RunEvent.model_validate(
            {
                **extra,
                "seq": seq,
                "type": str(given_type or sse.event or "message"),
                "data": data
                if isinstance(data, dict)
                else ({} if data is None else {"value": data}),
                "ts": ts if isinstance(ts, int | float) and not isinstance(ts, bool) else None,
            }
        )
        return self._advance(event)

    def _contradiction(self, seq: int, given_type: object, sse: ServerSentEvent) -> None:
        self.contradictions += 1
        if self.contradictions == 1:
            logger.warning(
                "Event stream of run %s: a frame's envelope (seq %s, type %r) contradicts its "
                "id: %r / event: %r lines; read as the envelope, the lines kept as sse_id / "
                "sse_event (logged once per stream).",
                self._run_id,
                seq,
                given_type,
                sse.id,
                sse.event,
            )
