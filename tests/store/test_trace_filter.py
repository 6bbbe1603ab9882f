"""Trace lookups without a time read only the index rows where the trace id may be.

The filter (``store/_trace_filter.py``) must never miss a stored trace, whatever happened
to the file: more rows than one run holds, a reopen, a second store on the same file,
writes while it is being built, retention that deletes and rebuilds index rows.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from faultlens.decode.base import DecodedBatch
from faultlens.decode.schema import SPAN_SCHEMA
from faultlens.store._trace_filter import RUN_KEYS, TraceFilter, release_trace_filter, trace_filter
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.store.testing import span_row, spans_batch, trace_id
from faultlens.types import Signal, TimeRange

SECOND = 1_000_000_000


def one_span_traces(ids: list[bytes], start: int, step: int = 1_000) -> DecodedBatch:
    """One root span per trace id, started ``step`` ns apart from ``start``."""
    n = len(ids)
    template = pa.Table.from_pylist([span_row()], schema=SPAN_SCHEMA)
    table = template.take(pa.array(np.zeros(n, dtype=np.int64)))
    starts = pa.array(start + np.arange(n, dtype=np.int64) * step)
    for name, column in (
        ("trace_id", pa.array(ids, pa.binary())),
        ("span_id", pa.array([i[:8] for i in ids], pa.binary())),
        ("start_time_unix_nano", starts),
        ("end_time_unix_nano", pa.compute.add(starts, 100)),
    ):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), column)
    return DecodedBatch(Signal.TRACES, table)


def index_rows(ids: list[bytes], start: int) -> pa.Table:
    return pa.table(
        {
            "trace_id": pa.array(ids, pa.binary()),
            "start_min": pa.array([start + i for i in range(len(ids))], pa.int64()),
            "start_max": pa.array([start + i for i in range(len(ids))], pa.int64()),
        }
    )


def started(f: TraceFilter) -> TraceFilter:
    """``f`` built from an empty table, as at a store's first lookup: it keeps what is added."""
    with f.building() as needed:
        assert needed
        f.build(pa.RecordBatchReader.from_batches(index_rows([], 0).schema, iter(())))
    return f


