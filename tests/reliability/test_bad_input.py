"""Bad input, property-based: only typed errors, and nothing sent for an invalid value.

Every parameter of the client (constructor, ``runs.*``, ``idempotency.get``, ``machines.list``)
and of the tools and the runnable gets arbitrary values from hypothesis. A value the client
refuses must raise ``InvalidRequestError`` with no request on the wire (a recording
transport in front of the sandbox counts them); a value it lets through must not be
refused by the server as invalid (400/422), and any failure must be a ``CoastyError``.
Then the sandbox itself is fuzzed over HTTP: never a 5xx, every error in the envelope.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import ToolMessage
from pydantic import ValidationError

from langchain_coasty import (
    APIStatusError,
    CoastyClient,
    CoastyComputerTool,
    CoastyError,
    CoastyRunnable,
    CoastyToolkit,
    InvalidRequestError,
)
from langchain_coasty.sandbox.screens import ScreenState, render

# Deterministic in the suite; COASTY_FUZZ_EXPLORE=1 draws new examples on every run.
DETERMINISTIC = not os.environ.get("COASTY_FUZZ_EXPLORE")
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=DETERMINISTIC,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
VALIDATION_CODES = {"VALIDATION_ERROR", "INVALID_REQUEST", "BAD_REQUEST"}

# Arbitrary values: every JSON-ish type, lone surrogates, control characters, and strings
# sized around each documented limit.
LIMIT_SIZES = [0, 1, 15, 16, 128, 129, 512, 513, 2000, 2001, 2048, 2049, 16000, 16001, 32001]
texts = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200)
sized = st.sampled_from(LIMIT_SIZES).map(lambda n: "a" * n)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 1000, 1001, 86400, 86401, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    sized,
    st.binary(max_size=20),
    st.sampled_from(["\ud800", "a\udfff", "\x00", "line\nbreak", " ", "\u202e"]),
)
ANY = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)


class Recorder(httpx.BaseTransport):
    """Forwards to the sandbox and remembers every request that went out."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return self.inner.handle_request(request)


@pytest.fixture
def wire(coasty_sandbox: Any) -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.inner.close()


@pytest.fixture
def client(coasty_sandbox: Any, wire: Recorder) -> Iterator[CoastyClient]:
    http = httpx.Client(transport=wire, timeout=10)
    with CoastyClient(
        api_key=coasty_sandbox.api_key,
        base_url=coasty_sandbox.base_url,
        http_client=http,
        max_retries=0,
    ) as c:
        yield c
    http.close()


def outcome(wire: Recorder, call: Callable[[], Any], field: str) -> str:
    """Run ``call`` and check the contract; return "refused", "sent" or "failed"."""
    wire.sent.clear()
    try:
        call()
    except InvalidRequestError as exc:
        assert wire.sent == [], f"{field}: refused, yet {len(wire.sent)} request(s) went out"
        assert exc.field, exc
        return "refused"
    except APIStatusError as exc:
        assert wire.sent, exc
        assert exc.status_code < 500, exc
        assert not (exc.status_code in (400, 422) and exc.code in VALIDATION_CODES), (
            f"{field}: the client sent a value the server refuses: {exc}"
        )
        return "failed"
    except CoastyError as exc:
        raise AssertionError(f"{field}: unexpected {type(exc).__name__}: {exc}") from exc
    assert wire.sent
    return "sent"


CREATE_FIELDS = [
    "cua_version",
    "instructions",
    "system_prompt",
    "model",
    "max_steps",
    "deadline_seconds",
    "on_awaiting_human",
    "awaiting_human_timeout_seconds",
    "webhook_url",
    "metadata",
    "llm",
    "idempotency_key",
    "unknown_field",
]


@pytest.mark.parametrize("field", CREATE_FIELDS)
def test_create_fields(
    coasty_sandbox: Any, client: CoastyClient, wire: Recorder, field: str
) -> None:
    @FUZZ
    @given(value=ANY)
    def check(value: Any) -> None:
        outcome(
            wire,
            lambda: client.runs.create(
                machine_id=coasty_sandbox.machine_id, task="Open the notes app", **{field: value}
            ),
            field,
        )

    check()


@pytest.mark.parametrize("field", ["machine_id", "task"])
def test_create_required_fields(
    coasty_sandbox: Any, client: CoastyClient, wire: Recorder, field: str
) -> None:
    @FUZZ
    @given(value=ANY)
    def check(value: Any) -> None:
        args = {"machine_id": coasty_sandbox.machine_id, "task": "Open the notes app"}
        args[field] = value
        outcome(wire, lambda: client.runs.create(**args), field)

    check()


