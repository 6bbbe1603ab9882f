"""Exporter benchmark: cost per span of faultlens vs the official OTLP exporters.

The same SDK spans (~10 attributes each, in batches of 512 as ``BatchSpanProcessor`` sends
them) go through each exporter's ``export()`` to one local receiver running in its own
process (the faultlens test backend), so the receiver's cost is never counted. Every
exporter is measured the same way, end to end: from the first ``export()`` call (SDK
encoding included) until the receiver has answered every request (``force_flush()`` for the
faultlens exporters, whose ``export()`` returns once the batch is queued).

Contenders: faultlens ``SpanExporter`` with the disk queue and in memory, over gRPC and
OTLP/HTTP; the official ``opentelemetry-exporter-otlp-proto-grpc`` and ``-http`` exporters;
``encode_only``, the official encoder alone (the floor every SDK exporter pays; the rows also
show their cost above it); and ``raw_forward_disk``, the server's path (pre-encoded requests
through ``Exporter.submit``, no SDK encoding), for reference. Targets from issue 3: in memory
at most the official exporter's cost per span, with the disk queue at most 1.5x.

Two ways to measure:

- CPU time (default): this process's CPU time (all threads, user and system) per 100k spans
  and delivered spans/s, contenders interleaved round by round; the JSON gives the median,
  min and max over the rounds, and the faultlens/official ratios paired within each round
  (median, min, max). On a busy machine single rounds vary by tens of percent.
- ``--callgrind``: each contender in its own process under ``valgrind --tool=callgrind``,
  counting the user-space instructions of that process only (all its threads: SDK encoding,
  queue, sender threads, gRPC's C core; not the kernel's side of the socket calls, and not
  the receiver, which runs natively in another process). Each contender runs twice: once
  exporting the measured spans, once (``base``) doing everything else the same way (start-up,
  the same spans made, the exporter built, one warm-up batch sent so connections exist and
  lazy imports are done, shutdown); the difference of the two totals is the cost of the
  measured spans, end to end from the first ``export()`` to delivery of the last batch.
  (Callgrind's ``--zero-before``/``--dump-before`` are not used: they miscount other threads,
  adding work those threads did before the zeroing.) Span ids are seeded and
  ``PYTHONHASHSEED`` fixed, so counts repeat closely whatever the machine's load. About 50x
  slower than native: 5,120 spans per contender take a few minutes per pair of runs.

    python bench/export.py                 # CPU: 10k spans per exporter, 3 interleaved rounds
    python bench/export.py --full          # CPU: 100k spans per exporter
    python bench/export.py --rounds 9      # more rounds, tighter medians
    python bench/export.py --callgrind     # instructions: 5,120 spans per exporter

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
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
CALLGRIND_SPANS = 10 * BATCH
# Pairs compared against the targets: (faultlens contender, official contender).
CONTENDERS = (
    "encode_only",
    "faultlens_grpc_disk",
    "faultlens_grpc_memory",
    "official_grpc",
    "faultlens_http_disk",
    "faultlens_http_memory",
    "official_http",
    "raw_forward_disk",
)
PAIRS = {
    "grpc_memory_vs_official": ("faultlens_grpc_memory", "official_grpc"),
    "grpc_disk_vs_official": ("faultlens_grpc_disk", "official_grpc"),
    "http_memory_vs_official": ("faultlens_http_memory", "official_http"),
    "http_disk_vs_official": ("faultlens_http_disk", "official_http"),
}


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


def in_batches(spans: list[ReadableSpan]) -> list[Sequence[ReadableSpan]]:
    return [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]


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
        self.ports = Ports(ports["grpc"], ports["http"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


class Ports:
    def __init__(self, grpc: int, http: int) -> None:
        self.grpc, self.http = grpc, http
        self._client: httpx.Client | None = None

    def spans(self) -> int:
        """Spans the receiver has taken so far."""
        if self._client is None:
            self._client = httpx.Client()
        return int(self._client.get(f"http://127.0.0.1:{self.http}/stats").json()["spans"])

    def wait_spans(self, at_least: int, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while (n := self.spans()) < at_least and time.monotonic() < deadline:
            time.sleep(0.02)
        return n


# (export one batch, wait until everything exported was delivered, shut down)
Contender = tuple[Callable[[Sequence[ReadableSpan]], Any], Callable[[], Any], Callable[[], Any]]


def _nothing() -> None:
    pass


def contenders(ports: Ports, queue_dir: str, timeout_s: float = 10.0) -> dict[str, Callable[[], Contender]]:
    """The exporters, each made on demand. ``timeout_s`` is every exporter's per-request timeout
    (the official gRPC exporter counts its encoding in it, which under valgrind takes seconds)."""
    grpc_ep = f"http://127.0.0.1:{ports.grpc}"
    http_ep = f"http://127.0.0.1:{ports.http}/v1/traces"

    def faultlens(protocol: str, endpoint: str, disk: bool) -> Callable[[], Contender]:
        def make() -> Contender:
            # Official exporters default to no compression; so do these, for a like-for-like run.
            exp = FaultlensSpanExporter(
                endpoint,
                protocol=protocol,
                compression="none",
                timeout=timeout_s,
                queue_dir=queue_dir if disk else None,
            )
            return exp.export, lambda: exp.force_flush(600_000), exp.shutdown

        return make

    def official_grpc() -> Contender:
        exp = OfficialGrpc(endpoint=f"127.0.0.1:{ports.grpc}", insecure=True, timeout=timeout_s)
        return exp.export, _nothing, exp.shutdown

    def official_http() -> Contender:
        exp = OfficialHttp(endpoint=http_ep, timeout=timeout_s)
        return exp.export, _nothing, exp.shutdown

    def raw_forward() -> Contender:
        cfg = ExporterConfig.model_validate(
            {
                "name": "raw",
                "endpoint": grpc_ep,
                "compression": "none",
                "timeout": timeout_s,
                "queue": {"directory": queue_dir},
            }
        )
        exporter = Exporter(cfg)
        exporter.start()
        encoded: dict[int, bytes] = {}

        def export(batch: Sequence[ReadableSpan]) -> None:
            # The server receives requests already serialized: encoded outside the measured
            # part (``prepare`` below).
            body = encoded.get(id(batch))
            if body is None:
                body = encoded[id(batch)] = encode_spans(batch).SerializeToString()
            exporter.submit(Signal.TRACES, body, len(batch))

        export.encoded = encoded  # type: ignore[attr-defined]
        return export, lambda: exporter.flush(600), lambda: exporter.shutdown(10)

    def encode_only() -> Contender:
        # The floor every SDK exporter pays: the official encoder, nothing sent.
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


def prepare(contender: Contender, batches: list[Sequence[ReadableSpan]]) -> None:
    export = contender[0]
    if hasattr(export, "encoded"):
        export.encoded.update({id(b): encode_spans(b).SerializeToString() for b in batches})


# --- CPU time -----------------------------------------------------------------------------


def run_cpu(
    ports: Ports, batches: list[Sequence[ReadableSpan]], name: str, contender: Contender
) -> dict[str, float]:
    export, flush, _ = contender
    total = sum(len(b) for b in batches)
    sends = name != "encode_only"
    start = ports.spans() if sends else 0
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in batches:
        export(batch)
    flush()  # wait in-process (no polling CPU) for background senders
    if sends:
        ports.wait_spans(start + total, 600)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    row = {"cpu_s_per_100k_spans": cpu * 100_000 / total}
    if sends:
        row["delivered_spans_per_s"] = total / wall
        row["wall_s"] = wall
    return row


def cpu_mode(n: int, rounds: int) -> dict[str, Any]:
    spans = make_spans(n)
    batches = in_batches(spans)
    receiver = Receiver()
    runs: dict[str, list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="faultlens-bench-export-") as queue_dir:
            for _ in range(rounds):
                for name, make in contenders(receiver.ports, queue_dir).items():
                    contender = make()
                    prepare(contender, batches)
                    runs.setdefault(name, []).append(run_cpu(receiver.ports, batches, name, contender))
                    contender[2]()
    finally:
        receiver.close()

    def spread(values: list[float]) -> dict[str, float]:
        return {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }

    results: dict[str, dict[str, Any]] = {}
    for name, rows in runs.items():
        results[name] = {key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0]}
        results[name]["cpu_s_per_100k_spans_spread"] = spread([r["cpu_s_per_100k_spans"] for r in rows])
    floor = results["encode_only"]["cpu_s_per_100k_spans"]
    for name, row in results.items():
        if name not in ("encode_only", "raw_forward_disk"):
            row["cpu_above_encoding_s_per_100k_spans"] = round(row["cpu_s_per_100k_spans"] - floor, 3)
    # Paired within each round (the same minute of machine load), then summarised.
    ratios = {
        key: spread(
            [
                a["cpu_s_per_100k_spans"] / b["cpu_s_per_100k_spans"]
                for a, b in zip(runs[ours], runs[theirs], strict=True)
            ]
        )
        for key, (ours, theirs) in PAIRS.items()
    }
    return {
        "measure": "cpu_time",
        "rounds": rounds,
        "results": results,
        "cpu_ratios": ratios,
        "targets_met": targets({k: v["median"] for k, v in ratios.items()}),
    }


# --- instructions (callgrind) -----------------------------------------------------------------


def child(name: str, n: int, ports: Ports, queue_dir: str, base: bool) -> None:
    """One contender, run by :func:`callgrind_mode` under valgrind; prints one JSON line.

    The ``base`` run does everything the measured run does (start-up, the same spans made,
    the exporter built, a warm-up batch sent, one receiver query, shutdown) except exporting
    the ``n`` measured spans; the difference of the two runs' instruction totals is their cost.
    """
    random.seed(20240601)  # span and trace ids: the same bytes in every child
    spans = make_spans(n + BATCH)
    warm, batches = spans[:BATCH], in_batches(spans[BATCH:])
    contender = contenders(ports, queue_dir, timeout_s=600.0)[name]()
    export, flush, shutdown = contender
    prepare(contender, [warm, *batches])
    sends = name != "encode_only"
    export(warm)  # connections made, lazy imports done, code paths warm
    flush()
    if sends:
        ports.wait_spans(BATCH, 600)
    results = [] if base else [export(batch) for batch in batches]
    flush()
    expected = BATCH + (0 if base else n)
    # One query when everything arrived (flush() waited for it), more only on a failure.
    delivered = ports.wait_spans(expected, 120) - BATCH if sends else expected - BATCH
    shutdown()
    failed = sum(1 for r in results if r is SpanExportResult.FAILURE)
    report = {"spans": 0 if base else n, "delivered": delivered, "failed_exports": failed}
    print(json.dumps(report), flush=True)


def _valgrind(name: str, n: int, base: bool, queue_dir: str, out_dir: str) -> int:
    """Instructions of one whole child process (its receiver runs natively, uncounted)."""
    kind = "base" if base else "measured"
    receiver = Receiver()  # one each: children run side by side, and spans are counted per child
    try:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={Path(out_dir) / f'{name}-{kind}.out'}",
            sys.executable,
            __file__,
            "--child",
            name,
            "--spans",
            str(n),
            "--grpc-port",
            str(receiver.ports.grpc),
            "--http-port",
            str(receiver.ports.http),
            "--queue-dir",
            str(Path(queue_dir) / f"{name}-{kind}"),
            *(["--base"] if base else []),
        ]
        # numpy's OpenBLAS (imported with pyarrow) would otherwise start threads of its own.
        env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    finally:
        receiver.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{name} ({kind}): valgrind failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report["delivered"] != report["spans"] or report["failed_exports"]:
        raise RuntimeError(f"{name} ({kind}): not everything was delivered: {report}")
    for line in (Path(out_dir) / f"{name}-{kind}.out").read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} ({kind}): no summary line in the callgrind output")


def _callgrind_one(name: str, n: int, queue_dir: str, out_dir: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    measured = _valgrind(name, n, False, queue_dir, out_dir)
    base = _valgrind(name, n, True, queue_dir, out_dir)
    instructions = measured - base
    return {
        "instructions_per_span": round(instructions / n),
        "g_instructions_per_100k_spans": round(instructions * 100_000 / n / 1e9, 2),
        "valgrind_wall_s": round(time.perf_counter() - t0, 1),
    }


def callgrind_mode(n: int, jobs: int, names: Sequence[str]) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        raise SystemExit("--callgrind needs valgrind (apt-get install valgrind)")
    with (
        tempfile.TemporaryDirectory(prefix="faultlens-bench-export-") as queue_dir,
        tempfile.TemporaryDirectory(prefix="faultlens-bench-callgrind-") as out_dir,
        ThreadPoolExecutor(jobs) as pool,
    ):
        futures = {name: pool.submit(_callgrind_one, name, n, queue_dir, out_dir) for name in names}
        results = {name: f.result() for name, f in futures.items()}
    if "encode_only" in results:
        floor = results["encode_only"]["instructions_per_span"]
        for name, row in results.items():
            if name not in ("encode_only", "raw_forward_disk"):
                row["instructions_above_encoding_per_span"] = row["instructions_per_span"] - floor
    ratios = {
        key: round(results[ours]["instructions_per_span"] / results[theirs]["instructions_per_span"], 4)
        for key, (ours, theirs) in PAIRS.items()
        if ours in results and theirs in results
    }
    return {
        "measure": "callgrind_instructions",
        "results": results,
        "instruction_ratios": ratios,
        "targets_met": targets(ratios),
    }


def targets(ratios: dict[str, float]) -> dict[str, bool]:
    """Issue 3's targets, for the pairs that were measured."""
    memory = [v for k, v in ratios.items() if "_memory_" in k]
    disk = [v for k, v in ratios.items() if "_disk_" in k]
    out = {}
    if memory:
        out["memory_at_most_official"] = max(memory) <= 1.0
    if disk:
        out["disk_at_most_1_5x_official"] = max(disk) <= 1.5
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="CPU mode: 100k spans, not 10k")
    parser.add_argument("--spans", type=int, help="spans per exporter (overrides the mode's default)")
    parser.add_argument("--rounds", type=int, default=3, help="CPU mode: interleaved rounds (default 3)")
    parser.add_argument("--callgrind", action="store_true", help="count instructions under valgrind instead")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind mode: contenders run at once")
    parser.add_argument(
        "--only", help=f"callgrind mode: comma-separated contenders (default: {', '.join(CONTENDERS)})"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--grpc-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--http-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--queue-dir", help=argparse.SUPPRESS)
    parser.add_argument("--base", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        child(args.child, args.spans, Ports(args.grpc_port, args.http_port), args.queue_dir, args.base)
        return
    if args.callgrind:
        n = args.spans or CALLGRIND_SPANS
        names = args.only.split(",") if args.only else list(CONTENDERS)
        unknown = set(names) - set(CONTENDERS)
        if unknown:
            parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
        body = callgrind_mode(n, args.jobs, names)
        mode = "callgrind"
    else:
        n = args.spans or (100_000 if args.full else 10_000)
        body = cpu_mode(n, args.rounds)
        mode = "full" if args.full else "short"
    print(
        json.dumps(
            {
                "benchmark": "export",
                "mode": mode,
                "spans_per_exporter": n,
                "batch_spans": BATCH,
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                },
                **body,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
