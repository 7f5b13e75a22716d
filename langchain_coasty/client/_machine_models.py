"""Response models of the machine and billing endpoints.

Tolerant like the run models: unknown fields are kept, optional fields missing from a body
are None, and an unknown machine status stays a plain string. Connection details are
credentials: their secret fields are `SecretStr`, so no repr, log or dump shows them.
"""

from __future__ import annotations

import base64
import binascii
import json
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

__all__ = [
    "BillingActiveItem",
    "BillingActiveResponse",
    "LifecycleResponse",
    "Machine",
    "MachineBilling",
    "MachineConnection",
    "MachineConnectionSummary",
    "MachinePricing",
    "MachineRecord",
    "MachineStatus",
    "MachineUpdate",
    "MachinesPage",
    "ProvisionResult",
    "Screenshot",
]

MAX_SCREENSHOT_BYTES = 20_000_000
"""The largest screenshot ``client.machines.screenshot`` accepts by default (decoded bytes)."""


class MachineStatus(StrEnum):
    """Lifecycle status of a machine (MachineRecord.status)."""

    CREATING = "creating"
    PROVISIONING = "provisioning"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    SUSPENDED = "suspended"
    DELETING = "deleting"
    TERMINATED = "terminated"
    ERROR = "error"


def _known_status(value: object) -> object:
    """A known status as `MachineStatus`; anything else as sent (Coasty may add statuses)."""
    if isinstance(value, str):
        try:
            return MachineStatus(value)
        except ValueError:
            return value
    return value


class MachineBilling(BaseModel):
    """How a machine is metered (1 credit = 1 cent); None where the server sent nothing."""

    model_config = ConfigDict(extra="allow")

    billed_to: str | None = None
    running_credits_per_hour: int | None = None
    stopped_credits_per_hour: int | None = None
    accrued_cents: int | None = None
    """Credits owed for the current metering segment so far."""
    projected_daily_cents: int | None = None
    since: str | None = None
    total_credits_billed: int | None = None
    suspended_for_billing: bool | None = None
    auto_destroy_at: str | None = None
    ttl_minutes: int | None = None


class MachineRecord(BaseModel):
    """A machine (MachineRecord): what runs target, and what `client.machines` manages."""

    model_config = ConfigDict(extra="allow")

    id: str
    display_name: str | None = None
    status: MachineStatus | str | None = None
    os_type: str | None = None
    desktop_enabled: bool | None = None
    cpu_cores: int | None = None
    memory_gb: float | None = None
    storage_gb: int | None = None
    public_ip: str | None = None
    is_test: bool | None = None
    created_at: str | None = None
    started_at: str | None = None
    auto_destroy_at: str | None = None
    """When the TTL lease destroys the machine (None: no lease)."""
    ttl_minutes: int | None = None
    metadata: dict[str, Any] | None = None
    billing: MachineBilling | None = None
    """Metering of an API-provisioned machine (None for machines not provisioned by API)."""
    request_id: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> object:
        return _known_status(value)

    @field_serializer("status")
    def _status_as_text(self, status: MachineStatus | str | None) -> str | None:
        # Plain text in dumps, so checkpointers store the record without the enum.
        return None if status is None else str(getattr(status, "value", status))

    @property
    def is_running(self) -> bool:
        """True when runs can target the machine now."""
        return self.status == MachineStatus.RUNNING

    @property
    def is_terminated(self) -> bool:
        """True once the machine is gone for good."""
        return self.status == MachineStatus.TERMINATED


Machine = MachineRecord
"""The earlier name of `MachineRecord`."""


class _MachineEnvelope(BaseModel):
    """The body of `GET /v1/machines/{id}` (GetMachineResponse); a bare record is accepted."""

    model_config = ConfigDict(extra="allow")

    machine: MachineRecord
    request_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_record(cls, data: object) -> object:
        if isinstance(data, dict) and "machine" not in data and "id" in data:
            return {"machine": data, "request_id": data.get("request_id")}
        return data


class MachinesPage(BaseModel):
    """One page of `GET /v1/machines`."""

    model_config = ConfigDict(extra="allow")

    data: list[MachineRecord]
    has_more: bool = False
    request_id: str | None = None


class MachineConnectionSummary(BaseModel):
    """The connection block of a provision answer: where to connect, no credentials."""

    model_config = ConfigDict(extra="allow")

    public_ip: str | None = None
    ssh_port: int | None = None
    ssh_username: str | None = None
    vnc_port: int | None = None
    websocket_port: int | None = None
    has_ssh_key: bool = False
    has_vnc_password: bool = False


class ProvisionResult(BaseModel):
    """A provisioned machine, whether the server replayed an earlier create, and the key used."""

    model_config = ConfigDict(extra="allow")

    machine: MachineRecord
    connection: MachineConnectionSummary | None = None
    request_id: str | None = None
    replayed: bool = False
    idempotency_key: str | None = None


