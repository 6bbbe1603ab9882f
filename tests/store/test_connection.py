from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

from faultlens.errors import StoreError
from faultlens.store._connection import ALIAS, SharedConnection, open_store_file, refresh_store_file


def _db(tmp_path: Path) -> SharedConnection:
    path = tmp_path / "x.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (v INTEGER)")
    return SharedConnection(con, "test store", path)


def test_a_failed_query_is_a_store_error_naming_what_failed(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with pytest.raises(StoreError, match="test store query failed"), db.cursor() as cur:
        cur.execute("SELECT * FROM no_such_table")
    with db.cursor() as cur:  # the connection is still usable afterwards
        assert cur.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_threads_use_cursors_of_one_connection_at_once(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.cursor() as cur:
        cur.execute("INSERT INTO t SELECT range FROM range(1000)")
    sums: list[int] = []

    def read() -> None:
        for _ in range(20):
            with db.cursor() as c:
                row = c.execute("SELECT sum(v) FROM t").fetchone()
                assert row is not None
                sums.append(int(row[0]))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sums == [499500] * 80


def test_close_is_idempotent_and_later_cursors_are_refused(tmp_path: Path) -> None:
    db = _db(tmp_path)
    db.close()
    db.close()
    assert db.closed
    with pytest.raises(StoreError, match="the test store is closed"), db.cursor():
        pass


def test_a_refresh_from_inside_a_call_gives_up_at_once(tmp_path: Path) -> None:
    """It would wait for its own call to end; it must neither hang nor hold others back."""
    path = tmp_path / "x.duckdb"
    con = open_store_file(path)
    db = SharedConnection(con, "test store", path, database=ALIAS)
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (v INTEGER)")
        assert refresh_store_file(con, path, timeout_s=30.0) is False
        with db.cursor() as inner:  # a nested call still goes through
            assert inner.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert refresh_store_file(con, path) is True
    with db.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM t").fetchone() == (0,)
    db.close()


def test_stores_opened_and_closed_leave_no_gate_or_read_budget_behind(tmp_path: Path) -> None:
    import gc

    from faultlens.store import DuckDBStore
    from faultlens.store._connection import read_budget, shared_state_count

    gc.collect()
    before = shared_state_count()
    held = DuckDBStore(tmp_path / "held.duckdb")
    try:
        for i in range(30):
            store = DuckDBStore(tmp_path / f"{i}.duckdb")
            store.close()
            del store
        gc.collect()
        # Only the store still open keeps its own, and all its readers share one.
        assert shared_state_count() == before + 1
        assert read_budget(held.path) is read_budget(held.path)
    finally:
        held.close()
    del held
    gc.collect()
    assert shared_state_count() == before
