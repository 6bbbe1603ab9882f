"""Sealed segments (store/_segments.py): the hot tables sealed into files written once.

A store that seals every few rows must answer every query exactly as one that never seals;
a seal cut at any step must lose and double nothing at the next open; retention deletes
whole segments; reads attach only the segments their time range meets.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from faultlens.errors import StoreError
from faultlens.store import DuckDBStore
from faultlens.store._connection import shared_segments
from faultlens.store._segments import SEGMENTS_DIR, Segments, begin_seal, segment_path, write_segment
from faultlens.store.base import (
    AttributeCondition,
    AttributeQuery,
    LogQuery,
    MetricAggregation,
    MetricNameQuery,
    MetricQuery,
    MetricSeriesQuery,
    TraceQuery,
)
from faultlens.store.testing import (
    log_row,
    logs_batch,
    metric_row,
    metrics_batch,
    span_row,
    spans_batch,
    trace_id,
)
from faultlens.store.window import WindowReader, open_read_only
from faultlens.types import TimeRange

MS = 1_000_000
ROUNDS, SPANS = 8, 60  # 60 spans, 5 log records and 3 points a round, a seal every second round


def _round(i: int) -> list[Any]:
    """Round ``i``: its items timed in [i * 100 ms, i * 100 ms + 60 ms); traces of three spans,
    the last trace of a round going on into the next one (so that a seal splits it)."""
    base = i * 100 * MS
    spans = [
        span_row(
            trace=1_000 + (i * SPANS + j) // 3 + (1 if j == SPANS - 1 else 0),
            span=i * SPANS + j + 1,
            start=base + j * MS,
            service_name=f"svc{j % 3}",
            name=f"op{j % 4}",
            status_code=2 if j % 7 == 0 else 0,
            attributes={"shard": str(j % 5), "round": str(i)},
        )
        for j in range(SPANS)
    ]
    logs = [
        log_row(time=base + j * MS, trace=1_000 + (i * SPANS + j) // 3, service_name="svc0") for j in range(5)
    ]
    points = [
        metric_row(name="load", time=base + j * MS, value=float(i + j), service_name="svc1") for j in range(3)
    ]
    return [spans_batch(spans), logs_batch(logs), metrics_batch(points)]


def _fill(store: DuckDBStore, rounds: int = ROUNDS) -> None:
    for i in range(rounds):
        store.write(_round(i))
        _wait_sealed(store)


def _wait_sealed(store: DuckDBStore, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while store._segments.sealing is not None:
        assert time.monotonic() < deadline, "the seal did not end"
        time.sleep(0.01)


def _answers(store: DuckDBStore) -> dict[str, Any]:
    """Every query of the store, on the whole data and on ranges inside it and across seals."""
    everything = TimeRange(0, 10**12)
    across = TimeRange(150 * MS, 420 * MS)
    out: dict[str, Any] = {
        "stats": store.stats(),
        "services": store.services(),
        "ops": store.operations("svc1"),
    }
    for name, tr in (("all", None), ("across", across)):
        out[f"traces {name}"] = store.find_traces(TraceQuery(limit=1_000, time_range=tr))
        out[f"errors {name}"] = store.find_traces(TraceQuery(limit=1_000, time_range=tr, status_error=True))
        out[f"attr {name}"] = store.find_traces(
            TraceQuery(limit=1_000, time_range=tr, attributes=(AttributeCondition("shard", "3"),))
        )
        out[f"logs {name}"] = store.find_logs(LogQuery(limit=1_000, time_range=tr))
        out[f"points {name}"] = store.find_metric_points(MetricQuery(limit=1_000, time_range=tr))
        out[f"names {name}"] = store.metric_names(MetricNameQuery(limit=10, time_range=tr))
        out[f"keys {name}"] = store.attribute_counts(AttributeQuery(time_range=tr, service="svc2"))
    out["series"] = store.metric_series(
        MetricSeriesQuery("load", TimeRange(0, 800 * MS), 50 * MS, MetricAggregation.MAX)
    )
    for t in (1_000, 1_020, 1_040, 1_059, 1_140):  # 1_040: split by a seal
        out[f"trace {t}"] = store.get_trace(trace_id(t))
        out[f"trace logs {t}"] = store.find_logs(LogQuery(limit=100, trace_id=trace_id(t)))
    out["trace hinted"] = store.get_trace(trace_id(1_059), TimeRange(300 * MS, 400 * MS))
    for name, tr in (("all", everything), ("across", across)):
        window = WindowReader.for_store(store).read(tr)
        out[f"window {name}"] = (window.spans, window.logs, window.metrics)
    return out


def test_a_store_that_seals_answers_every_query_as_one_that_does_not(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sealing = DuckDBStore(tmp_path / "a" / "faultlens.duckdb", segment_rows=100)
    plain = DuckDBStore(tmp_path / "b" / "faultlens.duckdb", segment_rows=0)
    try:
        _fill(sealing)
        _fill(plain)
        assert len(sealing._segments.all()) == ROUNDS // 2
        assert not (tmp_path / "b" / SEGMENTS_DIR).exists()
        got, want = _answers(sealing), _answers(plain)
        assert got["stats"].spans == ROUNDS * SPANS
        assert got["trace 1040"] is not None and len(got["trace 1040"].spans) == 4  # in two segments
        for key in want:
            assert got[key] == want[key], key
        assert sealing._segments.attached() == 0  # every read detached what it attached
    finally:
        sealing.close()
        plain.close()


def test_a_read_attaches_only_the_segments_its_range_meets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DuckDBStore(tmp_path / "faultlens.duckdb", segment_rows=100)
    attached: list[int] = []
    real = Segments._attach

    def spy(cur: Any, segment: Any) -> None:
        attached.append(segment.id)
        real(cur, segment)

    monkeypatch.setattr(Segments, "_attach", staticmethod(spy))
    try:
        _fill(store)
        bounds = {s.id: (s.start_ns, s.end_ns) for s in store._segments.all()}
        assert bounds[2] == (200 * MS, 359 * MS)  # rounds 2 and 3
        attached.clear()
        window = WindowReader.for_store(store).read(TimeRange(210 * MS, 220 * MS))
        assert window.spans.num_rows == 10
        assert attached == [2]
        store.get_trace(trace_id(1))  # the first lookup builds the trace id filters, from everything
        attached.clear()
        hinted = store.get_trace(trace_id(1_000 + 2 * SPANS // 3 + 2), TimeRange(200 * MS, 300 * MS))
        assert hinted is not None and len(hinted.spans) == 3
        assert attached == [2]
        attached.clear()
        store.services()
        store.stats()
        assert attached == []
    finally:
        store.close()


def test_retention_deletes_whole_segments_and_keeps_one_that_straddles(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "faultlens.duckdb", segment_rows=100)
    try:
        _fill(store)
        before = store.stats()
        result = store.enforce_retention(450 * MS, 0)  # segments: 0-159, 200-359, 400-559, 600-759 ms
        assert [s.id for s in store._segments.all()] == [3, 4]
        assert result.spans_deleted == 2 * 2 * SPANS
        assert store.stats().spans == before.spans - result.spans_deleted
        names = sorted(p.name for p in (tmp_path / SEGMENTS_DIR).iterdir())
        assert names == [segment_path(Path(), 3).name, segment_path(Path(), 4).name]
        window = WindowReader.for_store(store).read(TimeRange(0, 10**12))
        assert window.spans.num_rows == 2 * 2 * SPANS  # what straddles the cutoff is kept whole
    finally:
        store.close()


def test_a_segment_read_while_it_expires_is_deleted_when_the_read_ends(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "faultlens.duckdb", segment_rows=100)
    try:
        _fill(store, 2)
        (segment,) = store._segments.all()
        with store.read_cursor(TimeRange(0, 10 * MS)) as cur:
            assert store.enforce_retention(10**12, 1).spans_deleted == 2 * SPANS
            assert segment.path.exists()  # the read holds it
            assert cur.execute("SELECT count(*) FROM spans").fetchall() == [(2 * SPANS,)]
        assert not segment.path.exists()
        assert store.stats().spans == 0
    finally:
        store.close()


def _cut_after_step_1(path: Path) -> int:
    """A store file left as a stop after a seal's first step leaves it: the hot rows renamed
    *_sealing, the id in ``sealing``, no segment (a half-written .tmp beside)."""
    store = DuckDBStore(path, segment_rows=0)
    _fill(store, 3)
    segment_id = store._segments.next_id()
    with store._db.alone(5.0) as cur:
        assert cur is not None
        begin_seal(cur, segment_id)
    store.close()
    directory = path.parent / SEGMENTS_DIR
    directory.mkdir(exist_ok=True)
    segment_path(directory, segment_id).with_suffix(".duckdb.tmp").write_bytes(b"half a segment")
    return segment_id


def _assert_sealed_away(store: DuckDBStore) -> None:
    """No seal left half done: no *_sealing table, no ``sealing`` row."""
    with store.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM sealing").fetchall() == [(0,)]
        tables = {r[0] for r in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert not {t for t in tables if t.endswith("_sealing")}


def test_a_seal_cut_before_its_segment_was_whole_is_done_again_at_open(tmp_path: Path) -> None:
    path = tmp_path / "faultlens.duckdb"
    segment_id = _cut_after_step_1(path)
    with open_read_only(tmp_path) as reader:  # a reader of the cut store sees every row once
        assert reader.read(TimeRange(0, 10**12)).spans.num_rows == 3 * SPANS
    store = DuckDBStore(path, segment_rows=0)
    try:
        _wait_sealed(store)
        assert [s.id for s in store._segments.all()] == [segment_id]
        assert store.stats().spans == 3 * SPANS
        assert WindowReader.for_store(store).read(TimeRange(0, 10**12)).spans.num_rows == 3 * SPANS
        assert sorted(p.name for p in (tmp_path / SEGMENTS_DIR).iterdir()) == [
            segment_path(Path(), segment_id).name
        ]
        _assert_sealed_away(store)
    finally:
        store.close()


def test_a_seal_cut_after_its_segment_was_whole_is_finished_at_open(tmp_path: Path) -> None:
    path = tmp_path / "faultlens.duckdb"
    segment_id = _cut_after_step_1(path)
    # Step 2 done by hand, then the stop: the segment whole, the *_sealing tables still there.
    con = duckdb.connect(":memory:")
    con.execute(f"ATTACH '{path}' AS store")
    write_segment(con.cursor(), "store", tmp_path / SEGMENTS_DIR, segment_id)
    con.close()
    with open_read_only(tmp_path) as reader:  # the rows are in both places: read once
        assert reader.read(TimeRange(0, 10**12)).spans.num_rows == 3 * SPANS
    store = DuckDBStore(path, segment_rows=0)
    try:
        assert store._segments.sealing is None
        assert [s.id for s in store._segments.all()] == [segment_id]
        assert store.stats().spans == 3 * SPANS
        assert WindowReader.for_store(store).read(TimeRange(0, 10**12)).spans.num_rows == 3 * SPANS
        _assert_sealed_away(store)
    finally:
        store.close()


def test_stores_of_one_file_share_its_segments(tmp_path: Path) -> None:
    path = tmp_path / "faultlens.duckdb"
    assert shared_segments(path) is shared_segments(path)


def test_reads_beside_writes_and_seals_see_every_row_once(tmp_path: Path) -> None:
    """Readers on threads of their own while the writer seals every second round: each read
    sees whole rounds only (a write is one transaction), never a row twice or a segment gone."""
    store = DuckDBStore(tmp_path / "faultlens.duckdb", segment_rows=100)
    errors: list[BaseException] = []
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        reader = WindowReader.for_store(store)
        while not stop.is_set():
            try:
                spans = reader.read(TimeRange(0, 10**12)).spans.num_rows
                assert spans % SPANS == 0, spans
                ids = reader.read(TimeRange(0, 10**12)).spans.column("span_id").to_pylist()
                assert len(ids) == len(set(ids))
                seen.append(spans)
            except BaseException as e:  # reported below, on the test's thread
                errors.append(e)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for i in range(3 * ROUNDS):
            store.write(_round(i))
        _wait_sealed(store)
        deadline = time.monotonic() + 10
        while not errors and (not seen or seen[-1] != 3 * ROUNDS * SPANS) and time.monotonic() < deadline:
            time.sleep(0.01)  # until a read after the last seal
    finally:
        stop.set()
        for t in readers:
            t.join(10)
    try:
        assert not errors, errors[0]
        assert seen and max(seen) == 3 * ROUNDS * SPANS
        assert len(store._segments.all()) >= ROUNDS  # the seals ran beside the reads
        assert store.stats().spans == 3 * ROUNDS * SPANS
        assert store._segments.attached() == 0
    finally:
        store.close()


def test_a_seal_that_cannot_begin_fails_no_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write before a seal's first step has committed: a failing first step is logged and
    tried again at the next write, never raised to the writer (which would write it again)."""
    store = DuckDBStore(tmp_path / "faultlens.duckdb", segment_rows=100)
    calls: list[int] = []

    def broken(cur: Any, segment_id: int) -> None:
        calls.append(segment_id)
        raise duckdb.IOException("No space left on device")

    try:
        with monkeypatch.context() as m:
            m.setattr("faultlens.store.duckdb_store.begin_seal", broken)
            store.write(_round(0))
            store.write(_round(1))  # past 100 rows: the seal is tried, and fails
        assert calls and store._segments.sealing is None and not store._segments.all()
        store.write(_round(2))  # tried again, and it works
        _wait_sealed(store)
        assert len(store._segments.all()) == 1
        assert store.stats().spans == 3 * SPANS
    finally:
        store.close()


def test_a_segment_that_cannot_be_attached_leaves_no_other_attached(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "faultlens.duckdb", segment_rows=100)
    try:
        _fill(store, 6)
        last = store._segments.all()[-1]
        last.path.write_bytes(b"not a DuckDB file")  # damaged behind the store's back
        with pytest.raises(StoreError):
            WindowReader.for_store(store).read(TimeRange(0, 10**12))
        assert store._segments.attached() == 0  # the segments attached before it went back
        assert WindowReader.for_store(store).read(TimeRange(0, 100 * MS)).spans.num_rows == SPANS
    finally:
        store.close()
