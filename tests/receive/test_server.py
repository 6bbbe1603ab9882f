"""``Receivers`` lifecycle: ports, idempotent start/shutdown, bounded shutdown, bad config."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from conftest import receivers_config
from faultlens.config.model import AdmissionConfig, GrpcReceiverConfig, HttpReceiverConfig, TlsConfig
from faultlens.errors import ConfigError
from faultlens.receive import Receivers
from faultlens.selfmetrics import SelfMetrics
from faultlens.testing.sink import SinkConsumer


def make(**overrides: object) -> Receivers:
    return Receivers(receivers_config(**overrides), AdmissionConfig(), SinkConsumer(), SelfMetrics())


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_start_binds_free_ports_and_shutdown_is_idempotent() -> None:
    async def scenario() -> None:
        receivers = make()
        ports = await receivers.start()
        assert ports.grpc and ports.http and ports.grpc != ports.http
        assert await receivers.start() == ports  # already started: same ports
        assert listening(ports.grpc) and listening(ports.http)
        await asyncio.gather(receivers.shutdown(2), receivers.shutdown(2))
        await receivers.shutdown(2)
        assert not listening(ports.grpc) and not listening(ports.http)
        with pytest.raises(RuntimeError):
            await receivers.start()

    asyncio.run(scenario())


def test_shutdown_before_start_is_harmless() -> None:
    asyncio.run(make().shutdown(1))


def test_disabled_receiver_has_no_port() -> None:
    async def scenario() -> None:
        receivers = make(grpc=GrpcReceiverConfig(enabled=False))
        ports = await receivers.start()
        assert ports.grpc is None and ports.http
        await receivers.shutdown(1)

    asyncio.run(scenario())


def test_port_in_use_fails_start_and_leaves_nothing_listening() -> None:
    async def scenario() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            receivers = make(http=HttpReceiverConfig(port=port))
            with pytest.raises(OSError):
                await receivers.start()
            assert receivers.ports is None
            await receivers.shutdown(1)

    asyncio.run(scenario())


def test_shutdown_is_bounded_when_a_client_never_finishes_its_request() -> None:
    async def scenario() -> None:
        receivers = make()
        ports = await receivers.start()
        _, writer = await asyncio.open_connection("127.0.0.1", ports.http)
        writer.write(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 1000\r\n\r\npartial"
        )
        await writer.drain()
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await receivers.shutdown(0.5)
        assert time.monotonic() - started < 3.0
        writer.close()

    asyncio.run(scenario())


def test_unreadable_tls_file_names_the_config_key(tmp_path: Path) -> None:
    tls = TlsConfig(cert_file=tmp_path / "missing.pem", key_file=tmp_path / "missing.key")

    async def scenario() -> None:
        receivers = make(tls=tls)
        with pytest.raises(ConfigError) as info:
            await receivers.start()
        assert info.value.key.startswith("receivers.tls.")

    asyncio.run(scenario())
