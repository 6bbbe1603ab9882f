"""Soak benchmark: one ``faultlens serve`` fed at a steady rate for minutes; does memory stay flat?

A real server (``faultlens.testing.process.start_server``, analysis on unless
``--server-env`` says otherwise) receives OTLP/gRPC trace requests of 1,000 spans at
``--rate`` spans/s for ``--minutes`` minutes from the load generator that bench/ingest.py
uses (bench/loadgen.py: its own process, fresh ids and advancing times in every request).
The main process's memory is read from /proc every ``--sample-seconds``; at the end the
sender's acknowledged spans are compared with the spans the store holds.

What it reports (one JSON object):

- ``minutes``: per minute of the run, the mean and max RSS and anonymous memory (MiB) of
  the server's main process, the spans stored by the end of that minute and the stored
  rate during it.
- ``peak_rss_mib`` / ``peak_anon_mib``: the largest sample of each.
- ``rss_growth_pct`` / ``anon_growth_pct``: the mean of the last minute over the mean of
  minute 5 (the fifth, 1-based: after start-up, caches and windows have filled), as a
  percentage; null for runs shorter than 6 minutes.
- ``refusals``: requests the client retried after a retryable refusal (UNAVAILABLE,
  RESOURCE_EXHAUSTED), and the server's own refusal counters.
- ``lost``: spans acknowledged to the client but not in the store once it has settled
  (no change for ``--settle-seconds``); ``rejected``: spans the server answered as invalid
  (partial success), which are not acknowledged; ``dropped``: what the server counted as dropped,
  by consumer and reason; ``client_errors``: requests that failed for good (not
  acknowledged, so not lost); ``analysis``: the anomalies, incident transitions and
  root-cause rankings the server counted (a soak that opens no incident ranks nothing).
- ``sender_kept_pace``: whether the sender sent everything within 5% of the planned time
  (on a loaded machine it may not, and the rate achieved is lower).

    python bench/soak.py --minutes 10 --rate 10000
    python bench/soak.py --minutes 3 --rate 5000 --server-env FAULTLENS_ANALYSIS__ENABLED=false
    python bench/soak.py --minutes 30 --rate 10000 --fault-every 6 --fault-minutes 2

With ``--fault-every``, half the leaf spans fail for ``--fault-minutes`` every so often (5%
otherwise), so the server opens incidents and ranks their root causes, reading windows of the
store it holds, as a server does in production; ``faults`` and ``analysis`` say what happened.

Targets (issue 16): at 10k spans/s for 30 minutes, ``rss_growth_pct`` <= 5, nothing
refused or lost.
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

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from faultlens.testing.process import ServerProcess, start_server
from loadgen import MIB, SPANS_PER_REQUEST, LoadSpec, TreeCpu, rss_split, sender_main

GROWTH_FROM_MINUTE = 5


def server_counters(server: ServerProcess) -> dict[str, dict[str, float]]:
    """The server's refusal, drop and analysis counters, by label values."""
    text = httpx.get(f"{server.api}/metrics", timeout=10).text
    wanted = {
        "faultlens_receiver_refused_requests": ("reason",),
        "faultlens_receiver_refused_items": ("transport",),
        "faultlens_receiver_rejected_items": ("signal", "transport"),
        "faultlens_dropped_items": ("consumer", "reason"),
        "faultlens_analysis_anomalies": (),
        "faultlens_analysis_incidents": ("event",),
        "faultlens_rca_rankings": ("outcome",),
    }
    out: dict[str, dict[str, float]] = {name: {} for name in wanted}
    for family in text_string_to_metric_families(text):
        if family.name not in wanted:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                label = "/".join(sample.labels.get(k, "") for k in wanted[family.name])
                out[family.name][label] = out[family.name].get(label, 0.0) + sample.value
    return out


def _minute_row(
    minute: int, seconds: float, samples: list[tuple[int, int]], stored: int, stored_before: int
) -> dict[str, Any]:
    rss = [r for r, _ in samples]
    anon = [a for _, a in samples]
    return {
        "minute": minute,
        "seconds": round(seconds, 1),
        "rss_mib_mean": round(statistics.mean(rss) / MIB, 1),
        "rss_mib_max": round(max(rss) / MIB, 1),
        "anon_mib_mean": round(statistics.mean(anon) / MIB, 1),
        "anon_mib_max": round(max(anon) / MIB, 1),
        "spans_stored": stored,
        "stored_per_s": round((stored - stored_before) / seconds) if seconds > 0 else None,
    }


def _growth(rows: list[dict[str, Any]], key: str) -> float | None:
    """Last minute over minute 5, in percent (a last minute under 30 s counts with the one before)."""
    if rows and rows[-1]["seconds"] < 30:
        rows = rows[:-1]
    if len(rows) <= GROWTH_FROM_MINUTE:
        return None
    base = rows[GROWTH_FROM_MINUTE - 1][key]
    return round(float(rows[-1][key] - base) / float(base) * 100, 2)