def test_run_methods(coasty_sandbox: Any, client: CoastyClient, wire: Recorder) -> None:
    run = client.runs.create(machine_id=coasty_sandbox.machine_id, task="Open the notes app")
    client.runs.wait(run.id, timeout=10)
    ids = st.one_of(ANY, st.just(run.id))

    # A cursor past the run's `done` finds nothing to send, and the stream keeps reconnecting
    # until its budget is spent (a typed error, but ~20 s): RELIABILITY.md, open items.
    afters = st.one_of(st.integers(-5, 5), ANY.filter(lambda v: not isinstance(v, int)))

    @FUZZ
    @given(run_id=ids, note=ANY, timeout=ANY, after=afters)
    def check(run_id: Any, note: Any, timeout: Any, after: Any) -> None:
        outcome(wire, lambda: client.runs.get(run_id), "run_id")
        outcome(wire, lambda: client.runs.cancel(run_id), "run_id")
        outcome(wire, lambda: client.runs.resume(run_id, note=note), "note")
        outcome(wire, lambda: client.runs.wait(run.id, timeout=timeout), "timeout")

        def first_event() -> Any:
            with client.runs.events(run_id, after=after) as stream:
                return next(iter(stream), None)

        outcome(wire, first_event, "after")

    check()


def test_list_lookup_and_machines(client: CoastyClient, wire: Recorder) -> None:
    @FUZZ
    @given(status=ANY, limit=ANY, key=ANY)
    def check(status: Any, limit: Any, key: Any) -> None:
        outcome(wire, lambda: client.runs.list(status=status, limit=limit), "status/limit")
        outcome(wire, lambda: client.machines.list(limit=limit), "limit")
        try:
            outcome(wire, lambda: client.idempotency.get(key), "key")
        except AssertionError:
            raise
        except Exception as exc:  # pragma: no cover - reported by hypothesis
            raise AssertionError(f"idempotency.get: {type(exc).__name__}") from exc

    check()


CONSTRUCTOR = [
    "api_key",
    "timeout",
    "max_retries",
    "stream_read_timeout",
    "max_connections",
    "llm_api_key",
    "llm_provider",
    "llm_model",
]


@pytest.mark.parametrize("param", CONSTRUCTOR)
def test_client_constructor(coasty_sandbox: Any, wire: Recorder, param: str) -> None:
    http = httpx.Client(transport=wire, timeout=10)

    @FUZZ
    @given(value=ANY)
    def check(value: Any) -> None:
        args: dict[str, Any] = {"api_key": coasty_sandbox.api_key, "max_retries": 0}
        if param == "llm_api_key":
            args["llm_provider"] = "openai"
        args[param] = value

        wire.sent.clear()
        try:
            client = CoastyClient(base_url=coasty_sandbox.base_url, http_client=http, **args)
        except InvalidRequestError as exc:
            assert exc.field and wire.sent == []
            return
        except CoastyError as exc:  # no key at all (api_key=None and no environment)
            assert param == "api_key" and value is None, exc
            return
        outcome(
            wire,
            lambda: client.runs.create(machine_id=coasty_sandbox.machine_id, task="Open notes"),
            param,
        )

    check()
    http.close()


# --- the LangChain layer ------------------------------------------------------------------


def test_computer_tool_arguments(coasty_sandbox: Any, client: CoastyClient, wire: Recorder) -> None:
    tool = CoastyComputerTool(client=client, on_awaiting_human="return")

    @FUZZ
    @given(task=ANY, machine_id=st.one_of(ANY, st.just(coasty_sandbox.machine_id)), extra=ANY)
    def check(task: Any, machine_id: Any, extra: Any) -> None:
        wire.sent.clear()
        call = {
            "type": "tool_call",
            "id": "call_1",
            "name": "coasty_computer",
            "args": {"task": task, "machine_id": machine_id, "instructions": extra},
        }
        try:
            message = tool.invoke(call)
        except ValidationError:
            assert wire.sent == []  # the args schema refused the call
            return
        assert isinstance(message, ToolMessage)
        if message.status == "error" and (
            "Invalid parameter" in message.content or "Missing" in message.content
        ):
            assert wire.sent == [], message.content
        elif message.status == "error":
            assert "Coasty" in message.content, message.content

    check()


