"""Serve an ASGI app with uvicorn on a background thread, with the usual start/shutdown.

The API runs beside the receivers, so it must not own the main thread or its signals. The
socket is bound in :meth:`ApiServer.start` itself, which makes port 0 usable (tests, several
servers per host) and makes a busy port fail at start rather than later on another thread.

Like every HTTP listener, it closes idle and slow clients and caps its connections
(:mod:`faultlens.httpguard`, ``api.idle_timeout`` ... ``api.max_connections``); with
``api.tls`` it serves HTTPS (and requires client certificates when ``client_ca_file`` is set).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.responses import JSONResponse

from faultlens.config.model import ApiConfig, HttpListenerConfig, TlsConfig
from faultlens.errors import cannot_listen
from faultlens.httpguard import Receive, Scope, Send, uvicorn_options
from faultlens.receive.tls import uvicorn_ssl_options

# Seconds a client refused for capacity is asked to wait (Retry-After).
OVER_CAPACITY_RETRY_AFTER_S = 1


class ApiServer:
    """One uvicorn server on ``host:port`` (0 picks a free port; see :attr:`port`).

    ``limits`` defaults to the ``api`` section's defaults; ``tls`` turns on HTTPS.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        tls: TlsConfig | None = None,
        limits: HttpListenerConfig | None = None,
    ) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._tls = tls
        self._limits = limits or ApiConfig()
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port; valid after :meth:`start`."""
        if self._sock is None:
            raise RuntimeError("ApiServer is not started")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Bind, then serve on a daemon thread; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("ApiServer already started")
        ssl = uvicorn_ssl_options(self._tls, "api.tls") if self._tls is not None else {}
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._requested_port))
        except OSError as e:
            sock.close()
            raise cannot_listen(
                "query API", self._host, self._requested_port, "api.port, --api-port", e
            ) from e
        sock.set_inheritable(True)
        self._sock = sock
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            **uvicorn_options(self._limits, _refuse_over_capacity, "query API"),
            **ssl,
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="faultlens-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"API server on {self._host}:{self.port} failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"API server did not start within {timeout_s} s")
            time.sleep(0.01)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, finish in-flight requests within ``timeout_s``; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout_s)
        if thread.is_alive():
            server.force_exit = True
            thread.join(1.0)
        if self._sock is not None:
            self._sock.close()
        self._server = None
        self._thread = None


async def _refuse_over_capacity(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    """The API's answer over ``api.max_connections`` (:data:`faultlens.httpguard.Refusal`)."""
    response = JSONResponse(
        {"detail": message},
        status_code=503,
        headers={"Retry-After": str(OVER_CAPACITY_RETRY_AFTER_S), "Connection": "close"},
    )
    await response(scope, receive, send)
