"""The store stage: the :class:`Store` interface, its DuckDB backend, writer and retention.

Entry points: :func:`open_store` opens the configured backend; :class:`StoreConsumer` is
the pipeline consumer that feeds it; :class:`RetentionTask` keeps it within retention.
Queries and results are the named values of :mod:`faultlens.store.base`.
"""

from __future__ import annotations

from faultlens.config.model import StoreConfig
from faultlens.errors import StoreError
from faultlens.store.base import (
    LogQuery,
    LogRecord,
    MetricAggregation,
    MetricName,
    MetricNameQuery,
    MetricPoint,
    MetricQuery,
    MetricSeries,
    MetricSeriesQuery,
    MetricStep,
    Operation,
    RetentionResult,
    SpanEvent,
    SpanLink,
    SpanRecord,
    Store,
    StoreReader,
    StoreStats,
    StoreWriter,
    Trace,
    TraceQuery,
    TraceSummary,
)
from faultlens.store.duckdb_store import DB_FILENAME, DuckDBStore
from faultlens.store.retention import RetentionTask
from faultlens.store.writer import StoreConsumer

__all__ = [
    "DB_FILENAME",
    "DuckDBStore",
    "LogQuery",
    "LogRecord",
    "MetricAggregation",
    "MetricName",
    "MetricNameQuery",
    "MetricPoint",
    "MetricQuery",
    "MetricSeries",
    "MetricSeriesQuery",
    "MetricStep",
    "Operation",
    "RetentionResult",
    "RetentionTask",
    "SpanEvent",
    "SpanLink",
    "SpanRecord",
    "Store",
    "StoreConsumer",
    "StoreReader",
    "StoreStats",
    "StoreWriter",
    "Trace",
    "TraceQuery",
    "TraceSummary",
    "open_store",
]


def open_store(config: StoreConfig) -> DuckDBStore:
    """Open (creating if needed) the store in ``config.data_dir``."""
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the data directory {config.data_dir}: {e}") from e
    return DuckDBStore(
        config.data_dir / DB_FILENAME,
        memory_limit_mib=config.memory_limit_mib,
        threads=config.threads,
        trace_filter_max_mib=config.trace_filter_max_mib,
        segment_rows=config.segment_rows,
    )
