"""Which listeners a config exposes beyond loopback without authentication.

``faultlens serve`` prints a warning for each at start (and logs it); with
``api.require_auth_beyond_loopback`` an exposed, unauthenticated query API refuses to start
(:func:`check_api_exposure`, called again by the API's wiring so that an embedded server
refuses too). A listener counts as authenticated when it has bearer tokens or requires
client certificates (mTLS). The API's tokens are ``api.auth``, or the receivers' when that
is unset (:func:`api_auth`).
"""

from __future__ import annotations

import ipaddress

from faultlens.config.model import AuthConfig, Config, TlsConfig
from faultlens.errors import ConfigError

__all__ = ["LOOPBACK_NAMES", "api_auth", "check_api_exposure", "exposure_warnings", "is_loopback"]

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``[::1]``, ``localhost``: reachable from this machine only."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


def api_auth(config: Config) -> AuthConfig:
    """The API's tokens: ``api.auth`` when set, else ``receivers.auth``."""
    return config.api.auth if config.api.auth is not None else config.receivers.auth


def _where(host: str, port: int) -> str:
    return f"{host}:{port}" if port else f"{host} (a free port)"


def _authenticated(auth: AuthConfig, tls: TlsConfig | None) -> bool:
    return auth.enabled or (tls is not None and tls.client_ca_file is not None)


def _api_exposed(config: Config) -> bool:
    api = config.api
    return api.enabled and not is_loopback(api.host) and not _authenticated(api_auth(config), api.tls)


def exposure_warnings(config: Config) -> list[str]:
    """One sentence per listener bound beyond loopback with no authentication."""
    out: list[str] = []
    r = config.receivers
    open_receivers = not _authenticated(r.auth, r.tls)
    for name, listener in (("OTLP/gRPC receiver", r.grpc), ("OTLP/HTTP receiver", r.http)):
        if listener.enabled and open_receivers and not is_loopback(listener.host):
            out.append(
                f"the {name} listens on {_where(listener.host, listener.port)}, beyond loopback, with no "
                "authentication: anyone who can reach it can send data "
                "(set receivers.auth.bearer_tokens or receivers.tls.client_ca_file)"
            )
    if _api_exposed(config):
        out.append(
            f"the query API listens on {_where(config.api.host, config.api.port)}, beyond loopback, with no "
            "authentication: anyone who can reach it can read every stored span, log and metric "
            "(set api.auth.bearer_tokens or receivers.auth.bearer_tokens; "
            "api.require_auth_beyond_loopback: true refuses to start like this)"
        )
    return out


def check_api_exposure(config: Config) -> None:
    """Raise :class:`ConfigError` when the API would serve beyond loopback without auth and
    ``api.require_auth_beyond_loopback`` forbids it."""
    if config.api.require_auth_beyond_loopback and _api_exposed(config):
        raise ConfigError(
            "api.require_auth_beyond_loopback",
            f"the query API would listen on {config.api.host} (beyond loopback) with no authentication; "
            "set api.auth.bearer_tokens (or receivers.auth.bearer_tokens) or bind api.host to 127.0.0.1",
        )
