"""A :class:`~faultlens.server.FaultlensServer` running in this process, for tests.

:class:`~faultlens.testing.process.ServerProcess` runs ``faultlens serve`` as a child
process, which is what most tests want. A test that has to reach inside the running server
(its analysis consumer, its store's connection) runs it here instead: the server's event
loop turns in a thread of its own, and the test talks to it over real sockets as any client
would.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from faultlens.config.model import Config
from faultlens.server import FaultlensServer

__all__ = ["InProcessServer"]


class InProcessServer:
    """Start at construction; ``api`` and ``otlp`` are HTTP clients of its API and OTLP/HTTP."""

    def __init__(self, config: Config, *, shutdown_timeout_s: float = 20.0) -> None:
        self.server = FaultlensServer(config, shutdown_timeout_s=shutdown_timeout_s)
        self._stop_wait_s = max(60.0, 2 * shutdown_timeout_s)  # the server's deadline, then some
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        listeners = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        self.ports = {ln.name: ln.port for ln in listeners}
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.ports['api']}", timeout=10)
        self.otlp = httpx.Client(base_url=f"http://127.0.0.1:{self.ports['otlp-http']}", timeout=10)

    def get(self, path: str, **params: Any) -> Any:
        """GET an API path that must answer 200; its JSON."""
        r = self.api.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def stop(self) -> None:
        self.api.close()
        self.otlp.close()
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(self._stop_wait_s)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
