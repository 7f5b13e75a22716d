"""When to retry and how long to wait: exponential backoff with jitter, Retry-After honoured."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

__all__ = ["RetryPolicy", "never_reached_server"]


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff settings for requests and for event-stream reconnects."""

    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    """Longest Retry-After honoured; a longer one is capped to this."""
    idempotency_wait: float = 30.0
    """How long a lost create waits for a `processing` idempotency record to complete."""
    stream_max_reconnects: int = 8
    """Consecutive reconnects without a new event before a stream gives up."""
    stream_initial_delay: float = 0.25
    stream_max_delay: float = 5.0
    pause_poll_initial_delay: float = 0.25
    """First wait before looking again at a paused run whose stream ended (then doubling)."""
    pause_poll_max_delay: float = 5.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        base = min(self.initial_delay * 2.0 ** (retry - 1), self.max_delay)
        return base * random.uniform(0.5, 1.0)

    def stream_delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait before a stream reconnect after `failures` failures in a row."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        if failures <= 1:
            return 0.0  # a rotated or cut connection is routine: reconnect at once
        base = min(self.stream_initial_delay * 2.0 ** (failures - 2), self.stream_max_delay)
        return base * random.uniform(0.5, 1.0)

    def pause_poll_delay(self, polls: int) -> float:
        """Seconds to wait before poll number `polls` (1-based) of a paused run."""
        base = min(self.pause_poll_initial_delay * 2.0 ** (polls - 1), self.pause_poll_max_delay)
        return base * random.uniform(0.5, 1.0)


def never_reached_server(exc: httpx.RequestError) -> bool:
    """True when the request provably was not delivered, so even a POST may be re-sent."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
