"""One DuckDB connection shared by threads, each call on a cursor of its own.

A DuckDB connection must not be used by two threads at once; cursors of it may. Every
DuckDB-backed piece of the store (the telemetry tables, the analysis tables, window reads)
therefore keeps one connection and hands out a fresh cursor per call, with DuckDB's errors
turned into :class:`~faultlens.errors.StoreError`. This is that mechanism, written once.

:func:`open_store_file` is how a writer opens the file: every opener of one path in a
process shares one DuckDB instance (a named in-memory database with the file attached),
because the row group size can only be chosen when attaching, and small row groups are
what make the writer's inserts cheap (see :data:`ROW_GROUP_SIZE`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from faultlens.errors import StoreError

# Rows per DuckDB row group in the store file (DuckDB's default is 122,880). An insert of at
# least one row group is compressed and written straight to the file; a smaller one goes
# through the WAL and its row group is compressed again at every checkpoint until full.
# Measured on decoded 1,000-span requests (flushes of 20k rows, one DuckDB thread): ~12.5
# CPU-us per span at 10,240 rows per group against ~35 at 122,880. Smaller groups also give
# finer zonemaps, so a trace's time bounds skip more rows. Not stored in the file: it
# applies to what this process writes.
ROW_GROUP_SIZE = 10_240
ALIAS = "store"  # the attached file's name inside the instance


def open_store_file(path: Path, *, row_group_size: int = ROW_GROUP_SIZE) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the DuckDB file at ``path``, opened for writing.

    Openers of the same path in this process get connections to one instance (DuckDB lets a
    file be open once per process), so the store and the analysis tables share its memory
    limit and see each other's commits. Raises ``duckdb.Error`` as ``duckdb.connect`` would.
    """
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:20]
    con = duckdb.connect(f":memory:faultlens-{key}")
    try:
        literal = str(path).replace("'", "''")
        con.execute(f"ATTACH IF NOT EXISTS '{literal}' AS {ALIAS} (ROW_GROUP_SIZE {int(row_group_size)})")
        con.execute(f"USE {ALIAS}")
    except BaseException:
        con.close()
        raise
    return con


class SharedConnection:
    """``name`` says what is behind the connection in error messages ("store", ...).

    ``database`` is the attached database every cursor starts in (a cursor is a new
    connection to the instance, and starts in its default database otherwise); ``None``
    for a connection opened on the file directly.
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, name: str, path: Path, *, database: str | None = None
    ) -> None:
        self._con = con
        self._name = name
        self._path = path
        self._use = f"USE {database}" if database else None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one call, so that concurrent calls never share state."""
        if self._closed:
            raise StoreError(f"the {self._name} is closed")
        try:
            cur = self._con.cursor()
        except duckdb.Error as e:
            raise StoreError(f"the {self._name} is not usable: {e}") from e
        try:
            if self._use:
                cur.execute(self._use)
            yield cur
        except duckdb.Error as e:
            raise StoreError(f"{self._name} query failed: {e}") from e
        finally:
            cur.close()

    def close(self) -> None:
        """Close the connection; safe to call twice. The caller serialises it with writes."""
        if self._closed:
            return
        self._closed = True
        try:
            self._con.close()
        except duckdb.Error as e:
            raise StoreError(f"closing the {self._name} at {self._path}: {e}") from e
