"""Who may talk to the query API (and the UI on the same port): Host allow-list, bearer auth.

Every HTTP request passes :class:`SecurityMiddleware` before any route, in this order::

    /healthz, /readyz ─────────────────────────────────────────────> route (probes stay open;
                                                                      /readyz shows no secret)
    anything else ─> Host allowed? ─no─> 421 Misdirected Request
                          │yes
                          └─> bearer token good (or auth off)? ─no─> 401 + WWW-Authenticate: Bearer
                                   │yes
                                   └─> route (/api/v1/*, /metrics, /docs, /openapi.json, UI)

**Host allow-list (DNS rebinding).** A web page on another site can make the browser resolve
its own name to 127.0.0.1 and then read a loopback-only API "same-origin". The browser
still sends the attacker's name in ``Host``, so only requests naming this server are
answered: the loopback names (``localhost``, ``127.0.0.1``, ``[::1]``), the bound
``api.host``, any IP address when bound to a wildcard address (an address cannot be
rebound: the page's origin would be that address), and ``api.allowed_hosts`` (``*`` allows
all). Ports are ignored. A refused name gets **421 Misdirected Request**: RFC 9110 defines
it for a request whose authority this server will not answer for, which is exactly the
case; Django and Starlette's TrustedHostMiddleware answer 400 and Jupyter 403, but 421
tells a client it reached the wrong server rather than that it sent a bad request or lacks
permission, and is what the MCP SDKs' DNS-rebinding protection answers.

**Auth.** The tokens are ``api.auth``, or the receivers' (``receivers.auth``) when that is
unset (:func:`faultlens.config.exposure.api_auth`), checked by the receivers'
:class:`~faultlens.receive.auth.BearerAuth` (constant-time compare, one implementation).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from faultlens.config.exposure import api_auth, check_api_exposure, is_loopback
from faultlens.config.model import AuthConfig, Config
from faultlens.errors import Unauthenticated
from faultlens.receive.auth import BearerAuth

__all__ = ["OPEN_PATHS", "ApiSecurity", "SecurityMiddleware", "host_name"]

# Probes reach these without a token and under any Host (a kubelet sends the pod's address).
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})


def host_name(header: str) -> str:
    """``Example.com:8080`` -> ``example.com``; ``[::1]:80`` -> ``::1``; no port, lower case."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ApiSecurity:
    """What :class:`SecurityMiddleware` enforces. The default: no auth, loopback names only."""

    auth: AuthConfig = field(default_factory=AuthConfig)
    bind_host: str = "127.0.0.1"
    allowed_hosts: Sequence[str] = ()

    @classmethod
    def from_config(cls, config: Config) -> ApiSecurity:
        """The API's security from the whole config; raises :class:`~faultlens.errors.ConfigError`
        when ``api.require_auth_beyond_loopback`` forbids serving as configured."""
        check_api_exposure(config)
        return cls(api_auth(config), config.api.host, tuple(config.api.allowed_hosts))

    def host_allowed(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` header names this server (module docstring)."""
        if header is None:  # HTTP/1.0 without Host: not a browser, so not a rebinding
            return True
        name = host_name(header)
        if is_loopback(name) or name == host_name(self.bind_host):
            return True
        if self.bind_host.strip("[]") in _WILDCARD_BINDS and _is_ip(name):
            return True
        for allowed in self.allowed_hosts:
            if allowed == "*" or name == allowed:
                return True
            if allowed.startswith("*.") and name.endswith(allowed[1:]):
                return True
        return False


class SecurityMiddleware:
    """The ASGI gate in front of the whole API (see the module docstring)."""

    def __init__(self, app: ASGIApp, security: ApiSecurity) -> None:
        self.app = app
        self._security = security
        self._auth = BearerAuth(security.auth)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        host: str | None = None
        authorization: str | None = None
        for name, value in scope["headers"]:
            if name == b"host" and host is None:
                host = value.decode("latin-1")
            elif name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
        if not self._security.host_allowed(host):
            detail = (
                f"Host {host!r} is not a name of this server; add it to api.allowed_hosts "
                "to allow it (refused to stop DNS-rebinding attacks)"
            )
            await _refuse(scope, receive, send, 421, detail)
            return
        try:
            self._auth.check(authorization)
        except Unauthenticated as e:
            await _refuse(scope, receive, send, 401, str(e), {"WWW-Authenticate": 'Bearer realm="faultlens"'})
            return
        await self.app(scope, receive, send)


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    if scope["type"] == "websocket":  # refuse the handshake (ASGI: close before accept -> 403)
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    await JSONResponse({"detail": detail}, status_code=status, headers=headers)(scope, receive, send)
