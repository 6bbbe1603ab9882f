"""Typed configuration: the models and how they are loaded."""

from faultlens.config.load import load_config
from faultlens.config.model import (
    AdmissionConfig,
    ApiConfig,
    AuthConfig,
    Config,
    GrpcReceiverConfig,
    HttpReceiverConfig,
    ReceiversConfig,
    StoreConfig,
    TlsConfig,
    parse_duration_s,
)

__all__ = [
    "AdmissionConfig",
    "ApiConfig",
    "AuthConfig",
    "Config",
    "GrpcReceiverConfig",
    "HttpReceiverConfig",
    "ReceiversConfig",
    "StoreConfig",
    "TlsConfig",
    "load_config",
    "parse_duration_s",
]
