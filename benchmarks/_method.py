# ruff: noqa: E501  (Markdown tables: a row is one line)
"""The prose of BENCHMARKS.md: method, and findings from profiling (kept by hand)."""

from __future__ import annotations

from typing import Any

TEMPLATE = """# Benchmarks

Written by `make bench` (`python -m benchmarks.run`); the figures below are from the last full
run, also kept in `benchmarks/results.json`. Total run time: {total} s.

**Machine:** {machine}.

Absolute times depend on the machine, so every figure is set against a baseline measured in
the same run (the "ratio" column). Values are the median over repeated trials with the
range `[min-max]` across trials; latency rows pool all events of all trials into one
distribution and give its percentiles.

## Results

{table}

{notes}

## Method

The sandbox (`python -m langchain_coasty.sandbox.cli`) runs in a separate process on a free
loopback port; the benchmark process is the client. On a 2-core machine each side gets
one core, so a wall-clock rate is capped by the slower side: stream rows therefore also
report the client process's CPU time per event (`time.process_time`), which is the
caller's own cost whatever the server does.

1. **Stream throughput.** A scenario with `events: 100000` and `pace: 0` (the run is
   emitted as fast as the sandbox can). Paths, interleaved in each trial: (a) the loop a
   user would write with httpx + httpx-sse, parsing each frame's JSON (baseline);
   (b) `client.runs.events`; (c) `CoastyRunnable.stream`; (d) `CoastyComputerTool` inside a
   LangGraph `create_agent` (a scripted chat model calls the tool once) with a
   `CoastyCallbackHandler` attached, counting `on_coasty_event`. Per-event overhead =
   (path's CPU per event) - (raw CPU per event), paired per trial.
2. **Event-to-callback latency.** The sandbox stamps each event's top-level `ts` when it
   emits it; the caller takes `time.time()` where its own code sees the event: in the raw
   loop (baseline), in the `client.runs.events` iterator, and in `on_coasty_event` of a
   handler passed to `CoastyRunnable.invoke` (joined to `ts` by `seq`). The run has steps
   every few milliseconds (each step is a burst of 5 events), so the figure includes
   queueing behind the burst. Events emitted before the caller's stream was connected
   (noted with an httpx response hook) are replay, not live, and are left out.
   Polling: `GET /v1/runs/{{id}}` every 1 s on a run of 15 steps at `pace: 0.77` (a step
   every ~0.6 s); a milestone (a step completed, the terminal status) counts as
   seen when the first poll response reflecting it arrives. The 10 s interval is
   simulated from the same run: for 200 random poll phases each milestone waits for the
   next poll tick and then one round trip drawn from the measured GETs; the 1 s interval
   is simulated the same way and printed beside the measured one as a check.
3. **Scale.** Each level runs in a fresh interpreter (`python -m benchmarks.scale`) so its
   peak RSS (`ru_maxrss`) is its own. One run alone first (the baseline, also warming up),
   then `CoastyRunnable.abatch([task] * n)` with a handler recording every event's
   `(run_id, seq)`. Figures: batch wall time / scripted run length (steps x pace; ideal
   1.0) and / the single run's wall time; (peak RSS - RSS before the batch) / n; runs whose
   events arrived complete and in order; errors (a pool timeout would show here); the
   highest number of open streams the sandbox reported while the batch ran (sampled every
   0.1 s from `/_sandbox/counters`), which reaches n only if no call waited for a
   connection. Baseline at 100 and 500 runs: the same runs with raw httpx + httpx-sse on
   one `AsyncClient` (no limits), also in a fresh interpreter. Levels above 100 run once
   (no spread) to keep `make bench` short; see finding 2 for why they are slow.
   **3b. At Coasty's pace.** 10,000 runs of 16 steps at one step every 5 s (5 events a
   step, in three bursts: reasoning; tool call; tool result, step, billing) from one
   process (`python -m benchmarks.paced`, a fresh interpreter), each
   `CoastyRunnable.ainvoke` with an `AsyncCoastyCallbackHandler` that checks every run's
   `seq` order and takes each event's latency as `time.time()` in the hook less the
   payload's `ts` (the sandbox's stamp when it emitted the event). Runs start at an even
   rate over a 60 s ramp, shorter than a run (~65 s), so all 10,000 are in flight at once
   for a while (the peak is reported). The client is built for the fleet as the README
   says: `max_connections=None` (each open stream holds a connection), the open-file
   limit raised to the hard limit, and the collector tuned (`benchmarks.paced.tune_gc`:
   `gc.freeze()` after start-up, thresholds (2,000, 10, 1,000)); its pauses are counted
   (`gc.callbacks`) with the CPU they took. Both client backends, one level each.
4. **Recovery.** A run of a few thousand events is emitted first, then every stream
   connection is cut after a random 1..N frames (`stream_cut_rate: 1.0`, abrupt TCP drop).
   Because the cut follows a frame at once, the arrival of the last event before a
   reconnect stands for the cut; the recovery time is the gap until the next new event.
   Reconnects are observed with an httpx request hook on the client's own `http_client`.
   Baseline: a raw loop that reconnects at once with `Last-Event-ID`. Also checked: every
   seq delivered exactly once, in order.
5. **Request overhead.** Sequential `GET /v1/runs/{{id}}` over one kept-alive connection:
   raw `httpx.Client.get(...).json()` against `client.runs.get` (which also validates into
   `Run`), sync and async, trials interleaved.
6. **Import cost.** Each statement in a fresh `python -c`, timed inside the interpreter
   around the import only, interleaved with the baseline `import langchain_core.tools`;
   the same probe lists any `langgraph`, `langchain.agents`, `starlette` or `uvicorn`
   module that the import loaded.

**8. HTTP/2 (an experiment, no target).** The scale scenario at 500, 1,000 and 2,000 runs,
three ways, each level in a fresh interpreter (`python -m benchmarks.http2`): the default
client against the usual uvicorn sandbox (the baseline); the same client (HTTP/1.1) against
the unchanged sandbox app served by hypercorn in one process (the server change alone); and
`AsyncCoastyClient(http_client=httpx.AsyncClient(http2=True, http1=False))` against that
hypercorn over h2c (prior knowledge; hypercorn allows 10,000 concurrent streams per
connection instead of its default 100, and no GOAWAY after 1,000 requests); and, as a
probe of what an option could give, the client's own run pools (about 32 runs each) made
HTTP/2, one connection each, since httpcore carries at most 100 streams on one HTTP/2
connection and queues the rest. Besides scale's figures: the client's CPU per run
and the client process's established TCP connections to the server (psutil, sampled every
0.25 s from the parent; one is the open-streams sampler's). Skipped, with the reason in
`missing`, when hypercorn or h2 is not installed.

**9. Durable waits.** In a fresh interpreter (`python -m benchmarks.durable_waits`), N
LangGraph threads (InMemorySaver) each run a node calling `CoastyRunnable(wait="durable")`,
started 10 at a time; the same process serves the webhook receiver (Starlette on uvicorn,
on the graph's event loop: `averify_run_webhook`, then `aresume_from_webhook` with an
`AsyncCoastyCallbackHandler` recording every event's `(run_id, seq)`). Each run is one
step paced to outlast the start of all N, so all N wait at once. While they wait (until
the first webhook, at most the window) the process samples its established TCP connections
to the sandbox (psutil) and how many of them are idle in the client's keep-alive pools:
"held" is the rest, what the waiting runs keep; its RSS above the same process before the
threads started; its CPU. Then the runs end, the sandbox delivers (at most 32 attempts on
the wire at once) and each delivery resumes its thread. Figures: threads resumed once and
succeeded, runs whose events all arrived once in order, webhook-received-to-resumed
latency (in the receiver), the first run's `finished_at` to the last resume, deliveries the
sandbox retried, peak open files of both processes (soft limit raised to the hard one when
below N + 1024).

`make bench` takes about 18 minutes on the machine above (the 10,000-run and 10,000-wait
levels take 11 of them). `tests/benchmarks` runs every benchmark once at a tiny size (no
timing assertions) so that the harness cannot rot.
"""

