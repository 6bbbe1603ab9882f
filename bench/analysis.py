"""What the streaming analysis costs: server CPU per 100k spans, with and without it.

Two ``faultlens serve`` processes, one with the analysis (the default) and one with
``FAULTLENS_ANALYSIS__ENABLED=false``, receive the same pre-serialized OTLP/HTTP requests
(traces of 1,000 spans with ~5% failing traces and exception events, plus log requests
with error records, spread over ``--minutes`` of data time so that windows close and the
baselines, anomalies and incidents run too). The server's CPU time is read from /proc from
the first request until everything is stored (and, with the analysis, analysed), in the
same run, alternating the two servers ``--rounds`` times.

    python bench/analysis.py              # ~100k spans per round
    python bench/analysis.py --spans 300000
    python bench/analysis.py --py-spy /tmp/prof   # also profile the analysing server (py-spy
                                                  # on PATH or in the venv): collapsed stacks

The analysis writes its results at most every ``write_interval_s`` (5 s), so each server gets
``--settle`` seconds after its last item before its CPU is read (both alike).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from faultlens.testing.payloads import build_logs_request, build_trace_request
from faultlens.testing.process import ServerProcess, start_server

SPANS_PER_REQUEST = 1000
LOGS_PER_REQUEST = 500
PROTOBUF = {"content-type": "application/x-protobuf"}


def payloads(spans: int, minutes: int) -> list[tuple[str, bytes, int]]:
    n = max(spans // SPANS_PER_REQUEST, 1)
    start = (time.time_ns() // 60_000_000_000 - minutes - 5) * 60_000_000_000
    step = minutes * 60_000_000_000 // n
    out: list[tuple[str, bytes, int]] = []
    for i in range(n):
        base = start + (i + 1) * step
        tr = build_trace_request(SPANS_PER_REQUEST, services=5, seed=i, error_ratio=0.05, base_time_ns=base)
        out.append(("/v1/traces", tr.SerializeToString(), SPANS_PER_REQUEST))
        if i % 2 == 0:
            lg = build_logs_request(LOGS_PER_REQUEST, services=5, seed=i, base_time_ns=base)
            out.append(("/v1/logs", lg.SerializeToString(), 0))
    return out


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            m = re.search(r"\s([0-9.e+]+)$", line)
            if m:
                total += float(m.group(1))
    return total


def _cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        raise SystemExit("--py-spy needs py-spy (pip install py-spy)")
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "raw",
            "--threads",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(
    server: ServerProcess,
    work: list[tuple[str, bytes, int]],
    analysis: bool,
    settle_s: float = 5.5,
    profile: Path | None = None,
) -> dict[str, Any]:
    spans = sum(n for _, _, n in work)
    items_expected = None
    spy = _py_spy(server.proc.pid, profile) if profile is not None else None
    if spy is not None:
        time.sleep(1.0)  # py-spy attaches
    refused = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=60) as otlp:
        cpu0 = _cpu(server.proc.pid)
        started = time.perf_counter()
        for path, body, _ in work:
            while True:
                r = otlp.post(path, content=body, headers=PROTOBUF)
                if r.status_code not in (429, 503):
                    break
                refused += 1  # retryable refusal (the store is busy): retry after a pause, as a client would
                time.sleep(0.2)
            r.raise_for_status()
        sent_s = time.perf_counter() - started
    deadline = time.monotonic() + 600
    with httpx.Client(base_url=server.api, timeout=30) as api:
        while time.monotonic() < deadline:
            text = api.get("/metrics").text
            written = _metric(text, "faultlens_store_written_items_total")
            accepted = _metric(text, "faultlens_receiver_accepted_items_total")
            done = written >= accepted
            if analysis:
                processed = _metric(text, "faultlens_analysis_processed_items_total")
                dropped = _metric(text, 'faultlens_dropped_items_total{consumer="analysis"')
                items_expected = accepted
                done = done and processed + dropped >= accepted
            if done:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        time.sleep(settle_s)  # the last results are written up to write_interval later
        cpu = _cpu(server.proc.pid) - cpu0
        dropped = _metric(api.get("/metrics").text, "faultlens_dropped_items_total")
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes its profile and exits
        spy.wait(30)
    return {
        "spans": spans,
        "items": items_expected,
        "server_cpu_s": round(cpu, 3),
        "server_cpu_s_per_100k_spans": round(cpu / spans * 100_000, 3),
        "send_s": round(sent_s, 2),
        "until_done_s": round(elapsed, 2),
        "dropped_items": dropped,
        "refused_requests": refused,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=100_000, help="spans per round (default 100000)")
    ap.add_argument("--minutes", type=int, default=10, help="data time the spans cover (default 10)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per server (default 2)")
    ap.add_argument(
        "--settle", type=float, default=5.5, help="seconds after the last item before CPU is read"
    )
    ap.add_argument("--py-spy", type=Path, help="profile the analysing server into PREFIX-<round>.txt")
    args = ap.parse_args()
    work = payloads(args.spans, args.minutes)
    results: dict[str, list[dict[str, Any]]] = {"ingest_only": [], "ingest_and_analysis": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, env in (
                ("ingest_only", {"FAULTLENS_ANALYSIS__ENABLED": "false"}),
                ("ingest_and_analysis", {}),
            ):
                server = start_server(Path(tmp) / f"{name}-{r}", "--log-level", "warning", env=env)
                try:
                    profile = None
                    if args.py_spy is not None and not env:
                        profile = args.py_spy.with_name(f"{args.py_spy.name}-{r}.txt")
                    results[name].append(measure(server, work, not env, args.settle, profile))
                finally:
                    server.stop()

    def median(name: str) -> float:
        return round(statistics.median(x["server_cpu_s_per_100k_spans"] for x in results[name]), 3)

    base, full = median("ingest_only"), median("ingest_and_analysis")
    print(
        json.dumps(
            {
                "bench": "analysis",
                "spans_per_round": args.spans,
                "data_minutes": args.minutes,
                "rounds": args.rounds,
                "ingest_only_cpu_s_per_100k_spans": base,
                "with_analysis_cpu_s_per_100k_spans": full,
                "analysis_added_cpu_s_per_100k_spans": round(full - base, 3),
                "analysis_added_ratio": round(full / base, 2) if base else None,
                "runs": results,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
