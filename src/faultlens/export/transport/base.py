"""The transport interface: the only code that speaks to the network.

A transport sends one serialized protobuf export request (the bytes the receiver got, or
that the SDK encoded) and returns a :class:`~faultlens.export.outcome.SendResult`. It never
raises for anything the destination or the network did; classification happens in
:mod:`faultlens.export.outcome`. It does not retry: retry, breaker and queue sit above it,
so every transport gets them for free.

``send`` may be called from several threads at once; ``close`` is called once, after the
last ``send`` returned.
"""

from __future__ import annotations

from typing import Protocol

from faultlens.export.config import ExporterConfig
from faultlens.export.config import Protocol as WireProtocol
from faultlens.export.outcome import SendResult
from faultlens.types import Signal

USER_AGENT = "faultlens-exporter/0.1"


class Transport(Protocol):
    def send(self, signal: Signal, body: bytes, timeout_s: float) -> SendResult: ...

    def close(self) -> None: ...


def make_transport(config: ExporterConfig) -> Transport:
    """The transport for ``config.protocol``."""
    if config.protocol is WireProtocol.GRPC:
        from faultlens.export.transport.grpc import GrpcTransport

        return GrpcTransport(config)
    from faultlens.export.transport.http import HttpTransport

    return HttpTransport(config, json=config.protocol is WireProtocol.HTTP_JSON)
