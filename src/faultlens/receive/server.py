"""``Receivers``: the OTLP/gRPC and OTLP/HTTP servers of one faultlens instance, started and
stopped together on the caller's event loop.

Lifecycle (the same rules as every faultlens component):

- ``await start()`` binds both ports (port 0 picks a free one), starts serving and returns
  the bound ports. If either server cannot start, whatever did start is stopped again and
  the error is raised.
- ``await shutdown(timeout_s)`` stops accepting, lets requests in progress finish for at
  most ``timeout_s`` seconds, then closes what is left. It is safe to call twice, and
  concurrently; it never raises for a server that did not start.

The receivers do not own the consumer: whoever wires the server starts the consumer before
``start()`` and shuts it down after ``shutdown()``, so that no accepted batch is lost.

Signals are left to the caller: uvicorn normally installs SIGINT/SIGTERM handlers, which
:class:`_EmbeddedUvicorn` turns off because ``faultlens serve`` handles signals itself and
shuts everything down in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from faultlens.config.model import AdmissionConfig, ReceiversConfig
from faultlens.errors import cannot_listen
from faultlens.httpguard import uvicorn_options
from faultlens.pipeline.base import BatchConsumer
from faultlens.receive.decode_pool import DecodePool
from faultlens.receive.grpc_server import create_grpc_server
from faultlens.receive.http_server import OtlpHttpApp
from faultlens.receive.ingest import Ingest
from faultlens.receive.intake import IntakeLog
from faultlens.receive.tls import uvicorn_ssl_options
from faultlens.selfmetrics import SelfMetrics

__all__ = ["BoundPorts", "Receivers"]

log = logging.getLogger(__name__)

_STARTUP_POLL_S = 0.005


@dataclass(frozen=True, slots=True)
class BoundPorts:
    """The ports actually bound; ``None`` for a receiver that is disabled."""

    grpc: int | None
    http: int | None


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding process owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Receivers:
    """Both OTLP receivers over one :class:`Ingest` (auth, admission, decode, counters)."""

    def __init__(
        self,
        receivers: ReceiversConfig,
        admission: AdmissionConfig,
        consumer: BatchConsumer,
        metrics: SelfMetrics,
        *,
        intake: IntakeLog | None = None,
    ) -> None:
        """``intake``: the log every accepted request is written to before it is answered."""
        self._config = receivers
        self.pool = (
            DecodePool(receivers.decode_workers, retry_after_s=admission.retry_after)
            if receivers.decode_workers > 0
            else None
        )
        self.ingest = Ingest(
            receivers,
            admission,
            consumer,
            metrics,
            pool=self.pool,
            threads=receivers.decode_threads,
            intake=intake,
        )
        self._grpc: Any = None
        self._http: _EmbeddedUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._ports: BoundPorts | None = None
        self._shutdown: asyncio.Task[None] | None = None

    @property
    def ports(self) -> BoundPorts | None:
        """The bound ports once started, else ``None``."""
        return self._ports

    def http_app(self) -> OtlpHttpApp:
        """The ASGI app, for serving OTLP/HTTP from another ASGI server or mounting it."""
        return OtlpHttpApp(self.ingest)

    async def start(self) -> BoundPorts:
        if self._shutdown is not None:
            raise RuntimeError("receivers were shut down; build new ones")
        if self._ports is not None:
            return self._ports
        try:
            if self.pool is not None:
                await self.pool.start()
            grpc_port = await self._start_grpc() if self._config.grpc.enabled else None
            http_port = await self._start_http() if self._config.http.enabled else None
        except BaseException:
            await self._stop(1.0)
            raise
        self._ports = BoundPorts(grpc=grpc_port, http=http_port)
        log.info("OTLP receivers listening: grpc=%s http=%s", grpc_port, http_port)
        return self._ports

    async def shutdown(self, timeout_s: float = 10.0) -> None:
        """Graceful, bounded by ``timeout_s``, idempotent."""
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._stop(timeout_s))
        await asyncio.shield(self._shutdown)

    async def _start_grpc(self) -> int:
        server, port = create_grpc_server(self.ingest, self._config)
        self._grpc = server
        await server.start()
        return port

    async def _start_http(self) -> int:
        cfg = self._config.http
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((cfg.host, cfg.port))
            sock.listen(2048)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise cannot_listen(
                "OTLP/HTTP receiver", cfg.host, cfg.port, "receivers.http.port, --otlp-http-port", e
            ) from e
        port = int(sock.getsockname()[1])
        ssl = uvicorn_ssl_options(self._config.tls) if self._config.tls is not None else {}
        app = OtlpHttpApp(self.ingest)
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=None,  # set from shutdown()'s timeout when stopping
            server_header=False,
            # h11 with idle/header/body deadlines and the connection cap (receivers.http)
            **uvicorn_options(cfg, app.refuse_overloaded, "OTLP/HTTP receiver"),
            **ssl,
        )
        server = _EmbeddedUvicorn(config)
        self._http = server
        self._http_task = asyncio.create_task(server.serve(sockets=[sock]), name="otlp-http")
        while not server.started:
            if self._http_task.done():
                sock.close()
                self._http_task.result()  # raises what stopped it
                raise RuntimeError("the OTLP/HTTP server stopped while starting")
            await asyncio.sleep(_STARTUP_POLL_S)
        return port

    async def _stop(self, timeout_s: float) -> None:
        await asyncio.gather(self._stop_grpc(timeout_s), self._stop_http(timeout_s))
        if self.pool is not None:  # after the servers: requests in flight still decode
            await self.pool.shutdown(min(timeout_s, 5.0))
        self.ingest.close()

    async def _stop_grpc(self, timeout_s: float) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace=timeout_s)

    async def _stop_http(self, timeout_s: float) -> None:
        server, task = self._http, self._http_task
        if server is None or task is None or task.done():
            return
        server.config.timeout_graceful_shutdown = max(1, math.ceil(timeout_s))
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            log.warning("OTLP/HTTP receiver did not stop within %.1f s; closing connections", timeout_s)
            server.force_exit = True
            done, _ = await asyncio.wait({task}, timeout=1.0)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("OTLP/HTTP receiver failed while stopping", exc_info=task.exception())
