"""Malformed and hostile input: a 4xx envelope naming what was wrong, never a 5xx."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import httpx
import pytest

from langchain_coasty.sandbox import CoastySandbox
from langchain_coasty.sandbox.protocol import MAX_HEAD_BYTES
from tests.sandbox.conftest import create, read_events


def refused(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """Assert an error envelope with ``status`` (naming ``field``); return its error."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["request_id"] == response.headers["x-coasty-request-id"]
    if field is not None:
        assert error["details"]["field"] == field, error
        assert error["details"]["limit"], error
    return error


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_control_plane_bodies_are_bounded(sb: CoastySandbox) -> None:
    sb.configure(max_body_bytes=1000)
    with httpx.Client(base_url=sb.base_url) as http:
        for path in ("reset", "config", "scenarios", "faults"):
            response = http.post(
                f"/_sandbox/{path}",
                content=b" " * 2_000_000,
                headers={"Content-Type": "application/json"},
            )
            error = refused(response, 413, "body")
            assert error["code"] == "PAYLOAD_TOO_LARGE"
            assert "1000 bytes" in error["message"]
    assert sb.info()["config"]["max_body_bytes"] == 1000


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_bodies_are_400(api: httpx.Client, sb: CoastySandbox, depth: int) -> None:
    run = create(api, sb.machine_id, task="Approve the invoice")
    nested_dict = b'{"a":' * depth + b"1" + b"}" * depth
    for path, body in (
        ("/v1/runs", deep(depth)),
        ("/v1/runs", nested_dict),
        (f"/v1/runs/{run['id']}/resume", deep(depth)),
        ("/_sandbox/faults", deep(depth)),
        ("/_sandbox/reset", nested_dict),
    ):
        response = api.post(path, content=body, headers={"Content-Type": "application/json"})
        error = refused(response, 400, "body")
        assert error["code"] == "VALIDATION_ERROR"
        assert "100 levels" in error["message"]


def test_nesting_up_to_the_bound_is_read(api: httpx.Client, sb: CoastySandbox) -> None:
    inner: Any = "x"
    for _ in range(98):  # metadata (1) + 98 + the body (1) = 100 levels
        inner = [inner]
    create(api, sb.machine_id, metadata={"deep": inner})
    body = {"machine_id": sb.machine_id, "task": "t", "metadata": {"deep": [inner]}}
    response = api.post("/v1/runs", json=body)
    refused(response, 400, "body")


@pytest.mark.parametrize("value", ["²", "٣", "1²", "9" * 5000, "0", "201", "-1", " 5"])
def test_bad_list_limits_are_422(api: httpx.Client, value: str) -> None:
    response = api.get("/v1/runs", params={"limit": value})
    error = refused(response, 422, "limit")
    assert error["details"]["limit"] == "1..200"
    assert len(error["message"]) < 200


@pytest.mark.parametrize("value", ["²", "٣", "9" * 21, "9" * 5000])
def test_bad_event_cursors_are_422(api: httpx.Client, sb: CoastySandbox, value: str) -> None:
    run = create(api, sb.machine_id)
    response = api.get(f"/v1/runs/{run['id']}/events", params={"after": value})
    refused(response, 422, "after")
    response = api.get(f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": value.encode()})
    error = refused(response, 422, "Last-Event-ID")
    assert "20 digits" in error["message"]


def test_a_long_cursor_within_the_bound_still_clamps(api: httpx.Client, sb: CoastySandbox) -> None:
    run = create(api, sb.machine_id)
    assert read_events(api, run["id"])  # the run is done
    events = read_events(api, run["id"], after=int("9" * 20))
    assert events == []


@pytest.mark.parametrize(
    "content",
    [
        b'{"pace": NaN}',
        b'{"heartbeat_interval": Infinity}',
        b'{"max_body_bytes": 1e400}',
        b'{"pace": 1' + b"0" * 400 + b"}",
    ],
)
def test_config_refuses_non_finite_numbers(sb: CoastySandbox, content: bytes) -> None:
    before = sb.info()["config"]
    response = httpx.post(
        f"{sb.base_url}/_sandbox/config",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    error = refused(response, 422)
    assert "finite" in error["message"]
    assert sb.info()["config"] == before


FOREIGN_HOSTS = ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}", "[::1"]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
@pytest.mark.parametrize("path", ["/_sandbox/info", "/v1/runs", "/v1/health", "/nowhere"])
def test_foreign_host_is_refused_everywhere(sb: CoastySandbox, host: str, path: str) -> None:
    host = host.format(port=sb.port)
    response = httpx.get(f"{sb.base_url}{path}", headers={"Host": host, "X-API-Key": sb.api_key})
    error = refused(response, 421, "Host")
    assert error["code"] == "HOST_NOT_ALLOWED"
    assert "machine_ids" not in response.text


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "localhost:9", "127.0.0.1"]
)
def test_loopback_hosts_are_served(sb: CoastySandbox, host: str) -> None:
    response = httpx.get(
        f"{sb.base_url}/_sandbox/info", headers={"Host": host.format(port=sb.port)}
    )
    assert response.status_code == 200


