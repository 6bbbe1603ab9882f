"""The load generator and server meters that bench/ingest.py and bench/soak.py share.

A sender runs in its own process (``sender_main``, started with the ``spawn`` context) and
sends pre-built, pre-serialized OTLP trace requests of :data:`SPANS_PER_REQUEST` spans over
gRPC, OTLP/HTTP protobuf or OTLP/HTTP JSON, as fast as it can or paced at a rate, retrying
what the server refuses with a retryable status (counted as ``retries``). Each request's
ids are made unique by an XOR with its number (``faultlens.testing.fresh_ids``) and its
times moved by the time since the payloads were built, except for bodies prepared once
(gzip over HTTP, JSON), which repeat every ``payload_count`` requests. ``TreeSampler``
and ``TreeCpu`` read the server process (and its children) with psutil and /proc.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.testing.fresh_ids import FreshIds
from faultlens.testing.payloads import build_trace_request, to_otlp_json

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_REQUEST = 1000
MIB = 2**20


def build_payloads(count: int, error_ratio: float = 0.05, first_seed: int = 0) -> list[bytes]:
    """``count`` trace requests; ``error_ratio``: the share of leaf spans that fail. Sets built
    from seeds far apart share no ids (FreshIds then keeps every request's ids its own)."""
    base = time.time_ns() - 60_000_000_000
    return [
        build_trace_request(
            n_spans=SPANS_PER_REQUEST,
            services=5,
            attrs_per_span=15,
            seed=first_seed + i,
            base_time_ns=base,
            error_ratio=error_ratio,
        ).SerializeToString()
        for i in range(count)
    ]


FAULT_ERROR_RATIO = 0.5  # the share of leaf spans that fail while a fault is on (5% otherwise)


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
    fresh_ids: bool = True  # False: every len(payloads) requests repeat the same ids
    json: bool = False  # over HTTP: OTLP/JSON bodies (prepared once: ids repeat)
    stop_after_s: float | None = None  # stop taking requests after this long (``requests`` is then a cap)
    # A fault every ``fault_every_s`` seconds (from that many seconds in), ``fault_for_s`` long:
    # meanwhile requests come from payloads where FAULT_ERROR_RATIO of the leaf spans fail, so
    # the server's analysis opens incidents and ranks their root causes. None: no fault.
    fault_every_s: float | None = None
    fault_for_s: float = 0.0


def _sender(
    spec: LoadSpec, payloads: list[bytes], built_ns: int, results: Any, faulty: list[bytes] | None = None
) -> None:
    # Each request gets ids of its own (FreshIds), so what the server keeps per span id grows
    # as with real traffic, and its times moved by the time since the payloads were built
    # (``built_ns``), so that the server's data time advances as with live traffic and its
    # windows close; only HTTP bodies prepared once (gzip, JSON) repeat ids and times every
    # len(payloads).
    prepared = (spec.gzip or spec.json) and spec.transport == "http"
    if spec.json:
        payloads = [to_otlp_json(ExportTraceServiceRequest.FromString(p)) for p in payloads]
    bodies = [gzip.compress(p, 1) for p in payloads] if prepared and spec.gzip else payloads
    fresh = None if prepared or not spec.fresh_ids else [FreshIds(p) for p in payloads]
    fresh_faulty = [FreshIds(p) for p in faulty] if faulty and fresh is not None else None

    def in_fault() -> bool:
        every = spec.fault_every_s
        elapsed = time.monotonic() - start
        return every is not None and elapsed >= every and elapsed % every < spec.fault_for_s

    def body(i: int) -> bytes:
        if fresh is None:
            return bodies[i % len(bodies)]
        source = fresh_faulty if fresh_faulty is not None and in_fault() else fresh
        return source[i % len(source)].copy(i // len(source), shift_ns=max(0, time.time_ns() - built_ns))

    lock = threading.Lock()
    next_index = [0]
    retries = [0]
    errors: list[str] = []
    start = time.monotonic()

    def take() -> int | None:
        with lock:
            i = next_index[0]
            if i >= spec.requests:
                return None
            if spec.stop_after_s is not None and time.monotonic() - start >= spec.stop_after_s:
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
                    call(body(i), timeout=120)
                    break
                except grpc.RpcError as e:
                    if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                        with lock:
                            retries[0] += 1
                        time.sleep(0.05)
                        continue
                    errors.append(f"{e.code()}: {e.details()}")
                    break
        channel.close()

    def http_worker() -> None:
        headers = {"Content-Type": "application/json" if spec.json else "application/x-protobuf"}
        if spec.gzip:
            headers["Content-Encoding"] = "gzip"
        with httpx.Client(base_url=spec.target, timeout=120) as client:
            while (i := take()) is not None:
                while True:
                    r = client.post("/v1/traces", content=body(i), headers=headers)
                    if r.status_code == 200:
                        break
                    if r.status_code in (429, 503):
                        with lock:
                            retries[0] += 1
                        time.sleep(0.05)
                        continue
                    errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    break

    worker = grpc_worker if spec.transport == "grpc" else http_worker
    threads = [threading.Thread(target=worker) for _ in range(spec.concurrency)]
    cpu0 = time.process_time()
    first_send = time.time()  # wall clock: the parent compares it with its own
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put(
        {
            "first_send_epoch": first_send,
            "send_seconds": time.monotonic() - start,
            "requests_sent": next_index[0],
            "retries": retries[0],
            "error_count": len(errors),
            "errors": errors[:5],
            "client_cpu_s": time.process_time() - cpu0,
        }
    )


def sender_main(spec: LoadSpec, ready: Any, go: Any, results: Any) -> None:
    built_ns = time.time_ns()  # build_payloads puts its spans a minute before this
    payloads = build_payloads(spec.payload_count)
    faulty = build_payloads(spec.payload_count, FAULT_ERROR_RATIO, 1 << 20) if spec.fault_every_s else None
    ready.set()
    go.wait()
    _sender(spec, payloads, built_ns, results, faulty)


# --- measurement -----------------------------------------------------------------------------


class TreeSampler(threading.Thread):
    """Peak RSS of the server (main) and of its process tree; peak summed PSS, less often.

    The main process's RSS is also split as the kernel counts it (``/proc/PID/status``):
    anonymous memory, which is what the server allocates, and file-backed pages, which are
    mostly the shared libraries' code (DuckDB, Arrow, gRPC: ~100-150 MiB before any data,
    depending on how much of them the page cache holds). Each is reported at its own peak
    and before the load starts.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak_main = 0
        self.peak_tree = 0
        self.peak_tree_pss = 0
        self.peak_split = {"RssAnon": 0, "RssFile": 0}
        self.before = rss_split(pid)
        self.stop_event = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                rss = [_rss(p) for p in procs]
                self.peak_main = max(self.peak_main, rss[0])
                for key, value in rss_split(self.proc.pid).items():
                    self.peak_split[key] = max(self.peak_split[key], value)
                self.peak_tree = max(self.peak_tree, sum(rss))
                if n % 10 == 0:
                    self.peak_tree_pss = max(self.peak_tree_pss, sum(_pss(p) for p in procs))
            except psutil.Error:
                return
            n += 1
            self.stop_event.wait(0.05)


def rss_split(pid: int) -> dict[str, int]:
    """Anonymous and file-backed resident bytes of one process (``{}`` once it has exited)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        return {}
    return out


def _rss(p: psutil.Process) -> int:
    try:
        return int(p.memory_info().rss)
    except psutil.Error:
        return 0


def _pss(p: psutil.Process) -> int:
    try:
        return int(getattr(p.memory_full_info(), "pss", 0))
    except psutil.Error:
        return 0


class TreeCpu:
    """CPU seconds of a process and its children, per pid, between two readings.

    A child that exits between readings loses its last CPU (psutil cannot read a dead
    process); decode workers live as long as the server, so this does not happen here.
    """

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.start = self._read()

    def _read(self) -> dict[int, float]:
        out = {}
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                t = p.cpu_times()
                out[p.pid] = float(t.user + t.system)
            except psutil.Error:
                pass
        return out

    def delta(self) -> tuple[float, float]:
        """(main, children) CPU seconds since construction."""
        now = self._read()
        main = now.get(self.proc.pid, 0.0) - self.start.get(self.proc.pid, 0.0)
        children = sum(v - self.start.get(pid, 0.0) for pid, v in now.items() if pid != self.proc.pid)
        return main, children
