"""The embedded store: every signal in one DuckDB file (``<data_dir>/faultlens.duckdb``).

Writes arrive coalesced (see :mod:`faultlens.store.writer`) and are inserted straight from
Arrow, sorted by item time, in one transaction together with their index rows (see
:mod:`faultlens.store._schema` for the tables). Because the data tables are time-ordered,
DuckDB's per-row-group min/max (zonemaps) make time filters cheap, and a trace is fetched
by first reading its time bounds from the small ``trace_index`` and then scanning only the
row groups inside them. The index itself is read only in the time ranges where an
in-memory filter says the trace id may be (:mod:`faultlens.store._trace_filter`), so a
lookup without a time reads a few thousand index rows, not all of them.

Concurrency: writes and retention are serialised by a lock (there is one writer thread in
practice); every read opens its own cursor and runs without the lock, so DuckDB's MVCC
lets it see the last committed state while a long insert is in progress. Reads share one
budget per file (``_connection.ReadBudget``): a few run at once and the others queue, since
they all draw on the one memory limit; a read that waits too long is refused as retryable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from faultlens.config.model import StoreConfig
from faultlens.decode.base import DecodedBatch
from faultlens.errors import StoreError, UnsupportedQuery
from faultlens.store._attr_filter import PAIR_HASH_SQL, AttrFilter, build, write_parts
from faultlens.store._connection import (
    ALIAS,
    SharedConnection,
    open_error,
    open_store_file,
    read_budget,
    refresh_store_file,
    rollback,
    shared_segments,
)
from faultlens.store._derive import log_trace_index_rows, operation_rows, service_rows, trace_index_rows
from faultlens.store._rows import (
    LOG_COLUMNS,
    METRIC_COLUMNS,
    SPAN_COLUMNS,
    TRACE_SUMMARY_SELECT,
    log_record,
    metric_point,
    select_list,
    span_record,
    span_text,
    trace_summary,
)
from faultlens.store._schema import DATA_TABLES, migrate, quote
from faultlens.store._segments import Segment, begin_seal, drop_sealing, write_segment
from faultlens.store._trace_filter import (
    REBUILD,
    TraceFilter,
    release_shared,
    release_trace_filter,
    shared,
    trace_filter,
)
from faultlens.store.base import (
    AttributeCondition,
    AttributeCount,
    AttributeQuery,
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
    StoreStats,
    Trace,
    TraceQuery,
    TraceSummary,
    TraceText,
)
from faultlens.types import Signal, TimeRange

__all__ = ["DB_FILENAME", "DuckDBStore"]

log = logging.getLogger(__name__)

DB_FILENAME = "faultlens.duckdb"
# Steps one metric series query may ask for (Prometheus's query_range refuses past 11,000).
MAX_METRIC_STEPS = 11_000

STATUS_ERROR = 2
INT64_MAX = 2**63 - 1
# The first range a search by attribute reads, newest first (then twice as long, and so on):
# short enough to be a small read on a busy store, long enough that a common value is found
# in it (bench/ui.py times both).
FIRST_RANGE_NS = 15 * 60 * 1_000_000_000
_IS_ROOT = "(parent_span_id IS NULL OR octet_length(parent_span_id) = 0)"
_HAS_TRACE = "(trace_id IS NOT NULL AND octet_length(trace_id) > 0)"


def _index_spans_sql(source: str) -> str:
    """Rows of ``trace_index`` for the spans in ``source`` (a table or a subquery)."""
    return f"""
        INSERT INTO trace_index
        SELECT
            trace_id,
            min(start_time_unix_nano),
            max(start_time_unix_nano),
            max(end_time_unix_nano),
            count(*),
            count(*) FILTER (WHERE status_code = {STATUS_ERROR}),
            min(start_time_unix_nano) FILTER (WHERE {_IS_ROOT}),
            arg_min_null(service_name, start_time_unix_nano) FILTER (WHERE {_IS_ROOT}),
            arg_min_null(name, start_time_unix_nano) FILTER (WHERE {_IS_ROOT}),
            list_sort(list_distinct(list(service_name)))
        FROM {source}
        GROUP BY trace_id
    """


def _index_logs_sql(source: str) -> str:
    """Rows of ``log_trace_index`` for the log records in ``source`` that carry a trace id."""
    return f"""
        INSERT INTO log_trace_index
        SELECT trace_id, min(time_unix_nano), max(time_unix_nano), count(*)
        FROM {source}
        WHERE {_HAS_TRACE}
        GROUP BY trace_id
    """


# Operations the catalog keeps per service. Its primary key is an ART index that DuckDB holds
# whole in the store's memory limit, and span names that carry ids (``GET /user/123``) would
# grow it without end. Past the bound a service's new operations are stored with their spans
# but not listed (``operations()``) until retention drops some; known ones keep their times.
# The capped upsert runs only when a write could pass the bound: its window and joins cost
# the heap more on every write than the plain one (tests/store/test_refresh.py).
MAX_OPERATIONS_PER_SERVICE = 10_000

_UPSERT_OPERATIONS = """
    INSERT INTO operations SELECT * FROM _operations
    ON CONFLICT DO UPDATE SET last_seen = greatest(last_seen, excluded.last_seen)
"""

_MOST_OPERATIONS = """
    SELECT max(n) FROM (
        SELECT count(*) AS n FROM operations
        WHERE service IN (SELECT service FROM _operations) GROUP BY service
    )
"""

_UPSERT_OPERATIONS_CAPPED = f"""
    INSERT INTO operations
    SELECT service, name, kind, last_seen FROM (
        SELECT o.*, p.service IS NOT NULL AS known,
            row_number() OVER (PARTITION BY o.service, p.service IS NULL ORDER BY o.name, o.kind) AS r
        FROM _operations o
        LEFT JOIN operations p ON p.service = o.service AND p.name = o.name AND p.kind = o.kind
    ) t
    LEFT JOIN (
        SELECT service, count(*) AS n FROM operations
        WHERE service IN (SELECT service FROM _operations) GROUP BY service
    ) c USING (service)
    WHERE known OR coalesce(c.n, 0) + r <= {MAX_OPERATIONS_PER_SERVICE}
    ON CONFLICT DO UPDATE SET last_seen = greatest(last_seen, excluded.last_seen)
