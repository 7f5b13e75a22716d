"""The `sessions` resource (stateful step-by-step prediction), sync and async side by side.

A create and a predict carry one Idempotency-Key per logical call, reused on every retry
(reserve-and-replay, like runs), so a retry never bills a second step; get, list, delete
and reset are safe to repeat. `client.ground` and `client.predict` are on the clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from langchain_coasty.client._base_client import _SESSION_CREATE, _SESSION_PREDICT, _parse
from langchain_coasty.client._cua_models import (
    Session,
    SessionInfo,
    SessionMutation,
    SessionPrediction,
    SessionsPage,
)
from langchain_coasty.client._cua_params import (
    ScreenshotInput,
    check_session_id,
    session_body,
    session_predict_body,
)
from langchain_coasty.client._params import LlmConfig, check_idempotency_key

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from langchain_coasty.client._resources import _AsyncClient, _SyncClient

__all__ = ["AsyncSessions", "Sessions"]


def _session_path(session_id: str, suffix: str = "") -> str:
    return f"/v1/sessions/{quote(check_session_id(session_id), safe='')}{suffix}"


def _create_fields(
    cua_version: str | None,
    model: str | None,
    screen_width: int | None,
    screen_height: int | None,
    max_trajectory_length: int | None,
    system_prompt: str | None,
    instructions: str | None,
    tools: Sequence[str] | None,
    metadata: Mapping[str, Any] | None,
    llm: LlmConfig | Mapping[str, Any] | None,
) -> dict[str, Any]:
    return session_body(
        cua_version=cua_version,
        model=model,
        screen_width=screen_width,
        screen_height=screen_height,
        max_trajectory_length=max_trajectory_length,
        system_prompt=system_prompt,
        instructions=instructions,
        tools=None if tools is None else list(tools),
        metadata=None if metadata is None else dict(metadata),
        llm=llm,
    )


class Sessions:
    """`client.sessions`: a trajectory kept by Coasty across step-by-step predictions."""

    def __init__(self, client: _SyncClient) -> None:
        self._client = client

    def create(
        self,
        *,
        cua_version: str | None = None,
        model: str | None = None,
        screen_width: int | None = None,
        screen_height: int | None = None,
        max_trajectory_length: int | None = None,
        system_prompt: str | None = None,
        instructions: str | None = None,
        tools: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        llm: LlmConfig | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Session:
        """Open a session (`POST /v1/sessions`; 2 h idle TTL); retries never open a second."""
        body = _create_fields(
            cua_version,
            model,
            screen_width,
            screen_height,
            max_trajectory_length,
            system_prompt,
            instructions,
            tools,
            metadata,
            llm,
        )
        key = check_idempotency_key(idempotency_key)
        return self._client._keyed_create(body, key, _SESSION_CREATE)

    def list(self) -> SessionsPage:
        """`GET /v1/sessions`: the active sessions of this key."""
        return _parse(SessionsPage, self._client._request("GET", "/v1/sessions"))

    def get(self, session_id: str) -> SessionInfo:
        """`GET /v1/sessions/{session_id}`; NotFoundError once it expired or was deleted."""
        return _parse(SessionInfo, self._client._request("GET", _session_path(session_id)))

    def delete(self, session_id: str) -> SessionMutation:
        """`DELETE /v1/sessions/{session_id}`: forget its trajectory."""
        response = self._client._request("DELETE", _session_path(session_id))
        return _parse(SessionMutation, response)

    def reset(self, session_id: str) -> SessionMutation:
        """`POST /v1/sessions/{session_id}/reset`: clear the trajectory, keep the session."""
        response = self._client._request("POST", _session_path(session_id, "/reset"))
        return _parse(SessionMutation, response)

    def predict(
        self,
        session_id: str,
        screenshot: ScreenshotInput,
        instruction: str,
        *,
        include_reasoning: bool | None = None,
        include_raw_code: bool | None = None,
        idempotency_key: str | None = None,
    ) -> SessionPrediction:
        """The next actions for the current screen (`POST /v1/sessions/{id}/predict`)."""
        path = _session_path(session_id, "/predict")
        body = session_predict_body(
            screenshot,
            instruction,
            include_reasoning=include_reasoning,
            include_raw_code=include_raw_code,
        )
        key = check_idempotency_key(idempotency_key)
        return self._client._keyed_create(body, key, _SESSION_PREDICT.at(path))


class AsyncSessions:
    """`client.sessions` of the async client."""

    def __init__(self, client: _AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        cua_version: str | None = None,
        model: str | None = None,
        screen_width: int | None = None,
        screen_height: int | None = None,
        max_trajectory_length: int | None = None,
        system_prompt: str | None = None,
        instructions: str | None = None,
        tools: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        llm: LlmConfig | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Session:
        """Open a session (`POST /v1/sessions`; 2 h idle TTL); retries never open a second."""
        body = _create_fields(
            cua_version,
            model,
            screen_width,
            screen_height,
            max_trajectory_length,
            system_prompt,
            instructions,
            tools,
            metadata,
            llm,
        )
        key = check_idempotency_key(idempotency_key)
        return await self._client._keyed_create(body, key, _SESSION_CREATE)

    async def list(self) -> SessionsPage:
        """`GET /v1/sessions`: the active sessions of this key."""
        return _parse(SessionsPage, await self._client._request("GET", "/v1/sessions"))

    async def get(self, session_id: str) -> SessionInfo:
        """`GET /v1/sessions/{session_id}`; NotFoundError once it expired or was deleted."""
        return _parse(SessionInfo, await self._client._request("GET", _session_path(session_id)))

    async def delete(self, session_id: str) -> SessionMutation:
        """`DELETE /v1/sessions/{session_id}`: forget its trajectory."""
        response = await self._client._request("DELETE", _session_path(session_id))
        return _parse(SessionMutation, response)

    async def reset(self, session_id: str) -> SessionMutation:
        """`POST /v1/sessions/{session_id}/reset`: clear the trajectory, keep the session."""
        response = await self._client._request("POST", _session_path(session_id, "/reset"))
        return _parse(SessionMutation, response)

    async def predict(
        self,
        session_id: str,
        screenshot: ScreenshotInput,
        instruction: str,
        *,
        include_reasoning: bool | None = None,
        include_raw_code: bool | None = None,
        idempotency_key: str | None = None,
    ) -> SessionPrediction:
        """The next actions for the current screen (`POST /v1/sessions/{id}/predict`)."""
        path = _session_path(session_id, "/predict")
        body = session_predict_body(
            screenshot,
            instruction,
            include_reasoning=include_reasoning,
            include_raw_code=include_raw_code,
        )
        key = check_idempotency_key(idempotency_key)
        return await self._client._keyed_create(body, key, _SESSION_PREDICT.at(path))
