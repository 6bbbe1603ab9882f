"""Storage that fails under a running server loses nothing it acknowledged.

A real ``faultlens serve`` keeps its data on a tmpfs of its own, which the test shrinks to
what is used while a sender keeps sending; the server must refuse (retryable) what it cannot
keep, store every request it answered OK exactly once when there is room again, and keep
serving. Needs root to mount (as CI and the developers' machines are); skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from faultlens.testing.payloads import build_trace_request
from faultlens.testing.process import ServerProcess, start_server

pytestmark = pytest.mark.timeout(300)


def _mount(path: Path, size: str, *options: str) -> None:
    opts = ",".join(["remount", *options, f"size={size}"]) if options else f"size={size}"
    args = (
        ["mount", "-o", opts, str(path)]
        if options
        else ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)]
    )
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        _mount(disk, "48m")
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


class _Sender:
    """Sends 50-span requests tagged ``req-<n>`` until stopped; remembers what was answered OK."""

    def __init__(self, port: int, first: int) -> None:
        self.port = port
        self.n = first
        self.acked: set[int] = set()
        self.refused = 0
        self.other: list[int] = []

    def run(self, stop: threading.Event) -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                req = build_trace_request(n_spans=50, services=1, attrs_per_span=6, seed=self.n)
                for rs in req.resource_spans:
                    for kv in rs.resource.attributes:
                        if kv.key == "service.name":
                            kv.value.string_value = f"req-{self.n}"
                r = client.post(
                    f"http://127.0.0.1:{self.port}/v1/traces",
                    content=req.SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf"},
                )
                if r.status_code == 200:
                    self.acked.add(self.n)
                elif r.status_code in (429, 503):
                    self.refused += 1
                    time.sleep(0.05)
                else:
                    self.other.append(r.status_code)
                self.n += 1


def _send_for(server: ServerProcess, seconds: float, first: int) -> _Sender:
    sender = _Sender(server.http_port, first)
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,))
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(30)
    return sender


def _counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT service_name, count(*) FROM spans GROUP BY service_name").fetchall())
    finally:
        con.close()


def _assert_each_acked_stored_once(disk: Path, acked: set[int]) -> None:
    counts = _counts(disk / "faultlens.duckdb")
    wrong = {n: counts.get(f"req-{n}", 0) for n in acked if counts.get(f"req-{n}", 0) != 50}
    assert not wrong, f"{len(wrong)} of {len(acked)} acknowledged requests not stored exactly once"
    assert all(c == 50 for c in counts.values()), "a request was stored twice or in part"


def _wait_ready(server: ServerProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"{server.api}/readyz", timeout=5).status_code == 200:
            return
        time.sleep(0.5)
    raise AssertionError("the server did not become ready again")


def _used_kib(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024


def test_a_full_disk_loses_nothing_acknowledged(small_disk: Path) -> None:
    server = start_server(small_disk)
    acked: set[int] = set()
    try:
        acked |= _send_for(server, 2.0, 0).acked
        # The disk fills up under the server: no room beyond what is used now, and a little.
        _mount(small_disk, f"{_used_kib(small_disk) + 256}k", "rw")
        full = _send_for(server, 6.0, 100_000)
        acked |= full.acked
        assert full.refused > 0, "nothing was refused while the disk was full"
        assert not full.other, f"unexpected statuses while the disk was full: {set(full.other)}"
        assert httpx.get(f"{server.api}/healthz", timeout=5).status_code == 200
        _mount(small_disk, "256m", "rw")  # room again
        _wait_ready(server)
        again = _send_for(server, 1.0, 200_000)
        assert again.acked, "nothing was accepted once there was room again"
        acked |= again.acked
    finally:
        code = server.stop()
    assert code == 0, "\n".join(server.output[-30:])
    _assert_each_acked_stored_once(small_disk, acked)
