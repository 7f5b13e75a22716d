"""The planner graph on LangGraph Server (``langgraph dev``): pause, restart, resume.

The server runs offline in a temporary directory with the cookbook's ``langgraph.json``;
its in-memory runtime saves threads to ``.langgraph_api/`` on a graceful shutdown, so a
thread paused before a SIGTERM is answered after a restart, on the same Coasty run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._receiver import wait_until

pytest.importorskip("langgraph_sdk")
pytest.importorskip("langgraph_api", reason="needs langgraph-cli[inmem]")

from langgraph_sdk import get_client

from langchain_coasty import CoastyClient

RECIPE = Path(__file__).parents[2] / "cookbook" / "langgraph_server"
TASK = "Log in to the bank portal and download the March statement"
START_TIMEOUT = 60.0


def _langgraph_cli() -> str:
    found = shutil.which("langgraph", path=str(Path(sys.executable).parent)) or shutil.which(
        "langgraph"
    )
    if not found:
        pytest.skip("the langgraph CLI is not installed (pip install 'langgraph-cli[inmem]')")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def langgraph_dev(workdir: Path, port: int, env: dict[str, str]) -> Iterator[str]:
    """Run ``langgraph dev`` in ``workdir`` until the block ends; stop it with SIGTERM."""
    log = (workdir / f"server-{port}.log").open("ab")
    process = subprocess.Popen(
        [
            *(_langgraph_cli(), "dev", "--no-browser", "--no-reload", "--port", str(port)),
            *("--host", "127.0.0.1", "--config", "langgraph.json"),
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, (workdir / f"server-{port}.log").read_text()[-3000:]
        try:
            return httpx.get(f"{url}/ok", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, "langgraph dev to start", timeout=START_TIMEOUT)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        log.close()


@pytest.mark.slow
async def test_thread_survives_a_server_restart(sb: Any, tmp_path: Path) -> None:
    for name in ("langgraph.json", "planner_graph.py"):
        shutil.copy(RECIPE / name, tmp_path / name)
    (tmp_path / ".env").write_text("")
    env = {
        **os.environ,
        "COASTY_API_KEY": sb.api_key,
        "COASTY_BASE_URL": sb.base_url,
        "COASTY_MACHINE_ID": sb.machine_id,
        "COASTY_WAIT": "stream",
        "COASTY_WEBHOOK_URL": f"{sb.base_url}/hooks/nobody",  # so the run has a signing secret
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "LANGSMITH_API_KEY": "",
        # This checkout's package, whichever one the environment has installed.
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    port = _free_port()

    with langgraph_dev(tmp_path, port, env) as url:
        client = get_client(url=url)
        thread = await client.threads.create()
        custom: list[dict[str, Any]] = []
        async for part in client.runs.stream(
            thread["thread_id"],
            "planner",
            input={"messages": [{"role": "user", "content": TASK}]},
            stream_mode=["custom", "updates"],
        ):
            if part.event == "custom" and "coasty_event" in part.data:
                custom.append(part.data["coasty_event"])
        state = await client.threads.get_state(thread["thread_id"])
        (pending,) = state["interrupts"]
        coasty = pending["value"]["coasty"]
        assert coasty["question"] and coasty["screen"]["data"]  # the screen, through the server
        run_id = coasty["run_id"]
        # The run's events reached the SDK's custom stream, up to the pause.
        assert [e["seq"] for e in custom] == list(range(1, coasty["seq"] + 1))
        assert {e["run_id"] for e in custom} == {run_id}
        assert custom[-1]["type"] == "awaiting_human"
        assert sb.counters()["runs_by_status"]["awaiting_human"] == 1

    # Graceful stop saved the threads; a new server process picks them up.
    assert (tmp_path / ".langgraph_api").is_dir()
    with langgraph_dev(tmp_path, port, env) as url:
        client = get_client(url=url)
        final = await client.runs.wait(
            thread["thread_id"], "planner", command={"resume": "use the work account"}
        )
        last = final["messages"][-1]
        assert last["type"] == "ai"
        assert last["content"].startswith(f"final: Coasty run {run_id} succeeded")
        # What the server keeps and sends to browsers holds no key and no signing secret.
        history = await client.threads.get_history(thread["thread_id"], limit=100)
        state = await client.threads.get_state(thread["thread_id"])
        seen = json.dumps([history, state, final], default=str)
    with CoastyClient(api_key=sb.api_key, base_url=sb.base_url) as coasty:
        key = coasty.runs.get(run_id).metadata["idempotency_key"]
        secret = coasty.idempotency.get(key).result["webhook_secret"]
    assert secret and secret.startswith("whsec_")
    assert secret not in seen and sb.api_key not in seen
    assert run_id in seen  # the state was really read

    counters = sb.counters()
    assert counters["runs_created"] == 1
    assert counters["create_replays"] == 1
    assert counters["resumes"] == 1
    assert {k: v for k, v in counters["runs_by_status"].items() if v} == {"succeeded": 1}
