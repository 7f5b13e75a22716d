"""What ``machine=`` is made of: the provisioning spec, the policies, a call's lease and usage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from langchain_coasty._graph import THREAD_ID_KEY
from langchain_coasty.client import (
    CoastyError,
    ProvisionRequest,
    provision_request,
)

if TYPE_CHECKING:
    pass

DEFAULT_LEASE_MINUTES = 60
OWNER_KEY = "langchain_coasty"
"""Metadata key (value ``"1"``) on every machine this package created."""
POLICY_KEY = "langchain_coasty_policy"
"""Metadata key naming the policy that created a machine (``thread``, ``call``, ``pool``)."""
_OWN_KEYS = 3  # OWNER_KEY, POLICY_KEY and the thread id: what a spec's metadata leaves room for


class MachineSpec(BaseModel):
    """How to provision a machine (the developer's choice, never the LLM's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    display_name: str = "langchain-coasty"
    os_type: Literal["linux", "windows"] = "linux"
    desktop_enabled: bool = True
    cpu_cores: int | None = None
    memory_gb: int | None = None
    storage_gb: int | None = None
    ttl_minutes: int = DEFAULT_LEASE_MINUTES
    """The auto-destroy lease (5..10080 minutes), renewed while a run is going."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """At most 13 entries (the package adds 3 of the 16 a machine allows)."""
    ready_timeout: float = 900.0
    """The longest wait for a new machine to be running (seconds)."""

    @model_validator(mode="after")
    def _valid(self) -> MachineSpec:
        if not (isinstance(self.ready_timeout, int | float) and 0 < self.ready_timeout <= 86_400):
            raise ValueError(
                "ready_timeout must be a number of seconds in 0..86400 "
                f"(got {self.ready_timeout!r})"
            )
        if len(self.metadata) > 16 - _OWN_KEYS:
            raise ValueError(
                f"metadata may have at most {16 - _OWN_KEYS} entries (the package adds "
                f"{_OWN_KEYS} of the 16 a machine allows); got {len(self.metadata)}"
            )
        try:
            self.request("call", None)
        except CoastyError as exc:  # InvalidRequestError names the field and the limit
            raise ValueError(str(exc)) from None
        return self

    def request(self, policy: str, thread_id: str | None) -> ProvisionRequest:
        """The validated provision request, with the package's own metadata."""
        meta = {**self.metadata, OWNER_KEY: "1", POLICY_KEY: policy}
        if thread_id:
            meta[THREAD_ID_KEY] = thread_id[:256]
        fields: dict[str, Any] = {
            "display_name": self.display_name,
            "os_type": self.os_type,
            "desktop_enabled": self.desktop_enabled,
            "ttl_minutes": self.ttl_minutes,
            "metadata": meta,
        }
        for name in ("cpu_cores", "memory_gb", "storage_gb"):
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        return provision_request(fields)


class MachinePerThread(BaseModel):
    """One machine per LangGraph thread, reused by every task of the thread."""

    model_config = ConfigDict(frozen=True)
    spec: MachineSpec = Field(default_factory=MachineSpec)

    def __init__(self, spec: MachineSpec | None = None, /, **data: Any) -> None:
        super().__init__(spec=spec if spec is not None else data.pop("spec", MachineSpec()), **data)


class MachinePerCall(BaseModel):
    """A fresh machine for each call, terminated when the call ends."""

    model_config = ConfigDict(frozen=True)
    spec: MachineSpec = Field(default_factory=MachineSpec)

    def __init__(self, spec: MachineSpec | None = None, /, **data: Any) -> None:
        super().__init__(spec=spec if spec is not None else data.pop("spec", MachineSpec()), **data)


class MachineUsage(BaseModel):
    """What a call's machine was and cost (on the tool's artifact and in ``machine`` events)."""

    machine_id: str
    policy: Literal["thread", "call", "pool"]
    provisioned: bool
    """Whether this call provisioned it (rather than reusing one)."""
    terminated: bool = False
    status: str | None = None
    cost_usd: float | None = None
    """Credits the machine billed so far (1 credit = 1 cent), when the server says."""

    def describe(self) -> str:
        """One sentence for the tool's summary."""
        if self.terminated:
            cost = "" if self.cost_usd is None else f" (it cost ${self.cost_usd:.2f})"
            return f"Machine {self.machine_id} was terminated{cost}."
        cost = "" if self.cost_usd is None else f" (${self.cost_usd:.2f} so far)"
        kept = {
            "thread": "kept for this thread (until its agent run ends)",
            "pool": "returned to the pool",
        }
        return f"Machine {self.machine_id} is {kept.get(self.policy, 'kept')}{cost}."


@dataclass
class MachineLease:
    """The machine one call runs on, and what to do with it when the call ends."""

    machine_id: str
    policy: Literal["thread", "call", "pool"]
    ttl_minutes: int
    provisioned: bool = False
    usage: MachineUsage | None = None
    pool_key: str | None = None
    pool: Any = None
    """The ``CoastyMachinePool`` it was borrowed from (``policy == "pool"``)."""
