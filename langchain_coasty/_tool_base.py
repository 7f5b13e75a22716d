"""What every Coasty tool shares: settings, serialization, and Coasty errors as tool errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from langchain_core.tools import BaseTool, ToolException
from pydantic import ConfigDict

from langchain_coasty._engine.settings import CoastySettings
from langchain_coasty.client import APIStatusError, CoastyError

__all__ = ["_CoastyTool", "_tool_error", "_tool_errors"]


class _CoastyTool(BaseTool, CoastySettings):
    """Shared base: settings, serialization, error translation."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    handle_tool_error: bool | str | Any = True
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_coasty", "tools"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "COASTY_API_KEY"}


def _tool_error(exc: Exception) -> ToolException:
    if isinstance(exc, APIStatusError):
        text = f"Coasty API error {exc.code} (HTTP {exc.status_code}): {exc.message}"
        if exc.suggestion:
            text += f" Suggestion: {exc.suggestion}"
        if exc.request_id:
            text += f" (request_id {exc.request_id})"
        return ToolException(text)
    return ToolException(f"Coasty error: {exc}")


@contextmanager
def _tool_errors(*also: type[Exception]) -> Iterator[None]:
    """Turn Coasty errors (and ``also``) into ``ToolException``s; interrupts pass untouched."""
    caught: tuple[type[Exception], ...] = (CoastyError, *also)
    try:
        yield
    except ToolException:
        raise
    except caught as exc:
        raise _tool_error(exc) from exc
