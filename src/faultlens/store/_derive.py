"""The derived rows of one flush, computed in Arrow before anything reaches DuckDB.

Each flush adds rows to the small derived tables (see :mod:`faultlens.store._schema`):
``trace_index`` (one row per trace in the flush), ``log_trace_index`` (one row per trace
id among the log records) and the catalog (``operations``, ``service_names``). Computing
them here with Arrow's hash aggregation reads only the few columns they need and hands
DuckDB tables of a few thousand rows (trace index) or a few dozen (catalog) to insert or
upsert, instead of having DuckDB aggregate the whole wide flush once per derived table.

The functions are pure: a decoded table in, an Arrow table whose columns are exactly those
of the derived table (in order) out. Arrow compute releases the GIL while it works.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STATUS_ERROR = 2

TRACE_INDEX_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.binary(), nullable=False),
        pa.field("start_min", pa.int64(), nullable=False),
        pa.field("start_max", pa.int64(), nullable=False),
        pa.field("end_max", pa.int64(), nullable=False),
        pa.field("span_count", pa.int64(), nullable=False),
        pa.field("error_count", pa.int64(), nullable=False),
        pa.field("root_start", pa.int64()),
        pa.field("root_service", pa.string()),
        pa.field("root_name", pa.string()),
        pa.field("services", pa.list_(pa.string()), nullable=False),
    ]
)

LOG_TRACE_INDEX_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.binary(), nullable=False),
        pa.field("time_min", pa.int64(), nullable=False),
        pa.field("time_max", pa.int64(), nullable=False),
        pa.field("log_count", pa.int64(), nullable=False),
    ]
)

OPERATIONS_SCHEMA = pa.schema(
    [
        pa.field("service", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("kind", pa.int8(), nullable=False),
        pa.field("last_seen", pa.int64(), nullable=False),
    ]
)

SERVICE_NAMES_SCHEMA = pa.schema(
    [
        pa.field("service", pa.string(), nullable=False),
        pa.field("last_seen", pa.int64(), nullable=False),
    ]
)


def _column(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def trace_index_rows(spans: pa.Table) -> pa.Table:
    """One ``trace_index`` row per trace id in ``spans``.

    The root is the earliest span without a parent (null or empty ``parent_span_id``); a
    trace without one has null ``root_*``. ``services`` lists each non-null service once
    (in no particular order: readers sort when they merge a trace's rows).
    """
    n = spans.num_rows
    if n == 0:
        return TRACE_INDEX_SCHEMA.empty_table()
    start = _column(spans, "start_time_unix_nano")
    parent_len = pc.binary_length(_column(spans, "parent_span_id"))
    is_root = pc.invert(pc.fill_null(pc.greater(parent_len, 0), False))
    # The earliest root of each trace, found as the minimum of (start, row) over roots:
    # rows are ranked by start time so that "min rank" is "earliest root".
    order = pc.sort_indices(start).to_numpy()
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    root_rank = pc.if_else(is_root, pa.array(rank), pa.scalar(None, pa.int64()))
    errors = pc.cast(pc.fill_null(pc.equal(_column(spans, "status_code"), STATUS_ERROR), False), pa.int64())
    grouped = (
        pa.table(
            {
                "trace_id": _column(spans, "trace_id"),
                "start": start,
                "end": _column(spans, "end_time_unix_nano"),
                "error": errors,
                "service": _column(spans, "service_name"),
                "root_rank": root_rank,
            }
        )
        .group_by("trace_id", use_threads=False)
        .aggregate(
            [
                ("start", "min"),
                ("start", "max"),
                ("end", "max"),
                ("start", "count"),
                ("error", "sum"),
                ("service", "distinct"),
                ("root_rank", "min"),
            ]
        )
    )
    # Back from rank to row: order[rank] is the row of that rank (null rank: no root).
    root_row = pc.take(pa.array(order), grouped.column("root_rank_min"))
    return pa.Table.from_arrays(
        [
            grouped.column("trace_id"),
            grouped.column("start_min"),
            grouped.column("start_max"),
            grouped.column("end_max"),
            grouped.column("start_count"),
            grouped.column("error_sum"),
            pc.take(start, root_row),
            pc.take(_column(spans, "service_name"), root_row),
            pc.take(_column(spans, "name"), root_row),
            grouped.column("service_distinct"),
        ],
        schema=TRACE_INDEX_SCHEMA,
    )


def log_trace_index_rows(logs: pa.Table) -> pa.Table:
    """One ``log_trace_index`` row per trace id among the log records that carry one."""
    trace_id = _column(logs, "trace_id")
    has_trace = pc.fill_null(pc.greater(pc.binary_length(trace_id), 0), False)
    t = pa.table({"trace_id": trace_id, "time": _column(logs, "time_unix_nano")}).filter(has_trace)
    if t.num_rows == 0:
        return LOG_TRACE_INDEX_SCHEMA.empty_table()
    g = t.group_by("trace_id", use_threads=False).aggregate(
        [("time", "min"), ("time", "max"), ("time", "count")]
    )
    return pa.Table.from_arrays(
        [g.column("trace_id"), g.column("time_min"), g.column("time_max"), g.column("time_count")],
        schema=LOG_TRACE_INDEX_SCHEMA,
    )


def operation_rows(spans: pa.Table) -> pa.Table:
    """One ``operations`` row per (service, name, kind) of spans that have a service; a
    null name reads as ``''`` and a null kind as 0, as the queries expect."""
    service = _column(spans, "service_name")
    t = pa.table(
        {
            "service": service,
            "name": pc.fill_null(_column(spans, "name"), ""),
            "kind": pc.fill_null(_column(spans, "kind"), 0),
            "time": _column(spans, "start_time_unix_nano"),
        }
    ).filter(pc.is_valid(service))
    if t.num_rows == 0:
        return OPERATIONS_SCHEMA.empty_table()
    g = t.group_by(["service", "name", "kind"], use_threads=False).aggregate([("time", "max")])
    return pa.Table.from_arrays(
        [g.column("service"), g.column("name"), g.column("kind"), g.column("time_max")],
        schema=OPERATIONS_SCHEMA,
    )


def service_rows(table: pa.Table, time_column: str) -> pa.Table:
    """One ``service_names`` row (without the signal) per non-null service, newest time."""
    service = _column(table, "service_name")
    t = pa.table({"service": service, "time": _column(table, time_column)}).filter(pc.is_valid(service))
    if t.num_rows == 0:
        return SERVICE_NAMES_SCHEMA.empty_table()
    g = t.group_by("service", use_threads=False).aggregate([("time", "max")])
    return pa.Table.from_arrays([g.column("service"), g.column("time_max")], schema=SERVICE_NAMES_SCHEMA)
