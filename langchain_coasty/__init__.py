"""LangChain and LangGraph integration for Coasty's computer-use agent.

Hand a desktop or browser task to Coasty from a LangChain tool or runnable, follow
the run's events live as callbacks, and answer the agent's human pauses as LangGraph
interrupts. Names are imported lazily so that ``import langchain_coasty`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from langchain_coasty._version import __version__

if TYPE_CHECKING:
    from langchain_coasty.callbacks import CoastyCallbackHandler
    from langchain_coasty.client import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AsyncCoastyClient,
        AuthenticationError,
        CoastyClient,
        CoastyError,
        ConflictError,
        IdempotencyInFlightError,
        IdempotencyKeyReusedError,
        InsufficientCreditsError,
        InternalServerError,
        InvalidRequestError,
        NotFoundError,
        PayloadTooLargeError,
        PermissionDeniedError,
        RateLimitError,
        Run,
        RunEvent,
        RunsPage,
        RunStatus,
        UnprocessableEntityError,
    )
    from langchain_coasty.runnable import CoastyRunnable
    from langchain_coasty.sandbox import CoastySandbox
    from langchain_coasty.tools import CoastyComputerTool, CoastyToolkit
    from langchain_coasty.webhooks import WebhookEvent, WebhookVerificationError, verify_webhook

_EXPORTS: dict[str, str] = {
    "CoastyClient": "langchain_coasty.client",
    "AsyncCoastyClient": "langchain_coasty.client",
    "Run": "langchain_coasty.client",
    "RunEvent": "langchain_coasty.client",
    "RunStatus": "langchain_coasty.client",
    "RunsPage": "langchain_coasty.client",
    "CoastyError": "langchain_coasty.client",
    "APIConnectionError": "langchain_coasty.client",
    "APITimeoutError": "langchain_coasty.client",
    "APIStatusError": "langchain_coasty.client",
    "AuthenticationError": "langchain_coasty.client",
    "InsufficientCreditsError": "langchain_coasty.client",
    "PermissionDeniedError": "langchain_coasty.client",
    "NotFoundError": "langchain_coasty.client",
    "ConflictError": "langchain_coasty.client",
    "IdempotencyInFlightError": "langchain_coasty.client",
    "PayloadTooLargeError": "langchain_coasty.client",
    "UnprocessableEntityError": "langchain_coasty.client",
    "IdempotencyKeyReusedError": "langchain_coasty.client",
    "RateLimitError": "langchain_coasty.client",
    "InternalServerError": "langchain_coasty.client",
    "InvalidRequestError": "langchain_coasty.client",
    "verify_webhook": "langchain_coasty.webhooks",
    "WebhookEvent": "langchain_coasty.webhooks",
    "WebhookVerificationError": "langchain_coasty.webhooks",
    "CoastyRunnable": "langchain_coasty.runnable",
    "CoastyComputerTool": "langchain_coasty.tools",
    "CoastyToolkit": "langchain_coasty.tools",
    "CoastyCallbackHandler": "langchain_coasty.callbacks",
    "CoastySandbox": "langchain_coasty.sandbox",
}

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncCoastyClient",
    "AuthenticationError",
    "CoastyCallbackHandler",
    "CoastyClient",
    "CoastyComputerTool",
    "CoastyError",
    "CoastyRunnable",
    "CoastySandbox",
    "CoastyToolkit",
    "ConflictError",
    "IdempotencyInFlightError",
    "IdempotencyKeyReusedError",
    "InsufficientCreditsError",
    "InternalServerError",
    "InvalidRequestError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "Run",
    "RunEvent",
    "RunStatus",
    "RunsPage",
    "UnprocessableEntityError",
    "WebhookEvent",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_coasty' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
