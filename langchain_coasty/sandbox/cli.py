"""``coasty-sandbox``: serve the local Coasty sandbox until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and serve in the foreground."""
    parser = argparse.ArgumentParser(
        prog="coasty-sandbox", description="A local server speaking Coasty's /v1/runs API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--pace", type=float, default=0.5, help="seconds per agent step")
    parser.add_argument("--scenarios", help="JSON or YAML scenario file")
    parser.add_argument("--seed", type=int, default=0, help="seed for fault injection")
    parser.add_argument("--heartbeat-interval", type=float, default=15.0)
    parser.add_argument("--rotation-seconds", type=float, default=300.0)
    parser.add_argument(
        "--event-framing",
        choices=("envelope", "flat"),
        default="envelope",
        help="envelope: data is {seq, type, data} (the OpenAPI); flat: id/event/data lines "
        "with the payload itself on data (Coasty's docs and cookbook)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--webhook-body",
        choices=["envelope", "flat"],
        default="envelope",
        help="delivery body: {id, type, created, data} or the flat {event, run_id, status, ...}",
    )
    parser.add_argument(
        "--no-idempotency-lookup",
        action="store_true",
        help="serve no GET /v1/idempotency/{key} (a 404, as where Coasty has none)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="also answer this Host (name, name:port, or *; repeatable); loopback names "
        "and the address a client connects to are always answered",
    )
    parser.add_argument(
        "--id-style",
        choices=("uuid", "live"),
        default="uuid",
        help="run and machine ids as UUIDs or shaped like the live API's (run_..., mch_test_...)",
    )
    args = parser.parse_args(argv)

    import uvicorn

    from langchain_coasty.sandbox.app import create_app
    from langchain_coasty.sandbox.engine import Engine, SandboxConfig
    from langchain_coasty.sandbox.protocol import server_config
    from langchain_coasty.sandbox.scenarios import parse_scenarios, read_scenario_file
    from langchain_coasty.sandbox.server import (
        bind_socket,
        collect_when_idle,
        raise_open_file_limit,
        steady_collector,
    )

    config = SandboxConfig(
        pace=args.pace,
        heartbeat_interval=args.heartbeat_interval,
        rotation_seconds=args.rotation_seconds,
        webhook_body=args.webhook_body,
        idempotency_lookup=not args.no_idempotency_lookup,
        event_framing=args.event_framing,
        id_style=args.id_style,
    )
    scenarios = parse_scenarios(read_scenario_file(args.scenarios)) if args.scenarios else []
    engine = Engine(config, scenarios, seed=args.seed)
    idle_collector: list[asyncio.Task[None]] = []

    def start_idle_collector() -> None:
        idle_collector.append(asyncio.get_running_loop().create_task(collect_when_idle(engine)))

    try:
        app = create_app(engine, start_idle_collector, allowed_hosts=args.allowed_host)
    except ValueError as exc:
        parser.error(str(exc))
    raise_open_file_limit()  # one descriptor per open event stream
    steady_collector()
    sock = bind_socket(args.host, args.port)
    base_url = f"http://{args.host}:{sock.getsockname()[1]}"
    print(f"Coasty sandbox on {base_url}")
    print(f"  COASTY_BASE_URL={base_url}")
    key = f"sk-coasty-test-{secrets.token_hex(16)}"
    print(f"  COASTY_API_KEY={key}  (any sk-coasty-test-<letters, digits, _> works)")
    print(f"  machines: {', '.join(engine.machine_ids)}; control plane: {base_url}/_sandbox/")
    sys.stdout.flush()
    server = uvicorn.Server(
        server_config(app, log_level=args.log_level, timeout_graceful_shutdown=2)
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])


if __name__ == "__main__":
    main()
