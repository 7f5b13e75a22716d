"""The Coasty API client: sync and async twins, safe retries, an exactly-once event stream.

```python
from langchain_coasty.client import CoastyClient

with CoastyClient() as client:  # COASTY_API_KEY, COASTY_BASE_URL from the environment
    run = client.runs.create(machine_id="m-1", task="Open the invoices folder")
    for event in client.runs.events(run.id):
        print(event.seq, event.type, event.data)

    machine = client.machines.create("worker", ttl_minutes=60)  # the lease: a last line
    client.machines.wait_until(machine.id, "running", timeout=300)
    client.machines.delete(machine.id)

    # Step by step: ask where an element is, or what to do next, on a screenshot.
    spot = client.ground(png_bytes, "the Sign in button")  # spot.x, spot.y
    session = client.sessions.create(max_trajectory_length=5)
    step = client.sessions.predict(session.session_id, png_bytes, "Sign in")
    client.machines.actions("m-1", "click", {"x": spot.x, "y": spot.y})
```
"""

from langchain_coasty.client._actions import machine_action
from langchain_coasty.client._client import AsyncCoastyClient, CoastyClient
from langchain_coasty.client._cua_models import (
    ActionResult,
    BatchActionResult,
    GroundResult,
    PredictedAction,
    Prediction,
    Session,
    SessionInfo,
    SessionMutation,
    SessionPrediction,
    SessionsPage,
    Usage,
    UsageLine,
)
from langchain_coasty.client._cua_params import ScreenshotLike
from langchain_coasty.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CoastyError,
    ConflictError,
    IdempotencyInFlightError,
    IdempotencyKeyReusedError,
    IdleTimeoutError,
    InsufficientCreditsError,
    InternalServerError,
    InvalidRequestError,
    MachineStateError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimit,
    RateLimitError,
    UnprocessableEntityError,
)
from langchain_coasty.client._machine_models import (
    BillingActiveItem,
    BillingActiveResponse,
    LifecycleResponse,
    Machine,
    MachineBilling,
    MachineConnection,
    MachineConnectionSummary,
    MachinePricing,
    MachineRecord,
    MachinesPage,
    MachineStatus,
    MachineUpdate,
    ProvisionResult,
    Screenshot,
)
from langchain_coasty.client._models import (
    CreateResult,
    CuaVersionInfo,
    IdempotencyLookup,
    ModelInfo,
    ModelsResponse,
    Run,
    RunEvent,
    RunsPage,
    RunStatus,
)
from langchain_coasty.client._params import (
    LlmConfig,
    ProvisionRequest,
    RunRequest,
    check_base_url,
    new_idempotency_key,
    provision_request,
    run_request,
)
from langchain_coasty.client._retry import RetryPolicy
from langchain_coasty.client._stream import AsyncEventStream, EventStream

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ActionResult",
    "AsyncCoastyClient",
    "AsyncEventStream",
    "AuthenticationError",
    "BadRequestError",
    "BatchActionResult",
    "BillingActiveItem",
    "BillingActiveResponse",
    "CoastyClient",
    "CoastyError",
    "ConflictError",
    "CreateResult",
    "CuaVersionInfo",
    "EventStream",
    "GroundResult",
    "IdempotencyInFlightError",
    "IdempotencyKeyReusedError",
    "IdempotencyLookup",
    "IdleTimeoutError",
    "InsufficientCreditsError",
    "InternalServerError",
    "InvalidRequestError",
    "LifecycleResponse",
    "LlmConfig",
    "Machine",
    "MachineBilling",
    "MachineConnection",
    "MachineConnectionSummary",
    "MachinePricing",
    "MachineRecord",
    "MachineStateError",
    "MachineStatus",
    "MachineUpdate",
    "MachinesPage",
    "ModelInfo",
    "ModelsResponse",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PredictedAction",
    "Prediction",
    "ProvisionRequest",
    "ProvisionResult",
    "RateLimit",
    "RateLimitError",
    "RetryPolicy",
    "Run",
    "RunEvent",
    "RunRequest",
    "RunStatus",
    "RunsPage",
    "Screenshot",
    "ScreenshotLike",
    "Session",
    "SessionInfo",
    "SessionMutation",
    "SessionPrediction",
    "SessionsPage",
    "UnprocessableEntityError",
    "Usage",
    "UsageLine",
    "check_base_url",
    "machine_action",
    "new_idempotency_key",
    "provision_request",
    "run_request",
]
