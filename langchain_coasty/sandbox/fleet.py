"""The sandbox's machines: their state machine, TTL leases, metering, and the sandbox clock.

One thing: every change of a machine goes through ``Fleet``. Machines move on sandbox time
(``SandboxClock``: real time plus an offset the control plane can advance), and a machine's
pending transitions and lease are applied lazily, in time order, whenever anyone looks
(``settle``), so advancing the clock an hour meters that hour and fires the leases it passes.

Lifecycle (each transient phase lasts ``machine_phase_seconds`` of sandbox time)::

    creating -> provisioning -> starting -> running        (provision fault: -> error)
    running  -> stopping -> stopped -> starting -> running (stop, start)
    running  -> restarting -> running                      (restart)
    any but terminated -> terminated                       (DELETE, or the TTL lease)

Metering (1 credit = 1 cent): running, starting, stopping and restarting bill the running
rate (5/h Linux, 9/h Windows), stopped 1/h; the pre-provisioned machines bill nothing.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_coasty.sandbox.faults import FaultInjector
from langchain_coasty.sandbox.records import SandboxConfig, iso

RUNNING_CREDITS_PER_HOUR = {"linux": 5, "windows": 9}
STOPPED_CREDITS_PER_HOUR = 1
TTL_MINUTES = (5, 10080)
_RUNNING_RATE = frozenset({"running", "starting", "stopping", "restarting"})
_STOPPED_RATE = frozenset({"stopped", "suspended"})
EndReason = Literal["deleted", "ttl_expired"]


class MachineStateConflict(Exception):
    """A lifecycle call that the machine's current status does not allow."""


class SandboxClock:
    """Sandbox time: the wall clock plus an offset that ``advance`` moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass(slots=True)
class SandboxMachine:
    """The sandbox's record of one machine: its request, status, lease and meter."""

    id: str
    display_name: str
    key_kind: str | None  # None: pre-provisioned, visible to every key kind
    created_at: float
    os_type: str = "linux"
    desktop_enabled: bool = False
    cpu_cores: int = 1
    memory_gb: int = 2
    storage_gb: int = 10
    metadata: dict[str, str] = field(default_factory=dict)
    status: str = "creating"
    started_at: float | None = None
    ttl_minutes: int | None = None
    auto_destroy_at: float | None = None
    plan: list[tuple[float, str]] = field(default_factory=list)
    """Pending transitions, in time order: (sandbox time, status entered then)."""
    segment_since: float = 0.0
    billed_before: float = 0.0
    """Exact credits of the metering segments before the current one."""
    terminated_at: float | None = None
    end_reason: EndReason | None = None
    provision_failed: bool = False
    """Fault injection sent its provisioning into ``error``."""
    ssh_private_key: str = ""
    vnc_password: str = ""

    @property
    def preprovisioned(self) -> bool:
        return self.key_kind is None

    def rate(self) -> int:
        """Credits per hour in the current status."""
        if self.preprovisioned:
            return 0
        if self.status in _RUNNING_RATE:
            return RUNNING_CREDITS_PER_HOUR.get(self.os_type, 5)
        if self.status in _STOPPED_RATE:
            return STOPPED_CREDITS_PER_HOUR
        return 0

    def segment_credits(self, now: float) -> float:
        return max(0.0, now - self.segment_since) / 3600 * self.rate()

    def billing_json(self, now: float) -> dict[str, Any]:
        rate = self.rate()
        return {
            "billed_to": "api_wallet",
            "running_credits_per_hour": RUNNING_CREDITS_PER_HOUR.get(self.os_type, 5),
            "stopped_credits_per_hour": STOPPED_CREDITS_PER_HOUR,
            "accrued_cents": int(self.segment_credits(now)),
            "projected_daily_cents": rate * 24,
            "since": iso(self.segment_since) if rate else None,
            "total_credits_billed": self.total_credits(now),
            "suspended_for_billing": False,
            "auto_destroy_at": iso(self.auto_destroy_at),
            "ttl_minutes": self.ttl_minutes,
        }

    def total_credits(self, now: float) -> int:
        return int(self.billed_before + self.segment_credits(now) + 1e-9)

    def to_json(self, now: float, *, billing: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "display_name": self.display_name,
            "status": self.status,
            "os_type": self.os_type,
            "desktop_enabled": self.desktop_enabled,
            "cpu_cores": self.cpu_cores,
            "memory_gb": self.memory_gb,
            "storage_gb": self.storage_gb,
            "public_ip": None if self.status == "terminated" else "127.0.0.1",
            "is_test": self.key_kind != "live",
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "auto_destroy_at": iso(self.auto_destroy_at),
            "ttl_minutes": self.ttl_minutes,
            "metadata": dict(self.metadata),
        }
        if self.preprovisioned:
            out["public_ip"] = None
            out["created_at"] = None
        elif billing:
            out["billing"] = self.billing_json(now)
        return out

    def connection_json(self) -> dict[str, Any]:
        """What ``GET /v1/machines/{id}/connection`` answers (ConnectionDetailsFull)."""
        return {
            "machine_id": self.id,
            "public_ip": "127.0.0.1",
            "ssh_port": 22,
            "ssh_username": "coasty",
            "ssh_private_key_pem": self.ssh_private_key,
            "vnc_port": 5900,
            "vnc_password": self.vnc_password,
            "websocket_port": 6080,
            "websocket_url": f"ws://127.0.0.1:6080/{self.id}",
            "devtools_url": None,
            "vnc_url": f"http://127.0.0.1:6080/vnc.html?autoconnect=1&token={self.vnc_password}",
            "screen_width": 1280,
            "screen_height": 800,
        }

    def redacted_connection_json(self) -> dict[str, Any]:
        """The connection block of a provision answer: no credentials, only whether they exist."""
        return {
            "public_ip": "127.0.0.1",
            "ssh_port": 22,
            "ssh_username": "coasty",
            "vnc_port": 5900,
            "websocket_port": 6080,
            "has_ssh_key": True,
            "has_vnc_password": True,
        }

    def ledger_json(self, now: float) -> dict[str, Any]:
        """One line of ``GET /_sandbox/machines``: what the machine was and how it ended."""
        return {
            "id": self.id,
            "display_name": self.display_name,
            "status": self.status,
            "os_type": self.os_type,
            "key_kind": self.key_kind,
            "metadata": dict(self.metadata),
            "created_at": iso(self.created_at),
            "terminated_at": iso(self.terminated_at),
            "end_reason": self.end_reason,
            "provision_failed": self.provision_failed,
            "ttl_minutes": self.ttl_minutes,
            "auto_destroy_at": iso(self.auto_destroy_at),
            "total_credits_billed": self.total_credits(now),
        }


