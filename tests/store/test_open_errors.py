"""A store that cannot open says why in one line (damaged, busy, unreadable), can be moved
aside with ``faultlens store quarantine``, and a WAL whose end DuckDB discards is reported."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faultlens.cli.store import QUARANTINE_DIR, quarantine_store
from faultlens.decode.request import decode_bytes
from faultlens.errors import StoreError
from faultlens.store import DB_FILENAME, DuckDBStore
from faultlens.store._connection import WAL_SUFFIX, inspect_wal
from faultlens.store.window import open_read_only
from faultlens.testing.payloads import build_trace_request
from faultlens.types import Signal

SPANS_PER_WRITE = 1000


def _killed_writer(path: Path, writes: int) -> None:
    """A child process writes ``writes`` requests of spans, then dies without a checkpoint,
    so the rows are in the WAL only."""
    code = textwrap.dedent(
        f"""
        import os
        from faultlens.decode.request import decode_bytes
        from faultlens.store import DuckDBStore
        from faultlens.testing.payloads import build_trace_request
        from faultlens.types import Signal
        store = DuckDBStore({str(path)!r})
        for i in range({writes}):
            req = build_trace_request(n_spans={SPANS_PER_WRITE}, seed=i)
            store.write([decode_bytes(Signal.TRACES, req.SerializeToString())])
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert Path(str(path) + WAL_SUFFIX).stat().st_size > 0


