"""Turn a results document into the printed table and BENCHMARKS.md."""

from __future__ import annotations

from typing import Any


def _r(s: dict[str, float] | None, fmt: str = "{:.2f}") -> str:
    """``median [min-max]`` of a summary."""
    if not s:
        return "-"
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}-{fmt.format(s['max'])}]"


LEVEL_TARGETS = {500: 1.1, 1000: 1.25, 2000: 1.5}
"""The scale targets: wall time over the scripted run's own length, per level."""
SCALE_TARGET = 1.25
STREAM_TARGETS = {"client": 0.7, "runnable": 0.8, "agent_tool": 0.7}
"""Each layer's event rate as a share of the raw httpx-sse loop's."""
MEMORY_TARGET_KIB = 64
MEMORY_LEVEL = 2000
"""The bound on resident memory per concurrent run, at this level."""
BASETOOL_LABEL = "from langchain_core.tools import BaseTool (reference)"


def figures(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per reported figure: benchmark, figure, value, ratio to baseline, target, met."""
    b = res.get("benchmarks", {})
    rows: list[dict[str, Any]] = []

    def add(bench: str, fig: str, value: str, ratio: str = "-", target: str = "", met: Any = None):
        rows.append(
            {
                "bench": bench,
                "figure": fig,
                "value": value,
                "ratio": ratio,
                "target": target,
                "met": met,
            }
        )

    if st := b.get("stream"):
        paths = st.get("paths", {})
        labels = {
            "raw": "(a) raw httpx + httpx-sse",
            "client": "(b) client.runs.events",
            "runnable": "(c) CoastyRunnable.stream",
            "agent_tool": "(d) tool in create_agent + handler",
        }
        for name, label in labels.items():
            p = paths.get(name)
            if not p:
                add("1 stream", label, "not measured: " + st.get("missing", {}).get(name, "?"))
                continue
            rate = _r(p["events_per_s"], "{:,.0f}")
            value = f"{rate} ev/s; CPU {_r(p['cpu_us_per_event'], '{:.1f}')} us/ev"
            target, met = "", None
            if name in STREAM_TARGETS:
                bound = STREAM_TARGETS[name]
                target, met = f">= {bound} of raw", p["ratio_to_raw"]["median"] >= bound
            if name in ("runnable", "agent_tool"):
                value += (
                    f"; overhead vs raw {_r(p['cpu_overhead_us_per_event'], '{:.1f}')} us/ev CPU"
                )
            add("1 stream", label, value, _r(p["ratio_to_raw"]), target, met)
    if pr := b.get("per_run"):
        labels = {
            "raw": "raw httpx loop (create, stream, get)",
            "raw_async": "raw httpx async loop",
            "runnable": "CoastyRunnable.invoke",
            "agent_tool": "tool in create_agent + handler (async)",
        }
        for name, label in labels.items():
            p = pr.get("paths", {}).get(name)
            if not p:
                continue
            split = pr.get("breakdown", {}).get(name, {})
            parts = ", ".join(f"{k} {v:,.0f}" for k, v in list(split.items())[:6])
            value = f"{_r(p['cpu_us_per_run'], '{:,.0f}')} us CPU/run ({parts})"
            target = "" if name.startswith("raw") else f"<= 1.5x {p.get('baseline', 'raw')}"
            ratio = "-" if name.startswith("raw") else _r(p["ratio_to_raw"])
            add("7 per run", label, value, ratio, target, p.get("met"))
    if la := b.get("latency"):
        for name, row in la.get("stream", {}).items():
            target, met = "", None
            if name in ("client", "callback"):
                target, met = "p99 < 10 ms", row["p99_ms"] < 10
            add(
                "2 latency",
                f"stream: {name}",
                f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms",
                f"{row['p99_ratio_to_raw']:.2f} (p99)",
                target,
                met,
            )
        for name, row in la.get("polling", {}).items():
            if isinstance(row, dict):
                base = la.get("stream", {}).get("callback") or la.get("stream", {}).get("raw")
                ratio = f"{row['p99_ms'] / base['p99_ms']:.0f}x stream p99" if base else "-"
                add(
                    "2 latency",
                    f"polling {name.replace('_', ' ')}",
                    f"p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms",
                    ratio,
                )
    if sc := b.get("scale"):
        for n, row in sc.get("levels", {}).items():
            if "ratio_to_scripted" not in row and "ratio_to_single_run" not in row:
                add("3 scale", f"{n} runs", "failed: " + str(row["trials"][0].get("error", "?")))
                continue
            target_ratio = LEVEL_TARGETS.get(int(n), SCALE_TARGET)
            ok = bool(row.get("all_events_delivered")) and row.get("errors", 1) == 0
            scripted = row.get("ratio_to_scripted")
            ok = ok and bool(scripted) and scripted["median"] <= target_ratio
            ratio = _r(row.get("ratio_to_single_run")) + " vs 1 run"
            if row.get("ratio_to_raw"):
                ratio += f"; {_r(row['ratio_to_raw'])} vs raw httpx"
                ratio += f" (raw: {_r(row['raw_ratio_to_scripted'])} of scripted)"
            add(
                "3 scale",
                f"{n} concurrent runs (abatch)",
                f"wall/scripted {_r(row.get('ratio_to_scripted'))}; "
                f"{_r(row.get('peak_rss_per_run_kib'), '{:.0f}')} KiB RSS/run; "
                f"all events: {row.get('all_events_delivered')}; errors {row.get('errors')}; "
                f"peak open streams {row.get('peak_open_streams')}",
                ratio,
                f"all delivered, wall <= {target_ratio}x scripted",
                ok,
            )
            if int(n) == MEMORY_LEVEL:
                kib = row.get("peak_rss_per_run_kib")
                aio_kib = row.get("aiohttp_trial", {}).get("peak_rss_per_run_kib")
                value = f"{kib['median']:.0f} KiB/run" if kib else "-"
                if aio_kib is not None:
                    value += f"; http_backend=aiohttp {aio_kib:.0f} KiB/run"
                best = min(x for x in (kib["median"] if kib else None, aio_kib) if x is not None)
                add(
                    "3 scale",
                    f"memory per concurrent run at {n}",
                    value,
                    "-",
                    f"<= {MEMORY_TARGET_KIB} KiB/run",
                    best <= MEMORY_TARGET_KIB,
                )
            if row.get("aiohttp_ratio_to_scripted") is not None:
                aio = row["aiohttp_ratio_to_scripted"]
                add(
                    "3 scale",
                    f"{n} concurrent runs, http_backend=aiohttp",
                    f"wall/scripted {aio:.2f}; all events: "
                    f"{row.get('aiohttp_all_events_delivered')}; "
                    f"peak open streams {row.get('aiohttp_peak_open_streams')}",
                    f"{aio / scripted['median']:.2f} vs httpx" if scripted else "-",
                    f"all delivered, wall <= {target_ratio}x scripted",
                    bool(row.get("aiohttp_all_events_delivered")) and aio <= target_ratio,
                )
        for k, v in sc.get("missing", {}).items():
            add("3 scale", k, "not measured: " + v)
    if pc := b.get("paced"):
        for key, row in pc.get("levels", {}).items():
            runs, backend, gc_mode = key.split()
            label = f"{int(runs):,} concurrent runs, one step per {pc.get('pace_s')} s"
            label += f" (http_backend={backend}, gc {gc_mode})"
            if "missing" in row or "error" in row:
                add("3b paced", label, "failed: " + str(row.get("error") or row.get("missing")))
                continue
            lat = row["latency_ms"]
            fds = row["fd_limit"]
            add(
                "3b paced",
                label,
                f"events in order: {row['runs_all_events_in_order']:,}/{row['runs']:,} runs; "
                f"errors {row['errors']}; event-to-callback p50 {lat['p50']:.1f} ms, "
                f"p99 {lat['p99']:.1f} ms; peak {row['peak_in_flight']:,} runs at once, "
                f"{row['peak_open_streams']:,} open streams; "
                f"{row['rss_per_run_kib']:.0f} KiB RSS/run; client CPU "
                f"{row['client_cpu_ms_per_run']:.1f} ms/run; open fds {row['peak_open_fds']:,} "
                f"(limit {fds['soft']:,}, default {fds['default_soft']:,})",
                f"{row['wall_s'] / row['scripted_run_s']:.2f} wall/scripted"
                if row.get("scripted_run_s")
                else "-",
                "all in order, 0 errors, p99 < 50 ms, fds within the limit",
                row.get("met"),
            )
    if h2 := b.get("http2"):
        labels = {
            "uvicorn_http1": "httpx HTTP/1.1 on uvicorn (baseline)",
            "hypercorn_http1": "httpx HTTP/1.1 on hypercorn",
            "hypercorn_http2": "httpx HTTP/2 (h2c) on hypercorn, one http_client",
            "hypercorn_http2_pools": "httpx HTTP/2 (h2c) on hypercorn, the client's run pools",
        }
        for n, row in h2.get("levels", {}).items():
            for name, label in labels.items():
                v = row.get(name, {})
                if "ratio_to_scripted" not in v:
                    add("8 http2", f"{n} runs, {label}", "failed: " + str(v.get("error", "?")))
                    continue
                ratio = v.get("ratio_to_uvicorn_http1")
                add(
                    "8 http2",
                    f"{n} runs, {label}",
                    f"wall/scripted {v['ratio_to_scripted']:.2f}; "
                    f"peak open streams {v['peak_open_streams']}; "
                    f"TCP connections {v['peak_tcp_connections']}; "
                    f"CPU {v['cpu_ms_per_run']:.1f} ms/run; errors {v['errors']}; "
                    f"all events: {v['all_events_delivered']}",
                    "-" if ratio is None else f"{ratio:.2f} vs uvicorn HTTP/1.1",
                )
        for k, v in h2.get("missing", {}).items():
            add("8 http2", k, "not measured: " + v)
    if dw := b.get("durable_waits"):
        _durable_rows(dw, add)
    if rc := b.get("recovery"):
        for name, row in rc.get("paths", {}).items():
            ratio = f"{row['p50_ratio_to_raw']:.2f} (p50)" if "p50_ratio_to_raw" in row else "-"
            add(
                "4 recovery",
                f"{name} ({rc['mode']} cuts)",
                f"{row['cuts']} cuts: p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms; "
                f"exactly once: {row['exactly_once_in_order']}",
                ratio,
                "exactly once",
                row["exactly_once_in_order"],
            )
        for k, v in rc.get("missing", {}).items():
            add("4 recovery", k, "not measured: " + v)
    if ov := b.get("overhead"):
        for flavour in ("sync", "async"):
            row = ov.get(flavour)
            if not row:
                continue
            if "client_us_per_request" in row:
                add(
                    "5 request",
                    f"runs.get ({flavour})",
                    f"{_r(row['client_us_per_request'], '{:.0f}')} us vs raw "
                    f"{_r(row['raw_us_per_request'], '{:.0f}')} us; "
                    f"+{_r(row['overhead_us'], '{:.0f}')} us",
                    _r(row["ratio_to_raw"]),
                )
            else:
                add(
                    "5 request",
                    f"raw GET ({flavour})",
                    _r(row["raw_us_per_request"], "{:.0f}") + " us",
                )
    if im := b.get("imports"):
        add(
            "6 import",
            im["baseline"]["statement"] + " (baseline)",
            _r(im["baseline"]["ms"], "{:.0f}") + " ms",
        )
        for name, row in im.get("candidates", {}).items():
            heavy = row["heavy_modules"]
            if name.startswith("BaseTool"):
                add("6 import", BASETOOL_LABEL, f"{_r(row['ms'], '{:.0f}')} ms", _r(row["ratio"]))
                continue
            lazy = name in (
                "import langchain_coasty",
                "CoastyClient",
                "CoastyComputerTool",
                "CoastyRunnable",
                "CoastyCallbackHandler",
            )
            add(
                "6 import",
                name,
                f"{_r(row['ms'], '{:.0f}')} ms; heavy modules: {', '.join(heavy) or 'none'}",
                f"{_r(row['ratio'])}; vs BaseTool {_r(row['ratio_to_basetool'])}",
                "no langgraph/starlette/uvicorn" if lazy else "",
                not heavy if lazy else None,
            )
        for k, v in im.get("missing", {}).items():
            add("6 import", k, "not measured: " + v)
    return rows


DURABLE_HELD_TARGET = 10
"""Connections to Coasty that N durable waits may hold (beyond the idle keep-alive pool)."""


def _durable_rows(dw: dict[str, Any], add: Any) -> None:
    """Benchmark 9's rows: N durable waits, each resumed by its run's webhook."""
    bench, n = "9 durable waits", dw["waits"]
    if "error" in dw:
        add(bench, f"{n:,} waits resumed by webhooks", "failed: " + dw["error"])
        return
    resumed, ok = dw["threads_resumed"], dw["succeeded"]
    add(
        bench,
        f"{n:,} waits resumed by webhooks",
        f"{resumed:,} resumed, {ok:,} succeeded; lost {dw['lost']}, resumed twice "
        f"{dw['resumed_twice']}, errors {dw['errors']}; all waiting at once: "
        f"{dw['all_waiting_at_once']}",
        f"{ok / n:.3f} of N",
        "all resumed once and succeeded, 0 errors",
        resumed == ok == n and dw["lost"] == dw["resumed_twice"] == dw["errors"] == 0,
    )
    exact = dw["events_exactly_once_in_order"]
    add(
        bench,
        "events to an async handler on the resumed threads",
        f"{exact:,} of {n:,} runs: all {dw['events_per_run']} events once, in seq order",
        f"{exact / n:.3f} of N",
        "every event once, in order",
        exact == n,
    )
    peak, held = dw["connections_while_waiting_peak"], dw["connections_held_while_waiting_peak"]
    add(
        bench,
        "TCP connections to Coasty while all N wait",
        f"held {held}; established peak {peak}, the rest idle in the client's keep-alive "
        f"pools after the create fan-out of {dw['start_concurrency']} (during the creates: "
        f"{dw['connections_during_setup_peak']})",
        f"{(peak or 0) / n:.3f} per wait",
        f"held <= {DURABLE_HELD_TARGET} (none per waiting run), all N waiting",
        bool(dw["all_waiting_at_once"]) and held is not None and held <= DURABLE_HELD_TARGET,
    )
    rss = dw.get("rss_per_wait_kib")
    add(
        bench,
        "memory and CPU while all N wait",
        f"{rss:.1f} KiB RSS per wait above the process before the threads "
        f"({dw['rss_before_mib']:.0f} MiB); CPU {dw['cpu_percent_while_waiting']:.1f} % of "
        f"one core over {dw['window_s']:.1f} s"
        if rss is not None
        else "not sampled: a webhook arrived before all N waited",
        f"{rss * n / 1024 / dw['rss_before_mib']:.2f}x the process before"
        if rss is not None
        else "-",
    )
    lat, wall = dw["resume_latency_ms"], dw["first_end_to_last_resume_s"]
    add(
        bench,
        "webhook received -> thread resumed",
        f"p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms; CPU per "
        f"resume: {dw.get('cpu_ms_per_resume', 0):.1f} ms here, "
        f"{dw.get('sandbox_cpu_ms_per_resume', 0):.1f} ms in the sandbox (from the runs' "
        "ends to the last resume)",
    )
    add(
        bench,
        "first run ended -> last thread resumed",
        f"{wall:.1f} s; {dw['deliveries']:,} deliveries, {dw['deliveries_retried']} retried "
        f"(the sandbox's attempts past the first); start of all N: {dw['setup_s']:.1f} s"
        if wall is not None
        else "-",
        f"{n / wall:,.0f} resumes/s" if wall else "-",
    )
    limits = dw.get("sandbox_fd_limit")
    sandbox_limit = f"{limits[0]:,}" if limits else "?"
    add(
        bench,
        "open files",
        f"waiting process peak {dw['peak_open_fds']:,} (soft limit {dw['fd_limit'][0]:,}); "
        f"sandbox peak {dw['sandbox_peak_open_fds']:,} (soft limit {sandbox_limit})",
        f"{dw['peak_open_fds'] / n:.3f} per wait",
    )


def table(res: dict[str, Any]) -> str:
    """Plain-text table for the terminal."""
    rows = figures(res)
    head = ("benchmark", "figure", "value", "ratio to baseline", "target", "met")
    cells = [head] + [
        (
            r["bench"],
            r["figure"],
            r["value"],
            r["ratio"],
            r["target"],
            "" if r["met"] is None else ("yes" if r["met"] else "NO"),
        )
        for r in rows
    ]
    widths = [min(max(len(c[i]) for c in cells), 90) for i in range(len(head))]
    lines = []
    for i, c in enumerate(cells):
        lines.append("  ".join(c[j].ljust(widths[j]) for j in range(len(head))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(res: dict[str, Any]) -> str:
    rows = figures(res)
    out = [
        "| benchmark | figure | value (median [min-max]) | ratio to baseline | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        cells = (r["bench"], r["figure"], r["value"], r["ratio"], r["target"], met)
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def markdown(res: dict[str, Any]) -> str:
    """The whole BENCHMARKS.md."""
    from benchmarks import _method

    m = res["machine"]
    machine = (
        f"{m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB RAM; {m['platform']}; "
        f"{m['implementation']} {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    )
    if m.get("load_average_1m") is not None:
        machine += (
            f". 1-minute load average {m['load_average_1m']} at the start and "
            f"{m.get('load_average_1m_end', '?')} at the end (other work shared the machine)"
        )
    return _method.TEMPLATE.format(
        machine=machine,
        total=f"{res.get('total_seconds', 0):.0f}",
        table=markdown_table(res),
        notes=_method.notes(res),
    )
