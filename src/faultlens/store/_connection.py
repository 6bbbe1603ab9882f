"""One DuckDB connection shared by threads, each call on a cursor of its own.

A DuckDB connection must not be used by two threads at once; cursors of it may. Every
DuckDB-backed piece of the store (the telemetry tables, the analysis tables, window reads)
therefore keeps one connection and hands out a fresh cursor per call, with DuckDB's errors
turned into :class:`~faultlens.errors.StoreError`. This is that mechanism, written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from faultlens.errors import StoreError


class SharedConnection:
    """``name`` says what is behind the connection in error messages ("store", ...)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str, path: Path) -> None:
        self._con = con
        self._name = name
        self._path = path
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
