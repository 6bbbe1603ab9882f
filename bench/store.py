"""Store benchmark: the write path against a bare insert, query latency, trace by id at
scale, writer memory.

Spans are real decoded requests: ``build_trace_request`` (1,000 spans, 5 services, ~15
attributes per span) through ``decode_request``, exactly what the pipeline hands the store.
Building and decoding is slow in Python, so ``--unique-spans`` of them are built once and
then copied with every trace and span id changed (XOR with a per-copy salt, which keeps
parent links) and times shifted, as many times as a section needs.

Sections (``insert``, ``query`` and ``feed`` by default; pick with ``--sections``;
``lookup`` only when named, as it builds a 10M-span file the first time):

- ``insert``: :meth:`DuckDBStore.write` (data, trace index and catalog in one transaction)
  for flushes of 1k, 10k, 100k and 122,880 rows (one DuckDB row group), and in the same
  run, interleaved, the baseline: a bare ``INSERT INTO t SELECT * FROM arrow`` into a
  table with the same columns and no index. Each is repeated ``--repeats`` times; the
  median is reported as rows/s (wall) and CPU us/row (process CPU: all DuckDB threads
  count), and ``store/bare`` ratios say what the store's extras cost.
- ``query``: ``--spans`` spans written in ``--fill-flush`` row flushes, then ``get_trace``
  p50/p95 over 300 random traces and ``find_traces`` p50 per query shape, plus reads
  during a 100k-span write (do they wait for it?).
- ``lookup``: trace by id at scale. ``--lookup-spans`` spans (10M by default) in a store
  file at ``--lookup-db``, built once in ``--fill-flush`` row flushes (copies of the pool
  ``--lookup-rate`` spans/s of data time apart at most; the pool's own 60 s spread of trace
  times sets the least) and kept for later runs (a few minutes to build; the sampled
  trace ids sit beside it in ``<file>.picks.json``). Each run opens the file afresh, times
  the first lookup apart (it builds what the lookup needs in memory), then ``get_trace``
  p50/p95/p99 (wall, and CPU of the calling thread) over ``--lookups`` random stored
  traces, a third each without a time hint, with one (the trace's own start and end,
  widened by ``--hint-s`` on each side) and through the plain scan of the whole trace
  index that the store did before, interleaved; and for ids that were never stored.
- ``feed``: a separate process runs a :class:`StoreConsumer` with the default
  :class:`StoreConfig` and feeds it ``--feed-rate`` spans/s (1,000-span batches) for
  ``--feed-seconds``; it reports peak RSS (VmHWM), RSS before the feed, CPU us/span and
  what the store holds at the end.

    python bench/store.py                          # everything, ~10 minutes on 2 cores
    python bench/store.py --sections insert --repeats 1
    python bench/store.py --sections lookup --lookup-db /tmp/faultlens-store-10m/faultlens.duckdb

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.config.model import StoreConfig
from faultlens.decode import decode_request
from faultlens.decode.base import DecodedBatch
from faultlens.errors import Overloaded
from faultlens.selfmetrics import SelfMetrics
from faultlens.store import DuckDBStore, StoreConsumer, TraceQuery
from faultlens.testing.payloads import build_trace_request
from faultlens.types import Signal, TimeRange

REQUEST_SPANS = 1_000
SERVICES = 5
T0 = 1_700_000_000 * 10**9
INSERT_FLUSHES = {1_000: 50_000, 10_000: 100_000, 100_000: 400_000, 122_880: 491_520}


# --- realistic spans -------------------------------------------------------------------------


def build_pool(unique_spans: int, seed: int = 0) -> pa.Table:
    """``unique_spans`` decoded spans, requests spaced 20 ms apart from ``T0``."""
    tables = []
    for i in range(max(1, unique_spans // REQUEST_SPANS)):
        req = build_trace_request(
            REQUEST_SPANS, services=SERVICES, seed=seed + i, base_time_ns=T0 + i * 20_000_000
        )
        tables.append(decode_request(Signal.TRACES, req.SerializeToString(), json=False).table)
    return pa.concat_tables(tables).combine_chunks()


def _salted(ids: pa.Array, salt: int) -> pa.Array:
    """Fixed-width binary ids with their first 8 bytes XORed with ``salt``; nulls kept."""
    n = len(ids)
    if n == 0 or ids.null_count == n:
        return ids
    width = pc.max(pc.binary_length(ids)).as_py()
    filled = pc.fill_null(ids, pa.scalar(b"\0" * width, pa.binary())) if ids.null_count else ids
    offsets = np.frombuffer(filled.buffers()[1], dtype=np.int32, count=n + 1, offset=filled.offset * 4)
    data = np.frombuffer(filled.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    if len(data) != n * width:
        raise ValueError("ids are not all of one width")
    values = data.reshape(n, width).copy()
    values[:, :8] ^= np.frombuffer(salt.to_bytes(8, "little"), dtype=np.uint8)
    out = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(np.arange(n + 1, dtype=np.int32) * width), pa.py_buffer(values)]
    )
    return pc.if_else(pc.is_valid(ids), out, pa.scalar(None, pa.binary())) if ids.null_count else out


def copy_of(pool: pa.Table, k: int, shift_ns: int) -> pa.Table:
    """Copy ``k`` of the pool: new trace and span ids, times ``k * shift_ns`` later."""
    salt = ((k + 1) * 0x9E3779B97F4A7C15) % 2**64
    t = pool
    for name in ("trace_id", "span_id", "parent_span_id"):
        i = t.schema.get_field_index(name)
        t = t.set_column(i, t.schema.field(i), _salted(t.column(name).combine_chunks(), salt))
    for name in ("start_time_unix_nano", "end_time_unix_nano"):
        i = t.schema.get_field_index(name)
        t = t.set_column(i, t.schema.field(i), pc.add(t.column(name), k * shift_ns))
    return t.combine_chunks()


class Spans:
    """An endless supply of distinct, time-increasing spans cut from copies of a pool.

    Copies follow each other ``shift_ns`` apart (by default the pool's own time span plus a
    second), which sets the data rate: ``pool rows / shift_ns`` spans per nanosecond."""

    def __init__(self, pool: pa.Table, shift_ns: int | None = None) -> None:
        self.pool = pool
        first, last = pc.min_max(pool.column("start_time_unix_nano")).values()
        self.shift_ns = max(shift_ns or 0, last.as_py() - first.as_py() + 1_000_000_000)
        self._k = 0
        self._current = pool.slice(0, 0)
        self._offset = 0

    def take(self, rows: int) -> pa.Table:
        parts = []
        while rows:
            if self._offset == self._current.num_rows:
                self._current, self._offset = copy_of(self.pool, self._k, self.shift_ns), 0
                self._k += 1
            n = min(rows, self._current.num_rows - self._offset)
            parts.append(self._current.slice(self._offset, n))
            self._offset += n
            rows -= n
        return pa.concat_tables(parts).combine_chunks()


# --- measuring ---------------------------------------------------------------------------------


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "n": len(ms),
        "p50_ms": round(ms[len(ms) // 2], 2),
        "p95_ms": round(ms[int(len(ms) * 0.95)], 2),
        "p99_ms": round(ms[int(len(ms) * 0.99)], 2),
        "max_ms": round(ms[-1], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def timed(fn: Callable[..., Any], *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def timed_cpu(fn: Callable[..., Any], *args: Any) -> tuple[float, float]:
    """Wall and calling-thread CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn(*args)
    return time.perf_counter() - wall, time.thread_time() - cpu