def _holder(path: Path) -> subprocess.Popen[str]:
    """A child process that holds the store open until killed."""
    code = (
        f"from faultlens.store import DuckDBStore; s = DuckDBStore({str(path)!r}); "
        "print('open', flush=True); input()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


def _open_error(path: Path) -> str:
    with pytest.raises(StoreError) as raised:
        DuckDBStore(path)
    message = str(raised.value)
    assert "\n" not in message
    return message


# --- damaged, busy, unreadable ------------------------------------------------------------


def test_a_file_of_random_bytes_is_named_damaged_with_the_quarantine_hint(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    path.write_bytes(os.urandom(100_000))
    message = _open_error(path)
    assert "damaged or not a faultlens store" in message
    assert f"faultlens store quarantine --data-dir {tmp_path}" in message
    assert "another faultlens" not in message


def test_a_sqlite_file_is_refused_as_not_a_store_without_loading_an_extension(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (a)")
    db.commit()
    db.close()
    message = _open_error(path)
    assert "not a valid DuckDB database file" in message
    assert "extension" not in message


def test_a_store_file_whose_blocks_fail_their_checksums_is_named_damaged(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    _killed_writer(path, 3)
    DuckDBStore(path).close()  # checkpoints the WAL into the file
    data = bytearray(path.read_bytes())
    data[5000:9000] = os.urandom(4000)  # past the file headers: the first blocks (metadata)
    path.write_bytes(bytes(data))
    message = _open_error(path)
    assert "damaged or not a faultlens store" in message and "checksum" in message


def test_a_wal_damaged_in_the_middle_is_named_and_not_blamed_on_a_lock(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    _killed_writer(path, 4)
    wal = Path(str(path) + WAL_SUFFIX)
    data = bytearray(wal.read_bytes())
    third = len(data) // 3
    data[third : third + 5000] = os.urandom(5000)
    wal.write_bytes(bytes(data))
    message = _open_error(path)
    assert "damaged or not a faultlens store" in message and "WAL" in message
    assert "in use" not in message


def test_a_store_held_by_another_process_names_that_process(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    proc = _holder(path)
    try:
        message = _open_error(path)
    finally:
        proc.kill()
        proc.wait()
    assert f"in use by process {proc.pid}" in message
    assert "damaged" not in message


def test_a_directory_where_the_file_should_be_cannot_be_opened(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    path.mkdir()
    message = _open_error(path)
    assert message.startswith(f"cannot open the store {path}: ")
    assert "directory" in message


def test_a_damaged_store_opened_read_only_for_rca_gets_the_same_one_line(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).write_bytes(os.urandom(50_000))
    with (
        pytest.raises(StoreError, match="damaged or not a faultlens store") as raised,
        open_read_only(tmp_path),
    ):
        pass
    assert "faultlens store quarantine" in str(raised.value)


# --- faultlens serve and faultlens store quarantine, as processes --------------------------


def _faultlens(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faultlens.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_serve_on_a_damaged_store_exits_1_with_one_line_and_quarantine_lets_it_start(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    path.write_bytes(os.urandom(50_000))
    ports = ("--otlp-grpc-port", "0", "--otlp-http-port", "0", "--api-port", "0")
    served = _faultlens("serve", "--data-dir", str(tmp_path), *ports)
    assert served.returncode == 1
    assert "Traceback" not in served.stderr
    errors = [line for line in served.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "damaged or not a faultlens store" in errors[0]
    assert "faultlens store quarantine" in errors[0]

    moved = _faultlens("store", "quarantine", "--data-dir", str(tmp_path))
    assert moved.returncode == 0, moved.stderr
    aside = list((tmp_path / QUARANTINE_DIR).glob(f"*/{DB_FILENAME}"))
    assert len(aside) == 1 and aside[0].stat().st_size == 50_000
    assert not path.exists()
    store = DuckDBStore(path)  # what serve opens next: a new, empty store
    try:
        assert store.stats().spans == 0
    finally:
        store.close()


def test_quarantine_moves_the_wal_too_and_refuses_a_store_in_use(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    _killed_writer(path, 1)
    done = quarantine_store(tmp_path, now=0.0)
    assert done.directory == tmp_path / QUARANTINE_DIR / "19700101T000000Z"
    assert sorted(p.name for p in done.moved) == [DB_FILENAME, DB_FILENAME + WAL_SUFFIX]
    assert not path.exists() and not Path(str(path) + WAL_SUFFIX).exists()
    DuckDBStore(path).close()  # a second store, quarantined in the same second, goes beside it
    assert quarantine_store(tmp_path, now=0.0).directory.name == "19700101T000000Z-2"

    DuckDBStore(path).close()
    proc = _holder(path)
    try:
        with pytest.raises(StoreError, match="open in a running process"):
            quarantine_store(tmp_path)
    finally:
        proc.kill()
        proc.wait()
    assert path.exists()
    with pytest.raises(StoreError, match="no faultlens store"):
        quarantine_store(tmp_path / "nowhere")


# --- the WAL at open ------------------------------------------------------------------------


def test_a_torn_wal_tail_is_reported_with_what_was_replayed_and_what_was_discarded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / DB_FILENAME
    _killed_writer(path, 10)
    wal = Path(str(path) + WAL_SUFFIX)
    whole = inspect_wal(path)
    assert whole is not None and whole.torn_bytes == 0 and whole.entries
    wal.write_bytes(wal.read_bytes()[: int(whole.size * 0.7)])  # a write cut off by a crash
    torn = inspect_wal(path)
    assert torn is not None and torn.torn_bytes and torn.entries and torn.entries < whole.entries
    with caplog.at_level(logging.INFO, logger="faultlens.store._connection"):
        store = DuckDBStore(path)
    try:
        spans = store.stats().spans
    finally:
        store.close()
    assert spans < 10 * SPANS_PER_WRITE  # DuckDB did drop the end
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"ended in {torn.torn_bytes} bytes that are not a whole entry" in warnings[0]
    assert f"replayed its {torn.entries} whole entries" in warnings[0]


def test_a_whole_wal_replayed_at_open_is_only_noted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / DB_FILENAME
    _killed_writer(path, 2)
    with caplog.at_level(logging.INFO, logger="faultlens.store._connection"):
        store = DuckDBStore(path)
    try:
        assert store.stats().spans == 2 * SPANS_PER_WRITE
    finally:
        store.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(
        "replayed the store's WAL" in r.getMessage() and "whole" in r.getMessage() for r in caplog.records
    )
    assert inspect_wal(path) is None  # checkpointed at close


def test_a_second_opener_in_the_process_reports_no_replay_of_the_live_wal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / DB_FILENAME
    first = DuckDBStore(path)
    try:
        first.write([decode_bytes(Signal.TRACES, build_trace_request(n_spans=200).SerializeToString())])
        assert inspect_wal(path) is not None  # the live WAL of the open file
        with caplog.at_level(logging.INFO, logger="faultlens.store._connection"):
            second = DuckDBStore(path)
        second.close()
    finally:
        first.close()
    assert not [r for r in caplog.records if "WAL" in r.getMessage()]