def test_toolkit_run_tools(coasty_sandbox: Any, client: CoastyClient, wire: Recorder) -> None:
    _computer, get_run, resume_run, cancel_run, _screenshot = CoastyToolkit(
        client=client, machine_id=coasty_sandbox.machine_id
    ).get_tools()

    @FUZZ
    @given(run_id=ANY, note=ANY)
    def check(run_id: Any, note: Any) -> None:
        for tool, args in (
            (get_run, {"run_id": run_id}),
            (cancel_run, {"run_id": run_id}),
            (resume_run, {"run_id": run_id, "note": note}),
        ):
            wire.sent.clear()
            call = {"type": "tool_call", "id": "c", "name": tool.name, "args": args}
            try:
                message = tool.invoke(call)
            except ValidationError:
                assert wire.sent == []
                continue
            assert isinstance(message, ToolMessage)
            if "Invalid parameter" in message.content:
                assert message.status == "error" and wire.sent == []

    check()


def test_runnable_input(coasty_sandbox: Any, client: CoastyClient, wire: Recorder) -> None:
    runnable = CoastyRunnable(client=client, machine_id=coasty_sandbox.machine_id)

    @FUZZ
    @given(
        value=st.one_of(
            ANY,
            st.dictionaries(
                st.sampled_from(["task", "max_steps", "metadata", "llm", "bogus", "wait"]),
                ANY,
                max_size=3,
            ),
        )
    )
    def check(value: Any) -> None:
        wire.sent.clear()
        try:
            runnable.invoke(value)
        except (InvalidRequestError, TypeError) as exc:
            assert wire.sent == [], exc
        except ValueError as exc:  # unknown, missing or malformed run fields, named
            assert wire.sent == [], exc
            named = ["task", "machine_id", *(value if isinstance(value, dict) else [])]
            assert any(str(name) in str(exc) for name in named), exc
        except APIStatusError as exc:
            assert exc.status_code < 500 and exc.code not in VALIDATION_CODES, exc

    check()


# --- the sandbox over HTTP ----------------------------------------------------------------

_ERROR_SCHEMA = json.loads((SCHEMAS / "ApiError.json").read_text())
ROUTES = [
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/{id}"),
    ("GET", "/v1/runs/{id}/events"),
    ("POST", "/v1/runs/{id}/cancel"),
    ("POST", "/v1/runs/{id}/resume"),
    ("GET", "/v1/idempotency/{id}"),
    ("GET", "/v1/health"),
    ("GET", "/v1/machines"),
    ("POST", "/v1/machines"),
    ("GET", "/v1/machines/{mid}"),
    ("PATCH", "/v1/machines/{mid}"),
    ("DELETE", "/v1/machines/{mid}"),
    ("POST", "/v1/machines/{mid}/start"),
    ("POST", "/v1/machines/{mid}/stop"),
    ("POST", "/v1/machines/{mid}/restart"),
    ("GET", "/v1/machines/{mid}/connection"),
    ("GET", "/v1/machines/pricing"),
    ("GET", "/v1/billing/active"),
    ("POST", "/v1/machines/{mid}/actions"),
    ("POST", "/v1/machines/{mid}/actions/batch"),
    ("POST", "/v1/ground"),
    ("POST", "/v1/predict"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions"),
    ("GET", "/v1/sessions/{sid}"),
    ("DELETE", "/v1/sessions/{sid}"),
    ("POST", "/v1/sessions/{sid}/predict"),
    ("POST", "/v1/sessions/{sid}/reset"),
    ("GET", "/v1/models"),
]
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)
path_parts = st.one_of(header_values, texts.filter(bool)).map(
    lambda p: quote(p.encode("utf-8", "surrogatepass"), safe="")
)
_PNG = base64.b64encode(render(ScreenState("m-fuzz"), mime_type="image/png")).decode()
step_request = st.fixed_dictionaries(
    {},
    optional={
        "screenshot": st.one_of(st.just(_PNG), texts, st.just("A" * 200), ANY),
        "element": st.one_of(texts, ANY),
        "instruction": st.one_of(st.just("Search for 'x'"), texts, ANY),
        "command": st.one_of(st.sampled_from(["click", "type", "screenshot", "scroll"]), ANY),
        "parameters": st.one_of(
            st.fixed_dictionaries({}, optional={"x": ANY, "y": ANY, "text": ANY, "clicks": ANY}),
            ANY,
        ),
        "steps": st.one_of(st.lists(ANY, max_size=3), ANY),
        "trajectory": st.one_of(st.lists(ANY, max_size=3), ANY),
        "screen_width": ANY,
        "max_trajectory_length": ANY,
        "tools": ANY,
    },
)
run_request = st.fixed_dictionaries(
    {"machine_id": st.sampled_from(["m-sandbox-1", "", "nope"]), "task": st.one_of(texts, sized)},
    optional={name: ANY for name in CREATE_FIELDS[:-2]},
)
provision_request = st.fixed_dictionaries(
    {"display_name": st.one_of(texts, sized)},
    optional={
        name: st.one_of(ANY, st.integers(-1, 20_000), st.sampled_from(["linux", "windows"]))
        for name in ("os_type", "cpu_cores", "memory_gb", "storage_gb", "ttl_minutes", "metadata")
    },
)


