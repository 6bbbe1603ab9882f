"""An acknowledgement means the data survives ``kill -9``: real processes, unique request tags.

Every request carries its own service name (``req-<n>``), so after the run each request's
rows can be counted in the store file: a request that was answered OK must be there exactly
once, and no request may be there twice (one that was in flight when the process died was
never answered; it may be there once, or not at all).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from google.protobuf.message import Message

from faultlens.store.window import open_read_only
from faultlens.testing.payloads import (
    build_logs_request,
    build_metrics_request,
    build_trace_request,
    to_otlp_json,
)
from faultlens.testing.process import ServerProcess, start_server
from faultlens.types import TimeRange

TRIALS = 20
SEALING = {"FAULTLENS_STORE__SEGMENT_ROWS": "3000"}


def _tag(message: Message, resources: str, name: str) -> None:
    for r in getattr(message, resources):
        for kv in r.resource.attributes:
            if kv.key == "service.name":
                kv.value.string_value = name


# path, table, a request of n's rows and its row count
_SIGNALS: list[tuple[str, str, Callable[[int], tuple[Message, int]]]] = []


def _traces(n: int) -> tuple[Message, int]:
    req = build_trace_request(n_spans=40, services=1, attrs_per_span=4, seed=n)
    _tag(req, "resource_spans", f"req-{n}")
    return req, 40


def _logs(n: int) -> tuple[Message, int]:
    req = build_logs_request(n_records=30, services=1, seed=n)
    _tag(req, "resource_logs", f"req-{n}")
    return req, 30


def _metrics(n: int) -> tuple[Message, int]:
    req = build_metrics_request(services=1, points_per_metric=2, seed=n)
    _tag(req, "resource_metrics", f"req-{n}")
    return req, 14


_SIGNALS = [
    ("/v1/traces", "spans", _traces),
    ("/v1/logs", "logs", _logs),
    ("/v1/metrics", "metric_points", _metrics),
]


@dataclass
class _Sender:
    """Sends requests one after the other until the server stops answering."""

    port: int
    start: int
    acked: dict[int, tuple[str, int]] = field(default_factory=dict)  # n -> (table, rows)
    sent: dict[int, tuple[str, int]] = field(default_factory=dict)
    next_n: int = 0

    def run(self, stop: threading.Event) -> None:
        n = self.start
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                path, table, build = _SIGNALS[n % len(_SIGNALS)]
                message, rows = build(n)
                # Every other round of signals goes as OTLP/JSON, which the intake log keeps
                # as the protobuf its decoding made of it.
                as_json = (n // len(_SIGNALS)) % 2 == 1
                self.sent[n] = (table, rows)
                try:
                    r = client.post(
                        f"http://127.0.0.1:{self.port}{path}",
                        content=to_otlp_json(message) if as_json else message.SerializeToString(),
                        headers={"Content-Type": "application/json" if as_json else "application/x-protobuf"},
                    )
                except httpx.HTTPError:
                    break
                if r.status_code == 200:
                    self.acked[n] = (table, rows)
                n += 1
        self.next_n = n


def _rows_per_request(data_dir: Path) -> dict[tuple[str, str], int]:
    """Rows per (table, service) in the store of ``data_dir``, its sealed segments included,
    read as the store reads them (a seal the kills cut short counted once)."""
    with open_read_only(data_dir, max_rows=10_000_000) as reader:
        window = reader.read(TimeRange(0, 2**63 - 1))
    out: dict[tuple[str, str], int] = {}
    for table, rows in (("spans", window.spans), ("logs", window.logs), ("metric_points", window.metrics)):
        for service, count in Counter(rows.column("service_name").to_pylist()).items():
            out[(table, service)] = count
    return out


def _wait_stored(server: ServerProcess, timeout_s: float = 30.0) -> None:
    """Until the store's counts stop moving (the writer flushes every ~2 s)."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, int] = {}
    while time.monotonic() < deadline:
        stats = server.stats()
        if stats == last:
            return
        last = stats
        time.sleep(2.5)


@pytest.mark.timeout(600)
def test_kill_9_at_random_points_loses_and_duplicates_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(7)
    acked: dict[int, tuple[str, int]] = {}
    sent: dict[int, tuple[str, int]] = {}
    n = 0
    sealed = False
    for _ in range(TRIALS):
        # Small segments, so that kills land in seals too (store/_segments.py).
        server = start_server(tmp_path, env=SEALING)
        sender = _Sender(server.http_port, n)
        stop = threading.Event()
        thread = threading.Thread(target=sender.run, args=(stop,))
        thread.start()
        time.sleep(rng.uniform(0.3, 1.5))
        server.proc.kill()  # SIGKILL: no flush, no shutdown
        server.proc.wait()
        stop.set()
        thread.join(10)
        acked.update(sender.acked)
        sent.update(sender.sent)
        n = sender.next_n + 1
        sealed = sealed or any((tmp_path / "segments").glob("seg-*.duckdb"))
    server = start_server(tmp_path, env=SEALING)
    try:
        _wait_stored(server)
    finally:
        assert server.stop() == 0
    counts = _rows_per_request(tmp_path)
    assert sealed, "no seal ran: the trials did not test the segments"
    assert len(acked) > TRIALS * 5, "the sender got too few answers to test anything"
    lost = {k: v for k, v in acked.items() if counts.get((v[0], f"req-{k}"), 0) != v[1]}
    assert not lost, (
        f"{len(lost)} of {len(acked)} acknowledged requests not stored exactly once: {list(lost)[:5]}"
    )
    doubled = {k for k, (table, rows) in sent.items() if counts.get((table, f"req-{k}"), 0) > rows}
    assert not doubled, f"requests stored twice: {sorted(doubled)[:5]}"


def test_a_torn_tail_is_cut_off_and_the_rest_replayed(tmp_path: Path) -> None:
    """The process dies in the middle of writing a record: the records before it are kept."""
    server = start_server(tmp_path)
    try:
        with httpx.Client(timeout=5) as client:
            for n in range(3):
                body = _traces(n)[0].SerializeToString()
                r = client.post(
                    f"http://127.0.0.1:{server.http_port}/v1/traces",
                    content=body,
                    headers={"Content-Type": "application/x-protobuf"},
                )
                assert r.status_code == 200
    finally:
        server.proc.kill()
        server.proc.wait()
    segments = sorted((tmp_path / "intake").glob("*.log"))
    assert segments
    with open(segments[-1], "ab") as f:
        f.write(b"FLI1" + b"\x00" * 11)  # a header cut short
    server = start_server(tmp_path)
    try:
        _wait_stored(server)
        assert server.stats()["spans"] >= 120
    finally:
        assert server.stop() == 0
    assert any("torn or corrupt" in line for line in server.output)
    counts = _rows_per_request(tmp_path)
    assert [counts.get(("spans", f"req-{n}")) for n in range(3)] == [40, 40, 40]
