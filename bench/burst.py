"""Burst benchmark: senders as fast as they can, then a steady rate; where does memory go?

A real ``faultlens serve`` (``faultlens.testing.process.start_server``, analysis on unless
``--server-env`` says otherwise) is fed OTLP/gRPC trace requests of 1,000 spans by the load
generator of bench/loadgen.py (its own process, fresh ids and advancing times):

1. burst: ``--burst-senders`` threads send as fast as the server answers for
   ``--burst-seconds`` (refusals are retried after 50 ms, as in the other benches);
2. sustained: ``--rate`` spans/s for ``--sustain-minutes``, starting when the burst's sender
   stops.

The server's main process's RSS and anonymous memory are read from /proc every
``--sample-seconds``. What it reports (one JSON object):

- ``memory_limit_mib``: the admission soft limit the server runs with
  (``admission.memory_soft_limit_mib``), and ``peak_rss_mib`` / ``peak_anon_mib`` of the
  burst and of the whole run, with ``peak_over_limit`` (the issue's target: never past it);
- ``after_burst_rss_mib``: the mean RSS from ``--after-seconds`` to ``--after-seconds`` + 10
  after the burst's sender stopped; ``sustained_rss_mib``: the mean RSS of the last minute;
  ``after_over_sustained_pct``: the first over the second (the issue's target: within 25%);
- the spans sent, acknowledged and stored in each phase, ``lost`` (acknowledged but not in
  the store once it settled), the server's refusals and drops, per-10 s memory in
  ``timeline``.

    python bench/burst.py --burst-seconds 60 --sustain-minutes 4 --rate 10000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from faultlens.config.model import AdmissionConfig
from faultlens.testing.process import ServerProcess, start_server
from loadgen import MIB, SPANS_PER_REQUEST, LoadSpec, TreeCpu, rss_split, sender_main
from soak import server_counters

MAX_BURST_REQUESTS = 1_000_000  # a cap only: the burst ends by time


class _Sender:
    """One load generator process, built and waiting for ``go``."""

    def __init__(self, spec: LoadSpec) -> None:
        ctx = mp.get_context("spawn")
        self.results, self.ready, self.go = ctx.Queue(), ctx.Event(), ctx.Event()
        self.proc = ctx.Process(target=sender_main, args=(spec, self.ready, self.go, self.results))
        self.proc.start()

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = self.results.get(timeout=120)
        self.proc.join(60)
        return out


def burst(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="faultlens-burst-") as tmp:
        server = start_server(Path(tmp) / "data", "--log-level", "warning", env=env)
        try:
            return _run(server, args)
        finally:
            server.stop()


def _run(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    target = f"127.0.0.1:{server.grpc_port}"
    burst_spec = LoadSpec(
        "grpc", False, target, MAX_BURST_REQUESTS, args.burst_senders, None, 20,
        stop_after_s=args.burst_seconds,
    )  # fmt: skip
    sustained_requests = int(args.sustain_minutes * 60 * args.rate / SPANS_PER_REQUEST)
    steady_spec = LoadSpec("grpc", False, target, sustained_requests, 2, args.rate, 20)
    burst_sender, steady_sender = _Sender(burst_spec), _Sender(steady_spec)
    burst_sender.ready.wait(300)
    steady_sender.ready.wait(300)
    proc = psutil.Process(server.proc.pid)
    cpu = TreeCpu(server.proc.pid)
    load_before = os.getloadavg()
    samples: list[tuple[float, int, int]] = []  # (seconds since start, rss, anon)

    def sample(start: float) -> None:
        samples.append(
            (time.monotonic() - start, int(proc.memory_info().rss), rss_split(proc.pid).get("RssAnon", 0))
        )

    start = time.monotonic()
    burst_sender.go.set()
    while burst_sender.proc.is_alive() and burst_sender.results.empty():
        sample(start)
        time.sleep(args.sample_seconds)
    burst_result = burst_sender.result()
    burst_end = time.monotonic() - start
    stored_at_burst_end = server.stats()["spans"]
    steady_sender.go.set()
    while steady_sender.proc.is_alive() and steady_sender.results.empty():
        sample(start)
        time.sleep(args.sample_seconds)
    steady_result = steady_sender.result()
    acknowledged = 0
    for r in (burst_result, steady_result):
        acknowledged += (int(r["requests_sent"]) - int(r["error_count"])) * SPANS_PER_REQUEST
    stored, last_change = server.stats()["spans"], time.monotonic()
    while stored < acknowledged and time.monotonic() - last_change < args.settle_seconds:
        time.sleep(1)
        now_stored = server.stats()["spans"]
        if now_stored != stored:
            stored, last_change = now_stored, time.monotonic()
    main_cpu, _ = cpu.delta()
    counters = server_counters(server)
    end = samples[-1][0]

    def mean_rss(lo: float, hi: float) -> float | None:
        picked = [r for t, r, _ in samples if lo <= t < hi]
        return round(statistics.mean(picked) / MIB, 1) if picked else None

    in_burst = [s for s in samples if s[0] <= burst_end]
    after = mean_rss(burst_end + args.after_seconds, burst_end + args.after_seconds + 10)
    sustained = mean_rss(end - 60, end + 1)
    limit = args.memory_limit_mib
    peak_rss = max(r for _, r, _ in samples)
    timeline = []
    for lo in range(0, int(end) + 1, 10):
        rows = [(r, a) for t, r, a in samples if lo <= t < lo + 10]
        if rows:
            timeline.append(
                {
                    "from_s": lo,
                    "rss_mib": round(max(r for r, _ in rows) / MIB, 1),
                    "anon_mib": round(max(a for _, a in rows) / MIB, 1),
                }
            )
    return {
        "memory_limit_mib": limit,
        "burst": {
            "seconds": round(burst_end, 1),
            "senders": args.burst_senders,
            "spans_sent": int(burst_result["requests_sent"]) * SPANS_PER_REQUEST,
            "spans_per_s_sent": round(int(burst_result["requests_sent"]) * SPANS_PER_REQUEST / burst_end),
            "spans_stored_by_its_end": stored_at_burst_end,
            "client_retries": burst_result["retries"],
            "peak_rss_mib": round(max(r for _, r, _ in in_burst) / MIB, 1),
            "peak_anon_mib": round(max(a for _, _, a in in_burst) / MIB, 1),
        },
        "sustained": {
            "rate_planned_spans_per_s": args.rate,
            "seconds": round(end - burst_end, 1),
            "send_seconds": round(steady_result["send_seconds"], 1),
            "client_retries": steady_result["retries"],
        },
        "peak_rss_mib": round(peak_rss / MIB, 1),
        "peak_anon_mib": round(max(a for _, _, a in samples) / MIB, 1),
        "peak_over_limit": peak_rss > limit * MIB,
        "after_seconds": args.after_seconds,
        "after_burst_rss_mib": after,
        "sustained_rss_mib": sustained,
        "after_over_sustained_pct": (
            round((after - sustained) / sustained * 100, 1) if after is not None and sustained else None
        ),
        "spans_acknowledged": acknowledged,
        "spans_stored": stored,
        "lost": max(0, acknowledged - stored),
        "refusals": {
            "server_refused_requests": counters["faultlens_receiver_refused_requests"],
            "server_refused_items": counters["faultlens_receiver_refused_items"],
        },
        "dropped": counters["faultlens_dropped_items"],
        "client_errors": burst_result["errors"] + steady_result["errors"],
        "server_cpu_s_per_100k_spans": round(main_cpu / stored * 100_000, 3) if stored else None,
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "timeline": timeline,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--burst-seconds", type=float, default=60.0)
    ap.add_argument("--burst-senders", type=int, default=4, help="sender threads in the burst")
    ap.add_argument("--sustain-minutes", type=float, default=4.0)
    ap.add_argument("--rate", type=float, default=10_000.0, help="spans/s after the burst")
    ap.add_argument("--after-seconds", type=float, default=60.0, help="when 'after the burst' is read")
    ap.add_argument("--sample-seconds", type=float, default=1.0)
    ap.add_argument("--settle-seconds", type=float, default=30.0)
    ap.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE", help="extra server environment"
    )
    args = ap.parse_args()
    env = dict(kv.split("=", 1) for kv in args.server_env)
    raw_limit = env.get("FAULTLENS_ADMISSION__MEMORY_SOFT_LIMIT_MIB")
    default_limit = AdmissionConfig.model_fields["memory_soft_limit_mib"].default
    args.memory_limit_mib = int(raw_limit) if raw_limit else default_limit
    result = burst(args, env)
    out = {
        "benchmark": "burst",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "server_env": env,
        **result,
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