"""

_UPSERT_SERVICE_NAMES = """
    INSERT INTO service_names SELECT service, ?, last_seen FROM _services
    ON CONFLICT DO UPDATE SET last_seen = greatest(last_seen, excluded.last_seen)
"""

# The embedded database shares the process with ingest, so its memory is bounded: past
# the limit DuckDB evicts written blocks, spills to a temporary directory beside the file
# (or fails a statement, which the writer retries). Until the limit DuckDB keeps every block
# it wrote cached, so under a steady ingest the limit is most of the RSS growth. Measured
# with bench/ingest.py (10k spans/s over gRPC for 60 s, analysis off): peak RSS 386 MiB at
# 128MB, 306 MiB at 48MB; with the analysis on, 358 MiB at 64MB, and a 1M-span burst at
# 64MB completed. At 32MB a max-speed replay of a day of data (eval detect) once hit an
# out-of-memory error in a checkpoint, which DuckDB treats as fatal: the database is
# invalidated until reopened. Hence 64MB by default; ``store.memory_limit_mib`` moves it.
# The setting is per database instance, so it holds for the analysis tables too.
DEFAULT_MEMORY_LIMIT_MIB: int = StoreConfig.model_fields["memory_limit_mib"].default
DEFAULT_THREADS: int = StoreConfig.model_fields["threads"].default  # why 1: config/model.py
DEFAULT_TRACE_FILTER_MIB: int = StoreConfig.model_fields["trace_filter_max_mib"].default
MEMORY_LIMIT = f"{DEFAULT_MEMORY_LIMIT_MIB}MB"
# Rows written between two re-attaches of the file (``refresh_store_file``): at most ~12 MiB
# of row-group metadata held, for a pause of ~0.1 s (every 100 s at 10k spans/s).
REFRESH_ROWS = 1_000_000
DEFAULT_SEGMENT_ROWS: int = StoreConfig.model_fields["segment_rows"].default
# How long a seal's first and last steps wait for the file's other calls to end, and how
# long a failed seal waits before it tries again.
SEAL_ALONE_S = 1.0
SEAL_RETRY_S = 5.0
# How far past a search's time range the trace index is read for the summaries of the
# traces it found: a trace whose spans a seal split keeps its other index rows there.
TRACE_MARGIN_NS = 15 * 60 * 1_000_000_000


# DuckDB builds that bundle jemalloc keep freed memory in thread caches until a task has
# allocated ``allocator_flush_threshold`` (128 MiB by default) and purge dirty pages only when
# some later allocation runs into them. A background thread purging them, and a flush past
# 8 MiB, gave freed insert buffers back to the system: in a 20 s feed of 10k spans/s the
# resident memory stayed ~20 MiB lower (bench/store.py feed; in the whole server at 10k
# spans/s, 2 paired 30 s runs with the 128 MiB default differed by no more than the noise,
# nor did 1M-span bursts). Both are process-wide. The DuckDB wheel installed now has no
# jemalloc (``duckdb_extensions()`` lists none): it allocates through glibc's malloc, whose
# counters (``server_memwatch``) then include DuckDB's memory, and these settings do nothing.
ALLOCATOR_SETTINGS = (
    "SET allocator_background_threads = true",
    "SET allocator_flush_threshold = '8MB'",
)


# Each trace index: its table, and the columns of its rows' least and greatest item time.
_INDEX_COLUMNS: dict[Signal, tuple[str, str, str]] = {
    Signal.TRACES: ("trace_index", "start_min", "start_max"),
    Signal.LOGS: ("log_trace_index", "time_min", "time_max"),
}
_FILTER_BUILD_BATCH = 100_000  # index rows per Arrow batch while a filter is built
_ATTR_FILTER = "spans.attributes"  # the attribute filter's name among the file's filters
# How long the first search by attribute waits for the filter's build before it reads
# everything (the build goes on; later searches use the filter once it is done).
ATTR_BUILD_WAIT_S = 0.5
# The most time ranges one search adds to its SQL: more are joined across their smallest gaps.
_MAX_RANGES = 32


def _time_conditions(column: str, time_range: TimeRange | None) -> tuple[list[str], list[Any]]:
    if time_range is None:
        return [], []
    return [f"{quote(column)} >= ?", f"{quote(column)} < ?"], [time_range.start_ns, time_range.end_ns]


def _json_pointer(key: str) -> str:
    """The JSON pointer (RFC 6901) of a top-level key: ``~`` and ``/`` escaped, dots kept."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _attribute_match(column: str, cond: AttributeCondition) -> tuple[str, list[Any]]:
    """SQL for "``column``'s JSON has ``cond.key`` with ``cond.value`` as text"."""
    return f"json_extract_string({column}, ?) = ?", [_json_pointer(cond.key), cond.value]


def _where(conditions: list[str]) -> str:
    return ("WHERE " + " AND ".join(conditions)) if conditions else ""


