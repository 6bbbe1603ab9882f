"""The store re-attaches its file every ``refresh_rows`` rows, to free the row-group
metadata DuckDB keeps for as long as a file stays attached; calls on the file meanwhile
wait for it instead of failing."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import pytest

from faultlens.decode import decode_request
from faultlens.decode.base import DecodedBatch
from faultlens.errors import StoreError
from faultlens.store.analysis_base import ErrorGroupQuery
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.testing.fresh_ids import FreshIds
from faultlens.testing.payloads import build_trace_request
from faultlens.types import Signal


def _batches(n: int, spans: int = 1_000) -> list[DecodedBatch]:
    fresh = FreshIds(build_trace_request(n_spans=spans, attrs_per_span=4, seed=2).SerializeToString())
    return [decode_request(Signal.TRACES, fresh.copy(i + 1), json=False) for i in range(n)]


def test_calls_from_other_threads_wait_for_the_refreshes_and_never_fail(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    store = DuckDBStore(path, refresh_rows=3_000)
    analysis = DuckDBAnalysisStore(path)  # a second opener of the same file, as in the server
    batches = _batches(30)
    errors: list[str] = []
    reads = [0]
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                store.stats()
                store.services()
                analysis.error_groups(ErrorGroupQuery())
                reads[0] += 1
            except StoreError as e:
                errors.append(str(e))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for b in batches:
        store.write([b])
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert reads[0] > 0
    assert store.refreshes == 10
    assert store.stats().spans == 30_000
    trace_id = batches[-1].table.column("trace_id")[0].as_py()
    trace = store.get_trace(trace_id)
    assert trace is not None and all(s.trace_id == trace_id for s in trace.spans)
    analysis.close()
    store.close()


def _heap_in_use() -> int:
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in names.split(" ")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Mallinfo2
    return int(libc.mallinfo2().uordblks)


def test_the_heap_does_not_grow_with_the_rows_written(tmp_path: Path) -> None:
    try:
        _heap_in_use()
    except (OSError, AttributeError):
        pytest.skip("needs glibc's mallinfo2 to read the heap")
    batches = _batches(40, spans=10_000)
    growth = {}
    for refresh_rows in (10**12, 100_000):  # never, then every 100k rows
        store = DuckDBStore(tmp_path / f"{refresh_rows}.duckdb", refresh_rows=refresh_rows)
        store.write([batches[0]])
        before = _heap_in_use()
        for b in batches[1:]:
            store.write([b])
        growth[refresh_rows] = _heap_in_use() - before
        assert store.stats().spans == 400_000
        store.close()
    # 390k spans leave ~5 MiB of row-group metadata on the heap when the file stays attached.
    assert growth[10**12] > 2 * 2**20, growth
    assert growth[100_000] < growth[10**12] / 3, growth
