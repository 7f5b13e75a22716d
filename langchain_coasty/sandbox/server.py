"""Run the sandbox in a background thread (``CoastySandbox``) or drive one elsewhere
(``SandboxControl``), both through the HTTP control plane."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx

if TYPE_CHECKING:
    import uvicorn

    from langchain_coasty.sandbox.engine import Engine

ScenarioSource = list[dict[str, Any]] | str | os.PathLike[str]


def _scenario_dicts(source: ScenarioSource) -> list[dict[str, Any]]:
    if isinstance(source, list):
        return source
    from langchain_coasty.sandbox.scenarios import read_scenario_file

    return read_scenario_file(Path(source))


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket for uvicorn (port 0: a free one), with small-write latency off."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Without TCP_NODELAY, headers and body written separately wait ~40 ms for delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(4096)
    return sock


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one; return the soft limit now in force.

    Each open event stream holds a socket, so a load test of thousands of runs needs more
    than the usual default of 1,024 descriptors.
    """
    try:
        import resource
    except ImportError:  # not POSIX: the platform decides
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft


IDLE_COLLECT_EVERY = 5.0
"""Seconds between the sandbox's looks for a quiet moment to collect cyclic garbage."""
_IDLE_COLLECT_AFTER = 10_000


def steady_collector() -> None:
    """Keep the cyclic collector from stalling a process that serves thousands of streams.

    Its passes walk the objects allocated since the last pass and their references into
    the heap: with thousands of runs in flight a pass takes tens of milliseconds, during
    which no stream moves (at 10,000 runs the sandbox's passes were its events' p99). A
    run leaves no reference cycles in the sandbox, so after start-up the collector is
    frozen and switched off; ``collect_when_idle`` collects when no stream is open. Only
    the sandbox's own process does this: ``CoastySandbox`` runs inside yours and leaves
    your collector alone.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.disable()


async def collect_when_idle(engine: Engine, every: float = IDLE_COLLECT_EVERY) -> None:
    """While the collector is off, collect whatever cycles were left when nothing streams."""
    import gc

    while True:
        await asyncio.sleep(every)
        quiet = engine.open_streams == 0 and not gc.isenabled()
        if quiet and gc.get_count()[0] > _IDLE_COLLECT_AFTER:
            gc.unfreeze()
            gc.collect()
            gc.freeze()


class SandboxControl:
    """Control-plane client for a sandbox server, in this process or another one."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http: httpx.Client | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._http is None:
            self._http = httpx.Client(base_url=self.base_url, timeout=self._timeout)
        response = self._http.request(method, f"/_sandbox/{path}", json=body)
        if response.is_error:
            raise ValueError(f"sandbox control {method} {path} failed: {response.text}")
        return response.json()

    def reset(self, *, config: bool = False) -> None:
        """Drop runs, counters, faults and custom scenarios (``config=True``: restore settings)."""
        self._call("POST", "reset", {"config": config})

    def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "counters")
        return result

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings: pace, heartbeat_interval, rotation_seconds, event_framing, ..."""
        result: dict[str, Any] = self._call("POST", "config", dict(settings))
        return result

    def load_scenarios(self, scenarios: ScenarioSource, *, replace: bool = False) -> list[str]:
        """Add scenarios (dicts, or a JSON/YAML file path); returns the loaded names."""
        body = {"scenarios": _scenario_dicts(scenarios), "replace": replace}
        names: list[str] = self._call("POST", "scenarios", body)["scenarios"]
        return names

    def inject(self, **faults: Any) -> dict[str, Any]:
        """Replace the fault config (see ``langchain_coasty.sandbox.faults``)."""
        result: dict[str, Any] = self._call("POST", "faults", faults)
        return result

    def expire_pause(self, run_id: str) -> dict[str, Any]:
        """End a paused run now, as its ``awaiting_human_timeout_seconds`` would; the run."""
        result: dict[str, Any] = self._call("POST", f"runs/{run_id}/expire-pause")
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._call("GET", "webhooks")["data"]
        return data

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "info")
        return result

    def machines(self) -> list[dict[str, Any]]:
        """Every machine created since the reset, oldest first, with status and end_reason."""
        data: list[dict[str, Any]] = self._call("GET", "machines")["data"]
        return data

    def live_machines(self) -> list[dict[str, Any]]:
        """The created machines not yet terminated (empty when every one was torn down)."""
        return [m for m in self.machines() if m["status"] != "terminated"]

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move sandbox time forward: boots finish, leases fire, meters run that much."""
        result: dict[str, Any] = self._call("POST", "clock", {"advance_seconds": seconds})
        return result

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