def _clip(ranges: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """The parts of inclusive ``ranges`` inside ``[lo, hi]``."""
    return [(max(a, lo), min(b, hi)) for a, b in ranges if a <= hi and b >= lo]


def _coarsen(ranges: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """Sorted disjoint inclusive ``ranges`` as at most ``most``, joined across the smallest
    gaps (a wider range only reads more; it keeps every span the narrower ones held)."""
    out = list(ranges)
    while len(out) > most:
        i = min(range(len(out) - 1), key=lambda j: out[j + 1][0] - out[j][1])
        out[i : i + 2] = [(out[i][0], out[i + 1][1])]
    return out


class DuckDBStore:
    """:class:`faultlens.store.base.Store` over one DuckDB file. Thread-safe."""

    def __init__(
        self,
        path: Path | str,
        *,
        memory_limit_mib: int = DEFAULT_MEMORY_LIMIT_MIB,
        threads: int = DEFAULT_THREADS,
        refresh_rows: int = REFRESH_ROWS,
        trace_filter_max_mib: int = DEFAULT_TRACE_FILTER_MIB,
        segment_rows: int = DEFAULT_SEGMENT_ROWS,
    ) -> None:
        """``threads``: DuckDB's worker threads for the file's instance; 0 leaves DuckDB's
        default. ``refresh_rows``: rows written between two re-attaches of the file.
        ``trace_filter_max_mib``: the bound of each trace index's filter (``_trace_filter``).
        ``segment_rows``: rows written before the hot tables are sealed into a segment
        (``_segments``); 0 never seals."""
        self.path = Path(path)
        try:
            self._con = open_store_file(self.path)  # logs what the WAL replay did
        except duckdb.Error as e:
            raise open_error(self.path, e) from e
        try:
            migrate(self._con)
        except duckdb.Error as e:
            self._con.close()
            raise open_error(self.path, e) from e
        except StoreError:
            self._con.close()
            raise
        try:
            self._con.execute(f"SET memory_limit = '{int(memory_limit_mib)}MB'")
            if threads > 0:
                self._con.execute(f"SET threads = {int(threads)}")
            for setting in ALLOCATOR_SETTINGS:
                self._con.execute(setting)
        except duckdb.Error as e:
            self._con.close()
            raise StoreError(f"cannot configure the store at {self.path}: {e}") from e
        self._write_lock = threading.Lock()
        self._db = SharedConnection(self._con, "store", self.path, database=ALIAS)
        self._reads = read_budget(self.path)
        self._refresh_rows = refresh_rows
        self._rows_since_refresh = 0
        self.refreshes = 0  # re-attaches done, for tests and curiosity
        # Where a trace id may be in each trace index, shared with every other store on the
        # file in this process (their writes must reach it); built on first lookup.
        self._filter_key = str(self.path.resolve())
        self._filters: dict[Signal, TraceFilter] = {
            signal: trace_filter(self._filter_key, *columns, max_bytes=trace_filter_max_mib * 2**20)
            for signal, columns in _INDEX_COLUMNS.items()
        }
        # Which time ranges of the spans may hold an attribute pair (``_attr_filter``), shared
        # the same way; built on a thread of its own from the first search by attribute.
        self._attr_filter: AttrFilter = shared(self._filter_key, _ATTR_FILTER, AttrFilter)
        self._attr_builder: threading.Thread | None = None
        self._attr_stop = threading.Event()
        # The sealed segments (``_segments``), shared with every store on the file here.
        self._segments = shared_segments(self.path)
        self._segment_rows = segment_rows
        self._sealer: threading.Thread | None = None
        self._seal_stop = threading.Event()
        self._seal_cursor: duckdb.DuckDBPyConnection | None = None
        try:
            self._rows_since_seal = self._open_segments()
        except (duckdb.Error, OSError, StoreError) as e:
            self._db.close()
            raise StoreError(f"cannot open the segments of the store at {self.path}: {e}") from e

    # --- lifecycle -----------------------------------------------------------------------

    def _open_segments(self) -> int:
        """List the segments, finish or restart a seal that a stop cut short (``_segments``),
        and return the rows in the hot tables."""
        # Another store of this file in this process may be sealing: its .tmp is no leftover.
        busy = self._segments.sealing is not None
        with self._cursor() as cur:
            self._segments.discover(cur, tidy=not busy)
            row = cur.execute("SELECT max(id) FROM sealing").fetchone()
            sealing = None if row is None or row[0] is None else int(row[0])
            counts = cur.execute(
                "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM logs) "
                "+ (SELECT count(*) FROM metric_points)"
            ).fetchone()
        if sealing is not None and not busy:
            if any(s.id == sealing for s in self._segments.all()):
                with self._db.alone(SEAL_ALONE_S * 10) as cur:
                    if cur is None:
                        raise StoreError("the store file stayed busy while a cut seal was finished")
                    drop_sealing(cur)
                log.info("finished sealing segment %d, which the last run had written", sealing)
            else:
                self._segments.sealing = sealing
                log.warning("sealing segment %d again: the last run stopped while writing it", sealing)
                self._start_sealer(sealing)
        return int(counts[0]) if counts else 0

    def _maybe_seal(self) -> None:
        """Step 1 of a seal once the hot tables hold ``segment_rows`` rows, between two writes
        (under the write lock), unless a seal is running or the file stays busy."""
        if not self._segment_rows or self._rows_since_seal < self._segment_rows:
            return
        if self._segments.sealing is not None:
            return
        segment_id = self._segments.next_id()
        try:
            with self._db.alone(SEAL_ALONE_S) as cur:
                if cur is None:
                    return  # reads kept the file busy: the next write tries again
                begin_seal(cur, segment_id)
                self._segments.sealing = segment_id
        except (duckdb.Error, StoreError) as e:
            # The write before it committed: its caller must not see this as its failure.
            log.error("cannot begin sealing segment %d (tried again at the next write): %s", segment_id, e)
            return
        self._rows_since_seal = 0
        self._start_sealer(segment_id)

    def _start_sealer(self, segment_id: int) -> None:
        self._sealer = threading.Thread(
            target=self._seal, args=(segment_id,), name="faultlens-seal", daemon=True
        )
        self._sealer.start()

    def _seal(self, segment_id: int) -> None:
        """Steps 2 and 3 of a seal, on a thread of its own, tried again until they succeed
        or the store closes (a stop leaves the seal for the next open)."""
        segment: Segment | None = None
        while not self._seal_stop.is_set():
            try:
                if segment is None:
                    with self._cursor() as cur:
                        self._seal_cursor = cur
                        try:
                            segment = write_segment(cur, ALIAS, self._segments.directory, segment_id)
                        finally:
                            self._seal_cursor = None
                with self._db.alone(SEAL_ALONE_S) as cur:
                    if cur is not None:
                        drop_sealing(cur)
                        self._segments.add(segment)
                        self._segments.sealing = None
                        log.info(
                            "sealed segment %d: %d spans, %d log records, %d data points",
                            segment.id,
                            segment.spans,
                            segment.logs,
                            segment.points,
                        )
                        return
                self._seal_stop.wait(SEAL_ALONE_S)
            except (duckdb.Error, OSError, StoreError) as e:
                if self._seal_stop.is_set():
                    return
                log.error(
                    "sealing segment %d failed (tried again in %.0f s): %s", segment_id, SEAL_RETRY_S, e
                )
                self._seal_stop.wait(SEAL_RETRY_S)

    def close(self) -> None:
        """Checkpoint and close the file. Safe to call twice; any later call raises StoreError."""
        self._attr_stop.set()
        if self._attr_builder is not None:
            self._attr_builder.join()  # it stops after the chunk it is reading
        self._seal_stop.set()
        sealing = self._seal_cursor
        if sealing is not None:
            with suppress(duckdb.Error):
                sealing.interrupt()  # the copy goes again at the next open
        if self._sealer is not None:
            self._sealer.join()
        with self._write_lock:
            if not self._db.closed:
                for columns in _INDEX_COLUMNS.values():
                    release_trace_filter(self._filter_key, columns[0])
                release_shared(self._filter_key, _ATTR_FILTER)
            self._db.close()

    def cursor(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A cursor of its own, for read queries that other parts of faultlens run on this
        file (``store.window``); DuckDB errors become :class:`StoreError`."""
        return self._db.cursor()

    _cursor = cursor

    @contextmanager
    def read_cursor(
        self, time_range: TimeRange | None = None, *, segments: bool = True
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one read of ``time_range`` (None: all time), once the file's read
        budget gives it a turn: reads queue rather than run out of the memory they share
        (``_connection.ReadBudget``); raises :class:`~faultlens.errors.StoreBusy` when the
        turn does not come in time. On it the data tables and trace indexes hold every row
        of the range, the sealed segments' that meet it included (``_segments``; none
        without ``segments``, for reads of the catalog)."""
        with (
            self._reads.slot(),
            self._db.cursor() as cur,
            self._segments.reading(cur, time_range, segments=segments),
        ):
            yield cur

    _read = read_cursor

    # --- writing -------------------------------------------------------------------------

    def write(self, batches: list[DecodedBatch], intake_seqs: Sequence[int] = ()) -> None:
        """Insert the batches in one transaction: everything is written, or nothing.

        ``intake_seqs`` go into ``intake_applied`` in the same transaction, so
        :meth:`applied_intake` tells afterwards, whatever the COMMIT raised, whether it landed.

        Every ``refresh_rows`` rows written, the file is re-attached afterwards, which frees
        the row-group metadata DuckDB would otherwise keep for as long as the process runs
        (``_connection.refresh_store_file``).
        """
        tables: dict[Signal, list[pa.Table]] = {}
        for b in batches:
            if b.table.num_rows:
                tables.setdefault(b.signal, []).append(b.table)
        if not tables and not intake_seqs:
            return
        with self._write_lock:
            with self._recording(), self._cursor() as cur:
                spans = tables.get(Signal.TRACES)
                if spans and self._attr_filter.started:  # before the transaction: see _attr_filter
                    self._attr_filter.add(write_parts(cur, pa.concat_tables(spans)))
                cur.execute("BEGIN TRANSACTION")
                try:
                    for signal, parts in tables.items():
                        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
                        self._insert(cur, signal, table)
                    if intake_seqs:
                        cur.register("_applied", pa.table({"seq": pa.array(intake_seqs, pa.int64())}))
                        cur.execute("INSERT INTO intake_applied SELECT seq FROM _applied")
                        cur.unregister("_applied")
                    cur.execute("COMMIT")
                except BaseException:
                    rollback(cur)
                    raise
            written = sum(t.num_rows for parts in tables.values() for t in parts)
            self._rows_since_refresh += written
            self._rows_since_seal += written
            self._maybe_seal()
            # Not while a seal copies (it holds a call on the file for seconds, which the
            # re-attach would wait for, holding every other call back): after it, rather.
            if (
                self._rows_since_refresh >= self._refresh_rows
                and self._segments.sealing is None
                and refresh_store_file(self._con, self.path)
            ):
                self._rows_since_refresh = 0
                self.refreshes += 1

    @contextmanager
    def _recording(self) -> Iterator[None]:
        """Around a transaction that adds trace index rows (see ``_trace_filter``)."""
        with (
            self._filters[Signal.TRACES].writing(),
            self._filters[Signal.LOGS].writing(),
            self._attr_filter.writing(),
        ):
            yield

    def applied_intake(self, seqs: Sequence[int]) -> set[int]:
        """Which of ``seqs`` a committed :meth:`write` recorded in ``intake_applied``."""
        if not seqs:
            return set()
        with self._cursor() as cur:
            cur.register("_asked", pa.table({"seq": pa.array(seqs, pa.int64())}))
            rows = cur.execute(
                "SELECT DISTINCT a.seq FROM intake_applied a JOIN _asked q ON a.seq = q.seq"
            ).fetchall()
            cur.unregister("_asked")
        return {int(r[0]) for r in rows}

    def forget_intake(self, below: int) -> None:
        """Delete the recorded intake sequence numbers below ``below``."""
        with self._write_lock, self._cursor() as cur:
            cur.execute("DELETE FROM intake_applied WHERE seq < ?", [below])

    def _insert(self, cur: duckdb.DuckDBPyConnection, signal: Signal, table: pa.Table) -> None:
        """The batch as it came, then its derived rows (computed in Arrow, see ``_derive``).

        The batch is not sorted: a flush holds the items that arrived within one flush
        interval, so each row group's time range is already narrow and its zonemap prunes
        time filters as well as a sorted one would; sorting ~60 wide columns cost more CPU
        than the insert itself (measured in bench/store.py).
        """
        name, _, time_column = DATA_TABLES[signal]
        registered = ["_batch"]
        cur.register("_batch", table)
        inserted = False
        try:
            cur.execute(f"INSERT INTO {quote(name)} BY NAME SELECT * FROM _batch")
            if signal is Signal.TRACES:
                trace_rows = trace_index_rows(table)
                self._filters[signal].add(trace_rows)  # before the commit: see _trace_filter
                cur.register("_trace_rows", trace_rows)
                operations = operation_rows(table)
                cur.register("_operations", operations)
                registered += ["_trace_rows", "_operations"]
                cur.execute("INSERT INTO trace_index SELECT * FROM _trace_rows")
                most = cur.execute(_MOST_OPERATIONS).fetchone()
                near = (most[0] if most and most[0] else 0) + operations.num_rows > MAX_OPERATIONS_PER_SERVICE
                cur.execute(_UPSERT_OPERATIONS_CAPPED if near else _UPSERT_OPERATIONS)
            elif signal is Signal.LOGS:
                trace_rows = log_trace_index_rows(table)
                self._filters[signal].add(trace_rows)
                cur.register("_trace_rows", trace_rows)
                registered.append("_trace_rows")
                cur.execute("INSERT INTO log_trace_index SELECT * FROM _trace_rows")
            cur.register("_services", service_rows(table, time_column))
            registered.append("_services")
            cur.execute(_UPSERT_SERVICE_NAMES, [signal.value])
            inserted = True
        finally:
            # After a failed statement the transaction is aborted and unregistering would
            # fail too, hiding the cause; the views go with the cursor anyway.
            if inserted:
                for view in registered:
                    cur.unregister(view)

    # --- retention -----------------------------------------------------------------------

    def enforce_retention(self, now_unix_nano: int, retention_ns: int) -> RetentionResult:
        """Delete spans (by start time), logs and points (by time) before ``now - retention``.

        The index rows of a trace that lost some spans are rebuilt from its remaining spans,
        so summaries stay exact for traces that straddle the cutoff. A sealed segment goes
        whole, once all it holds is before the cutoff (``_segments``); rows being sealed wait
        for their segment.
        """
        cutoff = now_unix_nano - retention_ns
        with self._write_lock, self._recording(), self._cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                spans = self._expire_indexed(cur, Signal.TRACES, cutoff)
                logs = self._expire_indexed(cur, Signal.LOGS, cutoff)
                points = self._delete_count(cur, "DELETE FROM metric_points WHERE time_unix_nano < ?", cutoff)
                cur.execute("DELETE FROM operations WHERE last_seen < ?", [cutoff])
                cur.execute("DELETE FROM service_names WHERE last_seen < ?", [cutoff])
                cur.execute("COMMIT")
            except BaseException:
                rollback(cur)
                raise
            for trace_filter_ in self._filters.values():  # only once the deletes are committed
                trace_filter_.drop_before(cutoff)
            self._attr_filter.drop_before(cutoff)
        gone = self._segments.expire(cutoff)  # whole files: what a read holds goes once it ends
        for segment in gone:
            log.info("retention deleted segment %d (everything in it before %d)", segment.id, cutoff)
        return RetentionResult(
            cutoff,
            spans + sum(g.spans for g in gone),
            logs + sum(g.logs for g in gone),
            points + sum(g.points for g in gone),
        )

    @staticmethod
    def _delete_count(cur: duckdb.DuckDBPyConnection, sql: str, cutoff: int) -> int:
        row = cur.execute(sql, [cutoff]).fetchone()
        return int(row[0]) if row else 0

    def _expire_indexed(self, cur: duckdb.DuckDBPyConnection, signal: Signal, cutoff: int) -> int:
        table, _, time_column = DATA_TABLES[signal]
        index, index_time, rebuild = (
            ("trace_index", "start_min", _index_spans_sql)
            if signal is Signal.TRACES
            else ("log_trace_index", "time_min", _index_logs_sql)
        )
        deleted = self._delete_count(cur, f"DELETE FROM {table} WHERE {quote(time_column)} < ?", cutoff)
        if not deleted:
            return 0
        cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _expired AS "
            f"SELECT DISTINCT trace_id FROM {index} WHERE {index_time} < ?",
            [cutoff],
        )
        cur.execute(f"DELETE FROM {index} WHERE trace_id IN (SELECT trace_id FROM _expired)")
        cur.execute(rebuild(f"(SELECT * FROM {table} WHERE trace_id IN (SELECT trace_id FROM _expired))"))
        # The rebuilt rows start at or after the cutoff, maybe in other runs of the filter.
        index_table, start, end = _INDEX_COLUMNS[signal]
        rebuilt = cur.sql(
            f"SELECT trace_id, {start}, {end} FROM {index_table} "
            "WHERE trace_id IN (SELECT trace_id FROM _expired)"
        ).to_arrow_table()
        self._filters[signal].add(rebuilt, REBUILD)
        self._filters[signal].close_channel(REBUILD)
        cur.execute("DROP TABLE _expired")
        return deleted

    # --- reading -------------------------------------------------------------------------

    def services(self) -> list[str]:
        """Every service that sent any signal still within retention, sorted."""
        with self._read(segments=False) as cur:
            rows = cur.execute("SELECT DISTINCT service FROM service_names ORDER BY service").fetchall()
        return [r[0] for r in rows]

    def operations(self, service: str) -> list[Operation]:
        """Span names and kinds of the service, sorted by name then kind."""
        with self._read(segments=False) as cur:
            rows = cur.execute(
                "SELECT name, kind FROM operations WHERE service = ? ORDER BY name, kind", [service]
            ).fetchall()
        return [Operation(name, kind) for name, kind in rows]

    def find_traces(self, query: TraceQuery) -> list[TraceSummary]:
        """Traces with one span matching service, operation, error status, attributes, span
        duration and time range (on its start time), whose whole duration is within
        ``min_duration_ns``..``max_duration_ns``; newest first (by trace start), ties by trace id.

        An attribute condition reads the span's JSON ``attributes`` (then its resource's) with
        a JSON pointer, so a key holding ``.`` or ``/`` is matched exactly as written. Reading
        that JSON is most of such a search's cost, so only the time ranges where the attribute
        filter says the pairs may be are read (``_attr_filter``; none: the answer is empty),
        newest first, over ranges that double, stopping once no older span can change the
        answer (:meth:`_newest_first`)."""
        if query.limit <= 0:
            return []
        if query.attributes:
            return self._newest_first(query)
        return self._find_traces(query)

    def _newest_first(self, query: TraceQuery) -> list[TraceSummary]:
        """The search over the newest :data:`FIRST_RANGE_NS` of the range, then the twice as
        long range before it, and so on, each range's page kept.

        Exact: a trace matched only by spans older than a range's start started before it,
        so once ``limit`` traces found started inside the ranges read, nothing older can
        come before them; and a trace of the answer is in the page of the range holding its
        matching span (fewer than ``limit`` traces come before it there, as everywhere). A
        range holding none of the attribute filter's "maybe" ranges holds no matching span,
        and is not read."""
        maybe = self._attribute_ranges(query)
        if maybe is not None and not maybe:
            return []
        lo, hi = (
            (0, INT64_MAX)
            if query.time_range is None
            else (query.time_range.start_ns, query.time_range.end_ns)
        )
        with self._read(segments=False) as cur:  # the segments' bounds are known without a read
            row = cur.execute("SELECT min(start_min), max(start_max) FROM trace_index").fetchone()
            stored = [(int(row[0]), int(row[1]))] if row is not None and row[0] is not None else []
            stored += [(seg.start_ns, seg.end_ns) for seg in self._segments.all() if seg.spans]
        if not stored:
            return []
        lo, hi = max(lo, min(a for a, _ in stored)), min(hi, max(b for _, b in stored) + 1)
        found: dict[bytes, TraceSummary] = {}
        top, width = hi, FIRST_RANGE_NS
        while top > lo:
            bottom = max(lo, top - width)
            within = None if maybe is None else _clip(maybe, bottom, top - 1)
            if within == [(bottom, top - 1)]:
                within = None  # the whole range may hold them: no bound to add
            if within != []:
                for summary in self._find_traces(replace(query, time_range=TimeRange(bottom, top)), within):
                    found[summary.trace_id] = summary
            ranked = sorted(found.values(), key=lambda t: (-t.start_time_unix_nano, t.trace_id))
            if len(ranked) >= query.limit and ranked[query.limit - 1].start_time_unix_nano >= bottom:
                return ranked[: query.limit]
            top, width = bottom, 2 * width
        return sorted(found.values(), key=lambda t: (-t.start_time_unix_nano, t.trace_id))[: query.limit]

    def _attribute_ranges(self, query: TraceQuery) -> list[tuple[int, int]] | None:
        """The start-time ranges that may hold spans with every attribute pair of the query
        (``_attr_filter``), or None while the filter cannot tell (not built yet: the first
        search starts its build and waits :data:`ATTR_BUILD_WAIT_S` for it)."""
        found = self._attr_filter
        if not found.ready:
            if found.claim_build():
                self._attr_builder = threading.Thread(
                    target=self._build_attr_filter, name="faultlens-attr-filter", daemon=True
                )
                self._attr_builder.start()
            if not found.wait_ready(ATTR_BUILD_WAIT_S):
                return None
        with self._read(segments=False) as cur:
            hashes = []
            for cond in query.attributes:
                row = cur.execute(PAIR_HASH_SQL, [cond.key, cond.value]).fetchone()
                assert row is not None
                hashes.append(int(row[0]))
        return found.ranges(hashes, query.time_range)

    def _build_attr_filter(self) -> None:
        try:
            build(self._attr_filter, self._read, self._attr_stop)
        except Exception:  # the next search by attribute goes on with the build
            log.warning("the attribute filter's build stopped; searches read everything", exc_info=True)

    def _find_traces(
        self, query: TraceQuery, within: list[tuple[int, int]] | None = None
    ) -> list[TraceSummary]:
        """The page of traces matching ``query``; ``within``: the inclusive start-time ranges
        that hold every span that can match (the attribute filter's), None for no such bound."""
        conditions: list[str] = []
        params: list[Any] = []
        if within is not None:
            within = _coarsen(within, _MAX_RANGES)
            conditions.append("(" + " OR ".join(["start_time_unix_nano BETWEEN ? AND ?"] * len(within)) + ")")
            params += [t for r in within for t in r]
        if query.service is not None:
            conditions.append("service_name = ?")
            params.append(query.service)
        if query.operation is not None:
            conditions.append("name = ?")
            params.append(query.operation)
        if query.status_error:
            conditions.append(f"status_code = {STATUS_ERROR}")
        if query.span_min_duration_ns is not None:
            conditions.append("duration_ns >= ?")
            params.append(query.span_min_duration_ns)
        if query.span_max_duration_ns is not None:
            conditions.append("duration_ns <= ?")
            params.append(query.span_max_duration_ns)
        time_conditions, time_params = _time_conditions("start_time_unix_nano", query.time_range)
        conditions += time_conditions
        params += time_params
        for cond in query.attributes:  # after the cheap columns: only their survivors parse JSON
            own, own_params = _attribute_match("attributes", cond)
            res, res_params = _attribute_match("resource_attributes", cond)
            conditions.append(f"(({own}) OR ({res}))")
            params += own_params + res_params
        matched = f"WHERE trace_id IN (SELECT trace_id FROM spans {_where(conditions)})" if conditions else ""
        bounds: list[str] = []
        if query.min_duration_ns is not None:
            bounds.append("max(end_max) - min(start_min) >= ?")
            params.append(query.min_duration_ns)
        if query.max_duration_ns is not None:
            bounds.append("max(end_max) - min(start_min) <= ?")
            params.append(query.max_duration_ns)
        having = ("HAVING " + " AND ".join(bounds)) if bounds else ""
        # Pick the page with cheap integer aggregates first; only its traces get the list
        # aggregation of services and roots (several times faster on 100k traces).
        sql = f"""
            WITH page AS (
                SELECT trace_id, min(start_min) AS page_start FROM trace_index {matched}
                GROUP BY trace_id {having}
                ORDER BY page_start DESC, trace_id LIMIT ?
            )
            SELECT {TRACE_SUMMARY_SELECT} FROM trace_index
            WHERE trace_id IN (SELECT trace_id FROM page)
            GROUP BY trace_id
            ORDER BY trace_start DESC, trace_id
        """
        margin = query.time_range
        if margin is not None:
            margin = TimeRange(max(0, margin.start_ns - TRACE_MARGIN_NS), margin.end_ns + TRACE_MARGIN_NS)
        with self._read(margin) as cur:
            rows = cur.execute(sql, [*params, query.limit]).fetchall()
        return [trace_summary(r) for r in rows]

    def attribute_counts(self, query: AttributeQuery) -> list[AttributeCount]:
        """Keys (or one key's values) of the newest ``sample`` spans of the service in the
        range, with how many of them hold each; most frequent first, ties by text.

        Bounded: the sample is picked on the narrow columns (a top-N on start time), and only
        its rows' JSON is read, so the cost does not grow with what the store holds."""
        if query.limit <= 0 or query.sample <= 0:
            return []
        conditions, params = _time_conditions("start_time_unix_nano", query.time_range)
        if query.service is not None:
            conditions.append("service_name = ?")
            params.append(query.service)
        sample = (
            f"SELECT attributes, resource_attributes FROM spans {_where(conditions)} "
            "ORDER BY start_time_unix_nano DESC LIMIT ?"
        )
        params.append(query.sample)
        if query.key is None:
            sql = f"""
                WITH sample AS ({sample}),
                keyed AS (
                    SELECT list_distinct(list_concat(
                        coalesce(json_keys(attributes), []), coalesce(json_keys(resource_attributes), [])
                    )) AS keys FROM sample
                )
                SELECT k, count(*) AS n FROM (SELECT unnest(keys) AS k FROM keyed)
                GROUP BY k ORDER BY n DESC, k LIMIT ?
            """
        else:
            pointer = _json_pointer(query.key)
            sql = f"""
                WITH sample AS ({sample})
                SELECT v, count(*) AS n FROM (
                    SELECT coalesce(json_extract_string(attributes, ?),
                                    json_extract_string(resource_attributes, ?)) AS v
                    FROM sample
                ) WHERE v IS NOT NULL
                GROUP BY v ORDER BY n DESC, v LIMIT ?
            """
            params += [pointer, pointer]
        with self._read(query.time_range) as cur:
            rows = cur.execute(sql, [*params, query.limit]).fetchall()
        return [AttributeCount(str(text), int(n)) for text, n in rows]

    def get_trace(self, trace_id: bytes, time_hint: TimeRange | None = None) -> Trace | None:
        """Spans ordered by start time, then logs ordered by time, read in one snapshot.

        With ``time_hint``, only the spans that start and the logs that are timed within it."""
        spans, logs = self._trace_items(trace_id, time_hint)
        if not spans and not logs:
            return None
        return Trace(trace_id, tuple(span_record(r) for r in spans), tuple(log_record(r) for r in logs))

    def get_trace_text(self, trace_id: bytes, time_hint: TimeRange | None = None) -> TraceText | None:
        """:meth:`get_trace` with each span's attribute maps as the stored text."""
        spans, logs = self._trace_items(trace_id, time_hint)
        if not spans and not logs:
            return None
        return TraceText(trace_id, tuple(span_text(r) for r in spans), tuple(log_record(r) for r in logs))

    def _trace_items(
        self, trace_id: bytes, time_hint: TimeRange | None
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The trace's span rows and log rows (``SPAN_COLUMNS``, ``LOG_COLUMNS``), one snapshot."""
        where = self._trace_hull(trace_id, list(self._filters), time_hint)
        if where is None:
            return [], []
        with self._read(where) as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                spans = self._trace_rows(cur, trace_id, Signal.TRACES, SPAN_COLUMNS, "span_id", time_hint)
                logs = self._trace_rows(
                    cur, trace_id, Signal.LOGS, LOG_COLUMNS, "observed_time_unix_nano", time_hint
                )
            finally:
                cur.execute("COMMIT")
        return spans, logs

    def _trace_hull(
        self, trace_id: bytes, signals: list[Signal], hint: TimeRange | None = None
    ) -> TimeRange | None:
        """The time range a read of the trace must reach (its index rows are in the ranges
        the filters of ``signals`` name, and each write's spans beside its index rows; with
        ``hint``, the hint), None where the filters say it is not (within ``hint``). Builds
        the filters on first use, from every segment."""
        if not all(self._filters[s].ready for s in signals):
            with self._read() as cur:
                for signal in signals:
                    self._ready_filter(cur, signal)
        ranges = [r for s in signals for r in self._filters[s].ranges(trace_id, hint)]
        if not ranges:
            return None
        if hint is not None:
            # The items read start inside it (``_trace_bounds``), so the segments that meet it
            # hold them, and the index rows of their writes (a write's rows go to one place).
            return hint
        return TimeRange(min(lo for lo, _ in ranges), max(hi for _, hi in ranges) + 1)

    def _ready_filter(self, cur: duckdb.DuckDBPyConnection, signal: Signal) -> TraceFilter:
        """The filter of the signal's trace index, built from the table on first use."""
        found = self._filters[signal]
        if not found.ready:
            table, start, end = _INDEX_COLUMNS[signal]
            with found.building() as needed:
                if needed:
                    found.build(
                        cur.sql(f"SELECT trace_id, {start}, {end} FROM {table}").to_arrow_reader(
                            _FILTER_BUILD_BATCH
                        )
                    )
        return found

    def _trace_bounds(
        self,
        cur: duckdb.DuckDBPyConnection,
        trace_id: bytes,
        signal: Signal,
        hint: TimeRange | None = None,
    ) -> tuple[int, int] | None:
        """Earliest and latest item time of the trace's items of ``signal`` (of those in
        ``hint``), from the index rows in the ranges its filter names."""
        table, start, end = _INDEX_COLUMNS[signal]
        ranges = self._ready_filter(cur, signal).ranges(trace_id, hint)
        sql = f"SELECT min({start}), max({end}) FROM {table} WHERE trace_id = ? AND {start} BETWEEN ? AND ?"
        extra: list[int] = []
        if hint is not None:
            sql += f" AND {start} < ? AND {end} >= ?"
            extra = [hint.end_ns, hint.start_ns]
        found: tuple[int, int] | None = None
        for first, last in ranges:
            row = cur.execute(sql, [trace_id, first, last, *extra]).fetchone()
            if row is None or row[0] is None:
                continue
            lo, hi = int(row[0]), int(row[1])
            found = (lo, hi) if found is None else (min(found[0], lo), max(found[1], hi))
        if found is not None and hint is not None:
            found = (max(found[0], hint.start_ns), min(found[1], hint.end_ns - 1))
            if found[0] > found[1]:
                return None
        return found

    def _trace_rows(
        self,
        cur: duckdb.DuckDBPyConnection,
        trace_id: bytes,
        signal: Signal,
        columns: tuple[str, ...],
        tiebreak: str,
        hint: TimeRange | None = None,
    ) -> list[tuple[Any, ...]]:
        bounds = self._trace_bounds(cur, trace_id, signal, hint)
        if bounds is None:
            return []
        table, _, time_column = DATA_TABLES[signal]
        t = quote(time_column)
        return cur.execute(
            f"SELECT {select_list(columns)} FROM {table} "
            f"WHERE trace_id = ? AND {t} >= ? AND {t} <= ? ORDER BY {t}, {quote(tiebreak)}",
            [trace_id, *bounds],
        ).fetchall()

    def find_logs(self, query: LogQuery) -> list[LogRecord]:
        """Log records matching every condition, newest first."""
        if query.limit <= 0:
            return []
        conditions, params = _time_conditions("time_unix_nano", query.time_range)
        if query.service is not None:
            conditions.append("service_name = ?")
            params.append(query.service)
        if query.min_severity is not None:
            conditions.append("severity_number >= ?")
            params.append(query.min_severity)
        if query.text is not None:
            conditions.append("contains(lower(body), lower(?))")
            params.append(query.text)
        where = query.time_range
        if query.trace_id is not None:
            where = self._trace_hull(query.trace_id, [Signal.LOGS], query.time_range)
            if where is None:
                return []
        with self._read(where) as cur:
            if query.trace_id is not None:
                bounds = self._trace_bounds(cur, query.trace_id, Signal.LOGS)
                if bounds is None:
                    return []
                # The bounds are redundant with trace_id but let zonemaps skip row groups.
                conditions += ["trace_id = ?", "time_unix_nano >= ?", "time_unix_nano <= ?"]
                params += [query.trace_id, *bounds]
            rows = cur.execute(
                f"SELECT {select_list(LOG_COLUMNS)} FROM logs {_where(conditions)} "
                "ORDER BY time_unix_nano DESC, observed_time_unix_nano DESC LIMIT ?",
                [*params, query.limit],
            ).fetchall()
        return [log_record(r) for r in rows]

    def find_metric_points(self, query: MetricQuery) -> list[MetricPoint]:
        """Data points matching every condition, oldest first (ties by metric name)."""
        if query.limit <= 0:
            return []
        conditions, params = _time_conditions("time_unix_nano", query.time_range)
        if query.name is not None:
            conditions.append("metric_name = ?")
            params.append(query.name)
        if query.service is not None:
            conditions.append("service_name = ?")
            params.append(query.service)
        with self._read(query.time_range) as cur:
            rows = cur.execute(
                f"SELECT {select_list(METRIC_COLUMNS)} FROM metric_points {_where(conditions)} "
                "ORDER BY time_unix_nano, metric_name LIMIT ?",
                [*params, query.limit],
            ).fetchall()
        return [metric_point(r) for r in rows]

    def metric_names(self, query: MetricNameQuery) -> list[MetricName]:
        """Metric names with points in the range (and of the service), newest first."""
        if query.limit <= 0:
            return []
        conditions, params = _time_conditions("time_unix_nano", query.time_range)
        if query.service is not None:
            conditions.append("service_name = ?")
            params.append(query.service)
        with self._read(query.time_range) as cur:
            rows = cur.execute(
                "SELECT metric_name, any_value(metric_type), coalesce(any_value(metric_unit), ''), "
                "list(DISTINCT service_name ORDER BY service_name) FILTER (WHERE service_name IS NOT NULL), "
                f"count(*), max(time_unix_nano) FROM metric_points {_where(conditions)} "
                "GROUP BY metric_name ORDER BY max(time_unix_nano) DESC, metric_name LIMIT ?",
                [*params, query.limit],
            ).fetchall()
        return [MetricName(r[0], r[1], r[2], tuple(r[3] or ()), int(r[4]), int(r[5])) for r in rows]

    def metric_series(self, query: MetricSeriesQuery) -> list[MetricSeries]:
        """One metric folded per step and per service (see :class:`MetricAggregation`)."""
        start, end, step = query.time_range.start_ns, query.time_range.end_ns, query.step_ns
        if step <= 0 or end <= start:
            raise UnsupportedQuery("a metric series needs a positive step and a non-empty range")
        steps = -(-(end - start) // step)
        if steps > MAX_METRIC_STEPS:
            raise UnsupportedQuery(
                f"{steps} steps of {step} ns in the range: at most {MAX_METRIC_STEPS}; take a longer step"
            )
        conditions = ["metric_name = ?", "time_unix_nano >= ?", "time_unix_nano < ?"]
        params: list[Any] = [query.name, start, end]
        if query.service is not None:
            conditions.append("service_name = ?")
            params.append(query.service)
        agg = query.aggregation
        value = (
            "coalesce(value, count)"
            if agg is MetricAggregation.RATE
            else "coalesce(value, sum / nullif(count, 0))"
        )
        points = (
            f"SELECT service_name AS service, attributes AS attrs, time_unix_nano AS t, {value} AS v "
            f"FROM metric_points {_where(conditions)}"
        )
        bucket = f"(t - {int(start)}) // {int(step)}"
        if agg is MetricAggregation.RATE:
            sql = (
                f"WITH p AS ({points}), d AS (SELECT service, t, CASE WHEN prev IS NULL THEN NULL "
                "WHEN v >= prev THEN v - prev ELSE v END AS v FROM (SELECT service, t, v, "
                "lag(v) OVER (PARTITION BY service, attrs ORDER BY t) AS prev FROM p)) "
                f"SELECT service, {bucket} AS b, sum(v) / {step / 1e9} FROM d GROUP BY service, b"
            )
        else:
            fold = "count(*)" if agg is MetricAggregation.COUNT else f"{agg.value}(v)"
            sql = f"WITH p AS ({points}) SELECT service, {bucket} AS b, {fold} FROM p GROUP BY service, b"
        with self._read(query.time_range) as cur:
            rows = cur.execute(sql, params).fetchall()
        by_service: dict[str | None, dict[int, float | None]] = {}
        for service, b, v in rows:
            by_service.setdefault(service, {})[int(b)] = None if v is None else float(v)
        return [
            MetricSeries(
                service,
                tuple(MetricStep(start + i * step, values.get(i)) for i in range(steps)),
            )
            for service, values in sorted(by_service.items(), key=lambda kv: kv[0] or "")
        ]

    def stats(self) -> StoreStats:
        """The rows stored: the hot and sealing tables' counted, the segments' as sealed."""
        with self._read(segments=False) as cur:
            row = cur.execute(
                "SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM logs), "
                "(SELECT count(*) FROM metric_points)"
            ).fetchone()
            sealed = self._segments.all()  # in the same state as the tables: the gate holds it
        assert row is not None
        return StoreStats(
            int(row[0]) + sum(s.spans for s in sealed),
            int(row[1]) + sum(s.logs for s in sealed),
            int(row[2]) + sum(s.points for s in sealed),
        )
