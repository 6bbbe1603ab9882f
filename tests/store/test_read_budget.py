"""Reads of a store file share a budget: they queue instead of failing for memory, and one
that waits too long is refused as retryable (503 + Retry-After at the API)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from faultlens.config.model import Config, StoreConfig
from faultlens.decode.request import decode_bytes
from faultlens.errors import StoreBusy
from faultlens.store import DuckDBStore, TraceQuery
from faultlens.store._connection import ReadBudget
from faultlens.store.window import read_window
from faultlens.testing.inprocess import InProcessServer
from faultlens.testing.payloads import build_trace_request
from faultlens.types import Signal, TimeRange

S = 1_000_000_000


def test_reads_past_the_slots_wait_their_turn_and_none_runs_beside_the_others() -> None:
    budget = ReadBudget(slots=2, wait_s=10.0)
    running = 0
    most = 0
    lock = threading.Lock()

    def read() -> None:
        nonlocal running, most
        with budget.slot():
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            with lock:
                running -= 1

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 2


def test_a_read_that_waits_too_long_is_refused_as_retryable_and_a_nested_read_never_waits() -> None:
    budget = ReadBudget(slots=1, wait_s=0.2, retry_after_s=3.0)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with budget.slot(), budget.slot():  # a read inside a read takes no second slot
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        with pytest.raises(StoreBusy, match="busy") as refused, budget.slot():
            pass
        assert refused.value.retry_after_s == 3.0
        assert time.monotonic() - started >= 0.2
    finally:
        release.set()
        holder.join()
    with budget.slot():  # free again
        pass


@pytest.fixture(scope="module")
def full_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store file holding 120k spans (one request's spans written 12 times)."""
    path = tmp_path_factory.mktemp("budget") / "s.duckdb"
    store = DuckDBStore(path)
    batch = decode_bytes(Signal.TRACES, build_trace_request(n_spans=10_000, seed=1).SerializeToString())
    try:
        for _ in range(12):
            store.write([batch])
    finally:
        store.close()
    return path


def test_eight_readers_and_a_writer_on_a_full_store_all_succeed(full_store: Path) -> None:
    """Eight threads of heavy reads while a writer writes: at 64 MiB, with every read at once,
    some failed "could not allocate block"; queued by the budget, none fails and the writer
    keeps writing."""
    store = DuckDBStore(full_store)
    store._reads.wait_s = 300.0  # this test is about memory, not about the wait (a busy host)
    errors: list[BaseException] = []
    reads = [0]
    writes = [0]
    stop = time.monotonic() + 3.0
    window = TimeRange(time.time_ns() - 120 * S, time.time_ns())

    def reader(k: int) -> None:
        while time.monotonic() < stop:
            try:
                if k % 2:
                    store.find_traces(TraceQuery(limit=200, min_duration_ns=1, status_error=k % 4 == 1))
                else:
                    read_window(store, window, signals=frozenset({Signal.TRACES}))
                reads[0] += 1
            except BaseException as e:
                errors.append(e)

    more = decode_bytes(Signal.TRACES, build_trace_request(n_spans=5000, seed=2).SerializeToString())

    def writer() -> None:
        while time.monotonic() < stop:
            try:
                store.write([more])
                writes[0] += 1
            except BaseException as e:
                errors.append(e)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    threads.append(threading.Thread(target=writer))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        store.close()
    assert not errors, errors[:3]
    assert reads[0] >= 8 and writes[0] >= 1


def test_the_api_answers_503_with_retry_after_when_a_read_waits_too_long(tmp_path: Path) -> None:
    cfg = Config(store=StoreConfig(data_dir=tmp_path), analysis={"enabled": False})
    server = InProcessServer(cfg)
    try:
        store = server.server.store
        assert isinstance(store, DuckDBStore)  # its read budget is the DuckDB backend's
        budget = store._reads
        budget.wait_s = 0.2
        holders = [threading.Event() for _ in range(budget.slots)]
        release = threading.Event()

        def hold(ready: threading.Event) -> None:
            with budget.slot():
                ready.set()
                release.wait(10)

        threads = [threading.Thread(target=hold, args=(h,)) for h in holders]
        for t in threads:
            t.start()
        try:
            assert all(h.wait(5) for h in holders)
            r = server.api.get("/api/v1/services")
            assert r.status_code == 503
            assert r.headers["Retry-After"] == "1"
            assert "busy" in r.json()["detail"]
        finally:
            release.set()
            for t in threads:
                t.join()
        assert server.get("/api/v1/services") is not None
    finally:
        server.stop()