class CoastySandbox(SandboxControl):
    """A local Coasty server on a free loopback port, in a background thread.

    Setup:
        ``pip install "langchain-coasty[sandbox]"``

    Usage:
        .. code-block:: python

            with CoastySandbox(pace=0.3) as sb:
                httpx.post(f"{sb.base_url}/v1/runs", headers={"X-API-Key": sb.api_key},
                           json={"machine_id": sb.machine_id, "task": "Open the pricing page"})

    The server answers loopback Host names (and its own address) only; pass
    ``allowed_hosts=["my-devbox.lan"]`` (``name``, ``name:port``, or ``"*"``) to reach it
    under another name, e.g. from a container.
    """

    def __init__(
        self,
        pace: float = 0.0,
        scenarios: ScenarioSource | None = None,
        seed: int = 0,
        heartbeat_interval: float = 15.0,
        rotation_seconds: float = 300.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        webhook_retry_base: float = 0.5,
        log_level: str = "warning",
        allowed_hosts: Sequence[str] = (),
        event_framing: str = "envelope",
        id_style: str = "uuid",
    ) -> None:
        super().__init__(f"http://{host}:{port}")
        self.host = host
        self.port = port
        self.api_key = api_key or f"sk-coasty-test-{secrets.token_hex(16)}"
        self._settings: dict[str, Any] = {
            "pace": pace,
            "heartbeat_interval": heartbeat_interval,
            "rotation_seconds": rotation_seconds,
            "webhook_retry_base": webhook_retry_base,
            "event_framing": event_framing,
            "id_style": id_style,
        }
        self._scenarios = _scenario_dicts(scenarios) if scenarios is not None else []
        self._seed = seed
        self._log_level = log_level
        self._allowed_hosts = tuple(allowed_hosts)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.machine_ids: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: Engine | None = None

    @property
    def machine_id(self) -> str:
        return self.machine_ids[0]

    def start(self) -> Self:
        """Start serving; returns once the server accepts connections."""
        if self._thread is not None:
            return self
        try:
            import uvicorn

            from langchain_coasty.sandbox.app import create_app
            from langchain_coasty.sandbox.protocol import server_config
        except ModuleNotFoundError as exc:
            from langchain_coasty.sandbox import missing_extra

            raise missing_extra(exc) from exc
        from langchain_coasty.sandbox.engine import Engine, SandboxConfig
        from langchain_coasty.sandbox.scenarios import parse_scenarios

        config = SandboxConfig()
        config.update(self._settings)
        engine = Engine(config, parse_scenarios(self._scenarios), seed=self._seed)
        ready = threading.Event()

        def started() -> None:
            self._loop = asyncio.get_running_loop()
            ready.set()

        app = create_app(engine, on_startup=started, allowed_hosts=self._allowed_hosts)
        self._engine = engine
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.base_url = f"http://{self.host}:{self.port}"
        self.machine_ids = list(engine.machine_ids)
        self._server = uvicorn.Server(
            server_config(
                app, log_level=self._log_level, access_log=False, timeout_graceful_shutdown=1
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="coasty-sandbox", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("the Coasty sandbox did not start within 30 s")
        return self

    def stop(self) -> None:
        """Stop serving: end open streams and wait for the server thread."""
        self.close()
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        if self._loop is not None and self._engine is not None:
            self._loop.call_soon_threadsafe(self._engine.end_streams)
        server.should_exit = True
        thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"CoastySandbox(base_url={self.base_url!r})"
