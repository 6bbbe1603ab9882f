"""Sealed segments: the store's older rows in files written once, attached only by the reads
that reach them.

DuckDB keeps the metadata of a file's row groups in memory while the file is attached and
written (~4.5 KB per 10,240-row group, and no way to unload it: docs/benchmarks.md), so a
single file holding every span of the retention made the server's memory grow with what it
stored, and retention was a ``DELETE`` of millions of rows. So, as Tempo's blocks and
ClickHouse's parts, the store writes into the *hot* tables of the store file and, every
``segment_rows`` rows, seals them into a file of their own::

    faultlens.duckdb               hot: spans, logs, metric_points, trace_index, log_trace_index
                                   (+ the catalog, the intake bookkeeping, the analysis tables)
    segments/seg-00000001.duckdb   sealed: the same five tables and their bounds (segment_info)
    segments/seg-00000002.duckdb   ...

**Sealing**, in three steps, each safe against a crash:

1. between two writes, alone on the file: the five hot tables are renamed ``*_sealing`` and
   created again, empty; the ``sealing`` table records the segment's id, in the same
   transaction;
2. on a thread of its own while writes go on: the ``*_sealing`` tables are copied into
   ``seg-N.duckdb.tmp`` (DuckDB's own 122,880-row groups, so a segment's metadata is small),
   with their bounds, checkpointed, detached, synced and renamed ``seg-N.duckdb``;
3. alone on the file: the ``*_sealing`` tables are dropped and ``sealing`` emptied, in one
   transaction, and the segment is listed.

A segment file is whole once it has its final name, so the files are the list: at open every
``seg-N.duckdb`` is a segment, and a ``.tmp`` is a step 2 cut short (deleted). A ``sealing``
row whose segment exists is a step 3 cut short (finished at open); one whose segment does not
is a step 2 to do again. Until step 3 commits, reads take the rows from ``*_sealing`` and not
from the segment, and after it only from the segment: no row is lost or read twice.

**Reading**: a read names the time range it needs; the segments whose bounds meet it are
attached read-only for the read (shared by the reads that need them at once, detached when
the last one ends) and the five tables are, on the read's cursor, views over the hot table,
the sealing one and the segments' (``UNION ALL BY NAME``: a segment written before a column
was added reads it as null). DuckDB prunes each part of the union by its own zonemaps.

**Retention** deletes a segment once everything in it is older than the cutoff: data are kept
at least the retention, and at most one segment's span longer.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from faultlens.fsync import sync_directory, sync_file
from faultlens.store._schema import SEALED_TABLES, SEALED_TIME, quote, sealed_table_ddl
from faultlens.types import TimeRange

__all__ = [
    "SEGMENTS_DIR",
    "Segment",
    "Segments",
    "begin_seal",
    "drop_sealing",
    "segment_path",
    "write_segment",
]

log = logging.getLogger(__name__)

SEGMENTS_DIR = "segments"
SEALING_SUFFIX = "_sealing"
_NAME = re.compile(r"^seg-(\d+)\.duckdb$")
_TMP = ".tmp"
_WAL = ".wal"
_INFO_COLUMNS = "start_ns, end_ns, spans, logs, points"
# Rows per row group in a segment: DuckDB's default, so that a segment's metadata is small.
# The memory a seal takes did not depend on it, nor on copying in chunks (docs/benchmarks.md).
SEGMENT_ROW_GROUP = 122_880


@dataclass(frozen=True, slots=True)
class Segment:
    """One sealed segment: its file, the least and greatest time of its rows (inclusive;
    each table's :data:`~faultlens.store._schema.SEALED_TIME`) and its rows per signal."""

    id: int
    path: Path
    start_ns: int
    end_ns: int
    spans: int
    logs: int
    points: int

    @property
    def alias(self) -> str:
        return f"seg_{self.id}"

    def meets(self, time_range: TimeRange | None) -> bool:
        """Whether a read of ``time_range`` (None: everything) may need this segment."""
        return time_range is None or (
            self.start_ns < time_range.end_ns and self.end_ns >= time_range.start_ns
        )


def segment_path(directory: Path, segment_id: int) -> Path:
    return directory / f"seg-{segment_id:08d}.duckdb"


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def begin_seal(cur: duckdb.DuckDBPyConnection, segment_id: int) -> None:
    """Step 1, on a cursor of the store file alone on it: the hot tables become ``*_sealing``
    and new empty ones take their names, with the segment's id in ``sealing``; one transaction."""
    cur.execute("BEGIN TRANSACTION")
    try:
        for table in SEALED_TABLES:
            cur.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(table + SEALING_SUFFIX)}")
            cur.execute(sealed_table_ddl(table))
        cur.execute("INSERT INTO sealing VALUES (?)", [segment_id])
        cur.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):  # a failed COMMIT ended it already: keep its own error
            cur.execute("ROLLBACK")
        raise


