"""The memory watch: off unless asked; when asked, a real server writes what its memory holds."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from faultlens.server_memwatch import ENV_DIR, ENV_EVERY, MemoryWatch
from faultlens.testing.payloads import build_trace_request
from faultlens.testing.process import start_server

BENCH = Path(__file__).resolve().parents[1] / "bench"
PROTOBUF = {"content-type": "application/x-protobuf"}


def test_off_unless_its_directory_is_set() -> None:
    assert MemoryWatch.from_env({}) is None
    assert MemoryWatch.from_env({ENV_DIR: ""}) is None


def test_a_period_that_is_not_a_positive_number_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=ENV_EVERY):
        MemoryWatch.from_env({ENV_DIR: str(tmp_path), ENV_EVERY: "soon"})
    with pytest.raises(ValueError, match=ENV_EVERY):
        MemoryWatch.from_env({ENV_DIR: str(tmp_path), ENV_EVERY: "0"})


def test_a_serving_process_writes_samples_and_snapshots_that_memdiff_compares(tmp_path: Path) -> None:
    watch = tmp_path / "watch"
    env = {ENV_DIR: str(watch), ENV_EVERY: "1", "PYTHONTRACEMALLOC": "1"}
    server = start_server(tmp_path / "data", env=env)
    try:
        for seed in range(3):
            body = build_trace_request(200, services=3, seed=seed).SerializeToString()
            r = httpx.post(f"http://127.0.0.1:{server.http_port}/v1/traces", content=body, headers=PROTOBUF)
            assert r.status_code == 200
        deadline = time.monotonic() + 30
        while len(list(watch.glob("tracemalloc-*.pickle"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        assert server.stop() == 0
    samples = [json.loads(line) for line in (watch / "memory.jsonl").read_text().splitlines()]
    assert len(samples) >= 2
    last = samples[-1]
    assert last["rss"] > last["anon"] > 0
    assert last["malloc"]["arena"] > 0
    assert last["python"]["traced"] > 0
    assert last["duckdb"]["total"] > 0 and last["duckdb"]["memory_limit"]
    out = subprocess.run(
        [sys.executable, str(BENCH / "memdiff.py"), str(watch), "--from-s", "0", "--top", "5"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    diff = json.loads(out.stdout)
    assert diff["from"]["file"] != diff["to"]["file"]
    assert len(diff["grew"]) == 5 and all(r["where"] for r in diff["grew"])
    assert diff["memory"][1]["rss_mib"] > 0
