"""Run a real ``faultlens serve`` in a child process, for tests and benchmarks.

The child prints one ``<listener> listening on HOST:PORT`` line per listener once it
serves; :func:`start_server` waits for the three lines, then keeps draining the child's
output in a thread (so a chatty server never blocks on a full pipe) and keeps the lines
for assertions.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

_LISTEN = re.compile(r"^(otlp-grpc|otlp-http|api) listening on (\S+):(\d+)")


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    grpc_port: int
    http_port: int
    api_port: int
    output: list[str]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def stats(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.api}/api/v1/stats", timeout=10).json())

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Run ``faultlens serve`` on free ports and wait until it prints them."""
    cmd = [
        sys.executable, "-m", "faultlens.cli", "serve", "--data-dir", str(data_dir),
        "--otlp-grpc-port", "0", "--otlp-http-port", "0", "--api-port", "0", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
    )
    ports: dict[str, int] = {}
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    seen: list[str] = []
    while len(ports) < 3:
        line = proc.stdout.readline()
        seen.append(line)
        if not line:
            raise RuntimeError(f"faultlens serve exited early with {proc.wait()}: {''.join(seen)[-2000:]}")
        if m := _LISTEN.match(line.strip()):
            ports[m.group(1)] = int(m.group(3))
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("faultlens serve did not print its ports within 60 s")
    output: list[str] = [line.rstrip("\n") for line in seen]  # what it printed while starting too

    def drain() -> None:
        assert proc.stdout is not None
        for rest in proc.stdout:
            output.append(rest.rstrip("\n"))

    threading.Thread(target=drain, name="faultlens-serve-output", daemon=True).start()
    return ServerProcess(proc, ports["otlp-grpc"], ports["otlp-http"], ports["api"], output)
