"""Exporter benchmark: CPU per 100k spans and delivered spans/s, faultlens vs the official exporters.

The same SDK spans (made once, ~10 attributes each, in batches of 512 as
``BatchSpanProcessor`` sends them) go through each exporter's ``export()``, one exporter after
the other, to one local receiver running in its own process (the faultlens test backend),
so the receiver's CPU is not counted. For each exporter:

- ``cpu_s_per_100k_spans``: this process's CPU time (all threads: encoding, queue, sending)
  from the first ``export()`` until the receiver has every span, scaled to 100k spans;
- ``delivered_spans_per_s``: spans counted at the receiver divided by that wall time.

Contenders: faultlens ``SpanExporter`` with the disk queue and in memory, over gRPC and
OTLP/HTTP; the official ``opentelemetry-exporter-otlp-proto-grpc`` and ``-http`` exporters;
``encode_only``, the official encoder alone (the floor every SDK exporter pays; the
rows also show their CPU above it); and ``raw_forward_disk``, the server's path
(pre-encoded requests through ``Exporter.submit``, no SDK encoding), for reference.
Targets from issue 3: in memory at most the official exporter's CPU per span, with the
disk queue at most 1.5x.

    python bench/export.py            # short: 10k spans per exporter, median of three rounds
    python bench/export.py --full     # 100k spans per exporter, median of three rounds

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as OfficialGrpc
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as OfficialHttp
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from faultlens.export import Exporter, ExporterConfig
from faultlens.export.sdk import SpanExporter as FaultlensSpanExporter
from faultlens.types import Signal

BATCH = 512


class _Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def make_spans(n: int) -> list[ReadableSpan]:
    collect = _Collect()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench", "k8s.pod.name": "bench-0"}))
    provider.add_span_processor(SimpleSpanProcessor(collect))
    tracer = provider.get_tracer("bench")
    for i in range(n):
        with tracer.start_as_current_span(
            "GET /api/items",
            attributes={
                "http.request.method": "GET",
                "http.route": "/api/items",
                "http.response.status_code": 200 if i % 20 else 500,
                "server.address": "items.internal",
                "server.port": 8080,
                "url.full": f"http://items.internal:8080/api/items?page={i % 50}",
                "user.id": f"user-{i % 1000}",
                "request.size": 512 + i % 100,
                "retry": False,
                "region": "eu-west-1",
            },
        ):
            pass
    provider.shutdown()
    return collect.spans


class Receiver:
    """The faultlens test backend in a child process; counts spans at ``GET /stats``."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faultlens.testing.otlp_backend", "--no-ids"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ports = json.loads(self.proc.stdout.readline())
        self.grpc_port, self.http_port = ports["grpc"], ports["http"]
        self.client = httpx.Client()

    def spans(self) -> int:
        return int(self.client.get(f"http://127.0.0.1:{self.http_port}/stats").json()["spans"])

    def close(self) -> None:
        self.client.close()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def run_one(
    receiver: Receiver, batches: list[Sequence[ReadableSpan]], contender: Contender
) -> dict[str, float]:
    export, flush, _ = contender
    total = sum(len(b) for b in batches)
    start = receiver.spans()
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in batches:
        export(batch)
    flush()  # wait in-process (no polling CPU) for background senders
    while receiver.spans() - start < total:
        time.sleep(0.02)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "cpu_s_per_100k_spans": cpu * 100_000 / total,
        "delivered_spans_per_s": total / wall,
        "wall_s": wall,
    }


# (export one batch, wait until sent, shut down)
Contender = tuple[Callable[[Sequence[ReadableSpan]], Any], Callable[[], Any], Callable[[], Any]]


def _nothing() -> None:
    pass


