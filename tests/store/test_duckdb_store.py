"""What is particular to the DuckDB backend: the file, its schema and its upgrades."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from faultlens.config.model import StoreConfig
from faultlens.errors import StoreError
from faultlens.store import DB_FILENAME, DuckDBStore, StoreStats, open_store
from faultlens.store._schema import DATA_TABLES, SCHEMA_VERSION
from faultlens.store.testing import span_row, spans_batch


def test_open_store_creates_the_data_dir_and_the_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    store = open_store(StoreConfig(data_dir=data_dir))
    store.close()
    assert (data_dir / DB_FILENAME).is_file()


def test_tables_have_exactly_the_columns_of_the_arrow_schemas(tmp_path: Path) -> None:
    DuckDBStore(tmp_path / "x.duckdb").close()
    with duckdb.connect(str(tmp_path / "x.duckdb")) as con:
        for table, schema, _ in DATA_TABLES.values():
            columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            assert columns == schema.names
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_opening_again_keeps_one_schema_version_row(tmp_path: Path) -> None:
    for _ in range(3):
        DuckDBStore(tmp_path / "x.duckdb").close()
    with duckdb.connect(str(tmp_path / "x.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)


def test_a_column_missing_from_an_older_file_is_added(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    store = DuckDBStore(path)
    store.write([spans_batch([span_row(1, 1)])])
    store.close()
    with duckdb.connect(str(path)) as con:
        con.execute("ALTER TABLE spans DROP COLUMN error_type")
    store = DuckDBStore(path)
    try:
        store.write([spans_batch([span_row(1, 2, error_type="timeout")])])
        assert store.stats() == StoreStats(2, 0, 0)
    finally:
        store.close()


def test_a_file_from_a_newer_faultlens_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    DuckDBStore(path).close()
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO schema_version VALUES (?, 0)", [SCHEMA_VERSION + 1])
    with pytest.raises(StoreError, match="newer"):
        DuckDBStore(path)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    path.write_bytes(b"not a database" * 1000)
    with pytest.raises(StoreError, match="cannot open"):
        DuckDBStore(path)


def test_the_store_writes_row_groups_of_its_own_size_and_shares_the_file_with_the_analysis(
    tmp_path: Path,
) -> None:
    import pyarrow as pa

    from faultlens.decode import decode_request
    from faultlens.decode.base import DecodedBatch
    from faultlens.store._connection import ROW_GROUP_SIZE
    from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
    from faultlens.testing.payloads import build_trace_request
    from faultlens.types import Signal

    path = tmp_path / "x.duckdb"
    store = DuckDBStore(path)
    analysis = DuckDBAnalysisStore(path)  # same file, same process: one instance
    one = decode_request(Signal.TRACES, build_trace_request(1024).SerializeToString(), json=False)
    copies = 2 * ROW_GROUP_SIZE // 1024 + 1  # more than two groups' worth
    store.write([DecodedBatch(Signal.TRACES, pa.concat_tables([one.table] * copies))])
    with store.cursor() as cur:
        groups = cur.execute(
            "SELECT row_group_id, max(count) FROM pragma_storage_info('spans') "
            "WHERE column_name = 'trace_id' GROUP BY ALL"
        ).fetchall()
    assert len(groups) >= 3
    assert max(rows for _, rows in groups) <= ROW_GROUP_SIZE
    analysis.close()
    store.close()
    reopened = DuckDBStore(path)
    assert reopened.stats().spans == copies * 1024
    reopened.close()


def test_a_failed_write_reports_its_cause_and_the_store_writes_again(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "x.duckdb")
    try:
        with store.cursor() as cur:
            cur.execute("ALTER TABLE spans RENAME TO spans_away")
        # The insert's own error, not the aborted transaction's that follows it.
        with pytest.raises(StoreError, match="spans") as failed:
            store.write([spans_batch([span_row(1, 1)])])
        assert "aborted" not in str(failed.value)
        with store.cursor() as cur:
            cur.execute("ALTER TABLE spans_away RENAME TO spans")
        store.write([spans_batch([span_row(1, 2)])])
        assert store.stats() == StoreStats(spans=1, logs=0, metric_points=0)
    finally:
        store.close()
