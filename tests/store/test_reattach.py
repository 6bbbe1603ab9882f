"""The store recovers when DuckDB invalidates its file (a checkpoint that could not be
written), without losing what was committed or what the writer retries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faultlens.decode import decode_request
from faultlens.errors import StoreError
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.testing.payloads import build_trace_request
from faultlens.types import Signal

SCRIPT = Path(__file__).with_name("_full_disk_writer.py")


def test_a_checkpoint_on_a_full_disk_invalidates_the_file_and_the_store_reattaches_it(
    tmp_path: Path,
) -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "x.duckdb")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    # The failure is the one this guards against, reported with its cause (not the
    # "no transaction is active" of a rollback after the failed commit).
    assert "has been invalidated" in got["invalidated"], got["invalidated"]
    assert "Checkpoint failed" in got["invalidated"]
    assert "re-attached the store file" in out.stderr
    # Once there is room again every batch is written at the first attempt, the failed one
    # included, and each exactly once: the failed commit left nothing behind.
    assert got["attempts_needed"] == [1, 1, 1, 1, 1]
    assert got["spans"] == got["written_batches"] * got["spans_per_batch"]
    assert got["spans_seen_by_other_opener"] == got["spans"]


def test_a_detached_file_is_attached_again_by_the_next_call(tmp_path: Path) -> None:
    """An earlier re-attach that detached the file but could not attach it again."""
    store = DuckDBStore(tmp_path / "x.duckdb")
    body = build_trace_request(n_spans=100, seed=1).SerializeToString()
    store.write([decode_request(Signal.TRACES, body, json=False)])
    with store.cursor() as cur:
        cur.execute("USE memory")
        cur.execute("DETACH store")
    with pytest.raises(StoreError, match="store"):
        store.stats()
    assert store.stats().spans == 100
    store.close()
