"""LangChain and LangGraph integration for Coasty's computer-use agent.

Hand a desktop or browser task to Coasty from a LangChain tool or runnable, follow
the run's events live as callbacks, and answer the agent's human pauses as LangGraph
interrupts. Names are imported lazily so that ``import langchain_coasty`` stays cheap.
The test server (``CoastySandbox``) is in ``langchain_coasty.sandbox``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from langchain_coasty._version import __version__

# _EXPORTS for type checkers (`X as X` is an explicit re-export); a test keeps the two equal.
if TYPE_CHECKING:
    from langchain_coasty.callbacks import (
        COASTY_EVENT as COASTY_EVENT,
    )
    from langchain_coasty.callbacks import (
        AsyncCoastyCallbackHandler as AsyncCoastyCallbackHandler,
    )
    from langchain_coasty.callbacks import (
        CoastyCallbackHandler as CoastyCallbackHandler,
    )
    from langchain_coasty.callbacks import (
        CoastyEventPayload as CoastyEventPayload,
    )
    from langchain_coasty.client import (
        APIConnectionError as APIConnectionError,
    )
    from langchain_coasty.client import (
        APIStatusError as APIStatusError,
    )
    from langchain_coasty.client import (
        APITimeoutError as APITimeoutError,
    )
    from langchain_coasty.client import (
        AsyncCoastyClient as AsyncCoastyClient,
    )
    from langchain_coasty.client import (
        AuthenticationError as AuthenticationError,
    )
    from langchain_coasty.client import (
        BadRequestError as BadRequestError,
    )
    from langchain_coasty.client import (
        CoastyClient as CoastyClient,
    )
    from langchain_coasty.client import (
        CoastyError as CoastyError,
    )
    from langchain_coasty.client import (
        ConflictError as ConflictError,
    )
    from langchain_coasty.client import (
        IdempotencyInFlightError as IdempotencyInFlightError,
    )
    from langchain_coasty.client import (
        IdempotencyKeyReusedError as IdempotencyKeyReusedError,
    )
    from langchain_coasty.client import (
        IdleTimeoutError as IdleTimeoutError,
    )
    from langchain_coasty.client import (
        InsufficientCreditsError as InsufficientCreditsError,
    )
    from langchain_coasty.client import (
        InternalServerError as InternalServerError,
    )
    from langchain_coasty.client import (
        InvalidRequestError as InvalidRequestError,
    )
    from langchain_coasty.client import (
        MachineRecord as MachineRecord,
    )
    from langchain_coasty.client import (
        MachineStateError as MachineStateError,
    )
    from langchain_coasty.client import (
        MachineStatus as MachineStatus,
    )
    from langchain_coasty.client import (
        NotFoundError as NotFoundError,
    )
    from langchain_coasty.client import (
        PayloadTooLargeError as PayloadTooLargeError,
    )
    from langchain_coasty.client import (
        PermissionDeniedError as PermissionDeniedError,
    )
    from langchain_coasty.client import (
        RateLimitError as RateLimitError,
    )
    from langchain_coasty.client import (
        Run as Run,
    )
    from langchain_coasty.client import (
        RunEvent as RunEvent,
    )
    from langchain_coasty.client import (
        RunsPage as RunsPage,
    )
    from langchain_coasty.client import (
        RunStatus as RunStatus,
    )
    from langchain_coasty.client import (
        UnprocessableEntityError as UnprocessableEntityError,
    )
    from langchain_coasty.durable import (
        aresume_from_webhook as aresume_from_webhook,
    )
    from langchain_coasty.durable import (
        resume_from_webhook as resume_from_webhook,
    )
    from langchain_coasty.human import HumanAnswer as HumanAnswer
    from langchain_coasty.machines import CoastyMachinePool as CoastyMachinePool
    from langchain_coasty.machines import MachinePerCall as MachinePerCall
    from langchain_coasty.machines import MachinePerThread as MachinePerThread
    from langchain_coasty.machines import MachineSpec as MachineSpec
    from langchain_coasty.machines import MachineUsage as MachineUsage
    from langchain_coasty.machines import arelease_thread_machine as arelease_thread_machine
    from langchain_coasty.machines import release_thread_machine as release_thread_machine
    from langchain_coasty.middleware import CoastyMiddleware as CoastyMiddleware
    from langchain_coasty.runnable import (
        CoastyRunnable as CoastyRunnable,
    )
    from langchain_coasty.runnable import (
        FollowedRun as FollowedRun,
    )
    from langchain_coasty.screens import ScreenLimits as ScreenLimits
    from langchain_coasty.step_tools import CoastyActTool as CoastyActTool
    from langchain_coasty.step_tools import CoastyGroundTool as CoastyGroundTool
    from langchain_coasty.step_tools import CoastyNextActionTool as CoastyNextActionTool
    from langchain_coasty.step_tools import (
        arelease_thread_session as arelease_thread_session,
    )
    from langchain_coasty.step_tools import (
        release_thread_session as release_thread_session,
    )
    from langchain_coasty.tools import (
        CoastyCancelRunTool as CoastyCancelRunTool,
    )
    from langchain_coasty.tools import (
        CoastyComputerTool as CoastyComputerTool,
    )
    from langchain_coasty.tools import (
        CoastyGetRunTool as CoastyGetRunTool,
    )
    from langchain_coasty.tools import (
        CoastyResumeRunTool as CoastyResumeRunTool,
    )
    from langchain_coasty.tools import (
        CoastyScreenshotTool as CoastyScreenshotTool,
    )
    from langchain_coasty.tools import (
        CoastyToolkit as CoastyToolkit,
    )
    from langchain_coasty.webhooks import (
        WebhookEvent as WebhookEvent,
    )
    from langchain_coasty.webhooks import (
        WebhookVerificationError as WebhookVerificationError,
    )
    from langchain_coasty.webhooks import (
        averify_run_webhook as averify_run_webhook,
    )
    from langchain_coasty.webhooks import (
        verify_run_webhook as verify_run_webhook,
    )
    from langchain_coasty.webhooks import (
        verify_webhook as verify_webhook,
    )

_CLIENT = "langchain_coasty.client"
_EXPORTS: dict[str, str] = {
    # the clients and what they return
    "CoastyClient": _CLIENT,
    "AsyncCoastyClient": _CLIENT,
    "Run": _CLIENT,
    "RunEvent": _CLIENT,
    "RunStatus": _CLIENT,
    "RunsPage": _CLIENT,
    "MachineRecord": _CLIENT,
    "MachineStatus": _CLIENT,
    # the error tree
    "CoastyError": _CLIENT,
    "APIConnectionError": _CLIENT,
    "APITimeoutError": _CLIENT,
    "IdleTimeoutError": _CLIENT,
    "APIStatusError": _CLIENT,
    "BadRequestError": _CLIENT,
    "AuthenticationError": _CLIENT,
    "InsufficientCreditsError": _CLIENT,
    "PermissionDeniedError": _CLIENT,
    "NotFoundError": _CLIENT,
    "ConflictError": _CLIENT,
    "IdempotencyInFlightError": _CLIENT,
    "PayloadTooLargeError": _CLIENT,
    "UnprocessableEntityError": _CLIENT,
    "IdempotencyKeyReusedError": _CLIENT,
    "RateLimitError": _CLIENT,
    "InternalServerError": _CLIENT,
    "InvalidRequestError": _CLIENT,
    "MachineStateError": _CLIENT,
    # LangChain: runnable, tools, toolkit
    "CoastyRunnable": "langchain_coasty.runnable",
    "FollowedRun": "langchain_coasty.runnable",
    "CoastyComputerTool": "langchain_coasty.tools",
    "CoastyGetRunTool": "langchain_coasty.tools",
    "CoastyResumeRunTool": "langchain_coasty.tools",
    "CoastyCancelRunTool": "langchain_coasty.tools",
    "CoastyScreenshotTool": "langchain_coasty.tools",
    "CoastyToolkit": "langchain_coasty.tools",
    "ScreenLimits": "langchain_coasty.screens",
    "CoastyGroundTool": "langchain_coasty.step_tools",
    "CoastyActTool": "langchain_coasty.step_tools",
    "CoastyNextActionTool": "langchain_coasty.step_tools",
    "release_thread_session": "langchain_coasty.step_tools",
    "arelease_thread_session": "langchain_coasty.step_tools",
    # events and pauses
    "COASTY_EVENT": "langchain_coasty.callbacks",
    "CoastyEventPayload": "langchain_coasty.callbacks",
    "CoastyCallbackHandler": "langchain_coasty.callbacks",
    "AsyncCoastyCallbackHandler": "langchain_coasty.callbacks",
    "HumanAnswer": "langchain_coasty.human",
    "CoastyMachinePool": "langchain_coasty.machines",
    "MachinePerCall": "langchain_coasty.machines",
    "MachinePerThread": "langchain_coasty.machines",
    "MachineSpec": "langchain_coasty.machines",
    "MachineUsage": "langchain_coasty.machines",
    "arelease_thread_machine": "langchain_coasty.machines",
    "release_thread_machine": "langchain_coasty.machines",
    "CoastyMiddleware": "langchain_coasty.middleware",
    # webhooks and durable waits
    "verify_webhook": "langchain_coasty.webhooks",
    "verify_run_webhook": "langchain_coasty.webhooks",
    "averify_run_webhook": "langchain_coasty.webhooks",
    "WebhookEvent": "langchain_coasty.webhooks",
    "WebhookVerificationError": "langchain_coasty.webhooks",
    "resume_from_webhook": "langchain_coasty.durable",
    "aresume_from_webhook": "langchain_coasty.durable",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_coasty' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
