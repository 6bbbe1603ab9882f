"""Fixtures for the receiver tests: real servers on 127.0.0.1, real sockets, a sink consumer.

The receivers run on their own event loop in a background thread, so that the tests can
use ordinary blocking clients (httpx, grpc, the OpenTelemetry SDK exporters) against them.
Servers are module-scoped (starting one costs ~0.2 s); each test gets a clean sink.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from faultlens.config.model import (
    AdmissionConfig,
    AuthConfig,
    GrpcReceiverConfig,
    HttpReceiverConfig,
    ReceiversConfig,
    TlsConfig,
)
from faultlens.receive import BoundPorts, Receivers
from faultlens.selfmetrics import SelfMetrics
from faultlens.testing.sink import SinkConsumer

T = TypeVar("T")
LIMIT = 1024 * 1024  # max_request_bytes of the test servers
TOKEN = "s3cret-token"


class RunningReceivers:
    """Receivers started on a private event loop in a daemon thread."""

    def __init__(self, receivers: ReceiversConfig, admission: AdmissionConfig) -> None:
        self.sink = SinkConsumer()
        self.metrics = SelfMetrics()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="receivers", daemon=True)
        self._thread.start()
        self.receivers = Receivers(receivers, admission, self.sink, self.metrics)
        self.ports: BoundPorts = self.run(self.receivers.start())
        self.tls = receivers.tls is not None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def http_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.ports.http}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    def counter(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0

    def close(self) -> None:
        if self.loop.is_closed():  # a test closed it already
            return
        self.run(self.receivers.shutdown(5.0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        self.loop.close()


def receivers_config(**overrides: Any) -> ReceiversConfig:
    base: dict[str, Any] = {
        "grpc": GrpcReceiverConfig(port=0),
        "http": HttpReceiverConfig(port=0),
        "max_request_bytes": LIMIT,
    }
    base.update(overrides)
    return ReceiversConfig(**base)


@pytest.fixture(scope="module")
def start_receivers() -> Iterator[Callable[..., RunningReceivers]]:
    """Factory: start receivers with config overrides; all are stopped at module end."""
    started: list[RunningReceivers] = []

    def start(admission: AdmissionConfig | None = None, **overrides: Any) -> RunningReceivers:
        running = RunningReceivers(receivers_config(**overrides), admission or AdmissionConfig())
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


@pytest.fixture(scope="module")
def module_server(start_receivers: Callable[..., RunningReceivers]) -> RunningReceivers:
    return start_receivers(admission=AdmissionConfig(retry_after=2.0))


@pytest.fixture
def server(module_server: RunningReceivers) -> RunningReceivers:
    """The shared plain server, with an empty sink that accepts everything."""
    module_server.sink.allow()
    module_server.sink.clear()
    return module_server


@pytest.fixture(scope="module")
def auth_server(start_receivers: Callable[..., RunningReceivers]) -> RunningReceivers:
    return start_receivers(auth=AuthConfig(bearer_tokens=["other-token", TOKEN]))


@pytest.fixture(scope="module")
def tiny_memory_server(start_receivers: Callable[..., RunningReceivers]) -> RunningReceivers:
    """Soft limit of 1 MiB: any Python process is above it, so every request is refused."""
    return start_receivers(admission=AdmissionConfig(memory_soft_limit_mib=1, retry_after=3.0))


@dataclass(frozen=True)
class Certs:
    """Self-signed certificates made with the ``openssl`` CLI (``cryptography`` is not installed)."""

    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _self_signed(directory: Path, name: str, cn: str, san: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}",
            "-addext", f"subjectAltName={san}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    directory = tmp_path_factory.mktemp("certs")
    server_cert, server_key = _self_signed(directory, "server", "localhost", "DNS:localhost,IP:127.0.0.1")
    client_cert, client_key = _self_signed(directory, "client", "test-client", "DNS:test-client")
    return Certs(server_cert, server_key, client_cert, client_key)


@pytest.fixture(scope="module")
def tls_server(start_receivers: Callable[..., RunningReceivers], certs: Certs) -> RunningReceivers:
    return start_receivers(tls=TlsConfig(cert_file=certs.server_cert, key_file=certs.server_key))


@pytest.fixture(scope="module")
def mtls_server(start_receivers: Callable[..., RunningReceivers], certs: Certs) -> RunningReceivers:
    return start_receivers(
        tls=TlsConfig(
            cert_file=certs.server_cert, key_file=certs.server_key, client_ca_file=certs.client_cert
        )
    )
