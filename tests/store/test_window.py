"""Reading a time range back from a real DuckDB store as decode-schema Arrow tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from faultlens.decode.base import DecodedBatch
from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.errors import StoreError, UnsupportedQuery
from faultlens.store.duckdb_store import DB_FILENAME, DuckDBStore
from faultlens.store.window import LEAN_SPAN_COLUMNS, WindowReader, open_read_only, read_window
from faultlens.testing.memory_store import MemoryStore, MemoryWindowReader
from faultlens.types import Signal, TimeRange

S = 1_000_000_000
T0 = 1_700_000_000 * S


def table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array([r.get(f.name) for r in rows], f.type) for f in schema], schema=schema
    )


def spans(times: list[int]) -> pa.Table:
    return table(
        [
            {
                "trace_id": bytes([i + 1]) * 16,
                "span_id": bytes([i + 1]) * 8,
                "parent_span_id": None,
                "name": f"op-{i}",
                "kind": 2,
                "start_time_unix_nano": t,
                "end_time_unix_nano": t + 5,
                "duration_ns": 5,
                "status_code": 2 if i % 2 else 0,
                "service_name": "svc",
                "http_status_code": 200,
                "attributes": json.dumps({"i": i}),
                "events": [{"time_unix_nano": t + 1, "name": "exception", "attributes": "{}"}],
                "links": [
                    {"trace_id": bytes(16), "span_id": bytes(8), "trace_state": "", "attributes": "{}"}
                ],
                "dropped_attributes_count": 0,
            }
            for i, t in enumerate(times)
        ],
        SPAN_SCHEMA,
    )


def logs(times: list[int]) -> pa.Table:
    return table(
        [
            {"time_unix_nano": t, "observed_time_unix_nano": t, "severity_number": 17, "body": f"line {i}",
             "trace_id": bytes([i + 1]) * 16, "service_name": "svc", "attributes": "{}"}
            for i, t in enumerate(times)
        ],
        LOG_SCHEMA,
    )  # fmt: skip


def points(times: list[int]) -> pa.Table:
    return table(
        [
            {"metric_name": "m", "metric_type": "histogram", "time_unix_nano": t, "count": 3, "sum": 1.5,
             "bucket_counts": [1, 2], "explicit_bounds": [0.5], "quantiles": None, "service_name": "svc"}
            for t in times
        ],
        METRIC_SCHEMA,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    s = DuckDBStore(tmp_path / DB_FILENAME)
    times = [T0 + 3 * S, T0, T0 + 1 * S, T0 + 2 * S]  # not in time order
    s.write(
        [
            DecodedBatch(Signal.TRACES, spans(times)),
            DecodedBatch(Signal.LOGS, logs(times)),
            DecodedBatch(Signal.METRICS, points(times)),
        ]
    )
    return s


def test_tables_have_exactly_the_decode_schemas(store: DuckDBStore) -> None:
    w = read_window(store, TimeRange(T0, T0 + 10 * S))
    assert w.spans.schema == SPAN_SCHEMA
    assert w.logs.schema == LOG_SCHEMA
    assert w.metrics.schema == METRIC_SCHEMA
    assert (w.spans.num_rows, w.logs.num_rows, w.metrics.num_rows) == (4, 4, 4)


def test_rows_come_back_as_written_in_time_order(store: DuckDBStore) -> None:
    w = read_window(store, TimeRange(T0, T0 + 10 * S))
    times = [T0 + 3 * S, T0, T0 + 1 * S, T0 + 2 * S]
    assert w.spans.equals(spans(times).sort_by("start_time_unix_nano"))
    assert w.logs.equals(logs(times).sort_by("time_unix_nano"))
    assert w.metrics.equals(points(times).sort_by("time_unix_nano"))


def test_a_lean_read_leaves_the_span_payload_columns_null_and_the_rest_as_written(
    store: DuckDBStore, tmp_path: Path
) -> None:
    full = read_window(store, TimeRange(T0, T0 + 10 * S))
    memory = _memory_copy(store, tmp_path)
    for reader in (WindowReader.for_store(store), MemoryWindowReader(memory)):
        lean = reader.read(TimeRange(T0, T0 + 10 * S), lean=True)
        assert lean.spans.schema == SPAN_SCHEMA
        for name in SPAN_SCHEMA.names:
            if name in LEAN_SPAN_COLUMNS:
                assert lean.spans.column(name).null_count == lean.spans.num_rows, name
            else:
                assert lean.spans.column(name).equals(full.spans.column(name)), name
        assert full.spans.column("attributes").null_count == 0  # the full read has them
        assert lean.logs.equals(full.logs) and lean.metrics.equals(full.metrics)


def _memory_copy(store: DuckDBStore, tmp_path: Path) -> MemoryStore:
    memory = MemoryStore(tmp_path / "memory")
    w = read_window(store, TimeRange(T0, T0 + 10 * S))
    memory.write([DecodedBatch(s, w.table(s)) for s in Signal])
    return memory


def test_range_is_half_open_on_each_signals_time(store: DuckDBStore) -> None:
    w = read_window(store, TimeRange(T0 + 1 * S, T0 + 3 * S))
    assert w.spans.column("start_time_unix_nano").to_pylist() == [T0 + 1 * S, T0 + 2 * S]
    assert w.logs.column("time_unix_nano").to_pylist() == [T0 + 1 * S, T0 + 2 * S]
    assert w.metrics.column("time_unix_nano").to_pylist() == [T0 + 1 * S, T0 + 2 * S]
    assert w.time_range == TimeRange(T0 + 1 * S, T0 + 3 * S)


def test_empty_range_gives_empty_tables_of_the_schemas(store: DuckDBStore) -> None:
    w = read_window(store, TimeRange(T0 - 10 * S, T0))
    assert w.spans.num_rows == w.logs.num_rows == w.metrics.num_rows == 0
    assert w.spans.schema == SPAN_SCHEMA and w.metrics.schema == METRIC_SCHEMA


def test_only_the_asked_signals_are_read(store: DuckDBStore) -> None:
    w = read_window(store, TimeRange(T0, T0 + 10 * S), signals=frozenset({Signal.LOGS}))
    assert (w.spans.num_rows, w.logs.num_rows, w.metrics.num_rows) == (0, 4, 0)
    assert w.table(Signal.TRACES).schema == SPAN_SCHEMA


def test_window_at_the_row_limit_is_read(store: DuckDBStore) -> None:
    w = read_window(store, TimeRange(T0, T0 + 10 * S), max_rows=4)
    assert w.spans.num_rows == 4


def test_window_over_the_row_limit_is_refused_not_cut(store: DuckDBStore) -> None:
    with pytest.raises(UnsupportedQuery) as info:
        read_window(store, TimeRange(T0, T0 + 10 * S), max_rows=3)
    message = str(info.value)
    assert "holds 4 spans, more than the 3" in message
    assert "2023-11-14T22:13:20Z .. 2023-11-14T22:13:30Z" in message
    # the limit is per signal: three of each fits
    w = read_window(store, TimeRange(T0, T0 + 3 * S), max_rows=3)
    assert w.spans.num_rows == 3


def test_limit_must_be_positive(store: DuckDBStore) -> None:
    with pytest.raises(ValueError, match="max_rows"):
        WindowReader.for_store(store, max_rows=0)


def test_closed_store_is_a_store_error(store: DuckDBStore) -> None:
    store.close()
    with pytest.raises(StoreError):
        read_window(store, TimeRange(T0, T0 + 10 * S))


def test_read_only_open_reads_a_closed_store(store: DuckDBStore, tmp_path: Path) -> None:
    store.close()
    with open_read_only(tmp_path, max_rows=10) as reader:
        w = reader.read(TimeRange(T0, T0 + 10 * S))
        assert w.spans.schema == SPAN_SCHEMA and w.spans.num_rows == 4
        assert reader.max_rows == 10


def test_read_only_open_of_a_directory_without_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no faultlens store in"), open_read_only(tmp_path / "nothing"):
        pass


def test_read_only_open_while_this_process_holds_the_store(store: DuckDBStore, tmp_path: Path) -> None:
    with (
        pytest.raises(StoreError, match="already open for writing in this process"),
        open_read_only(tmp_path),
    ):
        pass


def test_read_only_open_names_the_process_holding_the_lock(store: DuckDBStore, tmp_path: Path) -> None:
    store.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from faultlens.store.duckdb_store import DuckDBStore; "
            f"s = DuckDBStore({str(tmp_path / DB_FILENAME)!r}); print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError) as info, open_read_only(tmp_path):
            pass
        assert f"locked by process {holder.pid}" in str(info.value)
        assert "--server URL" in str(info.value)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(30)
