"""End-to-end ingest benchmark: spans stored per second by one ``faultlens serve``.

A load generator in its own process (bench/loadgen.py) sends pre-built, pre-serialized OTLP
requests (1,000 spans each, ~15 attributes per span, several services per request) over
gRPC and OTLP/HTTP protobuf, with and without gzip, and OTLP/HTTP JSON, to a real
``faultlens serve`` started for each scenario. Every request's ids are made unique by an
XOR with its number (``faultlens.testing.fresh_ids``), and its span and event times moved
by the time since the payloads were built, so that the server's data time advances as with
live traffic, except over HTTP with gzip or JSON, whose bodies are prepared once. Each
scenario runs once per decode placement (``--decode-workers``, default ``0,1,2``: 0 decodes
on the event loop, N > 0 in N worker processes), interleaved, so the placements are
compared side by side in one run on the same machine load.

What each scenario reports, and how it is measured:

- ``spans_stored_per_s``: spans counted in the store (``/api/v1/stats``) divided by the
  time from the sender's first request to the first poll (every 50 ms) that sees all of
  them stored. This is end to end: it includes the store's coalescing delay (up to
  ``store.flush_interval``, 2 s) at the end, so short runs understate the steady rate;
  ``spans_stored_per_s_between_flushes`` is the rate from the first flush to the last but one.
- ``server_cpu_s_per_100k_spans``: user+system CPU of the server process **and its child
  processes** (decode workers) over the same window; ``server_main_cpu_s`` and
  ``server_workers_cpu_s`` split it.
- ``server_main_peak_rss_mib``: the main process's peak RSS (sampled every 50 ms);
  ``server_tree_peak_rss_mib``: the peak of the sum over main and workers (counts shared
  library pages once per process, so it overstates); ``server_tree_peak_pss_mib``: the
  peak of the summed PSS (shared pages split between processes; sampled every 0.5 s).
  ``server_main_peak_anon_mib`` / ``server_main_peak_file_mib``: the main RSS split into
  anonymous memory and file-backed pages (libraries), each at its peak, and both before
  the load (``server_main_before_load_*``).
- ``library_floor``: RSS (anonymous + file) of a bare interpreter that loaded DuckDB, Arrow
  and gRPC and used each once, measured in the same run: the floor under any server of
  this stack, to read the peaks beside (``sustained_main_peak_rss_over_library_floor_mib``).
- ``client_cpu_s``: the load generator's CPU, which competes for the same cores.
- ``load_average``: the 1-minute load average before and after, because the machine may
  be shared: read every figure beside it.
- ``ratio_to_raw_parse`` / ``ratio_to_decode``: spans stored per second over the rate at
  which this process parses the same payload with upb alone / decodes it to Arrow with
  ``decode_request``, measured in the same run (wall clock, one core).

Then a sustained phase per placement: a paced sender at ``--rate`` spans/s (default 10,000)
over gRPC for 10 s (60 s with ``--full``), reporting the achieved stored rate and the peak
RSS (main and tree). The issue's targets: >= 50,000 spans/s stored over gRPC without
compression, and peak RSS < 250 MiB while sustaining 10,000 spans/s (checked on the tree).

    python bench/ingest.py                       # short run, placements 0,1,2
    python bench/ingest.py --full                # the issue's figures: more requests, 60 s
    python bench/ingest.py --decode-workers 0,2 --only grpc,sustained --repeat 3

With ``--repeat N`` every figure is the median of N runs (all runs are kept in ``runs``).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.testing.process import ServerProcess, start_server
from loadgen import MIB, SPANS_PER_REQUEST, LoadSpec, TreeCpu, TreeSampler, build_payloads, sender_main

SCENARIOS = [
    ("grpc", "grpc", False),
    ("grpc+gzip", "grpc", True),
    ("http-protobuf", "http", False),
    ("http-protobuf+gzip", "http", True),
    ("http-json", "http", False),  # OTLP/JSON bodies, prepared once (ids repeat)
]


def run_scenario(
    name: str,
    transport: str,
    use_gzip: bool,
    requests: int,
    rate: float | None,
    payload_count: int,
    workers: int,
    server_env: dict[str, str] | None = None,
    fresh_ids: bool = True,
    durability: str = "process",
) -> dict[str, Any]:
    env = {
        **(server_env or {}),
        "FAULTLENS_RECEIVERS__DECODE_WORKERS": str(workers),
        "FAULTLENS_INTAKE__DURABILITY": durability,
    }
    with tempfile.TemporaryDirectory(prefix="faultlens-bench-") as tmp:
        server = start_server(Path(tmp) / "data", "--log-level", "warning", env=env)
        try:
            result = _measure(server, name, transport, use_gzip, requests, rate, payload_count, fresh_ids)
        finally:
            server.stop()
    result["decode_workers"] = workers
    result["durability"] = durability
    return result


def _measure(
    server: ServerProcess,
    name: str,
    transport: str,
    use_gzip: bool,
    requests: int,
    rate: float | None,
    payload_count: int,
    fresh_ids: bool = True,
) -> dict[str, Any]:
    target = (
        f"127.0.0.1:{server.grpc_port}" if transport == "grpc" else f"http://127.0.0.1:{server.http_port}"
    )
    concurrency = 4 if rate is None else 2
    json_bodies = name.startswith("http-json")
    spec = LoadSpec(
        transport, use_gzip, target, requests, concurrency, rate, payload_count, fresh_ids, json_bodies
    )
    expected = requests * SPANS_PER_REQUEST
    ctx = mp.get_context("spawn")
    results, ready, go = ctx.Queue(), ctx.Event(), ctx.Event()
    sender = ctx.Process(target=sender_main, args=(spec, ready, go, results))
    sender.start()
    ready.wait(300)  # the sender builds its payloads before the clock starts
    load_before = os.getloadavg()[0]
    sampler = TreeSampler(server.proc.pid)
    sampler.start()
    cpu = TreeCpu(server.proc.pid)
    go.set()
    stored = 0
    steps: list[tuple[float, int]] = []  # (time, stored) whenever the stored count moved
    deadline = time.monotonic() + max(180.0, 4 * expected / (rate or 10_000))
    while time.monotonic() < deadline:
        stored = server.stats()["spans"]
        if not steps or stored != steps[-1][1]:
            steps.append((time.monotonic(), stored))
        if stored >= expected:
            break
        time.sleep(0.05)
    done_epoch = time.time()
    main_cpu, worker_cpu = cpu.delta()
    sampler.stop_event.set()
    sampler.join()
    sender.join(60)
    sent = results.get(timeout=30) if not results.empty() else {}
    wall = done_epoch - float(sent.get("first_send_epoch", done_epoch))
    total_cpu = main_cpu + worker_cpu
    return {
        "scenario": name,
        "transport": transport,
        "gzip": use_gzip,
        "spans_sent": expected,
        "spans_stored": stored,
        "complete": stored >= expected,
        "seconds": round(wall, 3),
        "spans_stored_per_s": round(stored / wall) if wall > 0 else None,
        "spans_stored_per_s_between_flushes": _steady_rate(steps),
        "server_cpu_s_per_100k_spans": round(total_cpu / stored * 100_000, 3) if stored else None,
        "server_main_cpu_s": round(main_cpu, 2),
        "server_workers_cpu_s": round(worker_cpu, 2),
        "server_main_peak_rss_mib": round(sampler.peak_main / MIB, 1),
        "server_main_peak_anon_mib": round(sampler.peak_split["RssAnon"] / MIB, 1),
        "server_main_peak_file_mib": round(sampler.peak_split["RssFile"] / MIB, 1),
        "server_main_before_load_anon_mib": round(sampler.before.get("RssAnon", 0) / MIB, 1),
        "server_main_before_load_file_mib": round(sampler.before.get("RssFile", 0) / MIB, 1),
        "server_tree_peak_rss_mib": round(sampler.peak_tree / MIB, 1),
        "server_tree_peak_pss_mib": round(sampler.peak_tree_pss / MIB, 1),
        "client_cpu_s": round(float(sent.get("client_cpu_s", 0.0)), 2),
        "client_retries": sent.get("retries"),
        "client_errors": sent.get("errors"),
        "target_rate_spans_per_s": rate,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _steady_rate(steps: list[tuple[float, int]]) -> int | None:
    """Stored spans per second from the first flush to the last but one.

    The writer stores in flushes (``store.flush_rows`` rows or every ``flush_interval``),
    so the count moves in steps; the last step waits for the flush interval after the
    sender stopped, which the end-to-end rate includes and this one leaves out.
    """
    moved = [(t, n) for t, n in steps if n > 0]
    if len(moved) < 3:
        return None
    (t0, n0), (t1, n1) = moved[0], moved[-2]
    return round((n1 - n0) / (t1 - t0)) if t1 > t0 else None


def _rate(payloads: list[bytes], fn: Any, seconds: float) -> tuple[float, float]:
    """(spans per wall second, spans per CPU second) of ``fn`` over the payloads."""
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        for p in payloads:
            fn(p)
            n += SPANS_PER_REQUEST
    return n / (time.perf_counter() - t0), n / max(1e-9, time.process_time() - c0)


def parse_rates(payloads: list[bytes], seconds: float = 2.0) -> dict[str, int]:
    from faultlens.decode import decode_request
    from faultlens.types import Signal

    raw_wall, raw_cpu = _rate(payloads, ExportTraceServiceRequest.FromString, seconds)
    dec_wall, dec_cpu = _rate(payloads, lambda p: decode_request(Signal.TRACES, p, json=False), seconds)
    return {
        "raw_protobuf_parse_spans_per_s": round(raw_wall),
        "raw_protobuf_parse_spans_per_cpu_s": round(raw_cpu),
        "decode_to_arrow_spans_per_s": round(dec_wall),
        "decode_to_arrow_spans_per_cpu_s": round(dec_cpu),
    }


# What a bare interpreter holds once it has loaded the libraries the server is built on and
# used each once (DuckDB scanning an Arrow table, Arrow compute, a gRPC server object): the
# floor under any server of this stack, before its own code, data or buffers.
_FLOOR_PROGRAM = """
import json, duckdb, grpc, pyarrow as pa, pyarrow.compute as pc
from concurrent import futures
from google.protobuf import descriptor_pb2
t = pa.table({"a": pa.array(range(1000)), "s": pa.array([str(i % 7) for i in range(1000)])})
pc.sum(t["a"])
con = duckdb.connect()
con.register("t", t)
con.execute("SELECT s, count(*) FROM t GROUP BY s").fetchall()
grpc.server(futures.ThreadPoolExecutor(1))
fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "RssAnon", "RssFile")}))
"""


def library_floor() -> dict[str, float]:
    """RSS of :data:`_FLOOR_PROGRAM` in its own process (MiB), to read the server's beside."""
    out = subprocess.run(
        [sys.executable, "-c", _FLOOR_PROGRAM], capture_output=True, text=True, check=True, timeout=120
    )
    got = json.loads(out.stdout)
    return {
        "rss_mib": round(got["VmRSS"] / MIB, 1),
        "anon_mib": round(got["RssAnon"] / MIB, 1),
        "file_mib": round(got["RssFile"] / MIB, 1),
    }


