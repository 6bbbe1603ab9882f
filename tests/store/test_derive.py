"""The per-flush derived rows computed in Arrow agree with their SQL definitions."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from faultlens.store import DuckDBStore
from faultlens.store._derive import log_trace_index_rows, operation_rows, service_rows, trace_index_rows
from faultlens.store._schema import COLUMN_COMPRESSION, table_ddl
from faultlens.store.duckdb_store import MEMORY_LIMIT, _index_logs_sql, _index_spans_sql
from faultlens.store.testing import log_row, logs_batch, span_row, spans_batch, trace_id


def awkward_spans() -> pa.Table:
    """Two roots (the earlier wins), an empty-bytes parent that counts as a root, a trace
    without a root, null services and names and kinds, error and unset statuses."""
    rows = [
        span_row(1, 1, start=500, service_name="b", name="late-root"),
        span_row(1, 2, start=100, service_name="a", name="root", status_code=2),
        span_row(1, 3, 2, start=150, service_name="a", status_code=2),
        span_row(1, 4, 2, start=160, service_name=None, name=None, kind=None),
        span_row(2, 5, 9, start=50, service_name="c"),  # no root in this flush
        span_row(3, 6, start=70, parent_span_id=b"", service_name=None, name="empty-parent-root"),
        span_row(3, 7, 6, start=80, service_name="d", status_code=None),
    ]
    return spans_batch(rows).table


def normalise(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    for r in rows:
        if "services" in r:
            r["services"] = sorted(r["services"])  # type: ignore[arg-type]
    return sorted(rows, key=lambda r: r["trace_id"])  # type: ignore[arg-type,return-value]


def by_sql(insert_sql: str, table: pa.Table, target_ddl: str) -> list[dict[str, object]]:
    con = duckdb.connect()
    con.execute(target_ddl)
    con.register("_batch", table)
    con.execute(insert_sql)
    name = target_ddl.split()[5]
    cur = con.execute(f"SELECT * FROM {name}")
    columns = [d[0] for d in cur.description]
    return normalise([dict(zip(columns, row, strict=True)) for row in cur.fetchall()])


TRACE_INDEX_DDL = """CREATE TABLE IF NOT EXISTS trace_index (trace_id BLOB, start_min BIGINT,
    start_max BIGINT, end_max BIGINT, span_count BIGINT, error_count BIGINT, root_start BIGINT,
    root_service VARCHAR, root_name VARCHAR, services VARCHAR[])"""
LOG_INDEX_DDL = """CREATE TABLE IF NOT EXISTS log_trace_index (trace_id BLOB, time_min BIGINT,
    time_max BIGINT, log_count BIGINT)"""


def test_trace_index_rows_match_the_sql_that_rebuilds_them() -> None:
    spans = awkward_spans()
    expected = by_sql(_index_spans_sql("_batch"), spans, TRACE_INDEX_DDL)
    got = normalise(trace_index_rows(spans).to_pylist())
    assert got == expected
    first = next(r for r in got if r["trace_id"] == trace_id(1))
    assert (first["root_start"], first["root_service"], first["root_name"]) == (100, "a", "root")
    assert (first["span_count"], first["error_count"], first["services"]) == (4, 2, ["a", "b"])
    assert next(r for r in got if r["trace_id"] == trace_id(2))["root_start"] is None
    assert next(r for r in got if r["trace_id"] == trace_id(3))["root_name"] == "empty-parent-root"


def test_log_trace_index_rows_skip_records_without_a_trace_id() -> None:
    logs = logs_batch(
        [log_row(time=5, trace=1), log_row(time=9, trace=1), log_row(time=7), log_row(time=3, trace=b"")]
    ).table
    got = normalise(log_trace_index_rows(logs).to_pylist())
    assert got == by_sql(_index_logs_sql("_batch"), logs, LOG_INDEX_DDL)
    assert got == [{"trace_id": trace_id(1), "time_min": 5, "time_max": 9, "log_count": 2}]


def test_catalog_rows_are_deduplicated_with_the_newest_time() -> None:
    ops = sorted(operation_rows(awkward_spans()).to_pylist(), key=lambda r: (r["service"], r["name"]))
    assert ops == [
        {"service": "a", "name": "op", "kind": 1, "last_seen": 150},
        {"service": "a", "name": "root", "kind": 1, "last_seen": 100},
        {"service": "b", "name": "late-root", "kind": 1, "last_seen": 500},
        {"service": "c", "name": "op", "kind": 1, "last_seen": 50},
        {"service": "d", "name": "op", "kind": 1, "last_seen": 80},
    ]
    services = sorted(
        service_rows(awkward_spans(), "start_time_unix_nano").to_pylist(), key=lambda r: r["service"]
    )
    assert services == [
        {"service": "a", "last_seen": 150},
        {"service": "b", "last_seen": 500},
        {"service": "c", "last_seen": 50},
        {"service": "d", "last_seen": 80},
    ]


def test_empty_tables_give_empty_derived_rows() -> None:
    empty = spans_batch([]).table
    assert trace_index_rows(empty).num_rows == 0
    assert operation_rows(empty).num_rows == 0
    assert service_rows(empty, "start_time_unix_nano").num_rows == 0
    assert log_trace_index_rows(logs_batch([]).table).num_rows == 0


def test_item_attributes_are_stored_with_zstd(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "x.duckdb")
    store.write([spans_batch([span_row(1, i, attributes={"k": i}) for i in range(100)])])
    store.close()
    with duckdb.connect(str(tmp_path / "x.duckdb")) as con:
        used = con.execute(
            "SELECT DISTINCT compression FROM pragma_storage_info('spans') "
            "WHERE column_name = 'attributes' AND segment_type = 'VARCHAR'"
        ).fetchall()
    assert used == [("ZSTD",)]
    assert ("spans", "attributes") in COLUMN_COMPRESSION
    assert "USING COMPRESSION zstd" in table_ddl("logs", logs_batch([]).table.schema)


def test_the_store_bounds_duckdb_memory(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "x.duckdb")
    try:
        limit = store._con.execute("SELECT current_setting('memory_limit')").fetchone()
    finally:
        store.close()
    with duckdb.connect() as con:
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        expected = con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert limit == expected
    assert limit is not None and limit[0].endswith("MiB")  # not DuckDB's default of 80% of RAM


def test_the_memory_limit_comes_from_the_config(tmp_path: Path) -> None:
    from faultlens.config.model import StoreConfig
    from faultlens.store import open_store

    store = open_store(StoreConfig(data_dir=tmp_path, memory_limit_mib=48))
    try:
        with store.cursor() as cur:
            limit = cur.execute("SELECT current_setting('memory_limit')").fetchone()
    finally:
        store.close()
    assert limit == ("45.7 MiB",)  # 48 MB (10^6 bytes), as DuckDB prints it


def test_duckdb_hands_freed_memory_back(tmp_path: Path) -> None:
    """The store turns on DuckDB's allocator purge thread and a low flush threshold."""
    store = DuckDBStore(tmp_path / "x.duckdb")
    try:
        with store.cursor() as cur:
            row = cur.execute(
                "SELECT current_setting('allocator_background_threads'), "
                "current_setting('allocator_flush_threshold')"
            ).fetchone()
    finally:
        store.close()
    assert row is not None
    assert row[0] is True
    assert row[1] == "8MB"


def test_duckdb_threads_come_from_the_config(tmp_path: Path) -> None:
    from faultlens.config.model import StoreConfig
    from faultlens.store import open_store

    def threads(config: StoreConfig) -> object:
        store = open_store(config)
        try:
            with store.cursor() as cur:
                row = cur.execute("SELECT current_setting('threads')").fetchone()
        finally:
            store.close()
        return row[0] if row else None

    assert threads(StoreConfig(data_dir=tmp_path / "a")) == 1
    assert threads(StoreConfig(data_dir=tmp_path / "b", threads=2)) == 2
    with duckdb.connect() as con:
        default = con.execute("SELECT current_setting('threads')").fetchone()
    assert default is not None
    assert threads(StoreConfig(data_dir=tmp_path / "c", threads=0)) == default[0]