def run_flushes(write: Callable[[pa.Table], None], tables: list[pa.Table]) -> tuple[float, float]:
    """Wall and process-CPU seconds to write ``tables`` one after the other."""
    wall, cpu = time.perf_counter(), time.process_time()
    for t in tables:
        write(t)
    return time.perf_counter() - wall, time.process_time() - cpu


def store_writes(path: Path, tables: list[pa.Table]) -> tuple[float, float]:
    store = DuckDBStore(path)
    try:
        return run_flushes(lambda t: store.write([DecodedBatch(Signal.TRACES, t)]), tables)
    finally:
        store.close()


def bare_inserts(path: Path, tables: list[pa.Table]) -> tuple[float, float]:
    """The baseline: the same columns in a plain table (DuckDB's default compression, no
    index, nothing derived), one ``INSERT ... SELECT *`` per flush."""
    con = duckdb.connect(str(path))
    try:
        con.register("_schema", tables[0].slice(0, 0))
        con.execute("CREATE TABLE t AS SELECT * FROM _schema")
        con.unregister("_schema")

        def insert(t: pa.Table) -> None:
            con.register("_batch", t)
            con.execute("INSERT INTO t SELECT * FROM _batch")
            con.unregister("_batch")

        return run_flushes(insert, tables)
    finally:
        con.close()