class LifecycleResponse(BaseModel):
    """The answer to terminate, start, stop and restart: the status the machine entered."""

    model_config = ConfigDict(extra="allow")

    machine_id: str
    status: MachineStatus | str | None = None
    message: str | None = None
    request_id: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> object:
        return _known_status(value)

    @field_serializer("status")
    def _status_as_text(self, status: MachineStatus | str | None) -> str | None:
        # Plain text in dumps, so checkpointers store the record without the enum.
        return None if status is None else str(getattr(status, "value", status))


class MachineUpdate(BaseModel):
    """The answer to `PATCH /v1/machines/{id}` (UpdateMachineResponse): the lease now."""

    model_config = ConfigDict(extra="allow")

    machine_id: str
    ttl_minutes: int | None = None
    auto_destroy_at: str | None = None
    request_id: str | None = None


class MachineConnection(BaseModel):
    """SSH and VNC details of a machine (ConnectionDetailsFull); credentials are `SecretStr`.

    Fields Coasty adds later are kept as `SecretStr` too, so none of them reaches a repr.
    """

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    machine_id: str
    public_ip: str | None = None
    ssh_port: int | None = None
    ssh_username: str | None = None
    ssh_private_key_pem: SecretStr | None = None
    vnc_port: int | None = None
    vnc_password: SecretStr | None = None
    websocket_port: int | None = None
    websocket_url: str | None = None
    devtools_url: SecretStr | None = None
    """A browser DevTools endpoint gives full control of the browser: a credential."""
    vnc_url: SecretStr | None = None
    """A signed, interactive desktop URL (no password needed): a credential."""
    screen_width: int | None = None
    screen_height: int | None = None
    request_id: str | None = None

    @model_validator(mode="after")
    def _hide_unknown_fields(self) -> MachineConnection:
        extra = self.__pydantic_extra__
        if extra:
            for name, value in extra.items():
                if isinstance(value, str):
                    extra[name] = SecretStr(value)
                elif isinstance(value, dict | list):
                    extra[name] = SecretStr(json.dumps(value))
        return self


class MachinePricing(BaseModel):
    """The result of `GET /v1/machines/pricing`: the live rate card, as sent."""

    model_config = ConfigDict(extra="allow")

    pricing: dict[str, Any] = {}
    request_id: str | None = None


class BillingActiveItem(BaseModel):
    """One machine metering the wallet now (running or stopped)."""

    model_config = ConfigDict(extra="allow")

    machine_id: str
    display_name: str | None = None
    status: MachineStatus | str | None = None
    os_type: str | None = None
    rate_cents_per_hour: int | None = None
    """The hourly rate in the machine's current state."""
    running_credits_per_hour: int | None = None
    stopped_credits_per_hour: int | None = None
    accrued_cents: int | None = None
    since: str | None = None
    total_credits_billed: int | None = None
    suspended_for_billing: bool | None = None
    auto_destroy_at: str | None = None
    ttl_minutes: int | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> object:
        return _known_status(value)

    @field_serializer("status")
    def _status_as_text(self, status: MachineStatus | str | None) -> str | None:
        # Plain text in dumps, so checkpointers store the record without the enum.
        return None if status is None else str(getattr(status, "value", status))


class BillingActiveResponse(BaseModel):
    """The result of `GET /v1/billing/active`: what bills now, and the summed hourly rate."""

    model_config = ConfigDict(extra="allow")

    active: list[BillingActiveItem] = []
    current_run_rate_cents_per_hour: int = 0
    request_id: str | None = None


class Screenshot(BaseModel):
    """A machine's screen (ScreenshotResponse), with the image decoded to bytes."""

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    machine_id: str
    image: bytes
    """The encoded image (JPEG unless ``mime_type`` says otherwise)."""
    mime_type: str = "image/jpeg"
    width: int
    height: int
    captured_at: str | None = None
    request_id: str | None = None

    @property
    def image_b64(self) -> str:
        """The image as base64 (what ground, predict and sessions take)."""
        return base64.b64encode(self.image).decode("ascii")

    @model_validator(mode="before")
    @classmethod
    def _decode(cls, data: object) -> object:
        if isinstance(data, dict) and "image" not in data:
            data = dict(data)
            encoded = data.pop("image_b64", None)
            if not isinstance(encoded, str):
                raise ValueError("image_b64 must be a base64 string")
            try:
                data["image"] = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("image_b64 is not valid base64") from None
            if data.get("mime_type") is None:
                data.pop("mime_type", None)
        return data

    @field_validator("width", "height")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be positive")
        return value

    @property
    def size_bytes(self) -> int:
        """How large the encoded image is."""
        return len(self.image)

    def __repr__(self) -> str:
        return (
            f"Screenshot(machine_id={self.machine_id!r}, mime_type={self.mime_type!r}, "
            f"width={self.width}, height={self.height}, size_bytes={self.size_bytes}, "
            f"captured_at={self.captured_at!r})"
        )
