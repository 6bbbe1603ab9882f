"""A small shop's telemetry, made by the real OpenTelemetry SDK and sent over OTLP/gRPC.

front -> orders -> {inventory, payment}, orders -> postgresql; one trace per request, a
log line per request (with the trace context), every 20th payment declined with an
exception event and an ERROR log. Eighteen 10 s windows of data time starting at ``t0``
(by default about an hour ago): twelve normal, then six in which inventory's own work takes
300 ms longer (the fault the server should find, with no label sent). With ``extras``, then
one wide trace of ``BIG_SPANS`` spans from a batch job, for the waterfall's virtualised rows,
and one request whose names hold HTML (the browser tests check it never runs).

``faultlens demo`` sends it to a server of its own, so that a newcomer sees traces, the map
and an incident with its root cause within a minute; the browser tests (``tests/ui``) use it
too. It is telemetry made to measure, not running services: the lab (issue 18) is where
real services meet real faults.

Each service has its own ``TracerProvider`` and ``LoggerProvider`` (its resource), with
the SDK's batch processors and OTLP gRPC exporters; spans take explicit start and end
times, so minutes of data time are sent in a second or two.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

S = 1_000_000_000
MS = 1_000_000
W = 10 * S
REQUESTS = 60  # per window
NORMAL = 12
FAULT = 6
BIG_SPANS = 2_000
SERVICES = ("front", "orders", "inventory", "payment", "batch")
HOSTILE_NAME = "GET /search?q=<img src=x onerror=alert(1)>"
HOSTILE_ATTR = "</td><script>alert(2)</script>"
HOSTILE_LOG = "<img src=y onerror=alert(3)> searched"


@dataclass
class Sent:
    """What was sent, for the tests to look for."""

    t0: int
    spans: int = 0
    logs: int = 0
    error_trace: str = ""  # a declined payment: error span with an exception and logs
    error_trace_spans: int = 0
    slow_trace: str = ""  # a request during the fault
    big_trace: str = ""
    hostile_trace: str = ""  # names, attributes and a log body that hold HTML and script
    traces: list[str] = field(default_factory=list)


class Shop:
    def __init__(self, grpc_port: int, t0: int | None = None) -> None:
        """``t0``: Unix ns of the first window's start (on a 10 s boundary); an hour ago by default."""
        endpoint = f"127.0.0.1:{grpc_port}"
        self.tracers: dict[str, trace.Tracer] = {}
        self.loggers = {}
        self._providers: list[TracerProvider | LoggerProvider] = []
        for service in SERVICES:
            resource = Resource.create({"service.name": service, "k8s.pod.name": f"{service}-1"})
            tp = TracerProvider(resource=resource)
            tp.add_span_processor(
                BatchSpanProcessor(
                    OTLPSpanExporter(endpoint=endpoint, insecure=True), max_export_batch_size=512
                )
            )
            lp = LoggerProvider(resource=resource)
            lp.add_log_record_processor(
                BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True))
            )
            self.tracers[service] = tp.get_tracer("shop", "1.0")
            self.loggers[service] = lp.get_logger("shop", "1.0")
            self._providers += [tp, lp]
        self.sent = Sent(t0=t0 if t0 is not None else (time.time_ns() // W - 360) * W)

    def _span(
        self,
        service: str,
        name: str,
        parent: Span | None,
        start: int,
        dur: int,
        kind: SpanKind,
        **attrs: object,
    ) -> Span:
        ctx = trace.set_span_in_context(parent) if parent is not None else Context()
        span = self.tracers[service].start_span(name, context=ctx, kind=kind, start_time=start)
        for k, v in attrs.items():
            span.set_attribute(k.replace("_", "."), v)  # type: ignore[arg-type]
        span.end(end_time=start + dur)
        self.sent.spans += 1
        return span

    def _log(self, service: str, span: Span, at: int, severity: SeverityNumber, text: str, body: str) -> None:
        self.loggers[service].emit(
            timestamp=at,
            context=trace.set_span_in_context(span),
            severity_number=severity,
            severity_text=text,
            body=body,
        )
        self.sent.logs += 1

    def request(self, window: int, k: int, slow_ns: int) -> str:
        t = self.sent.t0 + window * W + k * (W // REQUESTS)
        declined = k % 20 == 7
        jitter = (k * 7919) % 5 * MS // 10
        inv, pay, db = 5 * MS + jitter + slow_ns, 8 * MS + jitter, 2 * MS
        orders = inv + pay + db + 6 * MS
        root = self._span(
            "front", "GET /order", None, t, orders + 4 * MS, SpanKind.SERVER, http_route="/order"
        )
        call = self._span("front", "POST /orders", root, t + MS, orders + 2 * MS, SpanKind.CLIENT)
        o = self._span("orders", "POST /orders", call, t + 2 * MS, orders, SpanKind.SERVER)
        self._span("orders", "SELECT stock", o, t + 2 * MS, db, SpanKind.CLIENT, db_system="postgresql")
        c1 = self._span("orders", "GET /stock", o, t + 3 * MS + db, inv + MS, SpanKind.CLIENT)
        inv_span = self._span("inventory", "GET /stock", c1, t + 3 * MS + db, inv, SpanKind.SERVER)
        self._log(
            "inventory", inv_span, t + 4 * MS, SeverityNumber.INFO, "INFO", f"stock checked for sku-{k}"
        )
        start_pay = t + 5 * MS + db + inv
        c2 = self._span("orders", "POST /charge", o, start_pay, pay + MS, SpanKind.CLIENT)
        ctx = trace.set_span_in_context(c2)
        p = self.tracers["payment"].start_span(
            "POST /charge", context=ctx, kind=SpanKind.SERVER, start_time=start_pay
        )
        if declined:
            try:
                raise ValueError(f"card declined for order {window * REQUESTS + k}")
            except ValueError as e:
                p.record_exception(e, timestamp=start_pay + pay // 2)
            p.set_status(Status(StatusCode.ERROR, "card declined"))
        p.end(end_time=start_pay + pay)
        self.sent.spans += 1
        if declined:
            self._log(
                "payment",
                p,
                start_pay + pay // 2,
                SeverityNumber.ERROR,
                "ERROR",
                "payment declined: card declined",
            )
        trace_id = format(root.get_span_context().trace_id, "032x")
        if declined and not self.sent.error_trace:
            self.sent.error_trace, self.sent.error_trace_spans = trace_id, 8
        return trace_id

    def big_trace(self, at: int) -> str:
        """A batch job of BIG_SPANS spans: 40 stages of 49 steps each, plus the root."""
        root = self._span("batch", "nightly reindex", None, at, 4 * S, SpanKind.INTERNAL)
        made = 1
        stage = 0
        while made < BIG_SPANS:
            s_start = at + stage * (4 * S // 41)
            st = self._span("batch", f"stage {stage}", root, s_start, 4 * S // 41, SpanKind.INTERNAL)
            made += 1
            for step in range(min(49, BIG_SPANS - made)):
                self._span(
                    "batch", f"reindex shard {step}", st, s_start + step * MS, MS // 2, SpanKind.INTERNAL
                )
                made += 1
            stage += 1
        return format(root.get_span_context().trace_id, "032x")

    def hostile(self, at: int) -> str:
        """A request whose span name, attribute and log body are HTML meant to run script."""
        root = self._span("front", HOSTILE_NAME, None, at, 3 * MS, SpanKind.SERVER, note=HOSTILE_ATTR)
        self._log("front", root, at + MS, SeverityNumber.WARN, "WARN", HOSTILE_LOG)
        return format(root.get_span_context().trace_id, "032x")

    def run(self, extras: bool = True) -> Sent:
        for w in range(NORMAL + FAULT):
            slow = 300 * MS if w >= NORMAL else 0
            for k in range(REQUESTS):
                tid = self.request(w, k, slow)
                self.sent.traces.append(tid)
                if w == NORMAL + 2 and k == 30:
                    self.sent.slow_trace = tid
            self.flush()
        if extras:
            self.sent.big_trace = self.big_trace(self.sent.t0 + (NORMAL + FAULT - 1) * W)
            self.sent.hostile_trace = self.hostile(self.sent.t0 + (NORMAL + FAULT - 1) * W + 5 * S)
            self.flush()
        return self.sent

    def flush(self) -> None:
        for p in self._providers:
            p.force_flush()

    def shutdown(self) -> None:
        for p in self._providers:
            p.shutdown()
