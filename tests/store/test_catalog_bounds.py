"""The operations catalog stays bounded per service when span names carry ids."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from faultlens.decode import decode_request
from faultlens.decode.base import DecodedBatch
from faultlens.store import DuckDBStore
from faultlens.store.duckdb_store import MAX_OPERATIONS_PER_SERVICE
from faultlens.testing.payloads import build_trace_request
from faultlens.types import Signal


def _spans(names: list[str], service: str) -> DecodedBatch:
    """One span per name, all of ``service`` (realistic spans otherwise)."""
    body = build_trace_request(len(names), services=2, seed=len(names)).SerializeToString()
    table = decode_request(Signal.TRACES, body, json=False).table.slice(0, len(names))
    for column, values in (("name", names), ("service_name", [service] * len(names))):
        i = table.schema.get_field_index(column)
        table = table.set_column(i, column, pa.array(values, table.schema.field(i).type))
    return DecodedBatch(Signal.TRACES, table)


def test_a_service_lists_at_most_the_bound_of_operations_and_others_still_list_theirs(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "faultlens.duckdb")
    try:
        bound = MAX_OPERATIONS_PER_SERVICE
        store.write([_spans([f"GET /user/{i}" for i in range(bound - 100)], "users")])
        # One write that crosses the bound, then another past it.
        store.write([_spans([f"GET /user/{i}" for i in range(bound - 100, bound + 2_000)], "users")])
        store.write([_spans([f"GET /user/{i}" for i in range(bound + 2_000, bound + 3_000)], "users")])
        listed = store.operations("users")
        assert len(listed) == bound
        assert store.stats().spans == bound + 3_000  # every span is stored all the same
        # Another service is not held back by the first.
        store.write([_spans(["GET /cart", "POST /cart"], "cart")])
        assert [op.name for op in store.operations("cart")] == ["GET /cart", "POST /cart"]
        # Operations listed before are still there, those past the bound are not.
        names = {op.name for op in listed}
        assert "GET /user/0" in names and f"GET /user/{bound + 2_500}" not in names
    finally:
        store.close()
