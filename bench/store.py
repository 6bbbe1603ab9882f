"""Store benchmark: insert rows/s by flush size, and query latency with 1M spans stored.

Spans look like real ones: 10 spans per trace, 10 services, 50 operations, ~15
attributes per span as JSON, times increasing as they would in production. Everything
goes through :meth:`DuckDBStore.write` (data, trace index and catalog in one transaction).

    python bench/store.py              # 1M spans (about a minute)
    python bench/store.py --spans 200000

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from faultlens.decode.base import DecodedBatch
from faultlens.decode.schema import SPAN_SCHEMA
from faultlens.store import DuckDBStore, TraceQuery
from faultlens.types import Signal, TimeRange

SPANS_PER_TRACE = 10
SERVICES = [f"service-{i}" for i in range(10)]
OPERATIONS = [f"GET /api/v1/resource-{i}" for i in range(50)]


def span_table(n: int, first_span: int, t0_ns: int) -> tuple[pa.Table, list[bytes]]:
    """``n`` spans in ``n / 10`` traces starting at ``t0_ns``, one span every microsecond."""
    traces = [os.urandom(16) for _ in range(n // SPANS_PER_TRACE)]
    span_ids = [os.urandom(8) for _ in range(n)]
    trace_col, parent_col, start_col, end_col, dur_col, status_col = [], [], [], [], [], []
    service_col, name_col, attr_col = [], [], []
    for i in range(n):
        k = i % SPANS_PER_TRACE
        g = first_span + i
        trace_col.append(traces[i // SPANS_PER_TRACE])
        parent_col.append(None if k == 0 else span_ids[i - 1])
        start = t0_ns + i * 1_000
        duration = 50_000 + (g * 7919) % 2_000_000
        start_col.append(start)
        end_col.append(start + duration)
        dur_col.append(duration)
        status_col.append(2 if g % 97 == 0 else 0)
        service_col.append(SERVICES[(g // SPANS_PER_TRACE + k) % len(SERVICES)])
        name_col.append(OPERATIONS[g % len(OPERATIONS)])
        attr_col.append(
            json.dumps(
                {
                    "http.request.method": "GET",
                    "http.route": OPERATIONS[g % len(OPERATIONS)],
                    "http.response.status_code": 500 if g % 97 == 0 else 200,
                    "url.full": f"http://svc/api/v1/resource-{g % 50}?id={g}",
                    "server.address": "svc",
                    "server.port": 8080,
                    "user_agent.original": "bench/1.0",
                    "net.peer.ip": "10.0.0.1",
                    "thread.id": g % 64,
                    "thread.name": "worker",
                    "code.function": "handle",
                    "code.namespace": "app.handlers",
                    "request.id": g,
                    "tenant": f"t{g % 5}",
                    "retry": False,
                }
            )
        )
    columns: dict[str, Any] = {
        "trace_id": trace_col,
        "span_id": span_ids,
        "parent_span_id": parent_col,
        "name": name_col,
        "kind": [2] * n,
        "start_time_unix_nano": start_col,
        "end_time_unix_nano": end_col,
        "duration_ns": dur_col,
        "status_code": status_col,
        "service_name": service_col,
        "http_method": ["GET"] * n,
        "attributes": attr_col,
        "resource_attributes": ['{"service.name": "svc", "k8s.pod.name": "pod-1"}'] * n,
    }
    arrays = [
        pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type) for f in SPAN_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA), traces


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(ms[len(ms) // 2], 2),
        "p95_ms": round(ms[int(len(ms) * 0.95)], 2),
        "max_ms": round(ms[-1], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def timed(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def bench_inserts(path: Path, flush_rows: int, total: int) -> dict[str, Any]:
    tables = [
        span_table(flush_rows, i * flush_rows, 10**18 + i * flush_rows * 1_000)[0]
        for i in range(total // flush_rows)
    ]
    store = DuckDBStore(path)
    try:
        seconds = sum(timed(store.write, [DecodedBatch(Signal.TRACES, t)]) for t in tables)
    finally:
        store.close()
    return {
        "flush_rows": flush_rows,
        "rows": total,
        "rows_per_s": round(total / seconds),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__}
    }
    with tempfile.TemporaryDirectory() as tmp:
        out["insert"] = [
            bench_inserts(Path(tmp) / "small.duckdb", 1_000, 100_000),
            bench_inserts(Path(tmp) / "large.duckdb", 100_000, 500_000),
        ]

        # Fill a store with --spans spans in 100k-row flushes, then query it.
        store = DuckDBStore(Path(tmp) / "full.duckdb")
        all_traces: list[bytes] = []
        t0 = 10**18
        flush = 100_000
        fill = 0.0
        for i in range(args.spans // flush):
            table, traces = span_table(flush, i * flush, t0 + i * flush * 1_000)
            all_traces += traces
            fill += timed(store.write, [DecodedBatch(Signal.TRACES, table)])
        out["fill"] = {"spans": store.stats().spans, "rows_per_s": round(args.spans / fill)}

        rng = random.Random(1)
        picks = [rng.choice(all_traces) for _ in range(300)]
        for t in picks[:20]:  # warm up
            store.get_trace(t)
        samples = [timed(store.get_trace, t) for t in picks]
        assert all(len(store.get_trace(t).spans) == SPANS_PER_TRACE for t in picks[:5])  # type: ignore[union-attr]
        out["get_trace"] = percentiles(samples)

        # The same lookup without the index: what the trace index buys.
        cur = store._con.cursor()  # bench only: the plain scan get_trace avoids
        scan = [
            timed(lambda t: cur.execute("SELECT * FROM spans WHERE trace_id = ?", [t]).fetchall(), t)
            for t in picks[:50]
        ]
        cur.close()
        out["get_trace_plain_scan_for_comparison"] = percentiles(scan)

        end = t0 + args.spans * 1_000
        queries = {
            "all_limit20": TraceQuery(),
            "service": TraceQuery(service="service-3"),
            "service_op_error": TraceQuery(service="service-3", operation=OPERATIONS[7], status_error=True),
            "min_duration_1.9ms": TraceQuery(min_duration_ns=1_900_000),
            "last_10pct_time": TraceQuery(time_range=TimeRange(end - args.spans * 100, end)),
        }
        out["find_traces"] = {
            name: percentiles([timed(store.find_traces, q) for _ in range(10)]) for name, q in queries.items()
        }

        # Reads while a 100k-row write is in progress: do they wait for it?
        table, _ = span_table(flush, args.spans, end)
        during: list[float] = []
        writing = threading.Event()

        def write() -> None:
            writing.set()
            store.write([DecodedBatch(Signal.TRACES, table)])
            writing.clear()

        writer = threading.Thread(target=write)
        writer.start()
        writing.wait()
        while writing.is_set():
            during.append(timed(store.get_trace, rng.choice(all_traces)))
        writer.join()
        out["get_trace_during_100k_write"] = {"reads": len(during), **(percentiles(during) if during else {})}
        store.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