def test_allowed_hosts_are_configurable() -> None:
    with CoastySandbox(allowed_hosts=["devbox.lan", "other.lan:8000"]) as sandbox:
        url = f"{sandbox.base_url}/_sandbox/counters"
        for host, status in (
            ("devbox.lan", 200),
            ("DEVBOX.lan:1234", 200),
            ("other.lan:8000", 200),
            ("other.lan:8001", 421),
            ("evil.example", 421),
        ):
            assert httpx.get(url, headers={"Host": host}).status_code == status, host
        response = httpx.post(
            f"{sandbox.base_url}/_sandbox/reset",
            json={},
            headers={"Origin": "http://devbox.lan:3000"},
        )
        assert response.status_code == 200
    with CoastySandbox(allowed_hosts=["*"]) as sandbox:
        response = httpx.get(f"{sandbox.base_url}/v1/health", headers={"Host": "any.example"})
        assert response.status_code == 200
    with pytest.raises(ValueError, match="allowed_hosts"):
        CoastySandbox(allowed_hosts=["a b"]).start()


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "http://localhost:1", "https://127.0.0.1:{port}", "x"],
)
def test_cross_site_control_writes_are_refused(sb: CoastySandbox, origin: str) -> None:
    origin = origin.format(port=sb.port)
    for method, path in (("POST", "faults"), ("POST", "reset"), ("DELETE", "faults")):
        body = b'{"create_refuse_rate": 1}' if path == "faults" and method == "POST" else None
        response = httpx.request(
            method,
            f"{sb.base_url}/_sandbox/{path}",
            content=body,
            headers={"Origin": origin, "Content-Type": "application/json"},
        )
        error = refused(response, 403, "Origin")
        assert error["code"] == "FORBIDDEN"
    assert sb.inject()["create_refuse_rate"] == 0


