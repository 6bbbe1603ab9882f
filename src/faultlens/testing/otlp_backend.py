"""A real OTLP backend for tests: gRPC and HTTP on 127.0.0.1, scriptable failures, recorded ids.

Use it in-thread::

    with OtlpBackend() as backend:
        backend.script(Throttle(retry_after_s=0.5), Reject())   # next two requests
        backend.default = Accept()                                # then this, for every request
        ...                                                       # point an exporter at it
        assert backend.wait_for_spans(100)
        backend.stop(); ...; backend.start()                      # refuse connections for a while

or as a process (``python -m faultlens.testing.otlp_backend``): it prints one JSON line with
its ports, serves ``GET /stats`` (counts as JSON) on the HTTP port, and exits when its
standard input closes. Behaviours:

=================  ==================================================  =======================
behaviour          HTTP                                                gRPC
=================  ==================================================  =======================
Accept             200 and an empty response                           OK
Hang(s)            answers after ``s`` seconds (items then recorded)   same
Throttle(s)        429 (or 503) with ``Retry-After`` (seconds or date)  UNAVAILABLE (or
                                                                       RESOURCE_EXHAUSTED)
                                                                       with RetryInfo
Reject             400 with a google.rpc.Status body                   INVALID_ARGUMENT
PartialSuccess(n)  200 with ``partial_success.rejected_*`` = n          same
DropConnection     closes the connection without answering             UNAVAILABLE (grpcio
                                                                       cannot drop one call)
=================  ==================================================  =======================

Refusing connections is :meth:`OtlpBackend.stop` / :meth:`OtlpBackend.start` (same ports).
Every request is recorded (:attr:`OtlpBackend.requests`); items are counted as received
only for the behaviours that take them (Accept, Hang, PartialSuccess).
"""

from __future__ import annotations

import collections
import email.utils
import gzip
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from faultlens.export.otlp import GRPC_METHOD, REQUEST_TYPE, from_json, response_json, response_proto
from faultlens.types import Signal

__all__ = [
    "Accept",
    "Behaviour",
    "DropConnection",
    "Hang",
    "OtlpBackend",
    "PartialSuccess",
    "ReceivedRequest",
    "Reject",
    "Throttle",
]


@dataclass(frozen=True, slots=True)
class Accept:
    pass


@dataclass(frozen=True, slots=True)
class Hang:
    seconds: float


@dataclass(frozen=True, slots=True)
class Throttle:
    """Retryable refusal with a hint. ``retry_after_s=None`` sends no hint."""

    retry_after_s: float | None = 1.0
    http_status: int = 429
    grpc_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    http_date: bool = False  # send Retry-After as an HTTP date instead of seconds


@dataclass(frozen=True, slots=True)
class Reject:
    http_status: int = 400
    grpc_code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    message: str = "rejected by test backend"


@dataclass(frozen=True, slots=True)
class PartialSuccess:
    rejected: int
    message: str = "some items rejected by test backend"


@dataclass(frozen=True, slots=True)
class DropConnection:
    pass


Behaviour = Accept | Hang | Throttle | Reject | PartialSuccess | DropConnection


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    at_s: float  # time.monotonic() when it arrived
    transport: str
    signal: Signal
    behaviour: str
    items: int
    span_ids: tuple[bytes, ...]
    headers: dict[str, str] = field(default_factory=dict)


def _count(signal: Signal, msg: Any) -> tuple[int, tuple[bytes, ...]]:
    if signal is Signal.TRACES:
        ids = tuple(s.span_id for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans)
        return len(ids), ids
    if signal is Signal.LOGS:
        return sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs), ()
    n = 0
    for rm in msg.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind:
                    n += len(getattr(m, kind).data_points)
    return n, ()


