"""Trace lookups must not hold memory that grows with the number of traces stored.

DuckDB keeps an ART index whole in memory inside the store's memory limit, so an index on
trace ids made every insert fail once ~1.1M traces were stored under 64 MB (~15 minutes at
10k spans/s). The store finds trace ids by scanning its trace index instead.
"""

from __future__ import annotations

from pathlib import Path

from faultlens.decode import decode_request
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.testing.fresh_ids import FreshIds
from faultlens.testing.payloads import build_trace_request
from faultlens.types import Signal


def test_more_traces_than_an_index_could_hold_in_the_memory_limit_are_stored(tmp_path: Path) -> None:
    # 400k one-span traces: an ART index on their ids needs ~20 MB, more than the 16 MB
    # limit, and failed at ~300k of them.
    store = DuckDBStore(tmp_path / "x.duckdb", memory_limit_mib=16)
    request = build_trace_request(n_spans=10_000, spans_per_trace=1, attrs_per_span=2, seed=1)
    fresh = FreshIds(request.SerializeToString())
    for copy in range(1, 41):
        store.write([decode_request(Signal.TRACES, fresh.copy(copy), json=False)])
    assert store.stats().spans == 400_000
    last = decode_request(Signal.TRACES, fresh.copy(40), json=False).table
    trace_id = last.column("trace_id")[123].as_py()
    trace = store.get_trace(trace_id)
    assert trace is not None and [s.trace_id for s in trace.spans] == [trace_id]
    store.close()


def test_an_older_file_loses_its_trace_id_indexes_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    store = DuckDBStore(path)
    with store.cursor() as cur:
        cur.execute("CREATE INDEX trace_index_trace_id ON trace_index (trace_id)")
        cur.execute("CREATE INDEX log_trace_index_trace_id ON log_trace_index (trace_id)")
    store.close()
    store = DuckDBStore(path)
    with store.cursor() as cur:
        sql = "SELECT index_name FROM duckdb_indexes() WHERE database_name = 'store'"
        indexes = cur.execute(sql).fetchall()
    assert indexes == []
    store.close()
