"""The DuckDB tables of the store, derived from the Arrow schemas of decoded batches.

The data tables (``spans``, ``logs``, ``metric_points``) have exactly the columns of
:mod:`faultlens.decode.schema`, so a decoded batch is inserted as it is (``INSERT ... BY
NAME``). Their DDL is generated from the Arrow schema rather than written by hand so the two
cannot drift apart; when decode adds a column, :func:`migrate` adds it to an existing file.

Beside them sit small derived tables that keep the common queries from scanning the data:

- ``trace_index``: one row per trace *per flush* (span count, error count, time bounds,
  root span, services), in flush order. A trace whose spans arrive over several flushes has
  several rows; readers aggregate them. ``get_trace`` reads the bounds here, only in the
  time ranges where an in-memory filter says the id may be (``_trace_filter``; there is
  no index on trace ids, see :data:`DROPPED_INDEXES`), then fetches the spans with
  ``trace_id`` *and* a start-time range, so DuckDB's zonemaps skip every row group
  outside the trace (tables are written in time order).
- ``log_trace_index``: the same for log records that carry a trace id.
- ``operations`` and ``service_names``: the catalog behind ``services()`` and
  ``operations()``, upserted per flush with the newest time seen, so retention can drop an
  entry exactly when its last item is gone.
- ``intake_applied``: the intake log sequence numbers of the requests whose rows a write
  inserted, in the same transaction as the rows, so a replay of the intake log after a
  crash (and a retry after a COMMIT whose outcome was unclear) skips what the file already
  holds (``faultlens.receive.intake``).
"""

from __future__ import annotations

import time

import duckdb
import pyarrow as pa

from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.errors import StoreError
from faultlens.types import Signal

SCHEMA_VERSION = 1

# signal -> (table, Arrow schema, the column that orders the table and drives retention)
DATA_TABLES: dict[Signal, tuple[str, pa.Schema, str]] = {
    Signal.TRACES: ("spans", SPAN_SCHEMA, "start_time_unix_nano"),
    Signal.LOGS: ("logs", LOG_SCHEMA, "time_unix_nano"),
    Signal.METRICS: ("metric_points", METRIC_SCHEMA, "time_unix_nano"),
}

# The two trace indexes, each with the time column that bounds its rows (a segment's bounds
# and retention read it).
_INDEX_DDL: dict[str, str] = {
    "trace_index": """
    CREATE TABLE IF NOT EXISTS trace_index (
        trace_id BLOB NOT NULL,
        start_min BIGINT NOT NULL,
        start_max BIGINT NOT NULL,
        end_max BIGINT NOT NULL,
        span_count BIGINT NOT NULL,
        error_count BIGINT NOT NULL,
        root_start BIGINT,
        root_service VARCHAR,
        root_name VARCHAR,
        services VARCHAR[] NOT NULL
    )
    """,
    "log_trace_index": """
    CREATE TABLE IF NOT EXISTS log_trace_index (
        trace_id BLOB NOT NULL,
        time_min BIGINT NOT NULL,
        time_max BIGINT NOT NULL,
        log_count BIGINT NOT NULL
    )
    """,
}

_DERIVED_DDL = (
    """
    CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER NOT NULL,
        applied_unix_nano BIGINT NOT NULL
    )
    """,
    _INDEX_DDL["trace_index"],
    _INDEX_DDL["log_trace_index"],
    """
    CREATE TABLE IF NOT EXISTS operations (
        service VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        kind TINYINT NOT NULL,
        last_seen BIGINT NOT NULL,
        PRIMARY KEY (service, name, kind)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS service_names (
        service VARCHAR NOT NULL,
        signal VARCHAR NOT NULL,
        last_seen BIGINT NOT NULL,
        PRIMARY KEY (service, signal)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS intake_applied (
        seq BIGINT NOT NULL
    )
    """,
    # The id of the segment being sealed (``_segments``): one row while its tables are
    # named *_sealing, none otherwise.
    """
    CREATE TABLE IF NOT EXISTS sealing (
        id BIGINT NOT NULL
    )
    """,
)

# The tables whose rows grow with the data: the data tables and their trace indexes. They are
# what a segment holds (``_segments``); the rest of the file is small and stays.
SEALED_TABLES: tuple[str, ...] = (*(t for t, _, _ in DATA_TABLES.values()), *_INDEX_DDL)
# Each one's time column: what time filters and retention compare, and what bounds a segment.
SEALED_TIME: dict[str, str] = {
    **{t: column for t, _, column in DATA_TABLES.values()},
    "trace_index": "start_min",
    "log_trace_index": "time_min",
}


