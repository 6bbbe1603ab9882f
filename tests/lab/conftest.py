"""Shared pieces of the lab tests: an in-process faultlens server and reading what it stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faultlens.config.model import Config
from faultlens.store.window import WindowReader
from faultlens.testing.inprocess import InProcessServer
from faultlens.types import TimeRange

HERE = Path(__file__).parent
SPAN_SERVER, SPAN_CLIENT = 2, 3  # OTLP SpanKind values
STATUS_ERROR = 2


def server_config(data_dir: Path) -> Config:
    return Config.model_validate(
        {
            "store": {"data_dir": str(data_dir), "flush_interval": 0.5},
            "receivers": {"grpc": {"port": 0}, "http": {"port": 0}},
            "api": {"port": 0},
        }
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InProcessServer]:
    srv = InProcessServer(server_config(tmp_path / "server"))
    try:
        yield srv
    finally:
        srv.stop()


def settle(srv: InProcessServer, timeout_s: float = 15.0) -> dict[str, int]:
    """Wait until the store's counts stop growing (everything sent has been written)."""
    last: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now: dict[str, int] = srv.get("/api/v1/stats")
        if now == last and now.get("spans"):
            return now
        last = now
        time.sleep(1.2)
    return last


def stored(srv: InProcessServer) -> dict[str, list[dict[str, Any]]]:
    """Every span, log record and metric point the server stored, as rows."""
    store = srv.server.store
    assert store is not None
    window = WindowReader.for_store(store).read(TimeRange(0, 2**62))
    return {
        "spans": window.spans.to_pylist(),
        "logs": window.logs.to_pylist(),
        "metrics": window.metrics.to_pylist(),
    }
