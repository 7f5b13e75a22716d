"""Seeded, reproducible fault injection for the sandbox.

Set with ``POST /_sandbox/faults`` (or ``CoastySandbox.inject(**faults)``), clear with
``DELETE /_sandbox/faults``. Every field is optional; rates are probabilities in 0..1 drawn
from one RNG seeded with ``seed``, so the same request sequence meets the same faults::

    {"seed": 7,
     "create_refuse_rate": 0.1,        # POST /v1/runs: 503 SERVICE_UNAVAILABLE before creating
                                       #   (retryable; retry_with_same_idempotency_key is true
                                       #   when the request carried an Idempotency-Key)
     "create_lose_response_rate": 0.1, # the run IS created, then the connection is dropped
                                       #   mid-response (client sees a protocol/read error)
     "create_rate_limit_rate": 0.1,    # 429 RATE_LIMITED with Retry-After
     "retry_after": 1,                 # seconds in Retry-After / error.retry_after above
     "create_delay_seconds": 0,        # hold each create this long before completing it, so
                                       #   a concurrent retry sees 409 IDEMPOTENCY_IN_FLIGHT
     "stream_cut_rate": 0.3,           # per SSE connection: cut after a random number of
     "stream_cut_max_frames": 20,      #   frames in [1, stream_cut_max_frames]
     "stream_cut_mode": "abrupt",      # abrupt = drop TCP mid-stream; clean = normal EOF
                                       #   before done; random = either
     "stream_duplicate_rate": 0.3,     # on a reconnect (after > 0), first resend 1..3 frames
                                       #   the client already has
     "stream_stall_rate": 0.0,         # per connection: after a random number of frames, send
     "stream_stall_seconds": 5,        #   nothing (no heartbeats) for this long
     "machine_provision_fail_rate": 0.1,        # POST /v1/machines: the machine is created,
                                                #   then goes provisioning -> error
     "machine_start_delay_seconds": 0,          # sandbox seconds added to every start
                                                #   (boot, start) of a machine
     "machine_create_lose_response_rate": 0.1,  # the machine IS created (and its key
                                                #   completed), then the answer is cut short
     "cua_lose_response_rate": 0.1,    # ground, predict, sessions, machine actions: the call
                                       #   IS made (and its key completed), then cut short
     "errors": [                       # one-shot scripted error responses, any /v1 route;
       {"method": "GET", "path": "/v1/runs/{id}", "status": 404, "code": "NOT_FOUND",
        "times": 1}]                   #   optional: message, retryable, retry_after,
                                       #   flags (false: no retryable/retry_with_same_
                                       #   idempotency_key), headers (extra response headers)
    }

Each fault that fires is counted in ``GET /_sandbox/counters`` under ``faults_fired``.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_RATES = (
    "create_refuse_rate",
    "create_lose_response_rate",
    "create_rate_limit_rate",
    "stream_cut_rate",
    "stream_duplicate_rate",
    "stream_stall_rate",
    "machine_provision_fail_rate",
    "machine_create_lose_response_rate",
    "cua_lose_response_rate",
)
CUT_MODES = ("abrupt", "clean", "random")
MAX_DELAY_SECONDS = 3600
"""The longest a fault may hold a create or a stream (an hour; never for ever)."""


@dataclass(slots=True)
class ScriptedError:
    """An error response to return the next ``times`` requests matching method and path."""

    method: str
    path: re.Pattern[str]
    status: int
    code: str
    times: int
    message: str | None = None
    retryable: bool | None = None
    retry_after: int | None = None
    flags: bool | None = None
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class StreamFaults:
    """The faults decided for one SSE connection."""

    cut_after: int | None = None
    cut_abrupt: bool = True
    duplicate: int = 0
    stall_after: int | None = None
    stall_seconds: float = 0.0


@dataclass(slots=True)
class FaultConfig:
    """The current fault settings; see the module docstring for the fields."""

    seed: int = 0
    create_refuse_rate: float = 0.0
    create_lose_response_rate: float = 0.0
    create_rate_limit_rate: float = 0.0
    retry_after: int = 1
    create_delay_seconds: float = 0.0
    stream_cut_rate: float = 0.0
    stream_cut_max_frames: int = 20
    stream_cut_mode: str = "abrupt"
    stream_duplicate_rate: float = 0.0
    stream_stall_rate: float = 0.0
    stream_stall_seconds: float = 5.0
    machine_provision_fail_rate: float = 0.0
    machine_start_delay_seconds: float = 0.0
    machine_create_lose_response_rate: float = 0.0
    cua_lose_response_rate: float = 0.0
    errors: list[ScriptedError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__}
        out["errors"] = [
            {
                "method": e.method,
                "path": e.path.pattern,
                "status": e.status,
                "code": e.code,
                "times": e.times,
                "flags": e.flags,
                "headers": e.headers,
            }
            for e in self.errors
        ]
        return out


def _path_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]*\})", template)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}$")


def parse_fault_config(raw: dict[str, Any], default_seed: int) -> FaultConfig:
    """Validate a fault dict into a FaultConfig; raises ValueError naming the bad field."""
    known = set(FaultConfig.__slots__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown fault field(s) {unknown}; allowed: {sorted(known)}")
    config = FaultConfig(seed=default_seed)
    for name, value in raw.items():
        if name == "errors":
            continue
        if name in _RATES and not (isinstance(value, int | float) and 0 <= value <= 1):
            raise ValueError(f"{name} must be a number in 0..1")
        if name == "stream_cut_mode" and value not in CUT_MODES:
            raise ValueError(f"stream_cut_mode must be one of {', '.join(CUT_MODES)}")
        if name in ("seed", "retry_after", "stream_cut_max_frames") and not (
            isinstance(value, int) and not isinstance(value, bool) and value >= 0
        ):
            raise ValueError(f"{name} must be an integer >= 0")
        if name in (
            "create_delay_seconds",
            "stream_stall_seconds",
            "machine_start_delay_seconds",
        ) and not (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and 0 <= value <= MAX_DELAY_SECONDS
        ):
            raise ValueError(f"{name} must be a number of seconds in 0..{MAX_DELAY_SECONDS}")
        setattr(config, name, value)
    config.stream_cut_max_frames = max(1, config.stream_cut_max_frames)
    for i, err in enumerate(raw.get("errors") or []):
        if not isinstance(err, dict) or not {"path", "status", "code"} <= set(err):
            raise ValueError(f"errors[{i}] needs at least path, status and code")
        status = err["status"]
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"errors[{i}].status must be an HTTP error status (400..599)")
        flags = err.get("flags")
        if flags is not None and not isinstance(flags, bool):
            raise ValueError(f"errors[{i}].flags must be true or false")
        headers = err.get("headers")
        if headers is not None and not (
            isinstance(headers, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise ValueError(f"errors[{i}].headers must map header names to strings")
        config.errors.append(
            ScriptedError(
                method=str(err.get("method", "*")).upper(),
                path=_path_regex(str(err["path"])),
                status=status,
                code=str(err["code"]),
                times=int(err.get("times", 1)),
                message=err.get("message"),
                retryable=err.get("retryable"),
                retry_after=err.get("retry_after"),
                flags=flags,
                headers=headers,
            )
        )
    return config


class FaultInjector:
    """Draws fault decisions from the seeded RNG and counts the ones that fire."""

    def __init__(self, default_seed: int = 0) -> None:
        self.default_seed = default_seed
        self.fired: Counter[str] = Counter()
        self.set(FaultConfig(seed=default_seed))

    def set(self, config: FaultConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)

    def clear(self) -> None:
        self.set(FaultConfig(seed=self.default_seed))

    def _draw(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def fire(self, name: str) -> None:
        self.fired[name] += 1

    def scripted_error(self, method: str, path: str) -> ScriptedError | None:
        for err in self.config.errors:
            if err.times > 0 and err.method in ("*", method) and err.path.match(path):
                err.times -= 1
                self.fire("scripted_error")
                return err
        return None

    def create_refused(self) -> bool:
        return self._draw(self.config.create_refuse_rate)

    def create_rate_limited(self) -> bool:
        return self._draw(self.config.create_rate_limit_rate)

    def create_response_lost(self) -> bool:
        return self._draw(self.config.create_lose_response_rate)

    def machine_provision_fails(self) -> bool:
        return self._draw(self.config.machine_provision_fail_rate)

    def machine_create_response_lost(self) -> bool:
        return self._draw(self.config.machine_create_lose_response_rate)

    def cua_response_lost(self) -> bool:
        return self._draw(self.config.cua_lose_response_rate)

    def for_stream(self, reconnect: bool) -> StreamFaults:
        c = self.config
        faults = StreamFaults()
        if self._draw(c.stream_cut_rate):
            faults.cut_after = self.rng.randint(1, c.stream_cut_max_frames)
            mode = c.stream_cut_mode
            if mode == "random":
                mode = self.rng.choice(("abrupt", "clean"))
            faults.cut_abrupt = mode == "abrupt"
        if reconnect and self._draw(c.stream_duplicate_rate):
            faults.duplicate = self.rng.randint(1, 3)
        if self._draw(c.stream_stall_rate):
            faults.stall_after = self.rng.randint(1, c.stream_cut_max_frames)
            faults.stall_seconds = c.stream_stall_seconds
        return faults