def sealed_table_ddl(table: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of one of :data:`SEALED_TABLES`, as a new file has it."""
    for name, schema, _ in DATA_TABLES.values():
        if name == table:
            return table_ddl(name, schema)
    return _INDEX_DDL[table]


# ART indexes on ``trace_id`` that files written before 2026-11-28 have, dropped when they
# are opened. DuckDB keeps an ART index whole in memory, inside the store's memory limit:
# at ~50 bytes per random 16-byte key, 64 MB held ~1.1M traces, and then every insert
# failed ("could not allocate block"); at 10k spans/s that is ~15 minutes of ingest. A trace
# id is found in ``trace_index`` instead, read only in the time ranges that the in-memory
# filter of ``_trace_filter`` names (2 bytes per index row), and the spans by the trace's
# time bounds, which the zonemaps prune (figures: docs/benchmarks.md, bench/store.py).
DROPPED_INDEXES = ("trace_index_trace_id", "log_trace_index_trace_id")


def quote(identifier: str) -> str:
    """Quote an identifier (column names such as ``count`` or ``sum`` are SQL keywords)."""
    return '"' + identifier.replace('"', '""') + '"'


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type that an Arrow column of type ``t`` is stored as."""
    simple = {
        pa.binary(): "BLOB",
        pa.large_binary(): "BLOB",
        pa.string(): "VARCHAR",
        pa.large_string(): "VARCHAR",
        pa.bool_(): "BOOLEAN",
        pa.int8(): "TINYINT",
        pa.int16(): "SMALLINT",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.float32(): "FLOAT",
        pa.float64(): "DOUBLE",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return duckdb_type(t.value_type) + "[]"
    if pa.types.is_struct(t):
        fields = ", ".join(
            f"{quote(t.field(i).name)} {duckdb_type(t.field(i).type)}" for i in range(t.num_fields)
        )
        return f"STRUCT({fields})"
    raise StoreError(f"no DuckDB type for Arrow type {t}")


# Columns stored with a compression chosen here rather than by DuckDB's per-segment
# analysis. The item attributes (a few hundred bytes of JSON per span or log record,
# nearly all distinct) cost the most to insert of any column; DuckDB's default for them
# (DICT_FSST) is measured at ~3.7 us/row against ~2.2 us/row for ZSTD, and ZSTD stores
# them in a third of the space. Everything else keeps DuckDB's choice. It applies to
# tables and columns created from now on; an existing file keeps what it has.
COLUMN_COMPRESSION: dict[tuple[str, str], str] = {
    ("spans", "attributes"): "zstd",
    ("logs", "attributes"): "zstd",
}


def column_ddl(f: pa.Field, table: str | None = None) -> str:
    compression = COLUMN_COMPRESSION.get((table, f.name)) if table is not None else None
    return (
        f"{quote(f.name)} {duckdb_type(f.type)}"
        + (f" USING COMPRESSION {compression}" if compression else "")
        + ("" if f.nullable else " NOT NULL")
    )


def table_ddl(table: str, schema: pa.Schema) -> str:
    columns = ",\n    ".join(column_ddl(f, table) for f in schema)
    return f"CREATE TABLE IF NOT EXISTS {quote(table)} (\n    {columns}\n)"


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Create or upgrade the schema; idempotent, so every open calls it.

    A file written by a newer faultlens (higher schema version) is refused rather than
    guessed at. Columns that decode added since the file was created are added (NULL for
    old rows), which is the only change version 1 knows how to make.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        for ddl in _DERIVED_DDL:
            con.execute(ddl)
        for index in DROPPED_INDEXES:
            con.execute(f"DROP INDEX IF EXISTS {quote(index)}")
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        found = row[0] if row else None
        if found is not None and found > SCHEMA_VERSION:
            raise StoreError(
                f"the store file has schema version {found}, newer than this faultlens ({SCHEMA_VERSION})"
            )
        for table, schema, _ in DATA_TABLES.values():
            con.execute(table_ddl(table, schema))
            existing = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main'",
                    [table],
                ).fetchall()
            }
            for f in schema:
                if f.name not in existing:
                    # New columns are nullable whatever the Arrow schema says: old rows have none.
                    con.execute(
                        f"ALTER TABLE {quote(table)} ADD COLUMN {quote(f.name)} {duckdb_type(f.type)}"
                    )
        if found is None or found < SCHEMA_VERSION:
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [SCHEMA_VERSION, time.time_ns()])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
