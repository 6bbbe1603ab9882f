"""TLS for both receivers from one :class:`~faultlens.config.model.TlsConfig`.

With ``client_ca_file`` set, clients must present a certificate signed by that CA (mTLS);
without it the server authenticates itself only. Files are read when a server starts, so a
missing or unreadable file fails ``start()`` with an error naming the config key.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import grpc

from faultlens.config.model import TlsConfig
from faultlens.errors import ConfigError

__all__ = ["grpc_server_credentials", "uvicorn_ssl_options"]


def _read(path: Path, key: str, section: str = "receivers.tls") -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{section}.{key}", f"cannot read {path}: {e.strerror or e}") from None


def grpc_server_credentials(tls: TlsConfig) -> Any:
    """``grpc.ServerCredentials`` for ``add_secure_port``."""
    key = _read(tls.key_file, "key_file")
    cert = _read(tls.cert_file, "cert_file")
    client_ca = _read(tls.client_ca_file, "client_ca_file") if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def uvicorn_ssl_options(tls: TlsConfig, section: str = "receivers.tls") -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``; checks the files are readable first.

    ``section`` is the config key an unreadable file is reported under (``api.tls`` too).
    """
    _read(tls.key_file, "key_file", section)
    _read(tls.cert_file, "cert_file", section)
    options: dict[str, Any] = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
    if tls.client_ca_file is not None:
        _read(tls.client_ca_file, "client_ca_file", section)
        options["ssl_ca_certs"] = str(tls.client_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options
