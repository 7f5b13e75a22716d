"""Webhooks: signed deliveries on terminal states and pauses, retries, never blocking a run."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from langchain_coasty.sandbox import CoastySandbox
from tests.sandbox.conftest import create, events_until, read_events, wait_until


@dataclass
class Receiver:
    """A loopback webhook endpoint that records deliveries and answers scripted statuses."""

    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    state.gate.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.gate.wait(10)
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/coasty"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    state.gate.set()
    server.shutdown()
    server.server_close()


def verify(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    parts = dict(p.split("=", 1) for p in headers["coasty-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(parts["v1"], expected.hexdigest())
    assert headers["x-coasty-signature"] == headers["coasty-signature"]
    event: dict[str, Any] = json.loads(body)
    return event


def test_terminal_webhook_is_signed(
    api: httpx.Client, sb: CoastySandbox, receiver: Receiver
) -> None:
    run = create(api, sb.machine_id, webhook_url=receiver.url, metadata={"k": "v"})
    read_events(api, run["id"])
    wait_until(lambda: len(receiver.received) == 1)
    headers, body = receiver.received[0]
    event = verify(run["webhook_secret"], headers, body)
    assert event["id"].startswith("evt_")
    assert event["type"] == "run.succeeded"
    assert isinstance(event["created"], int)
    assert event["data"]["id"] == run["id"]
    assert event["data"]["status"] == "succeeded"
    assert event["data"]["webhook_secret"] is None
    assert event["data"]["metadata"] == {"k": "v"}
    # The sandbox logs a delivery once it has read the receiver's response.
    wait_until(lambda: any(e["delivered"] for e in sb.webhook_deliveries()))
    log = sb.webhook_deliveries()
    assert log[0]["url"] == receiver.url and log[0]["status"] == 200 and log[0]["delivered"]
    assert log[0]["event_type"] == "run.succeeded" and log[0]["attempt"] == 1


def test_pause_and_cancel_send_webhooks(
    api: httpx.Client, sb: CoastySandbox, receiver: Receiver
) -> None:
    run = create(api, sb.machine_id, task="Log in to the bank", webhook_url=receiver.url)
    events_until(api, run["id"], "awaiting_human")
    api.post(f"/v1/runs/{run['id']}/cancel")
    wait_until(lambda: len(receiver.received) == 2)
    kinds = sorted(verify(run["webhook_secret"], h, b)["type"] for h, b in receiver.received)
    assert kinds == ["run.awaiting_human", "run.cancelled"]


def test_failed_deliveries_are_retried(
    api: httpx.Client, sb: CoastySandbox, receiver: Receiver
) -> None:
    sb.configure(webhook_retry_base=0.01)
    receiver.statuses = [500, 503]
    run = create(api, sb.machine_id, webhook_url=receiver.url)
    read_events(api, run["id"])
    wait_until(lambda: len(sb.webhook_deliveries()) == 3)
    log = sb.webhook_deliveries()
    assert [e["status"] for e in log] == [500, 503, 200]
    assert [e["attempt"] for e in log] == [1, 2, 3]
    assert len({e["event_id"] for e in log}) == 1
    assert sb.counters()["webhook_attempts"] == 3
    ids = {json.loads(b)["id"] for _, b in receiver.received}
    assert len(ids) == 1


def test_retries_stop_after_max_attempts(api: httpx.Client, sb: CoastySandbox) -> None:
    sb.configure(webhook_retry_base=0.01, webhook_max_attempts=3)
    run = create(api, sb.machine_id, webhook_url="http://127.0.0.1:9/unreachable")
    read_events(api, run["id"])
    wait_until(lambda: len(sb.webhook_deliveries()) == 3)
    log = sb.webhook_deliveries()
    assert all(e["error"] and not e["delivered"] for e in log)
    assert sb.counters()["webhook_attempts"] == 3


def test_a_slow_receiver_never_blocks_the_run(
    api: httpx.Client, sb: CoastySandbox, receiver: Receiver
) -> None:
    receiver.gate.clear()
    run = create(api, sb.machine_id, task="Approve the refund", webhook_url=receiver.url)
    events_until(api, run["id"], "awaiting_human")
    api.post(f"/v1/runs/{run['id']}/resume")
    assert read_events(api, run["id"])[-1]["data"]["status"] == "succeeded"
    assert receiver.received == []
    receiver.gate.set()
    wait_until(lambda: len(receiver.received) == 2)


def test_flat_body_is_the_cookbook_mock_shape(
    api: httpx.Client, sb: CoastySandbox, receiver: Receiver
) -> None:
    sb.configure(webhook_body="flat")
    run = create(api, sb.machine_id, webhook_url=receiver.url, metadata={"k": "v"})
    read_events(api, run["id"])
    wait_until(lambda: len(receiver.received) == 1)
    headers, body = receiver.received[0]
    event = verify(run["webhook_secret"], headers, body)
    assert set(event) == {
        "event",
        "run_id",
        "status",
        "result",
        "error",
        "awaiting_human_reason",
        "created_at",
    }
    assert (event["event"], event["run_id"], event["status"]) == (
        "run.succeeded",
        run["id"],
        "succeeded",
    )
    assert event["result"] and event["result"] == api.get(f"/v1/runs/{run['id']}").json()["result"]
    assert event["created_at"].endswith("Z")
    wait_until(lambda: any(e["delivered"] for e in sb.webhook_deliveries()))
    (entry,) = sb.webhook_deliveries()
    assert entry["event_type"] == "run.succeeded" and entry["run_id"] == run["id"]


def test_body_shape_and_lookup_settings_are_checked(sb: CoastySandbox) -> None:
    assert sb.configure(webhook_body="flat")["webhook_body"] == "flat"
    assert sb.configure(idempotency_lookup=False)["idempotency_lookup"] is False
    for settings in ({"webhook_body": "xml"}, {"idempotency_lookup": 0}, {"pace": "fast"}):
        with pytest.raises(ValueError):
            sb.configure(**settings)
    sb.reset(config=True)
    config = sb.info()["config"]
    assert (config["webhook_body"], config["idempotency_lookup"]) == ("envelope", True)


def test_idempotency_lookup_can_be_switched_off(api: httpx.Client, sb: CoastySandbox) -> None:
    create(api, sb.machine_id, headers={"Idempotency-Key": "lookup-1"})
    assert api.get("/v1/idempotency/lookup-1").status_code == 200
    sb.configure(idempotency_lookup=False)
    gone = api.get("/v1/idempotency/lookup-1")
    unknown = api.get("/v1/no-such-route")
    assert gone.status_code == unknown.status_code == 404
    assert gone.json()["error"]["code"] == unknown.json()["error"]["code"] == "NOT_FOUND"
    assert gone.json()["error"]["message"].startswith("No route GET /v1/idempotency/")


def test_a_burst_of_deliveries_to_a_slow_receiver_is_delivered_once_each(
    api: httpx.Client, sb: CoastySandbox
) -> None:
    """Runs ending together: the sender bounds what is on the wire, and each is sent once.

    Before the sender had slots, every delivery went to its HTTP pool at once and the later
    ones timed out waiting for a connection (``PoolTimeout``) before they were even sent.
    """
    from langchain_coasty.sandbox.delivery import CONCURRENCY

    runs, took = 5 * CONCURRENCY, 0.3  # the receiver's time per delivery (seconds)
    lock = threading.Lock()
    seen: list[bytes] = []
    peers: set[int] = set()
    in_flight = peak = 0

    class Slow(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver answers

        def do_POST(self) -> None:
            nonlocal in_flight, peak
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
                peers.add(self.client_address[1])
            threading.Event().wait(took)  # the receiver's own work
            with lock:
                in_flight -= 1
                seen.append(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 2 * CONCURRENCY  # the listen backlog (5 by default)

    server = Server(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        # Runs that end close together, whatever time their creation takes.
        sb.load_scenarios([{"name": "burst", "match": "burst", "steps": 1, "pace": 2.0}])
        sb.configure(webhook_timeout=1.0, webhook_retry_base=0.01, webhook_max_attempts=2)
        ids = {create(api, sb.machine_id, task="burst", webhook_url=url)["id"] for _ in range(runs)}
        wait_until(lambda: len(seen) >= runs, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    log = sb.webhook_deliveries()
    assert [e["error"] for e in log if not e["delivered"]] == []
    assert sorted(e["run_id"] for e in log) == sorted(ids)  # one attempt each
    assert {json.loads(b)["data"]["id"] for b in seen} == ids
    assert peak <= CONCURRENCY
    assert len(peers) < runs  # connections kept alive between deliveries