def test_the_filter_never_misses_an_added_id_and_rarely_names_a_run_for_an_absent_one() -> None:
    f = started(TraceFilter("trace_index", "start_min", "start_max"))
    ids = [os.urandom(16) for _ in range(3 * RUN_KEYS)]
    for part in range(3):
        chunk = ids[part * RUN_KEYS : (part + 1) * RUN_KEYS]
        f.add(index_rows(chunk, part * 10 * SECOND))
    assert f.runs == 3
    for i, tid in enumerate(ids[:: RUN_KEYS // 64]):
        part = (i * (RUN_KEYS // 64)) // RUN_KEYS
        assert (part * 10 * SECOND, part * 10 * SECOND + RUN_KEYS - 1) in f.ranges(tid)
    false_runs = sum(len(f.ranges(os.urandom(16))) for _ in range(2_000))
    assert false_runs / (2_000 * f.runs) < 0.005  # ~0.1% by design


def test_ids_of_other_widths_are_found_too() -> None:
    f = started(TraceFilter("trace_index", "start_min", "start_max"))
    odd = [b"\x01" * 8, b"abc", b"\x02" * 32]
    f.add(index_rows(odd, 0))
    assert all(f.ranges(tid) == [(0, 2)] for tid in odd)


def test_writes_during_the_build_are_kept() -> None:
    f = TraceFilter("trace_index", "start_min", "start_max")
    old, new = [os.urandom(16) for _ in range(100)], [os.urandom(16) for _ in range(100)]

    def scan() -> Iterator[pa.RecordBatch]:
        yield index_rows(old[:50], 0).to_batches()[0]
        f.add(index_rows(new, 10 * SECOND))  # a write commits while the table is read
        yield index_rows(old[50:], 50).to_batches()[0]

    with f.building() as needed:
        assert needed
        f.build(pa.RecordBatchReader.from_batches(index_rows([], 0).schema, scan()))
    assert f.ready
    assert all(f.ranges(t) for t in old + new)
    # the old rows got runs of their own: the run that writes fill keeps its narrow range
    assert f.ranges(new[0]) == [(10 * SECOND, 10 * SECOND + 99)]


def test_before_the_first_lookup_nothing_is_kept_and_the_build_waits_for_writes_in_flight() -> None:
    f = TraceFilter("trace_index", "start_min", "start_max")
    f.add(index_rows([os.urandom(16)], 0))  # outside any build: not kept (the table has it)
    assert f.runs == 0
    in_write, built = threading.Event(), threading.Event()
    finish_write = threading.Event()

    def write() -> None:
        with f.writing():
            in_write.set()
            finish_write.wait(5)

    def build() -> None:
        with f.building() as needed:
            assert needed
            f.build(pa.RecordBatchReader.from_batches(index_rows([], 0).schema, iter(())))
        built.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert in_write.wait(5)
    builder = threading.Thread(target=build)
    builder.start()
    assert not built.wait(0.3)  # a transaction that began before the build: waited for
    finish_write.set()
    assert built.wait(5)
    writer.join()
    builder.join()
    with f.writing():  # from now on writes add
        f.add(index_rows([b"\x01" * 16], 0))
    assert f.ranges(b"\x01" * 16) == [(0, 0)]


def test_a_store_holds_no_filter_until_a_trace_is_looked_up(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "x.duckdb")
    store.write([spans_batch([span_row(trace=1, start=5 * SECOND)])])
    assert store._filters[Signal.TRACES].runs == 0
    assert store.get_trace(trace_id(1)) is not None
    store.write([spans_batch([span_row(trace=2, start=6 * SECOND)])])
    assert store._filters[Signal.TRACES].runs == 2  # the build's run, then the writes' run
    assert store.get_trace(trace_id(2)) is not None
    store.close()


def test_a_time_hint_names_only_the_runs_that_overlap_it() -> None:
    f = started(TraceFilter("trace_index", "start_min", "start_max"))
    tid = os.urandom(16)
    f.add(index_rows([tid], 0))
    f.close_channel("writes")
    f.add(index_rows([tid], 100 * SECOND))
    assert f.ranges(tid) == [(0, 0), (100 * SECOND, 100 * SECOND)]
    assert f.ranges(tid, TimeRange(50 * SECOND, 200 * SECOND)) == [(100 * SECOND, 100 * SECOND)]
    assert f.ranges(tid, TimeRange(1, 50 * SECOND)) == []


def test_a_store_finds_every_trace_among_many_runs_reading_one_run(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "x.duckdb")
    rng = random.Random(7)  # fixed ids: a bloom filter may rightly name a second run for a random id
    ids = [rng.randbytes(16) for _ in range(3 * RUN_KEYS)]
    for part in range(3):  # three writes, each its own stretch of time
        store.write([one_span_traces(ids[part * RUN_KEYS : (part + 1) * RUN_KEYS], part * 100 * SECOND)])
    for tid in ids[:: RUN_KEYS // 8]:
        trace = store.get_trace(tid)
        assert trace is not None and [s.trace_id for s in trace.spans] == [tid]
        ranges = store._filters[Signal.TRACES].ranges(tid)
        assert len(ranges) == 1 and ranges[0][1] - ranges[0][0] < 100 * SECOND
    assert store.get_trace(os.urandom(16)) is None
    store.close()


def test_traces_written_before_the_store_opened_are_found(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    first = DuckDBStore(path)
    first.write([spans_batch([span_row(trace=1, start=5 * SECOND)])])
    first.close()
    second = DuckDBStore(path)
    second.write([spans_batch([span_row(trace=2, start=6 * SECOND)])])
    assert second.get_trace(trace_id(1)) is not None
    assert second.get_trace(trace_id(2)) is not None
    second.close()


def test_a_second_store_on_the_file_finds_what_the_first_writes(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    writer, reader = DuckDBStore(path), DuckDBStore(path)
    assert reader.get_trace(trace_id(1)) is None  # the shared filter is built now
    writer.write([spans_batch([span_row(trace=1, start=5 * SECOND)])])
    assert reader.get_trace(trace_id(1)) is not None
    writer.close()
    writer.close()  # twice: releases its share of the filter once
    reader.write([spans_batch([span_row(trace=2, start=6 * SECOND)])])
    assert reader.get_trace(trace_id(2)) is not None
    reader.close()


def test_retention_keeps_straddling_traces_findable_and_forgets_expired_runs(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "x.duckdb")
    straddling = trace_id(7)
    old = [os.urandom(16) for _ in range(RUN_KEYS)]
    store.write([one_span_traces(old, SECOND)])  # one full run, all before the cutoff
    store.write(
        [
            spans_batch(
                [
                    span_row(trace=straddling, span=1, start=50 * SECOND),
                    span_row(trace=straddling, span=2, parent=1, start=150 * SECOND),
                ]
            )
        ]
    )
    assert store.get_trace(old[0]) is not None
    runs_before = store._filters[Signal.TRACES].runs
    result = store.enforce_retention(200 * SECOND, 100 * SECOND)  # cutoff at 100 s
    assert result.spans_deleted == RUN_KEYS + 1
    assert store._filters[Signal.TRACES].runs < runs_before
    assert store.get_trace(old[0]) is None
    trace = store.get_trace(straddling)
    assert trace is not None and [s.start_time_unix_nano for s in trace.spans] == [150 * SECOND]
    store.close()


def test_a_time_hint_returns_the_spans_and_logs_within_it(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "x.duckdb")
    store.write(
        [
            spans_batch(
                [
                    span_row(trace=1, span=1, start=10 * SECOND),
                    span_row(trace=1, span=2, parent=1, start=20 * SECOND),
                ]
            )
        ]
    )
    trace = store.get_trace(trace_id(1), time_hint=TimeRange(15 * SECOND, 30 * SECOND))
    assert trace is not None and [s.span_id for s in trace.spans] == [(2).to_bytes(8, "big")]
    assert store.get_trace(trace_id(1), time_hint=TimeRange(30 * SECOND, 40 * SECOND)) is None
    whole = store.get_trace(trace_id(1), time_hint=TimeRange(0, 40 * SECOND))
    assert whole is not None and len(whole.spans) == 2
    store.close()


def test_past_its_bound_the_filter_folds_old_runs_and_still_finds_every_id() -> None:
    run_bytes = RUN_KEYS * 16 // 8
    f = started(TraceFilter("trace_index", "start_min", "start_max", max_bytes=3 * run_bytes))
    batches = [[os.urandom(16) for _ in range(RUN_KEYS // 4)] for _ in range(24)]  # six runs' worth
    for i, ids in enumerate(batches):
        f.add(index_rows(ids, i * 10 * SECOND))
    assert f.runs == 3 and f.folds == 3
    assert f.nbytes <= 3 * run_bytes + 4 * 3 * 8
    for i, ids in enumerate(batches):
        for tid in ids[::500]:
            assert any(lo <= i * 10 * SECOND <= hi for lo, hi in f.ranges(tid))
    # the newest run, still being filled, is never folded: its range stays its own
    assert f.ranges(batches[-1][0])[-1][0] >= 20 * 10 * SECOND


def test_a_store_whose_filter_folded_runs_finds_every_trace(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    key = str(path.resolve())
    # The first opener's bound holds: three runs, where the store's smallest is 1 MiB.
    small = trace_filter(key, "trace_index", "start_min", "start_max", max_bytes=3 * RUN_KEYS * 2)
    store = DuckDBStore(path)
    assert store.get_trace(os.urandom(16)) is None  # the first lookup: writes add from now on
    ids = [os.urandom(16) for _ in range(4 * RUN_KEYS)]
    for part in range(8):
        chunk = ids[part * RUN_KEYS // 2 : (part + 1) * RUN_KEYS // 2]
        store.write([one_span_traces(chunk, part * 100 * SECOND)])
    assert store._filters[Signal.TRACES] is small and small.folds >= 1
    for tid in ids[:: len(ids) // 40]:
        trace = store.get_trace(tid)
        assert trace is not None and [s.trace_id for s in trace.spans] == [tid]
    store.close()
    release_trace_filter(key, "trace_index")
