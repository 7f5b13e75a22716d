"""A local Coasty server for offline tests, CI and demos (think stripe-mock, moto server mode).

``CoastySandbox`` serves Coasty's /v1/runs API on a free loopback port in a background
thread; ``SandboxControl`` drives a sandbox running elsewhere (``coasty-sandbox`` CLI);
``create_app`` builds the ASGI app. The pytest plugin provides a ``coasty_sandbox`` fixture.
See ``app`` (routes, control plane), ``scenarios`` (scenario files) and ``faults`` (fault
injection). Names are imported lazily so that importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_coasty.sandbox.app import create_app
    from langchain_coasty.sandbox.server import CoastySandbox, SandboxControl

_EXPORTS = {
    "CoastySandbox": "langchain_coasty.sandbox.server",
    "SandboxControl": "langchain_coasty.sandbox.server",
    "create_app": "langchain_coasty.sandbox.app",
}

__all__ = ["CoastySandbox", "SandboxControl", "create_app"]

_SERVER_STACK = frozenset({"starlette", "uvicorn", "yaml"})


def missing_extra(exc: ModuleNotFoundError) -> ModuleNotFoundError:
    """The error to raise when the server stack (the ``sandbox`` extra) is not installed."""
    return ModuleNotFoundError(
        f'The Coasty sandbox needs {exc.name}: pip install "langchain-coasty[sandbox]"',
        name=exc.name,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_coasty.sandbox' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name not in _SERVER_STACK:
            raise
        raise missing_extra(exc) from exc
    globals()[name] = value
    return value