def soak(
    minutes: float,
    rate: float,
    sample_s: float,
    settle_s: float,
    env: dict[str, str],
    faults: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """``faults``: (every, for) in minutes, or None for a steady load."""
    requests = int(minutes * 60 * rate / SPANS_PER_REQUEST)
    every_s, for_s = (faults[0] * 60, faults[1] * 60) if faults is not None else (None, 0.0)
    with tempfile.TemporaryDirectory(prefix="faultlens-soak-") as tmp:
        server = start_server(Path(tmp) / "data", "--log-level", "warning", env=env)
        target = f"127.0.0.1:{server.grpc_port}"
        spec = LoadSpec(
            "grpc", False, target, requests, 2, rate, 20, fault_every_s=every_s, fault_for_s=for_s
        )
        try:
            return _run(server, spec, minutes, sample_s, settle_s)
        finally:
            server.stop()


def _run(
    server: ServerProcess, spec: LoadSpec, minutes: float, sample_s: float, settle_s: float
) -> dict[str, Any]:
    requests, rate = spec.requests, float(spec.rate_spans_per_s or 0)
    ctx = mp.get_context("spawn")
    results, ready, go = ctx.Queue(), ctx.Event(), ctx.Event()
    sender = ctx.Process(target=sender_main, args=(spec, ready, go, results))
    sender.start()
    ready.wait(300)
    proc = psutil.Process(server.proc.pid)
    cpu = TreeCpu(server.proc.pid)
    load_before = os.getloadavg()
    go.set()
    start = time.monotonic()
    rows: list[dict[str, Any]] = []
    samples: list[tuple[int, int]] = []  # (rss, anon) bytes within the current minute
    peak_rss = peak_anon = 0
    stored_before = 0
    minute_start = start
    while True:
        alive = sender.is_alive()
        rss, anon = int(proc.memory_info().rss), rss_split(proc.pid).get("RssAnon", 0)
        samples.append((rss, anon))
        peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
        now = time.monotonic()
        if now >= minute_start + 60 or not alive:
            stored = server.stats()["spans"]
            rows.append(_minute_row(len(rows) + 1, now - minute_start, samples, stored, stored_before))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            stored_before, samples, minute_start = stored, [], now
            if not alive:
                break
        time.sleep(max(0.0, min(sample_s, minute_start + 60 - time.monotonic())))
    sent = results.get(timeout=60)
    sender.join(60)
    # Spans the server left out as invalid (partial success: the generator's random durations
    # now and then end a span before it starts) were answered as rejected, not acknowledged.
    rejected = int(sum(server_counters(server)["faultlens_receiver_rejected_items"].values()))
    acknowledged = (requests - int(sent["error_count"])) * SPANS_PER_REQUEST - rejected
    stored, last_change = server.stats()["spans"], time.monotonic()
    while stored < acknowledged and time.monotonic() - last_change < settle_s:
        time.sleep(1)
        now_stored = server.stats()["spans"]
        if now_stored != stored:
            stored, last_change = now_stored, time.monotonic()
    main_cpu, _ = cpu.delta()
    counters = server_counters(server)
    planned_s = requests * SPANS_PER_REQUEST / rate
    return {
        "minutes_planned": minutes,
        "rate_planned_spans_per_s": rate,
        "seconds": round(time.monotonic() - start, 1),
        "send_seconds": round(sent["send_seconds"], 1),
        "sender_kept_pace": sent["send_seconds"] <= planned_s * 1.05,
        "achieved_send_spans_per_s": round(requests * SPANS_PER_REQUEST / sent["send_seconds"]),
        "spans_acknowledged": acknowledged,
        "spans_stored": stored,
        "rejected": rejected,
        "lost": max(0, acknowledged - stored),
        "refusals": {
            "client_retries": sent["retries"],
            "server_refused_requests": counters["faultlens_receiver_refused_requests"],
            "server_refused_items": counters["faultlens_receiver_refused_items"],
        },
        "dropped": counters["faultlens_dropped_items"],
        # What the analysis did with the load: a soak with no incident never ranks root causes.
        "analysis": {
            "anomalies": counters["faultlens_analysis_anomalies"],
            "incidents": counters["faultlens_analysis_incidents"],
            "rca_rankings": counters["faultlens_rca_rankings"],
        },
        "client_errors": sent["errors"],
        "peak_rss_mib": round(peak_rss / MIB, 1),
        "peak_anon_mib": round(peak_anon / MIB, 1),
        "rss_growth_pct": _growth(rows, "rss_mib_mean"),
        "anon_growth_pct": _growth(rows, "anon_mib_mean"),
        "growth_from_minute": GROWTH_FROM_MINUTE,
        "server_cpu_s_per_100k_spans": round(main_cpu / stored * 100_000, 3) if stored else None,
        "client_cpu_s": round(sent["client_cpu_s"], 1),
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "minutes": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to send")
    ap.add_argument("--rate", type=float, default=10_000.0, help="spans/s")
    ap.add_argument("--sample-seconds", type=float, default=2.0, help="memory sampling period")
    ap.add_argument(
        "--settle-seconds",
        type=float,
        default=30.0,
        help="at the end, wait this long without progress before counting what is missing as lost",
    )
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server, e.g. FAULTLENS_ANALYSIS__ENABLED=false",
    )
    ap.add_argument(
        "--fault-every",
        type=float,
        metavar="MIN",
        help="every MIN minutes (from MIN in), send failing requests for --fault-minutes: the server "
        "opens incidents and ranks their root causes, reading windows of the store it holds",
    )
    ap.add_argument("--fault-minutes", type=float, default=3.0, help="how long each fault lasts")
    args = ap.parse_args()
    env = dict(kv.split("=", 1) for kv in args.server_env)
    faults = None if args.fault_every is None else (args.fault_every, args.fault_minutes)
    result = soak(args.minutes, args.rate, args.sample_seconds, args.settle_seconds, env, faults)
    out = {
        "benchmark": "soak",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "server_env": env,
        "faults": None if faults is None else {"every_minutes": faults[0], "minutes": faults[1]},
        **result,
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
