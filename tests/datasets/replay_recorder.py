"""A tiny OTLP receiver for replay tests: gRPC and HTTP/protobuf on 127.0.0.1, port 0.

It parses and keeps every request it accepts, and can be told to answer the next few
requests with a retryable refusal (gRPC UNAVAILABLE + RetryInfo, HTTP 503 + Retry-After)
or with a partial success, so the sender's retry and accounting paths run over a real
socket.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

from faultlens.types import Signal

REQUESTS: dict[Signal, type[Message]] = {
    Signal.TRACES: trace_pb.ExportTraceServiceRequest,
    Signal.METRICS: metrics_pb.ExportMetricsServiceRequest,
    Signal.LOGS: logs_pb.ExportLogsServiceRequest,
}
RESPONSES: dict[Signal, type[Message]] = {
    Signal.TRACES: trace_pb.ExportTraceServiceResponse,
    Signal.METRICS: metrics_pb.ExportMetricsServiceResponse,
    Signal.LOGS: logs_pb.ExportLogsServiceResponse,
}
GRPC_METHODS = {
    Signal.TRACES: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    Signal.METRICS: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    Signal.LOGS: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
REJECTED_FIELD = {
    Signal.TRACES: "rejected_spans",
    Signal.METRICS: "rejected_data_points",
    Signal.LOGS: "rejected_log_records",
}


class Recorder:
    """Records accepted requests per signal; ``refuse(n)`` / ``reject_partially(k)`` script answers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[Signal, list[Any]] = {s: [] for s in Signal}
        self.refusals = 0
        self._refuse_left = 0
        self._retry_after_s = 0.01
        self._partial_rejects = 0
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self.grpc_port = 0
        self.http_port = 0

    # ---- scripting --------------------------------------------------------------------

    def refuse(self, times: int, retry_after_s: float = 0.01) -> None:
        with self.lock:
            self._refuse_left = times
            self._retry_after_s = retry_after_s

    def reject_partially(self, per_request: int) -> None:
        with self.lock:
            self._partial_rejects = per_request

    def _decide(self) -> tuple[bool, float, int]:
        with self.lock:
            if self._refuse_left > 0:
                self._refuse_left -= 1
                self.refusals += 1
                return False, self._retry_after_s, 0
            return True, 0.0, self._partial_rejects

    def _accept(self, signal: Signal, request: Any, rejected: int) -> Message:
        with self.lock:
            self.requests[signal].append(request)
        response = RESPONSES[signal]()
        if rejected:
            ps: Any = response.partial_success  # type: ignore[attr-defined]
            setattr(ps, REJECTED_FIELD[signal], rejected)
            ps.error_message = "recorder rejected some"
        return response

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> Recorder:
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._grpc.add_generic_rpc_handlers((self._grpc_handler(),))
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _http_handler(self))
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(0)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _grpc_handler(self) -> grpc.GenericRpcHandler:
        recorder = self

        def unary(signal: Signal) -> Callable[[Any, grpc.ServicerContext], Message]:
            def handle(request: Any, context: grpc.ServicerContext) -> Message:
                ok, retry_after, rejected = recorder._decide()
                if not ok:
                    info = error_details_pb2.RetryInfo(
                        retry_delay=duration_pb2.Duration(nanos=int(retry_after * 1e9))
                    )
                    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="busy")
                    status.details.add().Pack(info)
                    context.abort_with_status(_RichStatus(status))
                return recorder._accept(signal, request, rejected)

            return handle

        handlers = {
            GRPC_METHODS[s]: grpc.unary_unary_rpc_method_handler(
                unary(s),
                request_deserializer=REQUESTS[s].FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
            for s in Signal
        }

        class Handler(grpc.GenericRpcHandler):
            def service(self, details: Any) -> Any:
                return handlers.get(details.method)

        return Handler()


class _RichStatus(grpc.Status):  # type: ignore[misc]
    def __init__(self, status: status_pb2.Status) -> None:
        self.code = grpc.StatusCode.UNAVAILABLE
        self.details = status.message
        self.trailing_metadata = (("grpc-status-details-bin", status.SerializeToString()),)


def _http_handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            signal = next((s for s in Signal if self.path == f"/v1/{s.value}"), None)
            if signal is None:
                self._answer(404, b"")
                return
            ok, retry_after, rejected = recorder._decide()
            if not ok:
                self.send_response(503)
                self.send_header("retry-after", f"{retry_after:g}")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            response = recorder._accept(signal, REQUESTS[signal].FromString(body), rejected)
            self._answer(200, response.SerializeToString())

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
