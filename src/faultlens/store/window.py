"""Read a stretch of time back from the store as decoded tables: the input of graph and rca.

:func:`read_window` (or :class:`WindowReader`, when one reader serves many calls) returns
the spans, log records and metric points of a half-open time range as Arrow tables of
exactly the :mod:`faultlens.decode.schema` schemas, the same tables the pipeline decoded,
so :func:`faultlens.graph.build_service_graph` and :func:`faultlens.rca.rank_root_causes`
see stored data as they would see live batches.

- **Which rows**: spans by start time, log records and metric points by their time,
  ``start_ns <= t < end_ns``, ordered by that time (then by id columns where there are
  any), so the same stored data always gives the same tables in the same order.
- **Bounded**: each signal is counted first, in the same snapshot (one transaction), and a
  window holding more than ``max_rows`` rows of any one signal is refused with
  :class:`~faultlens.errors.UnsupportedQuery` naming the count and the limit; it is never
  cut short or sampled, which would silently answer another question.
- **Lean**: ``read(..., lean=True)`` leaves the spans' :data:`LEAN_SPAN_COLUMNS` null
  without reading them (the tables keep their schemas), for readers that use only the typed
  columns: the service graph and the root-cause ranking.
- **Where from**: through a cursor of the store's own connection (:meth:`WindowReader.for_store`,
  reads run beside the writer under DuckDB's MVCC, and take their turn in the store's read
  budget, :meth:`DuckDBStore.read_cursor`), or through a read-only connection to a
  store file that no process holds open (:func:`open_read_only`, for ``faultlens rca
  --data-dir``). DuckDB lets only one process open a file for writing; when a server holds
  it, :func:`open_read_only` says so and names the process.

Every value reaches SQL as a bound parameter; only column and table names (from the
schemas) are spliced in, quoted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from faultlens.errors import StoreError, UnsupportedQuery
from faultlens.store._connection import SharedConnection, open_error
from faultlens.store._schema import DATA_TABLES, quote
from faultlens.store._segments import SEGMENTS_DIR, Segments
from faultlens.store.base import Store
from faultlens.store.duckdb_store import DB_FILENAME, DuckDBStore
from faultlens.types import Signal, TimeRange

__all__ = [
    "ALL_SIGNALS",
    "DEFAULT_MAX_ROWS",
    "LEAN_SPAN_COLUMNS",
    "TelemetryWindow",
    "WindowReader",
    "open_read_only",
    "read_window",
    "with_schema",
]

DEFAULT_MAX_ROWS = 500_000
"""Rows of one signal a window may hold (spans take about 1 kB each in memory)."""

ALL_SIGNALS: frozenset[Signal] = frozenset(Signal)

LEAN_SPAN_COLUMNS: frozenset[str] = frozenset(
    {"attributes", "resource_attributes", "events", "status_message", "trace_state"}
)
"""Span columns a lean read (``read(..., lean=True)``) leaves null: the attribute maps,
events and status texts, most of a span's bytes, which the service graph and the root-cause
ranking never read (they read the typed columns the decoder derives from them)."""

# Tie-breakers after the time column, so that equal times still come back in one order.
TIEBREAK: dict[Signal, tuple[str, ...]] = {
    Signal.TRACES: ("trace_id", "span_id"),
    Signal.LOGS: ("observed_time_unix_nano", "trace_id", "span_id"),
    Signal.METRICS: ("metric_name", "service_name"),
}
_LOCK_PID = re.compile(r"\(PID (\d+)\)")

# A cursor for one read of a time range (None: all time), on which the data tables hold
# every row of it (the store's sealed segments that meet it included).
CursorFactory = Callable[[TimeRange | None], AbstractContextManager[duckdb.DuckDBPyConnection]]


@dataclass(frozen=True, slots=True)
class TelemetryWindow:
    """What the store holds in ``time_range``: one table per signal (empty if not read).

    The tables have exactly the schemas of :mod:`faultlens.decode.schema` (``SPAN_SCHEMA``,
    ``LOG_SCHEMA``, ``METRIC_SCHEMA``); a signal that was not asked for is an empty table.
    """

    time_range: TimeRange
    spans: pa.Table
    logs: pa.Table
    metrics: pa.Table

    def table(self, signal: Signal) -> pa.Table:
        return {Signal.TRACES: self.spans, Signal.LOGS: self.logs, Signal.METRICS: self.metrics}[signal]


def _format_ns(ns: int) -> str:
    """Unix nanoseconds as RFC 3339 (UTC) for messages; out-of-range values as integers."""
    try:
        when = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return str(ns)
    frac = ns % 1_000_000_000
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{frac:09d}".rstrip("0").rstrip(".") + "Z"


def _select_sql(signal: Signal, lean: bool = False) -> tuple[str, str]:
    """(count query, select query) of one signal's rows in ``[?, ?)``; ``lean``: without the
    :data:`LEAN_SPAN_COLUMNS` of spans."""
    table, schema, time_column = DATA_TABLES[signal]
    t = quote(time_column)
    where = f"WHERE {t} >= ? AND {t} < ?"
    columns = ", ".join(quote(f.name) for f in schema if f.name not in _left_out(signal, lean))
    return f"SELECT count(*) FROM {quote(table)} {where}", f"SELECT {columns} FROM {quote(table)} {where}"


def _left_out(signal: Signal, lean: bool) -> frozenset[str]:
    return LEAN_SPAN_COLUMNS if lean and signal is Signal.TRACES else frozenset()


def with_schema(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` as ``schema``: its columns in the schema's order and fields, and the
    schema's columns it lacks as nulls (a lean read's)."""
    n = table.num_rows
    have = set(table.column_names)
    arrays = [table.column(f.name) if f.name in have else pa.nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, names=schema.names).cast(schema)