_MEDIAN_KEYS = (
    "seconds",
    "spans_stored_per_s",
    "server_cpu_s_per_100k_spans",
    "server_main_cpu_s",
    "server_workers_cpu_s",
    "server_main_peak_rss_mib",
    "server_main_peak_anon_mib",
    "server_main_peak_file_mib",
    "server_tree_peak_rss_mib",
    "server_tree_peak_pss_mib",
    "client_cpu_s",
)


def _median(runs: list[dict[str, Any]], rates: dict[str, int]) -> dict[str, Any]:
    out = dict(runs[0])
    for key in _MEDIAN_KEYS:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = round(statistics.median(values), 3) if values else None
    out["complete"] = all(r["complete"] for r in runs)
    out["load_average"] = [r["load_average"] for r in runs]
    out["repeats"] = len(runs)
    stored = out["spans_stored_per_s"]
    out["ratio_to_raw_parse"] = round(stored / rates["raw_protobuf_parse_spans_per_s"], 3) if stored else None
    out["ratio_to_decode"] = round(stored / rates["decode_to_arrow_spans_per_s"], 3) if stored else None
    return out


def _durability_cost(configurations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per scenario, spans stored/s with each durability as a ratio of ``none`` (same run)."""
    base = {c["decode_workers"]: c for c in configurations if c["durability"] == "none"}
    if not base:
        return None
    out: dict[str, Any] = {}
    for c in configurations:
        ref = base.get(c["decode_workers"])
        if ref is None or c is ref:
            continue
        ratios = {}
        for mine, theirs in zip(c["scenarios"], ref["scenarios"], strict=True):
            if mine["spans_stored_per_s"] and theirs["spans_stored_per_s"]:
                ratios[mine["scenario"]] = round(mine["spans_stored_per_s"] / theirs["spans_stored_per_s"], 3)
        out[f"{c['durability']}/workers={c['decode_workers']}"] = {
            "spans_stored_per_s_ratio_to_none": ratios,
            "target_min_ratio": 0.85,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="longer runs: the figures for the issue")
    ap.add_argument("--only", help="comma-separated scenario names to run, e.g. grpc,http-protobuf,sustained")
    ap.add_argument("--decode-workers", default="0,1,2", help="placements to compare, e.g. 0,1,2")
    ap.add_argument(
        "--durability",
        default="process",
        help="intake.durability settings to compare in the same run, e.g. none,process,fsync",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per figure; the median is reported")
    ap.add_argument("--requests", type=int, help="requests of 1,000 spans per scenario")
    ap.add_argument("--rate", type=float, default=10_000.0, help="sustained phase, spans/s")
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server, e.g. FAULTLENS_ANALYSIS__ENABLED=false",
    )
    ap.add_argument("--sustain-seconds", type=float, help="sustained phase length (10 s; 60 s with --full)")
    ap.add_argument(
        "--reuse-ids",
        action="store_true",
        help="send the pre-built requests as they are (ids and times repeat every 20 requests)",
    )
    args = ap.parse_args()
    fresh = not args.reuse_ids
    server_env = dict(kv.split("=", 1) for kv in args.server_env)
    placements = [int(w) for w in args.decode_workers.split(",") if w.strip()]
    durabilities = [d.strip() for d in args.durability.split(",") if d.strip()]
    setups = [(w, d) for w in placements for d in durabilities]
    requests = args.requests or (1000 if args.full else 100)
    sustain_s = args.sustain_seconds or (60.0 if args.full else 10.0)
    payload_count = 20
    load_start = os.getloadavg()
    payloads = build_payloads(payload_count)
    rates = parse_rates(payloads)
    floor = library_floor()
    only = set(args.only.split(",")) if args.only else None
    scenarios = [s for s in SCENARIOS if only is None or s[0] in only]
    run_sustained = only is None or "sustained" in only
    raw_runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for _ in range(args.repeat):
        for name, transport, gz in scenarios:
            for workers, dur in setups:  # interleaved: each setup sees the same load
                r = run_scenario(
                    name, transport, gz, requests, None, payload_count, workers, server_env, fresh, dur
                )
                raw_runs.setdefault((name, workers, dur), []).append(r)
        if run_sustained:
            n = int(args.rate * sustain_s / SPANS_PER_REQUEST)
            for workers, dur in setups:
                r = run_scenario(
                    "sustained-grpc",
                    "grpc",
                    False,
                    n,
                    args.rate,
                    payload_count,
                    workers,
                    server_env,
                    fresh,
                    dur,
                )
                raw_runs.setdefault(("sustained-grpc", workers, dur), []).append(r)
    configurations = []
    for workers, dur in setups:
        results = [_median(raw_runs[(name, workers, dur)], rates) for name, _, _ in scenarios]
        sustained = _median(raw_runs[("sustained-grpc", workers, dur)], rates) if run_sustained else None
        if sustained is not None:
            sustained["achieved_spans_stored_per_s"] = sustained.pop("spans_stored_per_s")
        grpc_plain = next((r for r in results if r["scenario"] == "grpc"), None)
        configurations.append(
            {
                "decode_workers": workers,
                "durability": dur,
                "scenarios": results,
                "sustained": sustained,
                "targets": {
                    "grpc_spans_stored_per_s_min": 50_000,
                    "grpc_met": bool(grpc_plain and (grpc_plain["spans_stored_per_s"] or 0) >= 50_000),
                    "sustained_peak_rss_mib_max": 250,
                    "sustained_main_met": bool(
                        sustained and sustained["complete"] and sustained["server_main_peak_rss_mib"] < 250
                    ),
                    "sustained_tree_met": bool(
                        sustained and sustained["complete"] and sustained["server_tree_peak_rss_mib"] < 250
                    ),
                    "sustained_main_peak_rss_over_library_floor_mib": round(
                        sustained["server_main_peak_rss_mib"] - floor["rss_mib"], 1
                    )
                    if sustained
                    else None,
                },
            }
        )
    out = {
        "benchmark": "ingest",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_start": [round(x, 2) for x in load_start],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        },
        "payload": {
            "spans_per_request": SPANS_PER_REQUEST,
            "attributes_per_span": 15,
            "services_per_request": 5,
            "request_bytes": len(payloads[0]),
        },
        "requests_per_scenario": requests,
        "server_env": server_env,
        "fresh_ids": fresh,
        "repeat": args.repeat,
        **rates,
        "library_floor": floor,
        "configurations": configurations,
        "durability_cost": _durability_cost(configurations),
        "runs": {f"{name}/workers={w}/durability={d}": runs for (name, w, d), runs in raw_runs.items()}
        if args.repeat > 1
        else None,
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