# Integers as the server reads them from text: digits of other scripts pass str.isdigit, and a
# 5,000-digit value is over Python's int() limit.
counts = st.one_of(
    st.integers(-5, 500).map(str),
    st.sampled_from(["", " ", "²", "٣", "1²", "0x10", "1e3", "-0", "+5", " 7", "007", "1_000"]),
    st.sampled_from([20, 21, 4300, 4301, 5000]).map(lambda n: "9" * n),
    st.text(max_size=40),
)
# Header values go out as bytes: visible ASCII plus obs-text (0x80-0xFF), which h11 allows.
raw_headers = st.one_of(
    header_values.map(str.encode),
    st.binary(min_size=1, max_size=60).filter(lambda b: all(c >= 0x21 and c != 0x7F for c in b)),
    st.sampled_from([20, 129, 600, 5000]).map(lambda n: b"9" * n),
)
# {port} is the sandbox's port, filled in when the request is sent.
HOSTS = [
    "127.0.0.1:{port}",
    "localhost:{port}",
    "[::1]:{port}",
    "127.0.0.1",
    "evil.example",
    "evil.example:{port}",
    "127.0.0.1.evil.example:{port}",
    "localhost.:{port}",
    "[::1",
    ":{port}",
    "",
]
ORIGINS = [
    "http://127.0.0.1:{port}",
    "http://localhost:{port}",
    "http://evil.example",
    "https://127.0.0.1.evil.example:{port}",
    "null",
    "file://",
    "http://[::1",
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "",
]
CONTROL_ROUTES = [
    ("POST", "/_sandbox/reset"),
    ("GET", "/_sandbox/counters"),
    ("GET", "/_sandbox/info"),
    ("POST", "/_sandbox/config"),
    ("POST", "/_sandbox/scenarios"),
    ("POST", "/_sandbox/faults"),
    ("DELETE", "/_sandbox/faults"),
    ("GET", "/_sandbox/webhooks"),
    ("GET", "/_sandbox/machines"),
    ("POST", "/_sandbox/clock"),
]
DEPTHS = [2, 100, 101, 1_000, 100_000]


def nested(depth: int, kind: str) -> bytes:
    """A JSON document ``depth`` containers deep."""
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """One HTTP request to the sandbox: a /v1 or control-plane route, headers, query, body."""
    method, template = draw(st.sampled_from(ROUTES + CONTROL_ROUTES))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["PUT", "DELETE", "PATCH", "GET", "POST"]))
    path = template.replace("{id}", draw(st.one_of(st.just("{run}"), path_parts)))
    path = path.replace("{mid}", draw(st.one_of(st.just("{machine}"), path_parts)))
    path = path.replace("{sid}", draw(st.one_of(st.just("{session}"), path_parts)))
    if draw(st.integers(0, 9)) == 0:
        path = "/v1/" + draw(path_parts)
    headers: dict[str, Any] = {}
    auth = draw(st.sampled_from(["key"] * 5 + ["bearer", "none", "garbage", "live", "raw"]))
    if auth == "garbage":
        headers["X-API-Key"] = draw(header_values)
    elif auth == "live":
        headers["Authorization"] = "Bearer sk-coasty-live-" + draw(header_values)
    elif auth == "raw":
        headers["Authorization"] = draw(raw_headers)
    for name in ("Idempotency-Key", "Last-Event-ID", "X-LLM-Provider", "X-LLM-Api-Key"):
        if draw(st.booleans()):
            headers[name] = draw(
                st.one_of(header_values, sized.map(lambda s: s[:600]), counts.filter(bool))
            )
    for name in ("X-LLM-Model", "Last-Event-ID", "Idempotency-Key"):
        if draw(st.integers(0, 4)) == 0:
            headers[name] = draw(raw_headers)
    if draw(st.integers(0, 3)) == 0:
        headers["Host"] = draw(st.one_of(st.sampled_from(HOSTS), header_values))
    if draw(st.integers(0, 3)) == 0:
        headers["Origin"] = draw(st.one_of(st.sampled_from(ORIGINS), header_values))
    params = draw(
        st.dictionaries(
            st.sampled_from(["limit", "status", "after", "x", "ttl_minutes"]),
            st.one_of(counts, st.sampled_from(["running", "done", "\x00", "²"])),
            max_size=3,
        )
    )
    body_kind = draw(
        st.sampled_from(
            ["none", "run", "machine", "step", "json", "bytes", "deep", "deep", "scalar"]
        )
    )
    content: bytes | None = None
    if body_kind == "run":
        content = json.dumps(draw(run_request), default=repr).encode("utf-8", "replace")
    elif body_kind == "machine":
        content = json.dumps(draw(provision_request), default=repr).encode("utf-8", "replace")
    elif body_kind == "step":
        content = json.dumps(draw(step_request), default=repr).encode("utf-8", "replace")
    elif body_kind == "json":
        content = json.dumps(draw(ANY), default=repr).encode("utf-8", "replace")
    elif body_kind == "bytes":
        content = draw(st.binary(max_size=200))
    elif body_kind == "deep":
        content = nested(draw(st.sampled_from(DEPTHS)), draw(st.sampled_from(["list", "dict"])))
    elif body_kind == "scalar":
        content = draw(st.sampled_from([b"5", b"-1e400", b"NaN", b"Infinity", b'"x"', b"null"]))
    if content is not None and draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
    return {
        "method": method,
        "url": path,
        "headers": headers,
        "params": params,
        "content": content,
        "auth": auth,
    }


