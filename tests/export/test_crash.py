"""A process killed with SIGKILL in the middle of a backlog delivers every item after restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from faultlens.testing.otlp_backend import Accept, Hang, OtlpBackend

CHILD = Path(__file__).parent / "crash_child.py"
BATCHES, SPANS = 60, 20


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_sigkill_mid_backlog_then_restart_delivers_every_span(
    backend: OtlpBackend, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    backend.default = Hang(0.05)  # slow destination: the backlog is still there when we kill
    producer = _child("produce", str(tmp_path), backend.grpc_endpoint, str(BATCHES), str(SPANS))
    try:
        assert producer.stdout is not None
        line = producer.stdout.readline()
        assert line.strip() == "QUEUED", producer.stderr.read() if producer.stderr else line
        assert backend.wait_for_requests(8, 20)
    finally:
        producer.send_signal(signal.SIGKILL)
        producer.wait(10)
    assert producer.returncode == -signal.SIGKILL
    before = len(backend.unique_span_ids())
    assert 0 < before < BATCHES * SPANS  # killed mid-backlog

    backend.default = Accept()
    drainer = _child("drain", str(tmp_path), backend.grpc_endpoint)
    out, err = drainer.communicate(timeout=60)
    assert out.startswith("DRAINED"), out + err
    health = json.loads(out.split(" ", 1)[1])
    assert health["queue_items"] == 0 and health["dropped_items"] == 0

    ids = backend.span_ids()
    unique = set(ids)
    duplicates = len(ids) - len(unique)
    record_property("duplicate_spans", duplicates)
    print(f"\nSIGKILL test: {len(unique)} unique spans of {BATCHES * SPANS}, {duplicates} duplicates")
    assert len(unique) == BATCHES * SPANS
    assert duplicates <= 2 * SPANS  # at most the batch in flight (and one answered but not acked)