class OtlpBackend:
    """gRPC and HTTP OTLP receivers on loopback that do what the test tells them."""

    def __init__(
        self, *, grpc_enabled: bool = True, http_enabled: bool = True, record_ids: bool = True
    ) -> None:
        self.default: Behaviour = Accept()
        self.requests: list[ReceivedRequest] = []
        self._record_ids = record_ids
        self._grpc_enabled = grpc_enabled
        self._http_enabled = http_enabled
        self._script: collections.deque[Behaviour] = collections.deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._span_ids: list[bytes] = []
        self._unique: set[bytes] = set()
        self._items: collections.Counter[Signal] = collections.Counter()
        self.grpc_port = 0
        self.http_port = 0
        self._grpc_server: grpc.Server | None = None
        self._http_server: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> OtlpBackend:
        self._stopping.clear()
        if self._grpc_enabled:
            server = grpc.server(ThreadPoolExecutor(max_workers=8), options=(("grpc.so_reuseport", 0),))
            server.add_generic_rpc_handlers((self._grpc_handler(),))
            self.grpc_port = server.add_insecure_port(f"127.0.0.1:{self.grpc_port}")
            server.start()
            self._grpc_server = server
        if self._http_enabled:
            httpd = _QuietHTTPServer(("127.0.0.1", self.http_port), _handler_class(self))
            httpd.daemon_threads = True
            self.http_port = httpd.server_address[1]
            self._http_server = httpd
            self._http_thread = threading.Thread(
                target=httpd.serve_forever, args=(0.05,), name="otlp-backend-http", daemon=True
            )
            self._http_thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (clients see connection refused) until :meth:`start` is called again."""
        self._stopping.set()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=0).wait(5)
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None

    def __enter__(self) -> OtlpBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # --- scripting and results --------------------------------------------------------
    def script(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with ``behaviours``, in order, then with :attr:`default`."""
        with self._lock:
            self._script.extend(behaviours)

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def span_ids(self) -> list[bytes]:
        """Every span id received, duplicates included."""
        with self._lock:
            return list(self._span_ids)

    def unique_span_ids(self) -> set[bytes]:
        with self._lock:
            return set(self._unique)

    def items(self, signal: Signal) -> int:
        with self._lock:
            return self._items[signal]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": len(self.requests),
                "spans": self._items[Signal.TRACES],
                "unique_spans": len(self._unique),
                "log_records": self._items[Signal.LOGS],
                "data_points": self._items[Signal.METRICS],
            }

    def wait_for_spans(self, unique: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self._unique) < unique:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def wait_for_items(self, signal: Signal, n: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._items[signal] < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def wait_for_requests(self, n: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    # --- the shared request path ------------------------------------------------------
    def _handle(self, transport: str, signal: Signal, msg: Any, headers: dict[str, str]) -> Behaviour:
        """Record the request as it arrives, wait if hanging, then count its items if taken."""
        behaviour = self._next()
        items, ids = _count(signal, msg)
        record = ReceivedRequest(
            time.monotonic(),
            transport,
            signal,
            type(behaviour).__name__,
            items,
            ids if self._record_ids else (),
            headers,
        )
        with self._changed:
            self.requests.append(record)
            self._changed.notify_all()
        if isinstance(behaviour, Hang):
            self._stopping.wait(behaviour.seconds)
        if isinstance(behaviour, Accept | Hang | PartialSuccess):
            with self._changed:
                self._items[signal] += items
                if self._record_ids:
                    self._span_ids.extend(ids)
                self._unique.update(ids)
                self._changed.notify_all()
        return behaviour

    def _grpc_handler(self) -> grpc.GenericRpcHandler:
        backend = self

        def make(signal: Signal) -> Any:
            def export(request: bytes, context: grpc.ServicerContext) -> bytes:
                msg = REQUEST_TYPE[signal].FromString(request)
                headers = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
                behaviour = backend._handle("grpc", signal, msg, headers)
                if isinstance(behaviour, Throttle):
                    status = status_pb2.Status(code=behaviour.grpc_code.value[0], message="throttled")
                    if behaviour.retry_after_s is not None:
                        info = error_details_pb2.RetryInfo(
                            retry_delay=duration_pb2.Duration(
                                seconds=int(behaviour.retry_after_s),
                                nanos=int((behaviour.retry_after_s % 1) * 1e9),
                            )
                        )
                        status.details.add().Pack(info)
                    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
                    context.abort(behaviour.grpc_code, "throttled by test backend")
                if isinstance(behaviour, Reject):
                    context.abort(behaviour.grpc_code, behaviour.message)
                if isinstance(behaviour, DropConnection):
                    context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped by test backend")
                if isinstance(behaviour, PartialSuccess):
                    return response_proto(signal, behaviour.rejected, behaviour.message)
                return response_proto(signal)

            return grpc.unary_unary_rpc_method_handler(
                export, request_deserializer=None, response_serializer=None
            )

        handlers = {}
        for signal, path in GRPC_METHOD.items():
            service, method = path.lstrip("/").split("/")
            handlers[service] = grpc.method_handlers_generic_handler(service, {method: make(signal)})

        class Router(grpc.GenericRpcHandler):  # type: ignore[misc]
            def service(self, details: Any) -> Any:
                service = details.method.lstrip("/").split("/")[0]
                handler = handlers.get(service)
                return handler.service(details) if handler else None

        return Router()


class _QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up is normal here
            super().handle_error(request, client_address)


def _handler_class(backend: OtlpBackend) -> type[BaseHTTPRequestHandler]:
    paths = {f"/v1/{s.value}": s for s in Signal}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # one write per response: no Nagle/delayed-ACK stalls

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/stats":
                self._reply(200, json.dumps(backend.stats()).encode(), "application/json")
            else:
                self._reply(404, b"", "text/plain")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            signal = paths.get(self.path)
            if signal is None:
                self._reply(404, b"", "text/plain")
                return
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            is_json = self.headers.get("Content-Type", "").startswith("application/json")
            msg = from_json(signal, body) if is_json else REQUEST_TYPE[signal].FromString(body)
            headers = {k.lower(): v for k, v in self.headers.items()}
            behaviour = backend._handle("http", signal, msg, headers)
            ctype = "application/json" if is_json else "application/x-protobuf"
            if isinstance(behaviour, DropConnection):
                self.close_connection = True
                return
            if isinstance(behaviour, Throttle):
                extra = {}
                if behaviour.retry_after_s is not None:
                    if behaviour.http_date:
                        extra["Retry-After"] = email.utils.formatdate(
                            time.time() + behaviour.retry_after_s, usegmt=True
                        )
                    else:
                        extra["Retry-After"] = f"{behaviour.retry_after_s:g}"
                self._reply(behaviour.http_status, _status_body("throttled", is_json), ctype, extra)
            elif isinstance(behaviour, Reject):
                self._reply(behaviour.http_status, _status_body(behaviour.message, is_json), ctype)
            elif isinstance(behaviour, PartialSuccess):
                make = response_json if is_json else response_proto
                self._reply(200, make(signal, behaviour.rejected, behaviour.message), ctype)
            else:
                self._reply(200, response_json(signal) if is_json else response_proto(signal), ctype)

    return Handler


def _status_body(message: str, is_json: bool) -> bytes:
    if is_json:
        return json.dumps({"message": message}).encode()
    return bytes(status_pb2.Status(message=message).SerializeToString())


def main() -> None:
    """Serve until standard input closes; print ``{"grpc": port, "http": port}`` first."""
    backend = OtlpBackend(record_ids="--no-ids" not in sys.argv).start()
    print(json.dumps({"grpc": backend.grpc_port, "http": backend.http_port}), flush=True)
    try:
        sys.stdin.read()
    finally:
        backend.stop()


if __name__ == "__main__":
    main()
