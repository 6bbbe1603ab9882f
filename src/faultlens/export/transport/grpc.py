"""OTLP/gRPC with raw bytes: the request is sent as serialized, never parsed or re-encoded.

grpcio's own retries are turned off (the exporter retries by the OTLP rules) and its
reconnect backoff is kept short, so that a destination that comes back is used within a
second rather than after grpc's default two-minute ceiling.
"""

from __future__ import annotations

from typing import Any

import grpc

from faultlens.export.config import ExporterConfig, grpc_target
from faultlens.export.otlp import GRPC_METHOD, partial_success
from faultlens.export.outcome import Delivered, SendResult, classify_grpc, connection_failure
from faultlens.export.transport.base import USER_AGENT
from faultlens.types import Signal

_CHANNEL_OPTIONS = (
    ("grpc.enable_retries", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.primary_user_agent", USER_AGENT),
)


def _read(path: Any) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


class GrpcTransport:
    def __init__(self, config: ExporterConfig) -> None:
        self._compression = (
            grpc.Compression.Gzip if config.compression == "gzip" else grpc.Compression.NoCompression
        )
        self._metadata = tuple((k.lower(), v) for k, v in config.headers.items())
        self._channels: dict[str, grpc.Channel] = {}
        self._calls: dict[Signal, Any] = {}
        for signal in config.signals:
            target, secure = grpc_target(config.endpoint_for(signal), config.tls.insecure)
            key = f"{target}|{secure}"
            channel = self._channels.get(key)
            if channel is None:
                if secure:
                    creds = grpc.ssl_channel_credentials(
                        root_certificates=_read(config.tls.ca_file),
                        private_key=_read(config.tls.key_file),
                        certificate_chain=_read(config.tls.cert_file),
                    )
                    channel = grpc.secure_channel(target, creds, options=_CHANNEL_OPTIONS)
                else:
                    channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
                self._channels[key] = channel
            self._calls[signal] = channel.unary_unary(
                GRPC_METHOD[signal], request_serializer=None, response_deserializer=None
            )

    def send(self, signal: Signal, body: bytes, timeout_s: float) -> SendResult:
        try:
            response = self._calls[signal](
                body, timeout=timeout_s, metadata=self._metadata, compression=self._compression
            )
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            details = err.details() if hasattr(err, "details") else str(err)
            status_bin = None
            trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
            for key, value in trailers or ():
                if key == "grpc-status-details-bin":
                    status_bin = value
            if code is None:
                return connection_failure("grpc error", str(details))
            return classify_grpc(code, str(details or ""), status_bin)
        except ValueError as err:  # e.g. a closed channel during shutdown
            return connection_failure("grpc closed", str(err))
        rejected, message = partial_success(signal, response)
        return Delivered(rejected, message)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