def drop_sealing(cur: duckdb.DuckDBPyConnection) -> None:
    """Step 3, on a cursor of the store file alone on it: the ``*_sealing`` tables go, with
    the ``sealing`` row; one transaction."""
    cur.execute("BEGIN TRANSACTION")
    try:
        for table in SEALED_TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {quote(table + SEALING_SUFFIX)}")
        cur.execute("DELETE FROM sealing")
        cur.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):  # a failed COMMIT ended it already: keep its own error
            cur.execute("ROLLBACK")
        raise


def write_segment(cur: duckdb.DuckDBPyConnection, main_db: str, directory: Path, segment_id: int) -> Segment:
    """Step 2: copy the ``*_sealing`` tables of ``main_db`` into the segment file and give
    it its final name once it is whole and synced. ``cur``: a cursor of the store's instance."""
    directory.mkdir(parents=True, exist_ok=True)
    final = segment_path(directory, segment_id)
    tmp = final.with_name(final.name + _TMP)
    alias = f"sealing_{segment_id}"
    cur.execute(f"DETACH DATABASE IF EXISTS {alias}")  # a try before that could not detach it
    for leftover in (tmp, Path(str(tmp) + _WAL)):
        leftover.unlink(missing_ok=True)
    cur.execute(f"ATTACH {_literal(tmp)} AS {alias} (TYPE DUCKDB, ROW_GROUP_SIZE {SEGMENT_ROW_GROUP})")
    try:
        cur.execute(f"USE {alias}")
        bounds: list[str] = []
        for table in SEALED_TABLES:
            cur.execute(sealed_table_ddl(table))
            source = f"{main_db}.main.{quote(table + SEALING_SUFFIX)}"
            cur.execute(f"INSERT INTO {alias}.main.{quote(table)} BY NAME SELECT * FROM {source}")
            time_column = quote(SEALED_TIME[table])
            bounds.append(f"SELECT min({time_column}) AS lo, max({time_column}) AS hi FROM {quote(table)}")
        union = " UNION ALL ".join(bounds)
        cur.execute(
            f"CREATE TABLE segment_info AS SELECT "
            f"(SELECT min(lo) FROM ({union})) AS start_ns, (SELECT max(hi) FROM ({union})) AS end_ns, "
            "(SELECT count(*) FROM spans) AS spans, (SELECT count(*) FROM logs) AS logs, "
            "(SELECT count(*) FROM metric_points) AS points"
        )
        row = cur.execute(f"SELECT {_INFO_COLUMNS} FROM segment_info").fetchone()
        cur.execute(f"USE {main_db}")
        cur.execute(f"CHECKPOINT {alias}")
    finally:
        try:
            cur.execute(f"USE {main_db}")
            cur.execute(f"DETACH {alias}")
        except duckdb.Error as e:
            log.error("cannot detach the segment being written %s: %s", tmp, e)
    assert row is not None
    sync_file(tmp)
    os.replace(tmp, final)
    sync_directory(directory)
    return _segment(segment_id, final, row)


def _segment(segment_id: int, path: Path, row: tuple[Any, ...]) -> Segment:
    start, end, spans, logs, points = (None if v is None else int(v) for v in row)
    if start is None or end is None:  # nothing in it: bounds that meet no read
        start, end = 0, -1
    return Segment(segment_id, path, start, end, spans or 0, logs or 0, points or 0)


