"""A first demo: start the local Coasty sandbox and follow one run through it.

Run with ``python -m langchain_coasty.demo`` (``make demo``).
"""

from __future__ import annotations

import json

import httpx
from httpx_sse import connect_sse

from langchain_coasty.sandbox import CoastySandbox

TASK = "Open the browser, go to shop.example.com, sign in and download the latest invoice"


def main() -> None:
    """Create one run on a local sandbox, print its events, answer its pause."""
    with (
        CoastySandbox(pace=0.3) as sandbox,
        httpx.Client(
            base_url=sandbox.base_url, headers={"X-API-Key": sandbox.api_key}, timeout=30
        ) as http,
    ):
        print(f"Coasty sandbox at {sandbox.base_url}")
        run = http.post("/v1/runs", json={"machine_id": sandbox.machine_id, "task": TASK}).json()
        print(f"run {run['id']}: {run['status']}  task: {TASK}")
        last = 0
        while True:
            with connect_sse(
                http, "GET", f"/v1/runs/{run['id']}/events", params={"after": last}
            ) as stream:
                for sse in stream.iter_sse():
                    event = json.loads(sse.data)
                    last = event["seq"]
                    print(f"  [{event['seq']:>2}] {event['type']:<14} {json.dumps(event['data'])}")
                    if event["type"] == "awaiting_human":
                        print("  -> answering the agent: 'Signed in for you.'")
                        http.post(f"/v1/runs/{run['id']}/resume", json={"note": "Signed in."})
                    if event["type"] == "done":
                        final = http.get(f"/v1/runs/{run['id']}").json()
                        print(
                            f"run {final['status']}: {final['steps_completed']} steps, "
                            f"${final['cost_cents'] / 100:.2f} (notional; test keys are free)"
                        )
                        return


if __name__ == "__main__":
    main()
