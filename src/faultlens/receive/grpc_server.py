"""OTLP/gRPC receiver: ``Export`` of TraceService, MetricsService and LogsService on grpc.aio.

The methods are registered with a generic handler and no request deserializer, so the
handler receives the raw request bytes. That keeps the order the design asks for: bearer
token and admission are checked before anything is parsed, the one parse happens in
:mod:`faultlens.decode`, and a malformed message is answered ``INVALID_ARGUMENT`` with the
parser's reason instead of grpc's opaque deserialization ``INTERNAL``.

Size: grpc itself refuses a message over ``grpc.max_receive_message_length`` (set to
``max_request_bytes``; grpc measures it after gzip inflation) with ``RESOURCE_EXHAUSTED``,
before the handler runs; such refusals happen inside grpc and are not visible to the
counters. The handler repeats the check so the limit holds whatever grpc does.

Throttling follows the OTLP specification: ``UNAVAILABLE`` with a ``google.rpc.RetryInfo``
detail in the standard ``grpc-status-details-bin`` trailer (a serialized
``google.rpc.Status``). The same RetryInfo is also sent alone as
``google.rpc.retryinfo-bin``, the per-message trailer that the OpenTelemetry Python and
Java exporters read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from faultlens.config.model import ReceiversConfig
from faultlens.errors import OtlpStatus, PayloadTooLarge, RequestError, cannot_listen, status_for
from faultlens.receive.ingest import Ingest
from faultlens.receive.status import retry_info, rich_status
from faultlens.receive.tls import grpc_server_credentials
from faultlens.types import Signal, Transport

__all__ = ["SERVICES", "OtlpGrpcService", "create_grpc_server", "status_trailers"]

log = logging.getLogger(__name__)

SERVICES: dict[Signal, str] = {
    Signal.TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
}

Handler = Callable[[bytes, Any], Awaitable[bytes]]


def status_trailers(status: OtlpStatus, error: BaseException | None = None) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying the rich status (RetryInfo, BadRequest) when it has details."""
    rich = rich_status(status, error)
    if not rich.details:
        return ()
    trailers = [("grpc-status-details-bin", rich.SerializeToString())]
    if status.retry_after_s is not None:
        trailers.append(("google.rpc.retryinfo-bin", retry_info(status.retry_after_s).SerializeToString()))
    return tuple(trailers)


class OtlpGrpcService:
    """The three ``Export`` methods as grpc generic handlers over one :class:`Ingest`."""

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    def handlers(self) -> list[Any]:
        return [
            grpc.method_handlers_generic_handler(
                service,
                {
                    "Export": grpc.unary_unary_rpc_method_handler(
                        self._export_for(signal), request_deserializer=None, response_serializer=None
                    )
                },
            )
            for signal, service in SERVICES.items()
        ]

    def _export_for(self, signal: Signal) -> Handler:
        async def export(request: bytes, context: Any) -> bytes:
            return await self._export(signal, request, context)

        export.__name__ = f"export_{signal.value}"
        return export

    async def _export(self, signal: Signal, request: bytes, context: Any) -> bytes:
        ingest = self._ingest
        try:
            ingest.auth.check_metadata(context.invocation_metadata())
            if len(request) > ingest.max_request_bytes:
                raise PayloadTooLarge(
                    f"request of {len(request)} bytes is larger than the limit of "
                    f"{ingest.max_request_bytes} bytes"
                )
            with ingest.admission.admit(len(request)):
                return await ingest.export(signal, Transport.GRPC, request, json=False)
        except RequestError as error:
            refusal: BaseException = error
        except Exception as error:
            log.exception("OTLP/gRPC %s Export failed", SERVICES[signal])
            refusal = error
        ingest.refuse(Transport.GRPC, signal, refusal)
        status = status_for(refusal)
        await context.abort(
            status.grpc_code, status.message, trailing_metadata=status_trailers(status, refusal)
        )
        raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


_LISTENER = "OTLP/gRPC receiver"
_SETTING = "receivers.grpc.port, --otlp-grpc-port"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def create_grpc_server(ingest: Ingest, config: ReceiversConfig) -> tuple[Any, int]:
    """A grpc.aio server with the OTLP services, bound but not started; returns it and its port.

    Port 0 picks a free port. Raises :class:`OSError` naming the address when it cannot be
    bound.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            # Never share a fixed port with another process silently.
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers(OtlpGrpcService(ingest).handlers())
    address = _address(config.grpc.host, config.grpc.port)
    try:
        if config.tls is not None:
            port = server.add_secure_port(address, grpc_server_credentials(config.tls))
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as e:  # grpc: "Failed to bind to address ..."
        raise cannot_listen(_LISTENER, config.grpc.host, config.grpc.port, _SETTING, e) from e
    if not port:
        raise cannot_listen(_LISTENER, config.grpc.host, config.grpc.port, _SETTING, RuntimeError())
    return server, int(port)