def send(http: httpx.Client, sb: Any, request: dict[str, Any]) -> httpx.Response | None:
    """Send one drawn request; None for a stream of a real run's events (tested elsewhere).

    ``{run}`` (``{machine}``) in the path is a run (machine) created for this request;
    ``{port}`` in a header the sandbox's port.
    """
    request = {**request, "headers": dict(request["headers"])}
    if "{run}" in request["url"]:
        body = {"machine_id": sb.machine_id, "task": "Approve the invoice"}
        run = http.post("/v1/runs", json=body, headers={"X-API-Key": sb.api_key}).json()
        request["url"] = request["url"].replace("{run}", run["id"])
    if "{session}" in request["url"]:
        made = http.post("/v1/sessions", json={}, headers={"X-API-Key": sb.api_key}).json()
        request["url"] = request["url"].replace("{session}", made["session_id"])
    if "{machine}" in request["url"]:
        body = {"display_name": "fuzzed"}
        made = http.post("/v1/machines", json=body, headers={"X-API-Key": sb.api_key}).json()
        request["url"] = request["url"].replace("{machine}", made["machine"]["id"])
    auth = request.pop("auth")
    if auth == "key":
        request["headers"]["X-API-Key"] = sb.api_key
    elif auth == "bearer":
        request["headers"]["Authorization"] = f"Bearer {sb.api_key}"
    for name, value in request["headers"].items():
        if isinstance(value, str):
            value = value.replace("{port}", str(sb.port)).encode("utf-8", "surrogatepass")
        # What h11 lets a client send: no control characters, no surrounding whitespace.
        request["headers"][name] = bytes(c for c in value if c >= 0x20 and c != 0x7F).strip()
    try:
        with http.stream(**request) as response:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                return None
            response.read()
    finally:
        if request["url"].startswith("/_sandbox/"):
            sb.reset(config=True)  # a fuzzed control-plane write may have set faults
    return response


def test_sandbox_fuzzed_over_http(coasty_sandbox: Any) -> None:
    sb = coasty_sandbox
    validator = jsonschema.validators.validator_for(_ERROR_SCHEMA)(_ERROR_SCHEMA)
    http = httpx.Client(base_url=sb.base_url, timeout=5)
    statuses: set[int] = set()

    @settings(
        max_examples=500,
        deadline=None,
        derandomize=DETERMINISTIC,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(request=requests())
    def check(request: dict[str, Any]) -> None:
        response = send(http, sb, request)
        if response is None:
            return
        statuses.add(response.status_code)
        assert response.status_code < 500, (request, response.text)
        assert response.headers.get("x-coasty-request-id", "").startswith("req_")
        if response.status_code >= 400:
            body = response.json()
            validator.validate(body)
            assert body["error"]["request_id"] == response.headers["x-coasty-request-id"]

    check()
    http.close()
    assert {401, 404, 422} <= statuses, statuses