def test_same_origin_control_writes_and_reads_are_served(sb: CoastySandbox) -> None:
    response = httpx.post(
        f"{sb.base_url}/_sandbox/faults",
        json={"create_refuse_rate": 0.5},
        headers={"Origin": sb.base_url},
    )
    assert response.status_code == 200
    response = httpx.get(
        f"{sb.base_url}/_sandbox/faults", headers={"Origin": "http://evil.example"}
    )
    assert response.status_code == 200  # the browser withholds it: no CORS headers are sent
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ],
)
def test_control_writes_must_be_json(sb: CoastySandbox, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = httpx.post(
        f"{sb.base_url}/_sandbox/faults", content=b'{"create_refuse_rate": 1}', headers=headers
    )
    error = refused(response, 415, "Content-Type")
    assert error["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert sb.inject()["create_refuse_rate"] == 0


def test_control_writes_without_a_body_need_no_content_type(sb: CoastySandbox) -> None:
    sb.inject(create_refuse_rate=1)
    assert httpx.delete(f"{sb.base_url}/_sandbox/faults").status_code == 200
    assert httpx.post(f"{sb.base_url}/_sandbox/reset").status_code == 200
    response = httpx.post(
        f"{sb.base_url}/_sandbox/reset",
        content=b"{}",
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize("url", ["https://[/hook", "https://a.example:99999/hook"])
def test_unparseable_webhook_urls_are_422(api: httpx.Client, sb: CoastySandbox, url: str) -> None:
    response = api.post(
        "/v1/runs", json={"machine_id": sb.machine_id, "task": "t", "webhook_url": url}
    )
    refused(response, 422, "webhook_url")


@pytest.mark.parametrize("trickle", [False, True])
def test_an_oversized_head_is_refused_before_it_is_read_whole(
    sb: CoastySandbox, trickle: bool
) -> None:
    """A 10 MB header gets a 431 once the bound is passed, not after all of it arrived."""
    host, port = sb.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"GET /v1/health HTTP/1.1\r\nHost: {host}:{port}\r\nX-Pad: ".encode())
        chunk = b"a" * (8 * 1024 if trickle else 1024 * 1024)
        sent = 0
        with contextlib.suppress(OSError):  # the server closes while we are still sending
            while sent < 10 * 1024 * 1024:
                conn.sendall(chunk)
                sent += len(chunk)
        answer = b""
        with contextlib.suppress(OSError):
            while part := conn.recv(65536):
                answer += part
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"field": "headers"' in answer and str(MAX_HEAD_BYTES).encode() in answer
    assert sent < 10 * 1024 * 1024  # refused long before the whole header was sent


def test_a_head_within_the_bound_is_served(sb: CoastySandbox) -> None:
    with httpx.Client(base_url=sb.base_url) as http:
        response = http.get("/v1/health", headers={"X-Pad": "a" * (MAX_HEAD_BYTES // 2)})
    assert response.status_code == 200


def test_an_overlong_llm_model_is_422(api: httpx.Client, sb: CoastySandbox) -> None:
    body = {"machine_id": sb.machine_id, "task": "t"}
    headers = {"X-LLM-Provider": "openai", "X-LLM-Model": "m" * 513}
    refused(api.post("/v1/runs", json=body, headers=headers), 422, "X-LLM-Model")
    headers["X-LLM-Model"] = "m" * 512
    assert api.post("/v1/runs", json=body, headers=headers).status_code != 422


@pytest.mark.parametrize("value", ["Infinity", "NaN", "-1", "3601", "true"])
@pytest.mark.parametrize("name", ["stream_stall_seconds", "create_delay_seconds"])
def test_fault_delays_are_finite_and_bounded(sb: CoastySandbox, name: str, value: str) -> None:
    with httpx.Client(base_url=sb.base_url) as http:
        response = http.post(
            "/_sandbox/faults",
            content=f'{{"{name}": {value}}}'.encode(),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 422, response.text
    assert f"{name} must be a number of seconds in 0..3600" in response.text


def test_a_client_gone_mid_body_is_no_server_error(
    sb: CoastySandbox, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = sb.base_url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/runs HTTP/1.1\r\nHost: {host}:{port}\r\nX-API-Key: {sb.api_key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head.encode() + b'{"machine_id": "m-sandb')  # then Ctrl-C: gone
    with httpx.Client(base_url=sb.base_url) as http:
        assert http.get("/v1/health").status_code == 200  # the request was handled by now
    assert sb.counters()["runs_created"] == 0
    assert not [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]


def test_the_sandbox_raises_its_open_file_limit_for_many_streams() -> None:
    # In a child whose soft limit is the usual 1,024 (or less), below a higher hard limit.
    import subprocess
    import sys

    code = (
        "import resource\n"
        "from langchain_coasty.sandbox.server import raise_open_file_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "low = min(soft, hard, 1024) // 2\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))\n"
        "got = raise_open_file_limit()\n"
        "print(low, got, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    low, got, now, hard = (int(x) for x in out.stdout.split())
    assert got == now > low
    assert now == hard or hard < 0  # hard < 0: unlimited, raised to a large finite limit


def test_the_sandbox_process_turns_the_collector_off_and_collects_when_idle() -> None:
    # In a child: what `coasty-sandbox` does after start-up, then a cycle left behind.
    import subprocess
    import sys

    code = (
        "import asyncio, gc, weakref\n"
        "from langchain_coasty.sandbox.engine import Engine\n"
        "from langchain_coasty.sandbox import server\n"
        "server.steady_collector()\n"
        "assert not gc.isenabled() and gc.get_freeze_count() > 0\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.other, b.other = b, a\n"
        "gone = weakref.ref(a); del a, b\n"
        "junk = [[i] for i in range(server._IDLE_COLLECT_AFTER + 1)]\n"
        "async def main():\n"
        "    task = asyncio.create_task(server.collect_when_idle(Engine(), every=0.01))\n"
        "    for _ in range(500):\n"
        "        await asyncio.sleep(0.01)\n"
        "        if gone() is None: break\n"
        "    task.cancel()\n"
        "    print('collected' if gone() is None else 'left')\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "collected"
