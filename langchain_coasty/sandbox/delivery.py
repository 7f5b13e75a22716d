"""Outbound webhook deliveries: signed like Coasty, retried with backoff, logged.

Body ``{"id": "evt_<hex>", "type": "run.<status>", "created": <unix>, "data": <run>}``, or
with the ``webhook_body="flat"`` setting the shape of Coasty's cookbook mock, ``{"event":
"run.<status>", "run_id", "status", "result", "error", "awaiting_human_reason",
"created_at"}`` (no event id, no metadata); with
``Coasty-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}." + raw_body)>`` (and the
legacy ``X-Coasty-Signature`` alias). Non-2xx answers and connection errors are retried up
to ``webhook_max_attempts`` times, waiting ``webhook_retry_base * 2**(attempt - 1)`` seconds.
Each attempt is logged (``GET /_sandbox/webhooks``). Deliveries run in their own tasks and
never hold up a run. At most ``CONCURRENCY`` attempts are on the wire at once, on as many
connections kept alive between deliveries; the others wait their turn, and an attempt is
signed and timed from when it is sent, not from when its delivery was queued (a burst of
10,000 runs ending at once is delivered, not timed out in the sender's own queue).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx

from langchain_coasty.sandbox.records import iso

CONCURRENCY = 32
"""Delivery attempts in flight at once (the connections the sender keeps). Small on purpose:
httpcore's pool walks all its connections for each idle one on every request and release,
so its cost per request grows with the square of this number."""
_FLAT_FIELDS = ("status", "result", "error", "awaiting_human_reason")
"""Run fields of a flat body, as Coasty's cookbook mock sends them."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Coasty-Signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class WebhookSender:
    """Sends webhook events in background tasks and keeps the attempt log."""

    def __init__(
        self, settings: Callable[[], tuple[float, int, float]], on_attempt: Callable[[], None]
    ) -> None:
        self._settings = settings  # -> (retry_base, max_attempts, timeout)
        self._on_attempt = on_attempt
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.log: list[dict[str, Any]] = []

    def send(
        self, url: str, secret: str, event_type: str, run: dict[str, Any], body: str = "envelope"
    ) -> None:
        """Deliver ``event_type`` for ``run`` with a ``body`` shape: envelope or flat."""
        event_id = f"evt_{secrets.token_hex(12)}"
        now = time.time()
        event: dict[str, Any]
        if body == "flat":
            event = {"event": event_type, "run_id": run["id"]}
            event.update({k: run.get(k) for k in _FLAT_FIELDS})
            event["created_at"] = iso(now)
        else:
            event = {"id": event_id, "type": event_type, "created": int(now), "data": run}
        entry = {"event_id": event_id, "event_type": event_type, "run_id": run["id"]}
        task = asyncio.get_running_loop().create_task(self._deliver(url, secret, event, entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, url: str, secret: str, event: dict[str, Any], about: dict[str, Any]
    ) -> None:
        body = json.dumps(event, separators=(",", ":")).encode()
        client, slots = self._open()
        attempt = 0
        while True:
            attempt += 1
            async with slots:  # signed when sent: a wait in the queue does not age it
                retry_base, max_attempts, timeout = self._settings()
                signature = sign(secret, body, int(time.time()))
                entry: dict[str, Any] = {
                    "url": url,
                    **about,
                    "attempt": attempt,
                    "status": None,
                    "error": None,
                    "delivered": False,
                    "ts": time.time(),
                }
                self._on_attempt()
                try:
                    response = await client.post(
                        url,
                        content=body,
                        headers={
                            "Content-Type": "application/json",
                            "Coasty-Signature": signature,
                            "X-Coasty-Signature": signature,
                            "User-Agent": "coasty-sandbox-webhooks",
                        },
                        timeout=timeout,
                    )
                    entry["status"] = response.status_code
                    entry["delivered"] = response.is_success
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    entry["error"] = f"{type(exc).__name__}: {exc}"
            self.log.append(entry)
            if entry["delivered"] or attempt >= max_attempts:
                return
            await asyncio.sleep(retry_base * 2 ** (attempt - 1))

    def _open(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The sender's connections and its slots, made on first use (on the server's loop)."""
        if self._client is None or self._slots is None:
            limits = httpx.Limits(
                max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY
            )
            self._client = httpx.AsyncClient(limits=limits)
            self._slots = asyncio.Semaphore(CONCURRENCY)
        return self._client, self._slots

    def reset(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self.log.clear()

    async def aclose(self) -> None:
        self.reset()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._slots = None