class Segments:
    """The sealed segments of one store, and which of them reads have attached.

    ``main_db``: the name of the store file in its DuckDB instance. Attachments belong to the
    instance, so every store of one file in a process shares one of these
    (:func:`~faultlens.store._connection.shared_segments`). Thread-safe.
    """

    def __init__(self, main_db: str, directory: Path) -> None:
        self.main_db = main_db
        self.directory = directory
        self._lock = threading.Lock()
        self._segments: dict[int, Segment] = {}
        self._refs: dict[int, int] = {}
        self._doomed: dict[int, Segment] = {}  # expired while attached: deleted when released
        # The id whose rows are in the *_sealing tables (steps 1-3), None between seals.
        self.sealing: int | None = None

    # --- what exists ---------------------------------------------------------------------

    def discover(self, cur: duckdb.DuckDBPyConnection, *, tidy: bool) -> None:
        """List the segment files of the directory, reading each one's bounds through a
        connection of ``cur``'s instance. ``tidy`` (the writer's open): delete what a cut
        step 2 left (``.tmp`` files and their WAL)."""
        found: dict[int, Segment] = {}
        if self.directory.is_dir():
            for path in sorted(self.directory.iterdir()):
                if path.name.endswith((_TMP, _TMP + _WAL)):
                    if tidy:
                        log.warning(
                            "deleting %s: a segment whose sealing was cut short (it is sealed again)", path
                        )
                        path.unlink(missing_ok=True)
                    continue
                match = _NAME.match(path.name)
                if match is None:
                    continue
                segment_id = int(match.group(1))
                found[segment_id] = _read_info(cur, segment_id, path)
        with self._lock:
            self._segments = found

    def all(self) -> list[Segment]:
        with self._lock:
            return sorted(self._segments.values(), key=lambda s: s.id)

    def next_id(self) -> int:
        with self._lock:
            ids = [*self._segments, *self._doomed, *([self.sealing] if self.sealing is not None else [])]
        return max(ids, default=0) + 1

    def add(self, segment: Segment) -> None:
        with self._lock:
            self._segments[segment.id] = segment

    def expire(self, cutoff_ns: int) -> list[Segment]:
        """Take the segments whose every row is older than ``cutoff_ns`` off the list and
        delete their files (those attached by a read, once it ends)."""
        gone: list[Segment] = []
        with self._lock:
            for segment in list(self._segments.values()):
                if segment.end_ns < cutoff_ns:
                    del self._segments[segment.id]
                    gone.append(segment)
                    if self._refs.get(segment.id):
                        self._doomed[segment.id] = segment
        for segment in gone:
            if segment.id not in self._doomed:
                _delete(segment)
        return gone

    # --- reading -------------------------------------------------------------------------

    @contextmanager
    def reading(
        self, cur: duckdb.DuckDBPyConnection, time_range: TimeRange | None, *, segments: bool = True
    ) -> Iterator[None]:
        """For one read on ``cur`` (a cursor of the instance, in ``main_db``): the segments
        meeting ``time_range`` (None: all; none without ``segments``) attached, and the
        sealed tables as views over them, the hot tables and the sealing ones; undone when
        the block ends. The sealing state must not change while the block runs (the store's
        calls hold its gate)."""
        wanted: list[Segment] = []
        with self._lock:
            for segment in self._segments.values():
                if not (segments and segment.meets(time_range)):
                    continue
                try:
                    if not self._refs.get(segment.id):
                        self._attach(cur, segment)
                except duckdb.Error:
                    self._drop_refs(cur, wanted)  # the ones taken go back
                    raise
                self._refs[segment.id] = self._refs.get(segment.id, 0) + 1
                wanted.append(segment)
        views: list[str] = []
        try:
            views = self._views(cur, [s.alias for s in sorted(wanted, key=lambda s: s.id)])
            yield
        finally:
            try:
                for view in views:
                    cur.execute(f"DROP VIEW IF EXISTS temp.main.{quote(view)}")
            except duckdb.Error:
                pass  # the cursor's transaction failed; its temporary views go with it
            self._release(cur, wanted)

    def _views(self, cur: duckdb.DuckDBPyConnection, aliases: list[str]) -> list[str]:
        if not aliases and self.sealing is None:
            return []
        for table in SEALED_TABLES:
            sources = [f"{self.main_db}.main.{quote(table)}"]
            if self.sealing is not None:
                sources.append(f"{self.main_db}.main.{quote(table + SEALING_SUFFIX)}")
            sources += [f"{alias}.main.{quote(table)}" for alias in aliases]
            union = " UNION ALL BY NAME ".join(f"SELECT * FROM {s}" for s in sources)
            cur.execute(f"CREATE OR REPLACE TEMP VIEW {quote(table)} AS {union}")
        return list(SEALED_TABLES)

    @staticmethod
    def _attach(cur: duckdb.DuckDBPyConnection, segment: Segment) -> None:
        with closing(cur.cursor()) as c:
            c.execute(
                f"ATTACH IF NOT EXISTS {_literal(segment.path)} AS {segment.alias} (TYPE DUCKDB, READ_ONLY)"
            )

    def _release(self, cur: duckdb.DuckDBPyConnection, segments: list[Segment]) -> None:
        with self._lock:
            self._drop_refs(cur, segments)

    def _drop_refs(self, cur: duckdb.DuckDBPyConnection, segments: list[Segment]) -> None:
        """One reference less to each of ``segments``, detaching those that had their last;
        under the lock."""
        for segment in segments:
            self._refs[segment.id] -= 1
            if self._refs[segment.id]:
                continue
            del self._refs[segment.id]
            try:
                with closing(cur.cursor()) as c:  # ``cur`` may be in a failed transaction
                    c.execute(f"DETACH DATABASE IF EXISTS {segment.alias}")
            except duckdb.Error as e:
                log.error("cannot detach the segment %s: %s", segment.path, e)
            doomed = self._doomed.pop(segment.id, None)
            if doomed is not None:
                _delete(doomed)

    def attached(self) -> int:
        """How many segments reads hold attached now."""
        with self._lock:
            return len(self._refs)


def _read_info(cur: duckdb.DuckDBPyConnection, segment_id: int, path: Path) -> Segment:
    alias = f"info_{segment_id}"
    with closing(cur.cursor()) as c:
        c.execute(f"ATTACH {_literal(path)} AS {alias} (TYPE DUCKDB, READ_ONLY)")
        try:
            row = c.execute(f"SELECT {_INFO_COLUMNS} FROM {alias}.main.segment_info").fetchone()
        finally:
            c.execute(f"DETACH {alias}")
    if row is None:
        raise duckdb.IOException(f"the segment {path} has no segment_info row")
    return _segment(segment_id, path, row)


def _delete(segment: Segment) -> None:
    for path in (segment.path, Path(str(segment.path) + _WAL)):
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            log.error("cannot delete the expired segment %s: %s", path, e)
    sync_directory(segment.path.parent)
