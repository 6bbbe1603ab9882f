"""The request a span belongs to in its service, and its calls, even on hostile parent links."""

from __future__ import annotations

import pyarrow as pa

from faultlens.decode.schema import SPAN_SCHEMA
from faultlens.graph.frame import span_frame
from faultlens.rca.anchors import call_paths, local_entries
from faultlens.store.testing import span_id, span_row

MS = 1_000_000


def _frame(rows: list[tuple[int, int | None, str, int]]) -> pa.Table:
    spans = [
        span_row(1, sid, parent, start=t * MS, duration=MS, name=f"op{sid}", service_name=svc)
        for sid, parent, svc, t in rows
    ]
    return pa.Table.from_pylist(spans, schema=SPAN_SCHEMA)


def test_a_request_enters_its_service_once_and_its_calls_come_in_start_order() -> None:
    table = _frame(
        [
            (1, None, "a", 0),  # a's entry
            (2, 1, "a", 1),  # a local span below it
            (3, 2, "c", 5),  # a's second call, made from the local span
            (4, 1, "b", 2),  # a's first call
            (5, 4, "b", 3),  # inside b
        ]
    )
    frame = span_frame(table)
    row = {sid: i for i, sid in enumerate(table.column("span_id").to_pylist())}
    entry, paths = call_paths(frame)
    a, b = row[span_id(1)], row[span_id(4)]
    assert entry[row[span_id(2)]] == a and entry[row[span_id(5)]] == b
    assert paths[a] == ("b", "c")


def test_a_cycle_of_parents_ends() -> None:
    frame = span_frame(_frame([(1, 3, "a", 0), (2, 1, "a", 1), (3, 2, "a", 2)]))
    assert len(local_entries(frame)) == 3  # returns, whatever it settles on