def bench_inserts(tmp: Path, spans: Spans, flush_rows: int, total: int, repeats: int) -> dict[str, Any]:
    tables = [spans.take(flush_rows) for _ in range(total // flush_rows)]
    runs: dict[str, list[tuple[float, float]]] = {"store": [], "bare": []}
    for r in range(repeats):
        for name, fn in (("store", store_writes), ("bare", bare_inserts)):
            path = tmp / f"insert-{flush_rows}-{name}-{r}.duckdb"
            runs[name].append(fn(path, tables))
            for p in (path, path.with_name(path.name + ".wal")):
                p.unlink(missing_ok=True)
    out: dict[str, Any] = {"flush_rows": flush_rows, "rows": total, "repeats": repeats}
    for name, samples in runs.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        out[name] = {
            "rows_per_s": round(total / wall),
            "cpu_us_per_row": round(cpu * 1e6 / total, 2),
            "runs_cpu_us_per_row": [round(s[1] * 1e6 / total, 2) for s in samples],
        }
    out["store_over_bare_cpu"] = round(out["store"]["cpu_us_per_row"] / out["bare"]["cpu_us_per_row"], 2)
    out["store_over_bare_wall"] = round(out["bare"]["rows_per_s"] / out["store"]["rows_per_s"], 2)
    return out


def bench_queries(tmp: Path, spans: Spans, total: int, flush_rows: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    store = DuckDBStore(tmp / "full.duckdb")
    all_traces: list[bytes] = []
    first_start: int | None = None
    wall = cpu = 0.0
    for _ in range(total // flush_rows):
        table = spans.take(flush_rows)
        if first_start is None:
            first_start = pc.min(table.column("start_time_unix_nano")).as_py()
        all_traces += pc.unique(table.column("trace_id")).to_pylist()
        w, c = run_flushes(lambda t: store.write([DecodedBatch(Signal.TRACES, t)]), [table])
        wall, cpu = wall + w, cpu + c
    last_start = pc.max(table.column("start_time_unix_nano")).as_py()
    stored = store.stats().spans
    out["fill"] = {
        "spans": stored,
        "flush_rows": flush_rows,
        "rows_per_s": round(stored / wall),
        "cpu_us_per_row": round(cpu * 1e6 / stored, 2),
        "file_bytes_per_span": round((tmp / "full.duckdb").stat().st_size / stored, 1),
    }

    rng = random.Random(1)
    picks = [rng.choice(all_traces) for _ in range(300)]
    for t in picks[:20]:  # warm up
        store.get_trace(t)
    out["get_trace"] = percentiles([timed(store.get_trace, t) for t in picks])
    assert all(store.get_trace(t) is not None for t in picks[:5])

    with store.cursor() as cur:  # bench only: the plain scan that get_trace avoids
        scan = [
            timed(lambda t: cur.execute("SELECT * FROM spans WHERE trace_id = ?", [t]).fetchall(), t)
            for t in picks[:30]
        ]
    out["get_trace_plain_scan_for_comparison"] = percentiles(scan)

    assert first_start is not None
    span_ns = last_start - first_start
    queries = {
        "all_limit20": TraceQuery(),
        "service": TraceQuery(service="checkout"),
        "service_op_error": TraceQuery(service="frontend", status_error=True),
        "min_duration_100ms": TraceQuery(min_duration_ns=100_000_000),
        "last_10pct_time": TraceQuery(time_range=TimeRange(last_start - span_ns // 10, last_start + 1)),
    }
    out["find_traces"] = {
        name: percentiles([timed(store.find_traces, q) for _ in range(10)]) for name, q in queries.items()
    }

    # Reads while a 100k-row write is in progress: do they wait for it?
    table = spans.take(100_000)
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
    return out


# --- trace by id at scale ----------------------------------------------------------------------

PICKS = 2_000  # stored traces sampled while the lookup file is built


def build_lookup_file(db: Path, spans: Spans, total: int, flush_rows: int) -> dict[str, Any]:
    """Write ``total`` spans into a new store file at ``db``; sample stored traces as it goes
    (a reservoir of :data:`PICKS`, with each trace's start and end) into ``<db>.picks.json``."""
    db.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2)
    picks: list[tuple[bytes, int, int]] = []
    seen = 0
    store = DuckDBStore(db)
    wall = cpu = 0.0
    try:
        for _ in range(total // flush_rows):
            table = spans.take(flush_rows)
            grouped = table.group_by("trace_id").aggregate(
                [("start_time_unix_nano", "min"), ("end_time_unix_nano", "max")]
            )
            for tid, start, end in zip(
                grouped.column("trace_id").to_pylist(),
                grouped.column("start_time_unix_nano_min").to_pylist(),
                grouped.column("end_time_unix_nano_max").to_pylist(),
                strict=True,
            ):
                seen += 1  # a trace cut by a flush boundary counts twice: no matter here
                if len(picks) < PICKS:
                    picks.append((tid, start, end))
                elif (j := rng.randrange(seen)) < PICKS:
                    picks[j] = (tid, start, end)
            w, c = run_flushes(lambda t: store.write([DecodedBatch(Signal.TRACES, t)]), [table])
            wall, cpu = wall + w, cpu + c
        stored = store.stats().spans
    finally:
        store.close()
    fill = {
        "spans": stored,
        "flush_rows": flush_rows,
        "rows_per_s": round(stored / wall),
        "cpu_us_per_row": round(cpu * 1e6 / stored, 2),
        "file_bytes_per_span": round(_stored_bytes(db) / stored, 1),
    }
    Path(str(db) + ".picks.json").write_text(
        json.dumps({"fill": fill, "picks": [[t.hex(), s, e] for t, s, e in picks]})
    )
    return fill


def _stored_bytes(db: Path) -> int:
    """The bytes of the store file and of its sealed segments."""
    segments = db.parent / "segments"
    sealed = sum(p.stat().st_size for p in segments.glob("seg-*.duckdb")) if segments.is_dir() else 0
    return db.stat().st_size + sealed


def bench_lookup(db: Path, args: argparse.Namespace) -> dict[str, Any]:
    picks_path = Path(str(db) + ".picks.json")
    out: dict[str, Any] = {"file": str(db)}
    if not db.exists() or not picks_path.exists():
        started = time.perf_counter()
        shift_ns = args.unique_spans * 10**9 // args.lookup_rate
        spans = Spans(build_pool(args.unique_spans), shift_ns=shift_ns)
        out["built"] = build_lookup_file(db, spans, args.lookup_spans, args.fill_flush)
        out["built"]["seconds"] = round(time.perf_counter() - started, 1)
    saved = json.loads(picks_path.read_text())
    out["fill"] = saved["fill"]
    picks = [(bytes.fromhex(t), s, e) for t, s, e in saved["picks"]]
    rng = random.Random(3)
    rng.shuffle(picks)
    picks = picks[: args.lookups]
    hint_ns = int(args.hint_s * 1e9)

    started = time.perf_counter()
    store = DuckDBStore(db)
    out["open_ms"] = round((time.perf_counter() - started) * 1000, 1)
    try:
        out["first_lookup_ms"] = round(timed(store.get_trace, picks[-1][0]) * 1000, 1)
        for tid, _, _ in picks[:20]:  # warm up
            store.get_trace(tid)

        def full_index_scan(tid: bytes) -> None:
            """The lookup before the trace filter (bench only): the whole trace index read for
            the trace's bounds, then its spans inside them."""
            with store.read_cursor() as cur:  # every sealed segment attached
                row = cur.execute(
                    "SELECT min(start_min), max(start_max) FROM trace_index WHERE trace_id = ?", [tid]
                ).fetchone()
                assert row is not None
                cur.execute(
                    "SELECT * FROM spans WHERE trace_id = ? AND start_time_unix_nano BETWEEN ? AND ?",
                    [tid, row[0], row[1]],
                ).fetchall()

        # Interleaved, each variant on traces of its own (a trace read twice would find its
        # blocks cached), so that all see the same machine load; the CPU time of the calling
        # thread (DuckDB runs a query on it with one thread) leaves out waits for a core.
        samples: dict[str, list[tuple[float, float]]] = {"none": [], "hint": [], "absent": [], "scan": []}
        for i, (tid, s, e) in enumerate(picks[20:]):
            if i % 3 == 0:
                samples["none"].append(timed_cpu(store.get_trace, tid))
            elif i % 3 == 1:
                hint = TimeRange(s - hint_ns, e + hint_ns)
                samples["hint"].append(timed_cpu(lambda t, r: store.get_trace(t, time_hint=r), tid, hint))
            else:
                samples["scan"].append(timed_cpu(full_index_scan, tid))
            if i % 4 == 0:
                samples["absent"].append(timed_cpu(store.get_trace, rng.randbytes(16)))
        found = [store.get_trace(tid) for tid, _, _ in picks[:50]]
        assert all(t is not None and t.spans for t in found), "a stored trace was not found"
        out["spans_per_found_trace"] = round(statistics.fmean(len(t.spans) for t in found if t), 1)
        for name, key in (
            ("get_trace", "none"),
            ("get_trace_time_hint", "hint"),
            ("get_trace_absent_id", "absent"),
            ("full_index_scan_for_comparison", "scan"),
        ):
            wall, cpu = [w for w, _ in samples[key]], [c for _, c in samples[key]]
            cpu_ms = sorted(c * 1000 for c in cpu)
            out[name] = {
                **percentiles(wall),
                "cpu_p50_ms": round(cpu_ms[len(cpu_ms) // 2], 2),
                "cpu_p99_ms": round(cpu_ms[int(len(cpu_ms) * 0.99)], 2),
            }
        out["get_trace_time_hint"]["hint_s_each_side"] = args.hint_s
        filters = store._filters.values()  # bench only: what the lookups hold in memory
        mib = round(sum(f.nbytes for f in filters) / 2**20, 2)
        out["filter"] = {"runs": sum(f.runs for f in filters), "mib": mib}
        out["segments"] = len(store._segments.all())  # bench only: sealed files of the store
        out["rss_mib_after"] = round(_rss_kib("VmRSS") / 1024, 1)
    finally:
        store.close()
    return out


# --- the writer under a steady feed (run in a process of its own) ------------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def feed_child(rate: int, seconds: float, data_dir: Path, settings: list[str]) -> dict[str, Any]:
    """In this process: a StoreConsumer on the default config fed ``rate`` spans/s."""
    pool = build_pool(10 * REQUEST_SPANS, seed=7)  # 10 requests; copies give distinct ids
    requests = [pool.slice(i * REQUEST_SPANS, REQUEST_SPANS) for i in range(10)]
    shift = 10 * 20_000_000
    config = StoreConfig(data_dir=data_dir)
    store = DuckDBStore(data_dir / "faultlens.duckdb")
    for setting in settings:  # experiments only: e.g. "SET checkpoint_threshold='64MB'"
        store._con.execute(setting)
    consumer = StoreConsumer(store, config, SelfMetrics())
    consumer.start()
    rss_before = _rss_kib("VmRSS")
    per_s = rate / REQUEST_SPANS
    started = time.monotonic()
    cpu0 = time.process_time()
    sent = 0
    refused = 0
    max_queued = 0
    while (now := time.monotonic() - started) < seconds:
        due = int(now * per_s) + 1
        while sent < due:
            k = sent
            batch = DecodedBatch(Signal.TRACES, copy_of(requests[k % 10], k // 10 + 1, shift))
            while True:  # a refused batch is retried after a pause, as an OTLP client would
                try:
                    consumer.consume(batch)
                    break
                except Overloaded:
                    refused += 1
                    time.sleep(0.1)
            sent += 1
        max_queued = max(max_queued, consumer.queued_rows)
        time.sleep(max(0.0, (sent / per_s) - (time.monotonic() - started)))
    fed_s = time.monotonic() - started
    consumer.shutdown()
    cpu = time.process_time() - cpu0
    stored = store.stats().spans
    store.close()
    return {
        "rate_spans_per_s": rate,
        "seconds": seconds,
        "spans_sent": sent * REQUEST_SPANS,
        "spans_stored": stored,
        "flush_rows": config.flush_rows,
        "flush_interval_s": config.flush_interval,
        "max_queued_rows": max_queued,
        "refusals": refused,
        "achieved_spans_per_s": round(sent * REQUEST_SPANS / fed_s),
        "rss_before_feed_mib": round(rss_before / 1024, 1),
        "peak_rss_mib": round(_rss_kib("VmHWM") / 1024, 1),
        "cpu_us_per_span": round(cpu * 1e6 / max(1, stored), 2),
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def bench_feed(tmp: Path, rate: int, seconds: float, settings: list[str]) -> dict[str, Any]:
    data_dir = tmp / "feed"
    data_dir.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            *[a for setting in settings for a in ("--duckdb-setting", setting)],
            "--feed-child",
            str(data_dir),
            "--feed-rate",
            str(rate),
            "--feed-seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def progress(result: dict[str, Any]) -> dict[str, Any]:
    """Each finished part on stderr at once, so that a run cut short still says something."""
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="insert,query,feed")
    parser.add_argument("--unique-spans", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--fill-flush", type=int, default=StoreConfig().flush_rows)
    parser.add_argument("--lookup-db", type=Path, default=Path("/tmp/faultlens-store-10m/faultlens.duckdb"))
    parser.add_argument("--lookup-spans", type=int, default=10_000_000)
    parser.add_argument("--lookup-rate", type=int, default=10_000, help="data time rate of the file, spans/s")
    parser.add_argument("--lookups", type=int, default=1_500, help="traces looked up (<= 2,000)")
    parser.add_argument("--hint-s", type=float, default=60.0)
    parser.add_argument("--feed-rate", type=int, default=10_000)
    parser.add_argument("--feed-seconds", type=float, default=60.0)
    parser.add_argument("--feed-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--duckdb-setting", action="append", default=[], help="SQL run on the feed's store")
    args = parser.parse_args()
    if args.feed_child is not None:
        print(json.dumps(feed_child(args.feed_rate, args.feed_seconds, args.feed_child, args.duckdb_setting)))
        return
    sections = set(args.sections.split(","))
    out: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "pyarrow": pa.__version__,
        }
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if sections & {"insert", "query"}:
            started = time.perf_counter()
            spans = Spans(build_pool(args.unique_spans))
            out["pool"] = {
                "unique_spans": spans.pool.num_rows,
                "arrow_bytes_per_span": round(spans.pool.nbytes / spans.pool.num_rows),
                "build_and_decode_s": round(time.perf_counter() - started, 1),
            }
        if "insert" in sections:
            out["insert"] = []
            for flush, total in INSERT_FLUSHES.items():
                out["insert"].append(progress(bench_inserts(tmp, spans, flush, total, args.repeats)))
        if "query" in sections:
            out.update(progress(bench_queries(tmp, spans, args.spans, args.fill_flush)))
        if "lookup" in sections:
            out["lookup"] = progress(bench_lookup(args.lookup_db, args))
        if "feed" in sections:
            out["feed"] = progress(bench_feed(tmp, args.feed_rate, args.feed_seconds, args.duckdb_setting))
        out["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
