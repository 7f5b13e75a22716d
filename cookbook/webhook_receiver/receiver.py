"""Webhook receiver: Coasty calls you back; a waiting LangGraph thread carries on.

Nothing holds a stream open here. A graph node starts the Coasty run with a ``webhook_url``,
keeps the run's ``webhook_secret`` (returned once, on create) in a secret store by run id,
and the graph waits in an ``interrupt()``. The receiver verifies every delivery with
``verify_run_webhook`` and that store (400 on a bad or missing signature, 503 while the
run's secret is not known yet), drops deliveries it has already processed (Coasty retries
until it gets a 2xx, so the same event can arrive twice), reads the run from Coasty (a
delivery's body may be the envelope ``{id, type, created, data}`` or the flat ``{event,
run_id, status, ...}`` without metadata) and resumes the graph thread named in the run's
metadata: on ``run.awaiting_human`` an approver policy resumes or cancels the run, on a
terminal event the thread finishes with the result and the cost.

One process keeps secrets in memory (``InMemoryWebhookSecrets``); when the receiver runs
elsewhere, use a shared store, e.g. ``BaseStoreWebhookSecrets(PostgresStore(...))``.

Run it (local sandbox unless COASTY_API_KEY and COASTY_BASE_URL are set; the real Coasty
needs a public URL for the receiver, given with --public-url)::

    python cookbook/webhook_receiver/receiver.py
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

import httpx
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from langchain_coasty import CoastyClient, WebhookEvent, WebhookVerificationError
from langchain_coasty.examples import coasty_target
from langchain_coasty.webhooks import (
    MAX_PAYLOAD_BYTES,
    InMemoryWebhookSecrets,
    WebhookSecretNotFoundError,
    WebhookSecretStore,
    verify_run_webhook,
)

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
Approver = Callable[[dict[str, Any]], str | None]  # run json -> resume note, or None to cancel


class JobState(TypedDict, total=False):
    """State of one graph thread: one Coasty run followed through webhooks."""

    task: str
    machine_id: str
    run_id: str
    status: str
    webhooks: list[str]
    answers: list[str]
    result: Any
    cost_usd: float


def approve_unless_payment(run: dict[str, Any]) -> str | None:
    """Example approver policy: let sign-ins through, refuse to approve payments unattended."""
    reason = str(run.get("awaiting_human_reason") or "").lower()
    if "payment" in reason or "pay" in reason.split():
        return None
    return "Approved by the webhook receiver's policy."


def build_graph(
    client: CoastyClient,
    secrets: WebhookSecretStore,
    webhook_url: str,
    approver: Approver = approve_unless_payment,
) -> Any:
    """The waiting graph: start the run, then wait for webhooks until it ends."""

    def start_run(state: JobState, config: RunnableConfig) -> JobState:
        thread_id = config["configurable"]["thread_id"]
        run = client.runs.create(
            machine_id=state["machine_id"],
            task=state["task"],
            webhook_url=webhook_url,
            metadata={"thread_id": thread_id},
            idempotency_key=f"webhook-recipe-{thread_id}",
        )
        if run.webhook_secret is not None:  # returned once, on create: keep it for verifying
            secrets.put(run.id, run.webhook_secret)
        return {"run_id": run.id, "status": str(run.status.value), "webhooks": [], "answers": []}

    def wait_for_webhook(state: JobState) -> JobState:
        event = interrupt({"waiting_for": "coasty webhook", "run_id": state["run_id"]})
        run = event["run"]  # read from Coasty by the receiver, whatever the body carried
        return {
            "status": run["status"],
            "webhooks": [*state.get("webhooks", []), event["type"]],
            "result": run.get("result"),
            "cost_usd": (run.get("cost_cents") or 0) / 100,
        }

    def answer_pause(state: JobState) -> JobState:
        run = client.runs.get(state["run_id"])
        if run.status.value != "awaiting_human":  # a late retry of an old delivery
            return {"status": run.status.value}
        note = approver(run.model_dump(mode="json"))
        if note is None:
            client.runs.cancel(run.id)
            answer = "cancelled"
        else:
            client.runs.resume(run.id, note=note)
            answer = f"resumed: {note}"
        return {"answers": [*state.get("answers", []), answer], "status": "running"}

    def after_webhook(state: JobState) -> str:
        if state["status"] in TERMINAL:
            return END
        return "answer_pause" if state["status"] == "awaiting_human" else "wait_for_webhook"

    graph = StateGraph(JobState)
    graph.add_node("start_run", start_run)
    graph.add_node("wait_for_webhook", wait_for_webhook)
    graph.add_node("answer_pause", answer_pause)
    graph.add_edge(START, "start_run")
    graph.add_edge("start_run", "wait_for_webhook")
    graph.add_conditional_edges("wait_for_webhook", after_webhook)
    graph.add_edge("answer_pause", "wait_for_webhook")
    return graph.compile(checkpointer=InMemorySaver())


class WebhookReceiver:
    """Verifies, de-duplicates and routes Coasty webhooks to the graph threads waiting on them."""

    def __init__(self, client: CoastyClient, public_url: str | None = None) -> None:
        self.secrets = InMemoryWebhookSecrets()  # run id -> webhook secret
        self.public_url = public_url
        self.client = client
        self.graph: Any = None
        self.processed: set[str] = set()  # WebhookEvent.dedupe_key of each handled event
        self.stats = {"accepted": 0, "duplicates": 0, "rejected": 0, "ignored": 0}
        self.deferred = 0  # deliveries that came before their run's secret; Coasty retries them
        self.deliveries: list[tuple[bytes, str]] = []  # accepted (body, signature), for replays
        self.finished: dict[str, threading.Event] = {}
        self._lock = threading.Lock()  # one graph step at a time, in delivery order

    def attach(self, webhook_url: str, approver: Approver = approve_unless_payment) -> None:
        """Build the graph once the receiver's URL is known."""
        url = self.public_url or webhook_url
        self.graph = build_graph(self.client, self.secrets, url, approver)

    def start(self, task: str, machine_id: str) -> str:
        """Start a graph thread; it runs until it waits for its first webhook."""
        thread_id = f"job-{uuid.uuid4().hex[:12]}"
        self.finished[thread_id] = threading.Event()
        with self._lock:
            self.graph.invoke({"task": task, "machine_id": machine_id}, _config(thread_id))
        return thread_id

    def state(self, thread_id: str) -> JobState:
        values: JobState = self.graph.get_state(_config(thread_id)).values
        return values

    async def endpoint(self, request: Request) -> Response:
        # Refuse oversized deliveries before reading them whole (Coasty's are a few KB).
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
            return self._reject("body too large", status_code=413)
        received = bytearray()
        async for chunk in request.stream():
            received += chunk
            if len(received) > MAX_PAYLOAD_BYTES:
                return self._reject("body too large", status_code=413)
        body = bytes(received)
        signature = request.headers.get("coasty-signature", "")
        try:
            event = await run_in_threadpool(
                verify_run_webhook, self.client, body, signature, secrets=self.secrets
            )
        except WebhookSecretNotFoundError:
            # Coasty may call back before the create response (and its secret) reached us:
            # not a rejection, a "try again" (Coasty retries deliveries until a 2xx).
            self.deferred += 1
            return JSONResponse(
                {"error": "unknown run, retry later"}, status_code=503, headers={"Retry-After": "1"}
            )
        except WebhookVerificationError as exc:
            return self._reject(str(exc))
        outcome = await run_in_threadpool(self._process, event, body, signature)
        return JSONResponse({"ok": True, "outcome": outcome})

    def _reject(self, why: str, status_code: int = 400) -> Response:
        self.stats["rejected"] += 1
        return JSONResponse({"error": why}, status_code=status_code)

    def _process(self, event: WebhookEvent, body: bytes, signature: str) -> str:
        with self._lock:
            if event.dedupe_key in self.processed:
                self.stats["duplicates"] += 1
                return "duplicate"
            run = self.client.runs.get(event.run_id)  # the body need not carry the metadata
            thread_id = str((run.metadata or {}).get("thread_id", ""))
            config = _config(thread_id)
            if (
                thread_id not in self.finished
                or "wait_for_webhook" not in self.graph.get_state(config).next
            ):
                outcome = "ignored"  # not ours, or the thread is already finished
                self.stats["ignored"] += 1
            else:
                wake = {**event.model_dump(mode="json"), "run": run.model_dump(mode="json")}
                self.graph.invoke(Command(resume=wake), config)
                outcome = "resumed"
                if not self.graph.get_state(config).next:
                    self.finished[thread_id].set()
                self.stats["accepted"] += 1
                self.deliveries.append((body, signature))
            self.processed.add(event.dedupe_key)  # only once handled: a failure gets retried
            return outcome

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/webhooks/coasty", self.endpoint, methods=["POST"])])


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port in a background thread; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # uvicorn offers no event to wait on
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the receiver did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Coasty webhook receiver recipe")
    parser.add_argument("--task", default="Sign in to the HR portal and download my payslip")
    parser.add_argument("--pace", type=float, default=0.05, help="sandbox seconds per step")
    parser.add_argument("--public-url", help="receiver URL Coasty can reach (real Coasty only)")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    with (
        coasty_target(pace=args.pace) as target,
        CoastyClient(api_key=target.api_key, base_url=target.base_url) as client,
    ):
        receiver = WebhookReceiver(client, args.public_url)
        with serve(receiver.app()) as url:
            endpoint = f"{url}/webhooks/coasty"
            receiver.attach(endpoint)
            print(f"Coasty:   {target.label}\nReceiver: {endpoint}\nTask:     {args.task}")
            thread_id = receiver.start(args.task, target.machine_id)
            print(f"Graph thread {thread_id} is waiting for webhooks...")
            if not receiver.finished[thread_id].wait(args.timeout):
                print("Timed out waiting for the run to finish.")
                return 1
            state = receiver.state(thread_id)
            print(f"Webhooks handled: {', '.join(state['webhooks'])}")
            print(f"Pause answers:    {'; '.join(state['answers']) or 'none'}")
            print(f"Run {state['run_id']}: {state['status']}, cost ${state['cost_usd']:.2f}")
            print(f"Result: {json.dumps(state.get('result'))}")

            # What a receiver must survive: a forged delivery and a repeated one.
            body, signature = receiver.deliveries[-1]
            headers = {"Content-Type": "application/json"}
            forged = httpx.post(
                endpoint, content=body, headers={**headers, "Coasty-Signature": "t=1,v1=00"}
            )
            replay = httpx.post(
                endpoint, content=body, headers={**headers, "Coasty-Signature": signature}
            )
            print(
                f"Forged signature -> HTTP {forged.status_code}; replayed delivery -> "
                f"HTTP {replay.status_code} {replay.json().get('outcome')}"
            )
            print(f"Receiver stats: {json.dumps(receiver.stats)}")
    return 0 if state["status"] == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