FINDINGS = """## The scale issue's figures: before and after

"Before" is the previous full run (quiet 2-core machine); "after" is the run in the table
above (1-minute load 0.7 at the start, 1.4 at the end: the levels of 10,000 runs and waits
keep both cores busy), with "(run 1)" the full run just before it, on the code before
its last commit (events to the child callback manager directly, the log kept as tuples).
New in both: benchmark 3b (10,000 runs at one step per 5 s), benchmark 8 (HTTP/2) and
benchmark 9 (10,000 durable waits).

| figure | before | after (run 1) | target | met |
| --- | --- | --- | --- | --- |
| (c) `CoastyRunnable.stream` / raw | 0.58 [0.52-0.65] | 0.81 [0.77-0.85] (0.73) | >= 0.8 | yes |
| (d) tool in `create_agent` + handler / raw | 0.45 [0.36-0.54] | 0.59 [0.54-0.64] (0.55) | >= 0.7 | no |
| CPU per run, `CoastyRunnable.invoke` / raw sync | 1.59 [1.37-1.72] | 1.10 [1.07-1.63] (1.55) | <= 1.5 | yes |
| CPU per run, tool in `create_agent` / raw async | 5.51 [4.73-6.95] | 5.52 [5.39-5.61] (5.61) | <= 1.5 | no |
| 500 runs, wall / scripted: httpx, aiohttp | 1.39, 1.28 | 1.40, 1.26 (1.44, 1.29) | <= 1.1 | no |
| 1,000 runs, wall / scripted: httpx, aiohttp | 2.08, 1.67 | 1.80, 1.44 (1.95, 1.50) | <= 1.25 | no |
| 2,000 runs, wall / scripted: httpx, aiohttp | 5.64, 3.53 | 3.48, 2.12 (3.97, 2.03) | <= 1.5 | no |
| 2,000 runs, peak open streams: httpx, aiohttp | 640, 2,000 | 1,218, 2,000 (634, 2,000) | all 2,000 | with aiohttp |
| memory per run at 2,000: httpx, aiohttp | 82 KiB, - | 72, 71 KiB (67, 75) | <= 64 KiB | no |
| 10,000 runs at a step per 5 s: events in order, errors | not run | 10,000 of 10,000; 0 (same) | all; 0 | yes |
| the same: event-to-callback p99, aiohttp, collector off | not run | 57.2 ms (43.9) | < 50 ms | no (run 1: yes) |
| the same, collector on (tuned thresholds) | not run | 1,791 ms (91.5) | < 50 ms | no |
| the same, httpx, collector off | not run | 35,877 ms (1,204) | < 50 ms | no |
| the same: memory per run, open files (limit) | not run | 65 KiB; 10,083 (20,000) | within | yes |
| 10,000 durable waits: resumed once, succeeded, errors | not run | 10,000, 10,000, 0 (same) | all; 0 | yes |
| the same: connections held while all wait | not run | 0; 145 idle in the pools (0; 158) | none per wait | yes |
| the same: events once, in order | not run | 10,000 of 10,000 runs (same) | all | yes |
| the same: webhook received -> resumed, p50 / p99 | not run | 317 / 669 ms (208 / 423) | - | - |
| HTTP/2 (h2c on hypercorn), 2,000 runs, wall vs HTTP/1.1 | not tried | 0.68, 100 streams live (0.72, 84) | (experiment) | - |

What changed, in this package's own code first:

* **One round trip per event.** The engine's `Deliver` op now reads the next event in the
  same round trip (`then_next`), and the driver handles the two hot ops before its match.
* **The stream decodes a chunk at a time** (`SSEDecoder.feed`, the line-by-line rules kept
  and tested against each other), and payloads are built without ABC checks.
* **Async hooks run inline.** `AsyncCoastyCallbackHandler.run_inline = True`: LangChain
  awaited its hooks anyway, but scheduled a task (and a gather) per event for them. At
  thousands of runs that was most of an event's cost: 64 -> 38 us an event.
* **httpx's response cycle is broken** once a body is read (its stream points back at the
  response): a run leaves 4-6 objects for the cyclic collector instead of ~140, and the
  2,000-run memory fell from 82 to 67 KiB a run.
* **The sandbox holds the levels.** Its own process raises its open-file limit, freezes
  the collector after start-up and collects only when no stream is open (its young passes
  were the p99 at 10,000 runs: 93 -> 22 ms in a trial); it delivers at most 32 webhooks at
  once, signed when sent (at 1,000 durable waits all but 3 deliveries had timed out in its
  own connection pool).
* **Payloads carry the event's `ts`**, which is how the latency at 10,000 runs is measured
  from a callback.

What the profile shows is left:

* **The 10,000-run level is at the edge of this machine.** Its p99 was 43.9 ms in one full
  run and 57.2 ms in the next: the client (about 9 ms of CPU a run, 0.5-0.9 of a core at
  the end of the ramp, when 167 runs start a second and 10,000 stream) and the sandbox
  (about 0.4 of a core) share 2 cores, so any other work on the machine shows in the tail.
  The levels after the first one in a `make bench` (collector on; httpx) ran on a sandbox
  that had just played 10,000 runs; the httpx level's 36 s p99 in the second run, against
  1.2 s in the first, is that and the machine, not a change in the code.
* **The collector.** With the thresholds tuned (young passes at 2,000 allocations, full
  passes rare) it took 6.7 s of the client's CPU at 10,000 runs in the first run, in 1,959
  passes, and doubled the p99 (91.5 against 43.9 ms with automatic passes off). A young pass costs about
  3 us an object it walks, because each reference into a heap of millions of objects misses
  the cache. The README says how a fleet process switches passes off.
* **httpcore at 10,000 streams.** Its pool walks every connection on each request, and
  its stream reads cost about 70 us an event against aiohttp's 38. At 10,000 runs the
  client falls behind (p50 509 ms), so for fleets the aiohttp backend is the one to use.
* **The wall-time levels (500-2,000 runs at a step per 1.5 s)** share 2 cores with a sandbox
  that plays every run: at 2,000 runs the two processes are at about a core each. Scale's
  events arrive about 200 times as often per run as Coasty's real pace, which benchmark 3b
  measures instead.
* **(d).** The tool in an agent is 4.2 us an event over the raw loop; about 2 us of it is
  LangChain's callback manager calling one handler, the rest the engine's step generator
  and LangChain's tool wrapper. (c) is at 1.8 us over raw.
* **CPU per run.** The runnable no longer builds a callback manager from its config per run
  (the events go to the child run's manager); what remains over the raw loop is the child
  `coasty_run` trace run, the session and the request checks.
  The agent path's ~15 ms is mostly LangGraph's own tasks and httpx's async stack: the raw
  baseline builds no graph, so 1.5x is out of reach without measuring something else.
* **HTTP/2** was tried (benchmark 8) and not kept as an option. It halves the client's CPU
  per run at 2,000 runs on one connection, but httpcore carries at most 100 live streams on
  a connection (the rest queue and arrive as a late burst), and one GOAWAY fails every run
  on it. With the client's own run pools over HTTP/2 all 1,979 streams were live, but it
  was no faster than HTTP/1.1 on aiohttp.

## The run engine: before and after

The engine moved from hand-kept sync/async twins in `runnable.py` to sans-I/O step
generators (`langchain_coasty/_engine/steps.py`, `durable_steps.py`) carried out by two
drivers (`_engine/drivers.py`), and the event stream now reads its own lines so that it
sees heartbeats (`client/_sse.py`). "Before" is a full `make bench` at the commit before
the change, "after" the run in the table above, both on a quiet machine (1-minute load 0.4-0.8).

| figure (ratio to its baseline) | before | after |
| --- | --- | --- |
| 1 stream (b) `client.runs.events` / raw | 0.94 [0.89-1.00] | 0.89 [0.88-0.90] |
| 1 stream (c) `CoastyRunnable.stream` / raw | 0.49 [0.43-0.55] | 0.56 [0.50-0.62] |
| 1 stream (d) tool in `create_agent` + handler / raw | 0.53 [0.50-0.55] | 0.50 [0.47-0.53] |
| 2 latency, client p99 / raw p99 | 0.89 | 0.88 |
| 2 latency, callback p99 / raw p99 | 1.46 | 1.43 |
| 3 scale, 100 runs, wall / 1 run | 1.05 [1.05-1.06] | 1.05 [1.05-1.06] |
| 3 scale, 500 runs, wall / 1 run | 1.23 (1 trial) | 1.29 (1 trial) |
| 3 scale, 1,000 runs, wall / 1 run | 1.70 (1 trial) | 1.92 (1 trial) |
| 3 scale, 2,000 runs, wall / 1 run | 3.13 (1 trial) | 3.48 (1 trial) |
| 4 recovery, client p50 / raw p50 | 0.96 | 0.94 |
| 5 request, `runs.get` sync / raw | 1.02 [0.99-1.07] | 0.99 [0.93-1.05] |
| 5 request, `runs.get` async / raw | 1.03 [1.03-1.04] | 1.06 [0.98-1.10] |

Every figure with repeated trials stays inside its own earlier `[min-max]` range. The scale
levels above 100 runs have one trial each, so they carry no spread; run back to back on
the same machine, minutes apart, with `--only scale`, the two trees gave: before 1.30 /
1.86 / 4.09, after 1.36 / 1.83 / 3.83 (wall over scripted length at 500 / 1,000 / 2,000
runs), i.e. the differences above are the machine's, not the engine's. Measured without
HTTP (a scripted in-memory client, 10,000 events through `CoastyRunnable.stream`, counted
with callgrind so that the count does not depend on the machine's load) the engine costs
about 83,000 instructions per event against 76,000 before: each event is now two
operations through the step generator (`NextEvent`, `Deliver`) instead of one loop
iteration: the price of writing every decision once, about 9 % of the engine's own
instructions per event and inside the spread of every end-to-end figure above.

A full rerun later the same day, after the reliability and compatibility work (both
framings, deadlines per attempt and per chunk, typed parse errors), on a busier machine
(1-minute load 0.6-1.0): stream (b) 1.06 [1.04-1.09], (c) 0.45 [0.44-0.46], (d) 0.50
[0.48-0.52]; scale 1.05 / 1.33 / 1.92 / 3.66 vs 1 run at 100 / 500 / 1,000 / 2,000 runs;
`runs.get` 1.01 [0.91-1.11] sync and 1.05 [1.02-1.09] async; recovery p50 1.30 of raw in
that run, 0.99 and 0.93 in two reruns of `--only recovery` right after (single cuts take
about a millisecond, so one busy moment moves the median).

## Before and after the fixes

Findings 1 and 2 below were fixed (finding 3 is documented on `CoastyCallbackHandler`).
"Before" is the previous full run (1-minute load average 3.7-3.9, other work on the machine),
"after" the run in the table above (load 1.3-1.6): compare ratios and CPU per event rather
than raw rates. Fix 1: `EventDispatcher` resolves the callback manager once per run and
calls `on_custom_event` on it with the same parent run (events, handlers, tags, metadata
and run attribution unchanged; `dispatch_custom_event` is kept when there is no config).
Fix 2: a client that builds its own transport spreads runs over small connection pools
(`langchain_coasty/client/_pool.py`: up to `ceil(max_connections / 32)` pools opened on
first use, one shared SSL context, each pool limited to twice its even share); every
request of a run (create by idempotency key, then get, events, cancel, resume by run id)
goes to one pool, so its connection is reused. `max_connections` now defaults to 4096
(was 1000) so that 2,000 concurrent streams fit.

| figure | before | after |
| --- | --- | --- |
| (c) `CoastyRunnable.stream`, CPU per event | 107.9 [98.4-117.3] us | 42.9 [40.9-44.8] us |
| (c) overhead vs raw | 92.7 us | 30.0 us |
| (d) tool in agent + handler, CPU per event | 146.8 [141.9-151.7] us | 44.2 [37.6-50.9] us |
| (d) overhead vs raw | 131.6 us | 31.3 us |
| event-to-callback latency p50 / p99 | 0.84 / 5.94 ms | 0.54 / 4.99 ms |
| 100 runs, wall / scripted | 1.82 [1.64-1.99] | 1.22 [1.21-1.23] (target met) |
| 500 runs, wall / scripted (peak open streams) | 5.16 (111) | 2.95 (500) |
| 1,000 runs, wall / scripted (peak open streams) | 10.76 (160) | 6.60 (525) |
| 2,000 runs, wall / scripted | 26.67 | 15.36 |

Every level still delivered every event in order with no errors. At 500 runs and more
the target (1.25x) is still missed: the client process is now CPU-bound on per-run and
per-event LangChain work (callback managers, the chain run per Coasty run, the sync
handler's thread hop per event), not on the connection pool; the sandbox shares the same
2 cores. At 2,000 runs the open-streams sampler (a thread in the busy client process)
got no answer, hence 0. Row (b) then fell to 0.66 of raw on wall rate with the same client
CPU per event (22.4 -> 22.9 us): on the less loaded machine the raw loop ran twice as
fast (24k -> 50k events/s) and (b) became bound by its own CPU.

Fix 3 (that CPU): the event cursor parsed each frame with `json.loads`, rebuilt the dict
and validated it with `RunEvent.model_validate` (about 10 us per frame). It now parses and
validates a well-formed frame in one pass with `RunEvent.model_validate_json(strict=True)`
(about 3 us) and falls back to the tolerant path for anything unusual (null or scalar
`data`, a missing `type` or `seq`, a non-numeric `ts`), which keeps every frame readable.
Stream benchmark alone (`--only stream`), same machine, back to back:

| figure | before fix 3 | after fix 3 |
| --- | --- | --- |
| (b) `client.runs.events`, ratio to raw | 0.60 [0.54-0.67] | 0.92 [0.89-0.94] (target met) |
| (b) CPU per event | 22.4 [19.1-25.7] us | 14.4 [14.4-14.4] us |
| (c) `CoastyRunnable.stream`, overhead vs raw | 30.9 us | 15.7 us |
| (d) tool in agent + handler, overhead vs raw | 25.2 us | 17.9 us |

Where the CPU goes at scale (after fix 3; `--only scale` levels driven one by one, py-spy on
the client, psutil on both processes; no fix made from it). The client process is the
bottleneck: at 500 runs it used 14.7-14.9 s of CPU (about 8 s of it imports, the warm-up
run and start-up) against 1.9-2.3 s for the sandbox, wall / scripted 2.15-2.73; at 1,000
runs 31.1-31.3 s against 3.9-4.2 s, wall / scripted 5.6-6.1. The sandbox uses about 15%
of one core and is not the limit. The largest cost is LangChain running the benchmark's
sync `CoastyCallbackHandler` in a worker thread for every event (finding 3): the
`run_in_executor` task that `ahandle_event`'s `asyncio.gather` creates per event, future
chaining, the self-pipe write that wakes the loop (`_write_to_self`) and the worker
threads take about 39% of the client's samples at 500 runs and about 50% at 1,000 (top
self time at 1,000: `_write_to_self` 9.4%, `_ahandle_event_for_handler` 5.3%, the
executor's `_worker` 4.6%, `create_task` 4.3%, `gather` 4.3%, `Condition.__init__` 4.0%,
`_chain_future` 3.7%). Setting `run_inline = True` on the benchmark's handler (an
experiment only, not kept) brought 500 runs to 1.72x (10.3 s client CPU) and 1,000 runs
to 3.06x (18.6 s). The rest is httpx/httpcore per request (create, stream open, final
`runs.get`: about 15%), LangChain's chain run per Coasty run (about 3%) and this
package's own per-event code (`_follow_async`, `event_payload` / `_trim`: under 3%). The
hop is LangChain's documented behaviour for a sync handler (its hooks may block), so it
is left as is; `AsyncCoastyCallbackHandler` or `run_inline = True` avoids it. One smaller
item: the event stream is closed right after `done`, before the server ends the response,
so httpcore drops that connection and the final `runs.get` opens a new one (about 2% of
client samples); draining the response would reuse it but could wait on a server that
keeps the stream open after `done`, so it is not done either.

Fix 4 (the benchmark, following that finding): the scale benchmark now collects events
with `AsyncCoastyCallbackHandler`, as recommended for async code, instead of a sync
handler. `--only scale`, same machine, back to back (the table above is the run with the
async handler):

| wall / scripted | sync handler (before) | async handler (after) |
| --- | --- | --- |
| 100 runs | 1.20 [1.19-1.21] | 1.16 [1.14-1.19] |
| 500 runs | 2.54 | 1.80 |
| 1,000 runs | 5.36 | 3.97 |
| 2,000 runs | 14.54 | 9.33 |

Every event was delivered in order at every level, with no errors. What is left above
1.0 is client CPU on this 2-core machine (httpx per request, LangChain's run per Coasty
run, event dispatch), shared with the sandbox process.

## Findings from profiling

Profiled with pyinstrument and py-spy (`pip install --group bench`). Figures in this section
are from focused A/B runs on the same machine, not from the table above.

### 1. Custom-event dispatch rebuilds a callback manager per event (runnable, tool): fixed

`langchain_coasty/callbacks.py`, `EventDispatcher.dispatch` / `adispatch` call
`dispatch_custom_event(COASTY_EVENT, payload, config=self._config)` for every event. LangChain
then runs `ensure_config` + `get_callback_manager_for_config` -> `CallbackManager.configure`
(environment-variable and LangSmith tracing checks, handler copying) on every call: about
two thirds of the dispatch cost and the largest single cost of the LangChain paths.
The config is fixed for the whole run, so the manager can be resolved once:
in `__init__`, `m = get_callback_manager_for_config(ensure_config(config))` (async:
`get_async_callback_manager_for_config`) when `config` is not None and `m.parent_run_id`
is set; per event `m.on_custom_event(COASTY_EVENT, payload, run_id=m.parent_run_id)`
(`await` in async); keep `dispatch_custom_event` for the context-variable case
(`config is None`). Same events, same handlers, same parent run.

| 30,000-event run, client CPU per event | before | with the fix (monkeypatched) |
| --- | --- | --- |
| (c) `CoastyRunnable.stream` | 101-151 us | 35-46 us |
| (d) tool in `create_agent` + handler | 120-161 us | 46-55 us |

### 2. One shared httpx pool makes many concurrent streams cost O(n^2) CPU (scale): fixed

With n concurrent runs every request and every response release runs httpcore's
`AsyncConnectionPool._assign_requests_to_connections`, which walks all n pooled
connections and probes each (`has_expired` -> `get_extra_info` + `poll`): client CPU
grows with n^2 and the process, not the sandbox, becomes the bottleneck (the sandbox used
about 1.5 s of CPU for 500 runs). Known upstream (encode/httpcore#1035, unmerged; fixed in
the pydantic/httpx2 fork, #974 and #1075). Raw httpx with one `AsyncClient`, 500 runs
of 25 events: 21-24 s client CPU; the same runs spread over 63 `AsyncClient`s of 8 runs
each (one shared `ssl` context): 4.6 s. `AsyncCoastyClient` / `CoastyClient`
(then `langchain_coasty/client/_client.py`, `self._http` built in `__init__`) use one pool for
everything, so `abatch` over 1,000-2,000 runs takes many times the scripted run length.
Moving only the event streams to 64 separate pools (monkeypatched `AsyncRuns.events`,
together with fix 1) was not enough: 2,000 runs went from 26.7x to 18.8x the scripted
length and 500 runs stayed at about 5x, because `abatch` still sends all creates (and
the runnable's `runs.get` after each create) at once through the one shared pool, which then
holds hundreds of connections. Proposed fix (client; the pools now live in
`langchain_coasty/client/_base_client.py`):
route every request of a run (create, get, events, cancel, resume) through one of a set
of small pools (lazily created `httpx.AsyncClient`/`httpx.Client`, one shared
`ssl.SSLContext` via `verify=`, same limits and timeouts), e.g. a pool per 8-16 open
runs, so that no pool holds more than a few connections; or adopt a pool
implementation without the linear scan once one is released. Also note
`max_connections=1000` by default: at 2,000 concurrent runs half the streams wait for a
connection (the sandbox saw at most a few hundred streams open at once at any level).

### 3. A sync handler in async code costs a thread hop per event

With `ainvoke`/`abatch`, LangChain runs a sync `CoastyCallbackHandler` through
`loop.run_in_executor` for every event (about 7% of the event loop's time at 500 runs).
`AsyncCoastyCallbackHandler` avoids it; `CoastyCallbackHandler` could also set
`run_inline = True` when its hooks are known not to block (a documentation point).

### 4. Import cost

`import langchain_core.tools` is lazy in langchain-core 1.x (it loads no tool classes), so
the table also gives `from langchain_core.tools import BaseTool` as a reference. Importing
`CoastyRunnable` costs about what `BaseTool` costs (1.05x) and `CoastyComputerTool`
about 1.25x (it adds the client, httpx and the tool schema); nearly all of it is
langchain-core's runnables, tracers and LangSmith. `import langchain_coasty` alone is
cheap, and no import loads LangGraph or the sandbox's server stack (starlette, uvicorn):
the tiny test asserts this.
"""


def notes(res: dict[str, Any]) -> str:
    """Targets missed in this run, then the hand-kept profiling findings."""
    from benchmarks.report import figures

    missed = [r for r in figures(res) if r["met"] is False]
    lines = []
    if missed:
        lines += ["**Targets missed in this run:**", ""]
        lines += [
            f"- {r['bench']} {r['figure']}: {r['value']} (target {r['target']})" for r in missed
        ]
        lines += ["", ""]
    return "\n".join(lines) + FINDINGS
