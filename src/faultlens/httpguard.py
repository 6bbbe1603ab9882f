"""Timeouts and a connection cap for every HTTP listener faultlens serves with uvicorn.

uvicorn (h11) closes a keep-alive connection left idle after a response, and nothing else:
a connection that never sends a request, or sends its headers or its body a few bytes at a
time (slowloris), is held for ever; and its ``limit_concurrency`` answers a bare text 503.
:func:`uvicorn_options` swaps in :class:`GuardedH11Protocol`, which keeps one read deadline
per connection, chosen by what the client owes next (h11's state of the client)::

    connection opened ─────────┐
    response sent ─idle_timeout─> first byte of the next request (else: closed)
                               └─header_timeout─> headers complete (else: 408, closed)
                                                   └─body_timeout─> body complete (else: closed;
                                                                    the app sees a disconnect)
    while the app handles a complete request: no deadline (the server is the slow one)

A request arriving while more than ``max_connections`` connections are open is answered by
the listener's own refusal (OTLP: a retryable ``google.rpc.Status`` 503; API: JSON 503),
always with ``Retry-After`` and ``Connection: close``, and the server keeps serving the
others. Connections are counted, not requests, because a connection is what an idle or slow
client holds; the oldest are never dropped to make room.

The limits come from :class:`~faultlens.config.model.HttpListenerConfig` (``receivers.http``
and ``api`` in the config).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import h11
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from faultlens.config.model import HttpListenerConfig

__all__ = ["GuardedH11Protocol", "Refusal", "uvicorn_options"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Answers one request refused for capacity, as an ASGI app with the reason as a fourth
# argument. It must send a complete 503 response with ``Retry-After`` and ``Connection: close``.
Refusal = Callable[[Scope, Receive, Send, str], Awaitable[None]]

_WARN_EVERY_S = 10.0
_Owed = Literal["headers", "body"]  # what a running deadline waits for


@dataclass(frozen=True, slots=True)
class _Policy:
    limits: HttpListenerConfig
    refuse: Refusal
    name: str  # the listener, for log lines


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and a connection cap.

    Subclassed per listener by :func:`uvicorn_options`, which sets :attr:`policy`.
    """

    policy: ClassVar[_Policy]
    _last_warning: ClassVar[float] = -1e9

    def __init__(
        self,
        config: UvicornConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = self.policy.limits
        self.timeout_keep_alive = limits.idle_timeout  # type: ignore[assignment]  # a float works
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: _Owed | None = None  # while a deadline runs
        self._upgraded = False  # handed to a WebSocket protocol, which has its own pings
        self.app = _CapacityGate(self.app, server_state.connections, limits.max_connections, self.policy)

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_client()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start a pipelined request already buffered
        self._follow_client()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()
        self._upgraded = True
        super().handle_websocket_upgrade(event)

    # --- deadlines ---------------------------------------------------------------------------
    def _follow_client(self) -> None:
        """Set the deadline for what the client owes now (see the module's diagram)."""
        if self._upgraded:
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            # Bytes of a request head arrived (data_received) or a response just completed
            # (uvicorn's keep-alive timer then runs until the next byte).
            if self._waiting_for is None and self.timeout_keep_alive_task is None:
                self._expect("headers")
        elif state is h11.SEND_BODY:
            if self._waiting_for != "body":
                self._expect("body")
        else:  # DONE: the request is in; MUST_CLOSE, CLOSED, ERROR: nothing more to read
            self._disarm()

    def _expect(self, what: _Owed) -> None:
        self._disarm()
        limits = self.policy.limits
        delay = limits.header_timeout if what == "headers" else limits.body_timeout
        self._waiting_for = what
        self._deadline = self.loop.call_later(delay, self._too_slow, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._waiting_for = None

    def _too_slow(self, what: _Owed) -> None:
        self._deadline = None
        self._waiting_for = None
        if self.transport is None or self.transport.is_closing():
            return
        limits = self.policy.limits
        if what == "headers":
            pending, _ = self.conn.trailing_data
            log.debug(
                "%s: request headers not complete within %.1f s; closing",
                self.policy.name,
                limits.header_timeout,
            )
            if pending:  # a request was started: say why it ends (RFC 9110 408)
                body = f"request headers not received within {limits.header_timeout:g} s\n".encode()
                self.transport.write(
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
        else:
            log.debug(
                "%s: request body not complete within %.1f s; closing", self.policy.name, limits.body_timeout
            )
        self.transport.close()


class _CapacityGate:
    """The ASGI app of one connection: the listener's app, or its refusal when over the cap."""

    def __init__(self, app: Any, connections: set[Any], limit: int, policy: _Policy) -> None:
        self._app = app
        self._connections = connections
        self._limit = limit
        self._policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or len(self._connections) <= self._limit:
            await self._app(scope, receive, send)
            return
        now = time.monotonic()
        if now - GuardedH11Protocol._last_warning >= _WARN_EVERY_S:
            GuardedH11Protocol._last_warning = now
            log.warning(
                "%s: %d connections open, over max_connections %d; refusing requests with 503",
                self._policy.name,
                len(self._connections),
                self._limit,
            )
        await self._policy.refuse(
            scope,
            receive,
            send,
            f"too many connections (over {self._limit}); retry later on a new connection",
        )


def uvicorn_options(limits: HttpListenerConfig, refuse: Refusal, name: str) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``: the guarded protocol and its keep-alive.

    ``refuse`` answers a request over ``limits.max_connections``; ``name`` labels log lines.
    uvicorn's own ``limit_concurrency`` stays off: the gate above does that job.
    """
    protocol = type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"policy": _Policy(limits, refuse, name), "__module__": __name__},
    )
    return {"http": protocol, "limit_concurrency": None}
