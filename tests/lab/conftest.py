"""Shared pieces of the lab tests: an in-process faultlens server, reading what it stored, and
running the ``faultlens`` command as a user does."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faultlens.config.model import Config
from faultlens.lab.netns import lab_names
from faultlens.store.window import WindowReader
from faultlens.testing.inprocess import InProcessServer
from faultlens.types import TimeRange

HERE = Path(__file__).parent
SPAN_SERVER, SPAN_CLIENT = 2, 3  # OTLP SpanKind values
STATUS_ERROR = 2
# What the network namespace tests need (they make real namespaces, links and a bridge).
ROOT = os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("tc") is not None


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


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "faultlens.cli", *args]


def wait_line(proc: subprocess.Popen[str], needle: str, timeout_s: float = 30.0) -> str:
    """Read the process's output until a line with ``needle``; fail with what it printed."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not printed; got {seen}")


def stop_with_ctrl_c(proc: subprocess.Popen[str], timeout_s: float = 60.0) -> tuple[int, str]:
    """SIGINT to ``proc``, then its exit code and what it printed from then on.

    Its output is read to the end meanwhile: a pipe nobody reads fills up (64 KiB) and
    blocks the writer, which then never exits. If it has not exited in ``timeout_s``, it
    is asked for every thread's stack (``lab run`` dumps them on SIGUSR1) and the test
    fails with that and the output.
    """
    assert proc.stdout is not None
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout or ()), daemon=True)
    reader.start()
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2.0)
        printed = "".join(out)
        raise AssertionError(f"not stopped {timeout_s:.0f} s after Ctrl-C; it printed:\n{printed}") from None
    reader.join(10.0)
    return code, "".join(out)


def lab_names_with(prefix: str) -> list[str]:
    """The network namespaces and links on this machine whose names start with ``prefix``."""
    namespaces, links = lab_names()
    return sorted(n for n in [*namespaces, *links] if n.startswith(prefix))