def _fake_private_key() -> str:
    body = secrets.token_urlsafe(48)
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"


class Fleet:
    """Every machine of the sandbox, pre-provisioned and created, and their transitions."""

    def __init__(self, config: Callable[[], SandboxConfig], faults: FaultInjector) -> None:
        self._config = config
        self.faults = faults
        self.clock = SandboxClock()
        self.machines: dict[str, SandboxMachine] = {}

    def reset(self, preprovisioned: tuple[str, ...]) -> None:
        """Forget every machine, rewind the clock, and bring the fixed machines back up."""
        self.clock = SandboxClock()
        self.machines = {}
        for i, machine_id in enumerate(preprovisioned, start=1):
            self.machines[machine_id] = SandboxMachine(
                id=machine_id,
                display_name=f"Sandbox desktop {i}",
                key_kind=None,
                created_at=0.0,
                desktop_enabled=True,
                cpu_cores=2,
                memory_gb=4,
                storage_gb=20,
                metadata={"sandbox": "true"},
                status="running",
            )

    def now(self) -> float:
        return self.clock.now()

    # -- looking -------------------------------------------------------------------------

    def settle(self) -> float:
        """Apply every transition and lease due by now, in time order; return now."""
        now = self.clock.now()
        for machine in self.machines.values():
            self._settle(machine, now)
        return now

    def _settle(self, machine: SandboxMachine, now: float) -> None:
        while machine.status != "terminated":
            lease = machine.auto_destroy_at
            step = machine.plan[0] if machine.plan else None
            if step is not None and step[0] <= now and (lease is None or step[0] <= lease):
                machine.plan.pop(0)
                self._enter(machine, step[1], step[0])
            elif lease is not None and lease <= now:
                self._terminate(machine, lease, "ttl_expired")
            else:
                return

    def visible(self, machine_id: str, key_kind: str) -> SandboxMachine | None:
        """The machine as this key kind sees it (settled), or None."""
        machine = self.machines.get(machine_id)
        if machine is None or machine.key_kind not in (None, key_kind):
            return None
        self._settle(machine, self.clock.now())
        return machine

    def listed(self, key_kind: str) -> list[SandboxMachine]:
        """What ``GET /v1/machines`` lists: the fixed machines, then the live created ones."""
        self.settle()
        return [
            m
            for m in self.machines.values()
            if m.key_kind in (None, key_kind) and m.status != "terminated"
        ]

    def created(self) -> list[SandboxMachine]:
        """Every machine created through the API since the last reset, oldest first."""
        self.settle()
        return [m for m in self.machines.values() if not m.preprovisioned]

    # -- changing ------------------------------------------------------------------------

    def provision(self, body: dict[str, Any], key_kind: str) -> SandboxMachine:
        """Create a machine for a validated ProvisionRequest body; it boots on its own."""
        now = self.settle()
        hex_id = uuid.uuid4().hex
        machine = SandboxMachine(
            id=f"mch_test_{hex_id[:24]}" if key_kind == "test" else str(uuid.UUID(hex_id)),
            display_name=body["display_name"],
            key_kind=key_kind,
            created_at=now,
            os_type=body.get("os_type", "linux"),
            desktop_enabled=bool(body.get("desktop_enabled", False)),
            cpu_cores=body.get("cpu_cores") or 1,
            memory_gb=body.get("memory_gb") or 2,
            storage_gb=body.get("storage_gb") or 10,
            metadata=dict(body.get("metadata") or {}),
            segment_since=now,
            ssh_private_key=_fake_private_key(),
            vnc_password=secrets.token_urlsafe(12),
        )
        ttl = body.get("ttl_minutes")
        if ttl is not None:
            machine.ttl_minutes = int(ttl)
            machine.auto_destroy_at = now + int(ttl) * 60
        phase = self._config().machine_phase_seconds
        fails = self.faults.machine_provision_fails()
        if fails:
            self.faults.fire("machine_provision_fail")
            machine.provision_failed = True
            machine.plan = [(now + phase, "provisioning"), (now + 2 * phase, "error")]
        else:
            machine.plan = [
                (now + phase, "provisioning"),
                (now + 2 * phase, "starting"),
                (now + 3 * phase + self._slow_start(), "running"),
            ]
        self.machines[machine.id] = machine
        return machine

    def _slow_start(self) -> float:
        delay = self.faults.config.machine_start_delay_seconds
        if delay > 0:
            self.faults.fire("machine_slow_start")
        return delay

    def start(self, machine: SandboxMachine) -> None:
        self._require(machine, "start", ("stopped", "suspended"))
        now = self.clock.now()
        self._enter(machine, "starting", now)
        phase = self._config().machine_phase_seconds + self._slow_start()
        machine.plan = [(now + phase, "running")]

    def stop(self, machine: SandboxMachine) -> None:
        self._require(machine, "stop", ("running",))
        now = self.clock.now()
        self._enter(machine, "stopping", now)
        machine.plan = [(now + self._config().machine_phase_seconds, "stopped")]

    def restart(self, machine: SandboxMachine) -> None:
        self._require(machine, "restart", ("running",))
        now = self.clock.now()
        self._enter(machine, "restarting", now)
        machine.plan = [(now + self._config().machine_phase_seconds, "running")]

    def terminate(self, machine: SandboxMachine) -> None:
        """End a machine for good (a second DELETE changes nothing)."""
        if machine.status != "terminated":
            self._terminate(machine, self.clock.now(), "deleted")

    def set_lease(self, machine: SandboxMachine, ttl_minutes: int) -> None:
        """``ttl_minutes`` from now (0 clears the lease)."""
        if machine.status == "terminated":
            raise MachineStateConflict(
                f"Machine {machine.id} is terminated; its lease can no longer change."
            )
        if ttl_minutes == 0:
            machine.ttl_minutes = machine.auto_destroy_at = None
        else:
            machine.ttl_minutes = ttl_minutes
            machine.auto_destroy_at = self.clock.now() + ttl_minutes * 60

    def _require(self, machine: SandboxMachine, action: str, allowed: tuple[str, ...]) -> None:
        if machine.status not in allowed:
            raise MachineStateConflict(
                f"Machine {machine.id} is {machine.status}; only a machine that is "
                f"{' or '.join(allowed)} can {action}."
            )

    def _enter(self, machine: SandboxMachine, status: str, at: float) -> None:
        """Change status at sandbox time ``at``, closing the metering segment there."""
        machine.billed_before += machine.segment_credits(at)
        machine.segment_since = at
        machine.status = status
        if status == "running" and machine.started_at is None:
            machine.started_at = at

    def _terminate(self, machine: SandboxMachine, at: float, reason: EndReason) -> None:
        self._enter(machine, "terminated", at)
        machine.plan = []
        machine.terminated_at = at
        machine.end_reason = reason


__all__ = [
    "RUNNING_CREDITS_PER_HOUR",
    "STOPPED_CREDITS_PER_HOUR",
    "TTL_MINUTES",
    "Fleet",
    "MachineStateConflict",
    "SandboxClock",
    "SandboxMachine",
]
