"""A tiny webhook receiver for the tests: verify, then resume the waiting thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from langchain_coasty import AsyncCoastyClient, CoastyClient, WebhookEvent
from langchain_coasty.durable import (
    ResumeOutcome,
    WebhookSecretNotFoundError,
    aresume_from_webhook,
    averify_run_webhook,
    resume_from_webhook,
    verify_run_webhook,
)
from langchain_coasty.webhooks import WebhookVerificationError


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Wait for a condition with a bounded deadline; return its truthy value."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.01)


class Receiver:
    """Starlette app: POST /hooks verifies a delivery and resumes the thread it concerns.

    The thread is read from the run (``GET /v1/runs/{id}``), the secret from ``secrets``
    (default: this process's store). A delivery for a run whose secret is not known yet is
    answered 503, and the sandbox retries it.
    """

    def __init__(
        self,
        client: CoastyClient | AsyncCoastyClient,
        graph: Any,
        config: dict[str, Any],
        *,
        secrets: Any = None,
    ) -> None:
        self.client = client
        self.graph = graph
        self.config = config  # callbacks etc. for the resumed invocations
        self.secrets = secrets
        self.outcomes: list[tuple[str, ResumeOutcome]] = []
        self.rejected = 0
        self.deferred = 0
        self.errors: list[BaseException] = []
        self.app = Starlette(
            routes=[Route("/hooks", self.hooks, methods=["POST"])], lifespan=self._lifespan
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        if isinstance(self.client, AsyncCoastyClient):
            await self.client.close()  # on the loop that used it

    async def hooks(self, request: Request) -> JSONResponse:
        body = await request.body()
        signature = request.headers.get("coasty-signature", "")
        try:
            event = await self._verify(body, signature)
        except WebhookSecretNotFoundError as exc:
            self.deferred += 1
            return JSONResponse({"error": str(exc)}, status_code=503)
        except WebhookVerificationError as exc:
            self.rejected += 1
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            outcome = await self._resume(event)
        except BaseException as exc:
            self.errors.append(exc)
            raise
        self.outcomes.append((event.type, outcome))
        return JSONResponse({"status": outcome.status})

    async def _verify(self, body: bytes, signature: str) -> WebhookEvent:
        if isinstance(self.client, AsyncCoastyClient):
            return await averify_run_webhook(self.client, body, signature, secrets=self.secrets)
        return await run_in_threadpool(
            verify_run_webhook, self.client, body, signature, secrets=self.secrets
        )

    async def _resume(self, event: WebhookEvent) -> ResumeOutcome:
        if isinstance(self.client, AsyncCoastyClient):
            return await aresume_from_webhook(
                self.graph, event, config=self.config, client=self.client
            )
        return await run_in_threadpool(
            resume_from_webhook, self.graph, event, config=self.config, client=self.client
        )


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the receiver to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