class WindowReader:
    """Reads :class:`TelemetryWindow` values through cursors from ``cursor()``.

    Thread-safe when the cursor factory is (each call uses a cursor of its own).
    ``max_rows`` bounds every signal of every read (see the module docstring).
    """

    def __init__(self, cursor: CursorFactory, *, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self._cursor = cursor
        self.max_rows = max_rows

    @classmethod
    def for_store(cls, store: Store, *, max_rows: int = DEFAULT_MAX_ROWS) -> WindowReader:
        """A reader over an open store, one cursor of the store's connection per read;
        :class:`~faultlens.errors.UnsupportedQuery` for a store of another backend (whose
        window reads its :class:`~faultlens.store.backend.StoreBackend` gives)."""
        if not isinstance(store, DuckDBStore):
            raise UnsupportedQuery(f"window reads of a {type(store).__name__} go through its backend")
        return cls(store.read_cursor, max_rows=max_rows)

    def read(
        self, time_range: TimeRange, signals: frozenset[Signal] = ALL_SIGNALS, *, lean: bool = False
    ) -> TelemetryWindow:
        """The rows of ``signals`` in ``time_range``, in one snapshot of the store; ``lean``:
        the spans' :data:`LEAN_SPAN_COLUMNS` are left null (not read).

        Raises :class:`UnsupportedQuery` when a signal holds more than ``max_rows`` rows in
        the range (nothing is read then), :class:`StoreError` when the store fails.
        """
        bounds = [time_range.start_ns, time_range.end_ns]
        tables: dict[Signal, pa.Table] = {}
        with self._cursor(time_range) as cur:
            try:
                cur.execute("BEGIN TRANSACTION")
                try:
                    wanted = [s for s in Signal if s in signals]
                    for signal in wanted:
                        count_sql, _ = _select_sql(signal)
                        rows = cur.sql(count_sql, params=bounds).fetchall()
                        count = int(rows[0][0]) if rows else 0
                        if count > self.max_rows:
                            raise UnsupportedQuery(
                                f"the window {_format_ns(time_range.start_ns)} .. "
                                f"{_format_ns(time_range.end_ns)} holds {count:,} {signal.item_name}, "
                                f"more than the {self.max_rows:,} a window may hold; "
                                "narrow the time range"
                            )
                    for signal in wanted:
                        _, select_sql = _select_sql(signal, lean)
                        tables[signal] = self._table(cur, signal, select_sql, bounds)
                finally:
                    cur.execute("COMMIT")
            except duckdb.Error as e:
                raise StoreError(f"reading a window from the store failed: {e}") from e
        empty = {s: DATA_TABLES[s][1].empty_table() for s in Signal}
        got = {**empty, **tables}
        return TelemetryWindow(time_range, got[Signal.TRACES], got[Signal.LOGS], got[Signal.METRICS])

    @staticmethod
    def _table(cur: duckdb.DuckDBPyConnection, signal: Signal, sql: str, bounds: list[int]) -> pa.Table:
        _, schema, time_column = DATA_TABLES[signal]
        table: pa.Table = cur.sql(sql, params=bounds).to_arrow_table()
        # Sorted here rather than by ORDER BY: the store's DuckDB runs under a small memory
        # limit that a sort of a wide window overflows; Arrow sorts outside it (and stably).
        keys = [(c, "ascending") for c in (time_column, *TIEBREAK[signal])]
        table = table.sort_by(keys)
        # DuckDB reports every column nullable; the cast restores the schema's exact fields.
        return with_schema(table, schema)


def read_window(
    store: Store,
    time_range: TimeRange,
    *,
    signals: frozenset[Signal] = ALL_SIGNALS,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> TelemetryWindow:
    """The spans, logs and metric points of ``time_range`` in ``store`` (see :class:`WindowReader`)."""
    return WindowReader.for_store(store, max_rows=max_rows).read(time_range, signals)


@contextmanager
def open_read_only(data_dir: Path, *, max_rows: int = DEFAULT_MAX_ROWS) -> Iterator[WindowReader]:
    """A reader over the store in ``data_dir``, opened read-only for the ``with`` block.

    Raises :class:`StoreError` when there is no store there, or when another process (a
    running ``faultlens serve``) holds the file: DuckDB lets a file be open for writing in
    one process only, and then in no other, not even read-only.
    """
    path = Path(data_dir) / DB_FILENAME
    if not path.is_file():
        raise StoreError(f"no faultlens store in {data_dir} (no {DB_FILENAME})")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as e:
        text = str(e)
        if "lock" in text.lower():
            pid = _LOCK_PID.search(text)
            holder = f"process {pid.group(1)}" if pid else "another process"
            raise StoreError(
                f"the store {path} is locked by {holder} (a running faultlens server?); "
                "query that server instead (--server URL), or stop it first"
            ) from e
        if "different configuration" in text or "already attached" in text:
            raise StoreError(f"the store {path} is already open for writing in this process") from e
        raise open_error(path, e) from e  # damaged, another version, unreadable: one line

    db = SharedConnection(con, "store", path)
    try:
        segments = _read_only_segments(db, path)

        @contextmanager
        def cursor(time_range: TimeRange | None) -> Iterator[duckdb.DuckDBPyConnection]:
            with db.cursor() as cur, segments.reading(cur, time_range):
                yield cur

        yield WindowReader(cursor, max_rows=max_rows)
    finally:
        db.close()


def _read_only_segments(db: SharedConnection, path: Path) -> Segments:
    """The sealed segments beside the store file ``path``, opened read-only on ``db``, with
    the sealing tables of a seal the last run left unfinished (``_segments``)."""
    with db.cursor() as cur:
        row = cur.execute("SELECT current_database()").fetchone()
        assert row is not None
        segments = Segments(str(row[0]), path.parent / SEGMENTS_DIR)
        try:
            segments.discover(cur, tidy=False)
        except duckdb.Error as e:
            raise StoreError(f"cannot read the segments of the store {path}: {e}") from e
        has_sealing = cur.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND table_name = 'sealing'"
        ).fetchone()
        if has_sealing and has_sealing[0]:
            row = cur.execute("SELECT max(id) FROM sealing").fetchone()
            sealing = None if row is None or row[0] is None else int(row[0])
            if sealing is not None and all(s.id != sealing for s in segments.all()):
                segments.sealing = sealing  # its rows are still only in the *_sealing tables
    return segments