def contenders(receiver: Receiver, queue_dir: str) -> dict[str, Callable[[], Contender]]:
    grpc_ep = f"http://127.0.0.1:{receiver.grpc_port}"
    http_ep = f"http://127.0.0.1:{receiver.http_port}/v1/traces"

    def faultlens(protocol: str, endpoint: str, disk: bool) -> Callable[[], Contender]:
        def make() -> Contender:
            # Official exporters default to no compression; so do these, for a like-for-like run.
            exp = FaultlensSpanExporter(
                endpoint, protocol=protocol, compression="none", queue_dir=queue_dir if disk else None
            )
            return exp.export, lambda: exp.force_flush(120_000), exp.shutdown

        return make

    def official_grpc() -> Contender:
        exp = OfficialGrpc(endpoint=f"127.0.0.1:{receiver.grpc_port}", insecure=True)
        return exp.export, _nothing, exp.shutdown

    def official_http() -> Contender:
        exp = OfficialHttp(endpoint=http_ep)
        return exp.export, _nothing, exp.shutdown

    def raw_forward() -> Contender:
        cfg = ExporterConfig.model_validate(
            {"name": "raw", "endpoint": grpc_ep, "compression": "none", "queue": {"directory": queue_dir}}
        )
        exporter = Exporter(cfg)
        exporter.start()
        encoded: dict[int, bytes] = {}

        def export(batch: Sequence[ReadableSpan]) -> None:
            # The server receives requests already serialized: encode outside the timed path.
            body = encoded[id(batch)]
            exporter.submit(Signal.TRACES, body, len(batch))

        export.encoded = encoded  # type: ignore[attr-defined]
        return export, lambda: exporter.flush(120), lambda: exporter.shutdown(10)

    def encode_only() -> Contender:
        # The floor every SDK exporter pays: the official encoder, nothing sent. The receiver
        # never sees these spans, so run_one is not used for it (see main).
        return (lambda batch: encode_spans(batch).SerializeToString()), _nothing, _nothing

    return {
        "encode_only": encode_only,
        "faultlens_grpc_disk": faultlens("grpc", grpc_ep, True),
        "faultlens_grpc_memory": faultlens("grpc", grpc_ep, False),
        "official_grpc": official_grpc,
        "faultlens_http_disk": faultlens("http/protobuf", http_ep, True),
        "faultlens_http_memory": faultlens("http/protobuf", http_ep, False),
        "official_http": official_http,
        "raw_forward_disk": raw_forward,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="100k spans per exporter instead of 10k")
    parser.add_argument("--spans", type=int, help="spans per exporter (overrides the mode's default)")
    args = parser.parse_args()
    n = args.spans or (100_000 if args.full else 10_000)
    rounds = 3  # contenders interleaved round by round; the median damps a busy machine's noise

    spans = make_spans(n)
    batches = [spans[i : i + BATCH] for i in range(0, n, BATCH)]
    receiver = Receiver()
    results: dict[str, list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="faultlens-bench-export-") as queue_dir:
            for _ in range(rounds):
                for name, make in contenders(receiver, queue_dir).items():
                    contender = make()
                    export = contender[0]
                    if name == "encode_only":
                        c0 = time.process_time()
                        for batch in batches:
                            export(batch)
                        cpu = (time.process_time() - c0) * 100_000 / n
                        results.setdefault(name, []).append({"cpu_s_per_100k_spans": cpu})
                        continue
                    if hasattr(export, "encoded"):
                        export.encoded.update({id(b): encode_spans(b).SerializeToString() for b in batches})
                    results.setdefault(name, []).append(run_one(receiver, batches, contender))
                    contender[2]()
    finally:
        receiver.close()

    summary = {
        name: {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
        for name, runs in results.items()
    }
    floor = summary["encode_only"]["cpu_s_per_100k_spans"]
    for name, row in summary.items():
        if name not in ("encode_only", "raw_forward_disk"):
            row["cpu_above_encoding_s_per_100k_spans"] = round(row["cpu_s_per_100k_spans"] - floor, 3)

    def ratio(a: str, b: str) -> float:
        return round(summary[a]["cpu_s_per_100k_spans"] / summary[b]["cpu_s_per_100k_spans"], 3)

    ratios = {
        "grpc_memory_vs_official_cpu": ratio("faultlens_grpc_memory", "official_grpc"),
        "grpc_disk_vs_official_cpu": ratio("faultlens_grpc_disk", "official_grpc"),
        "http_memory_vs_official_cpu": ratio("faultlens_http_memory", "official_http"),
        "http_disk_vs_official_cpu": ratio("faultlens_http_disk", "official_http"),
    }
    targets = {
        "memory_at_most_official_cpu": max(
            ratios["grpc_memory_vs_official_cpu"], ratios["http_memory_vs_official_cpu"]
        )
        <= 1.0,
        "disk_at_most_1_5x_official_cpu": max(
            ratios["grpc_disk_vs_official_cpu"], ratios["http_disk_vs_official_cpu"]
        )
        <= 1.5,
    }
    print(
        json.dumps(
            {
                "benchmark": "export",
                "mode": "full" if args.full else "short",
                "spans_per_exporter": n,
                "batch_spans": BATCH,
                "rounds": rounds,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "results": summary,
                "cpu_ratios": ratios,
                "targets_met": targets,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
