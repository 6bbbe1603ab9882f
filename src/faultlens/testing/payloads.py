"""Deterministic, realistic OTLP requests for tests and benchmarks.

Every builder takes a ``seed``: the same arguments give the same ids, names, attributes
and relative timings. Absolute times are placed just before ``base_time_ns``, which
defaults to now; pass it explicitly to get byte-identical requests.

The shapes imitate what instrumented services send: one ``ResourceSpans`` per service
with the usual resource attributes (``service.name``, ``k8s.pod.name``...), traces whose
spans cross services as HTTP server/client, gRPC and database calls with the matching
semantic-convention attributes, and a share of failing spans with an ``exception`` event.

:func:`to_otlp_json` renders any OTLP message as OTLP/JSON the way the specification
asks (lowerCamelCase keys, hex trace/span ids, enums as integers, 64-bit integers as
strings), which is what the JSON tests and benchmarks send.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = [
    "ID_FIELDS_JSON",
    "any_value",
    "build_logs_request",
    "build_metrics_request",
    "build_trace_request",
    "key_values",
    "service_names",
    "to_otlp_dict",
    "to_otlp_json",
]

# JSON names of the bytes fields that OTLP/JSON writes as hex instead of base64.
ID_FIELDS_JSON = frozenset({"traceId", "spanId", "parentSpanId"})

_SERVICES = (
    "frontend",
    "checkout",
    "cart",
    "payment",
    "inventory",
    "shipping",
    "email",
    "currency",
    "recommendation",
    "ad",
    "auth",
    "search",
)
_ROUTES = ("/api/orders/{id}", "/api/cart", "/api/products", "/api/checkout", "/health", "/api/users/{id}")
_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_DB_OPS = ("SELECT", "SELECT", "INSERT", "UPDATE")
_EXCEPTIONS = (
    ("TimeoutError", "timed out after {ms} ms waiting for {svc}"),
    ("ConnectionRefusedError", "[Errno 111] Connection refused: {svc}:{port}"),
    ("psycopg.errors.UniqueViolation", 'duplicate key value violates unique constraint "orders_pkey"'),
    ("ValueError", "invalid quantity: {n}"),
    ("KeyError", "'sku-{n}'"),
)


def service_names(services: int) -> list[str]:
    """The service names the builders use for ``services`` services (cycled with a suffix)."""
    out = []
    for i in range(services):
        base = _SERVICES[i % len(_SERVICES)]
        out.append(base if i < len(_SERVICES) else f"{base}-{i // len(_SERVICES)}")
    return out


def any_value(v: Any) -> AnyValue:
    """A Python value as an AnyValue: str, bool, int, float, bytes, list and dict nest freely.

    ``None`` is the empty AnyValue (decoded as null).
    """
    if v is None:
        return AnyValue()
    if isinstance(v, AnyValue):
        return v
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, str):
        return AnyValue(string_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    out = AnyValue()
    if isinstance(v, dict):
        out.kvlist_value.values.extend(key_values(v))
        return out
    if isinstance(v, list | tuple):
        out.array_value.values.extend(any_value(x) for x in v)
        return out
    raise TypeError(f"cannot express {type(v).__name__} as an AnyValue")


def key_values(attrs: dict[str, Any]) -> list[KeyValue]:
    """A dict as OTLP ``KeyValue``s, in the dict's order."""
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def _resource_attrs(service: str, index: int, rng: random.Random) -> dict[str, Any]:
    pod = f"{service}-{rng.getrandbits(32):08x}-{rng.getrandbits(20):05x}"
    return {
        "service.name": service,
        "service.namespace": "shop",
        "service.version": f"1.{index % 4}.{rng.randrange(10)}",
        "service.instance.id": f"{pod}-{index}",
        "deployment.environment.name": "production",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": pod,
        "k8s.node.name": f"node-{index % 3}",
        "host.name": f"node-{index % 3}",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": "1.27.0",
    }


def _now_or(base_time_ns: int | None) -> int:
    return time.time_ns() if base_time_ns is None else base_time_ns


def _nonzero_bits(rng: random.Random, bits: int) -> bytes:
    return (rng.getrandbits(bits) | 1).to_bytes(bits // 8, "big")


def _filler(rng: random.Random, n: int, i: int) -> dict[str, Any]:
    """``n`` extra attributes of the kinds applications add (ids, flags, sizes)."""
    pool: list[tuple[str, Any]] = [
        ("app.user.id", f"user-{rng.randrange(100_000)}"),
        ("app.tenant", f"tenant-{rng.randrange(20)}"),
        ("app.request.id", f"{rng.getrandbits(64):016x}"),
        ("thread.id", rng.randrange(1, 64)),
        ("thread.name", f"worker-{rng.randrange(8)}"),
        ("app.cache.hit", rng.random() < 0.7),
        ("app.items", rng.randrange(1, 20)),
        ("app.amount", round(rng.uniform(1, 500), 2)),
        ("app.region", rng.choice(("eu-west-1", "us-east-1", "ap-south-1"))),
        ("app.feature_flag", rng.choice(("new-checkout", "control"))),
        ("code.function.name", f"handle_{i % 7}"),
        ("code.file.path", f"/app/handlers/h{i % 7}.py"),
        ("code.line.number", rng.randrange(10, 900)),
        ("app.retry", rng.randrange(0, 3)),
        ("app.session.id", f"{rng.getrandbits(48):012x}"),
    ]
    out: dict[str, Any] = {}
    k = 0
    while len(out) < n:
        key, value = pool[k % len(pool)]
        out[key if k < len(pool) else f"{key}.{k // len(pool)}"] = value
        k += 1
    return out


def build_trace_request(
    n_spans: int = 1000,
    services: int = 5,
    attrs_per_span: int = 15,
    seed: int = 0,
    error_ratio: float = 0.05,
    base_time_ns: int | None = None,
    spans_per_trace: int = 8,
) -> ExportTraceServiceRequest:
    """A trace request of ``n_spans`` spans across ``services`` services.

    Traces of about ``spans_per_trace`` spans: a SERVER root on the first service, CLIENT
    calls to other services answered by their SERVER spans (HTTP or gRPC), and database
    CLIENT spans. Each span carries ``attrs_per_span`` attributes (semantic-convention ones
    first, application ones after). A share ``error_ratio`` of the leaf spans fails with an
    ``exception`` event, and the failure is marked on its ancestors as an HTTP 500 or gRPC
    status. Some spans get a link to another trace. All spans end before ``base_time_ns``.
    """
    rng = random.Random(seed)
    now = _now_or(base_time_ns)
    names = service_names(max(services, 1))
    per_service: list[list[Span]] = [[] for _ in names]
    made = 0
    trace_no = 0
    while made < n_spans:
        trace_no += 1
        size = min(spans_per_trace, n_spans - made)
        made += _build_trace(rng, now, names, per_service, size, attrs_per_span, error_ratio, trace_no)
    req = ExportTraceServiceRequest()
    for idx, (service, spans) in enumerate(zip(names, per_service, strict=True)):
        if not spans:
            continue
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(key_values(_resource_attrs(service, idx, rng)))
        rs.schema_url = "https://opentelemetry.io/schemas/1.26.0"
        ss = rs.scope_spans.add()
        ss.scope.name = "opentelemetry.instrumentation.flask" if idx % 2 == 0 else "io.opentelemetry.grpc-1.6"
        ss.scope.version = "0.48b0"
        ss.spans.extend(spans)
    return req


def _build_trace(
    rng: random.Random,
    now: int,
    names: Sequence[str],
    per_service: list[list[Span]],
    size: int,
    attrs_per_span: int,
    error_ratio: float,
    trace_no: int,
) -> int:
    trace_id = _nonzero_bits(rng, 128)
    end_of_trace = now - rng.randrange(1_000_000, 60_000_000_000)
    total = rng.randrange(20_000_000, 900_000_000)
    start = end_of_trace - total
    # (span, service index, start, end, depth)
    root = _span(rng, trace_id, b"", names[0], start, end_of_trace, Span.SPAN_KIND_SERVER, "http")
    made: list[tuple[Span, int, int, int]] = [(root, 0, start, end_of_trace)]
    per_service[0].append(root)
    while len(made) < size:
        parent, svc, p_start, p_end = made[rng.randrange(len(made))]
        if parent.kind == Span.SPAN_KIND_CLIENT:
            continue  # clients get exactly one server child, added below
        c_start = p_start + (p_end - p_start) // 10 + rng.randrange(1000, 50_000)
        c_end = c_start + max((p_end - c_start) * rng.randrange(20, 80) // 100, 10_000)
        callee = rng.randrange(len(names)) if len(names) > 1 else 0
        room = size - len(made)
        if callee == svc or room < 2:
            db = _span(rng, trace_id, parent.span_id, names[svc], c_start, c_end, Span.SPAN_KIND_CLIENT, "db")
            _fill_attrs(rng, db, attrs_per_span, len(made))
            made.append((db, svc, c_start, c_end))
            per_service[svc].append(db)
            continue
        proto = rng.choice(("http", "grpc"))
        client = _span(
            rng, trace_id, parent.span_id, names[svc], c_start, c_end, Span.SPAN_KIND_CLIENT, proto
        )
        client.attributes.append(KeyValue(key="peer.service", value=AnyValue(string_value=names[callee])))
        s_start, s_end = c_start + 200_000, c_end - 150_000
        server = _span(
            rng, trace_id, client.span_id, names[callee], s_start, s_end, Span.SPAN_KIND_SERVER, proto
        )
        for s in (client, server):
            _fill_attrs(rng, s, attrs_per_span, len(made))
        made.append((client, svc, c_start, c_end))
        made.append((server, callee, s_start, s_end))
        per_service[svc].append(client)
        per_service[callee].append(server)
    _fill_attrs(rng, root, attrs_per_span, 0)
    if rng.random() < 0.1:
        link = root.links.add()
        link.trace_id = _nonzero_bits(rng, 128)
        link.span_id = _nonzero_bits(rng, 64)
        link.trace_state = "rojo=00f067aa0ba902b7"
        link.attributes.extend(key_values({"link.reason": "batch", "messaging.batch.message_count": 3}))
    if rng.random() < error_ratio * 2:
        _fail(rng, made, trace_no)
    return len(made)


def _span(
    rng: random.Random,
    trace_id: bytes,
    parent_id: bytes,
    service: str,
    start: int,
    end: int,
    kind: int,
    proto: str,
) -> Span:
    span = Span(
        trace_id=trace_id,
        span_id=_nonzero_bits(rng, 64),
        parent_span_id=parent_id,
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        flags=0x101,
    )
    attrs: dict[str, Any] = {}
    if proto == "db":
        op = rng.choice(_DB_OPS)
        table = rng.choice(("orders", "carts", "users", "products"))
        span.name = f"{op} {table}"
        attrs = {
            "db.system.name": "postgresql",
            "db.operation.name": op,
            "db.namespace": "shop",
            "db.query.text": f"{op} * FROM {table} WHERE id = $1",
            "server.address": "postgres.shop.svc",
            "server.port": 5432,
        }
    elif proto == "grpc":
        method = rng.choice(("GetCart", "Charge", "Reserve", "Convert", "Send"))
        rpc_service = f"shop.{service.capitalize()}Service"
        span.name = f"{rpc_service}/{method}"
        attrs = {
            "rpc.system": "grpc",
            "rpc.service": rpc_service,
            "rpc.method": method,
            "rpc.grpc.status_code": 0,
            "server.address": f"{service}.shop.svc",
            "server.port": 50051,
        }
    else:
        i = rng.randrange(len(_ROUTES))
        method, route = _METHODS[i], _ROUTES[i]
        span.name = f"{method} {route}" if kind == Span.SPAN_KIND_SERVER else method
        path = route.replace("{id}", str(rng.randrange(1, 10_000)))
        # Some services still emit the old (pre-1.21) HTTP conventions.
        if rng.random() < 0.2:
            attrs = {"http.method": method, "http.status_code": 200, "http.url": f"http://{service}{path}"}
        else:
            attrs = {
                "http.request.method": method,
                "http.response.status_code": 200,
                "url.full": f"http://{service}.shop.svc{path}",
            }
        attrs["http.route"] = route
        attrs["server.address"] = f"{service}.shop.svc"
        attrs["server.port"] = 8080
    span.attributes.extend(key_values(attrs))
    return span


def _fill_attrs(rng: random.Random, span: Span, attrs_per_span: int, i: int) -> None:
    missing = attrs_per_span - len(span.attributes)
    if missing > 0:
        span.attributes.extend(key_values(_filler(rng, missing, i)))
    elif missing < 0:
        del span.attributes[attrs_per_span:]


def _fail(rng: random.Random, made: list[tuple[Span, int, int, int]], trace_no: int) -> None:
    """Fail one leaf with an exception event and mark the failure up its ancestors."""
    by_id = {s.span_id: s for s, *_ in made}
    children = {s.parent_span_id for s, *_ in made}
    leaves = [s for s, *_ in made if s.span_id not in children]
    span = rng.choice(leaves)
    exc_type, template = rng.choice(_EXCEPTIONS)
    message = template.format(ms=rng.choice((500, 1000, 3000)), svc="payment", port=50051, n=trace_no)
    event = span.events.add()
    event.name = "exception"
    event.time_unix_nano = span.end_time_unix_nano - 1000
    event.attributes.extend(
        key_values(
            {
                "exception.type": exc_type,
                "exception.message": message,
                "exception.stacktrace": (
                    "Traceback (most recent call last):\n"
                    '  File "/app/handlers/h1.py", line 42, in handle_1\n'
                    "    result = client.call(request)\n"
                    f"{exc_type}: {message}"
                ),
                "exception.escaped": True,
            }
        )
    )
    while span is not None:
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = f"{exc_type}: {message}"[:120]
        _mark_error_attrs(span, exc_type)
        span = by_id.get(span.parent_span_id)  # type: ignore[assignment]


def _mark_error_attrs(span: Span, exc_type: str) -> None:
    for kv in span.attributes:
        if kv.key in ("http.response.status_code", "http.status_code"):
            kv.value.int_value = 500 if span.kind == Span.SPAN_KIND_SERVER else 503
        elif kv.key == "rpc.grpc.status_code":
            kv.value.int_value = 14
    span.attributes.append(KeyValue(key="error.type", value=AnyValue(string_value=exc_type)))


_LOG_TEMPLATES = (
    (9, "INFO", "user {user} logged in from {ip}"),
    (9, "INFO", "order {order} placed with {n} items"),
    (9, "INFO", "GET /api/products/{n} 200 {ms}ms"),
    (5, "DEBUG", "cache miss for key sku-{n}"),
    (13, "WARN", "slow query on orders took {ms} ms"),
    (13, "WARN", "retrying call to {svc} (attempt {n})"),
    (17, "ERROR", "failed to charge card for order {order}: {exc}"),
    (17, "ERROR", "connection to {svc}:5432 refused"),
)


def build_logs_request(
    n_records: int = 1000,
    services: int = 5,
    attrs_per_record: int = 6,
    seed: int = 0,
    error_ratio: float = 0.1,
    base_time_ns: int | None = None,
) -> ExportLogsServiceRequest:
    """A logs request of ``n_records`` records spread over ``services`` services.

    Bodies follow a handful of templates with variable parts (the food of log template
    mining); error records carry ``exception.*`` and ``error.type`` attributes; about
    half the records are correlated with a trace; a few have only an observed time, and
    a few have a structured (kvlist) body.
    """
    rng = random.Random(seed)
    now = _now_or(base_time_ns)
    names = service_names(max(services, 1))
    per_service: list[list[LogRecord]] = [[] for _ in names]
    info_templates = [t for t in _LOG_TEMPLATES if t[0] < 17]
    error_templates = [t for t in _LOG_TEMPLATES if t[0] >= 17]
    for i in range(n_records):
        svc = rng.randrange(len(names))
        is_error = rng.random() < error_ratio
        sev, sev_text, template = rng.choice(error_templates if is_error else info_templates)
        exc_type, exc_template = rng.choice(_EXCEPTIONS)
        exc_msg = exc_template.format(ms=3000, svc="payment", port=50051, n=i)
        body = template.format(
            user=f"user-{rng.randrange(1000)}",
            ip=f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
            order=f"ord-{rng.getrandbits(32):08x}",
            n=rng.randrange(1, 50),
            ms=rng.randrange(5, 5000),
            svc=rng.choice(names),
            exc=exc_msg,
        )
        t = now - rng.randrange(1_000_000, 60_000_000_000)
        rec = LogRecord(
            time_unix_nano=t,
            observed_time_unix_nano=t + rng.randrange(100_000, 5_000_000),
            severity_number=sev,  # type: ignore[arg-type]
            severity_text=sev_text,
        )
        if i % 50 == 7:
            rec.time_unix_nano = 0  # only the observed time is known
        if i % 40 == 3:
            rec.body.CopyFrom(any_value({"msg": body, "status": rng.choice((200, 500)), "ok": not is_error}))
        else:
            rec.body.string_value = body
        if rng.random() < 0.5:
            rec.trace_id = _nonzero_bits(rng, 128)
            rec.span_id = _nonzero_bits(rng, 64)
            rec.flags = 1
        attrs: dict[str, Any] = {}
        if is_error:
            attrs.update(
                {
                    "exception.type": exc_type,
                    "exception.message": exc_msg,
                    "exception.stacktrace": (
                        f'  File "/app/worker.py", line 88, in run\n{exc_type}: {exc_msg}'
                    ),
                    "error.type": exc_type,
                }
            )
        attrs.update(
            {
                "code.function.name": f"handle_{i % 5}",
                "log.logger": f"{names[svc]}.handlers",
                "thread.id": rng.randrange(1, 64),
            }
        )
        for k, v in _filler(rng, max(attrs_per_record - len(attrs), 0), i).items():
            attrs.setdefault(k, v)
        rec.attributes.extend(
            key_values(dict(list(attrs.items())[: max(attrs_per_record, 4 if is_error else 0)]))
        )
        per_service[svc].append(rec)
    req = ExportLogsServiceRequest()
    for idx, (service, records) in enumerate(zip(names, per_service, strict=True)):
        if not records:
            continue
        rl = req.resource_logs.add()
        rl.resource.attributes.extend(key_values(_resource_attrs(service, idx, rng)))
        sl = rl.scope_logs.add()
        sl.scope.name = "opentelemetry.sdk._logs"
        sl.log_records.extend(records)
    return req


def build_metrics_request(
    services: int = 3,
    points_per_metric: int = 4,
    seed: int = 0,
    base_time_ns: int | None = None,
) -> ExportMetricsServiceRequest:
    """A metrics request with every metric kind for each service.

    Per service: a double gauge, an int gauge, a monotonic cumulative sum, a non-monotonic
    delta sum, an explicit-bucket histogram (with min/max and an exemplar), an exponential
    histogram and a summary, each with ``points_per_metric`` points (differing by an
    attribute). ``7 * services * points_per_metric`` data points in all.
    """
    rng = random.Random(seed)
    now = _now_or(base_time_ns)
    start = now - 60_000_000_000
    req = ExportMetricsServiceRequest()
    for idx, service in enumerate(service_names(max(services, 1))):
        rm = req.resource_metrics.add()
        rm.resource.attributes.extend(key_values(_resource_attrs(service, idx, rng)))
        sm = rm.scope_metrics.add()
        sm.scope.name = "opentelemetry.instrumentation.system_metrics"
        sm.scope.version = "0.48b0"
        routes = [_ROUTES[i % len(_ROUTES)] for i in range(points_per_metric)]

        def point_attrs(i: int, routes: list[str] = routes) -> list[KeyValue]:
            return key_values({"http.route": routes[i], "http.request.method": _METHODS[i % len(_METHODS)]})

        g = sm.metrics.add(name="process.cpu.utilization", unit="1", description="CPU share used")
        for i in range(points_per_metric):
            p = g.gauge.data_points.add(time_unix_nano=now, as_double=rng.random())
            p.attributes.extend(key_values({"cpu.mode": ("user", "system", "idle", "wait")[i % 4]}))
        gi = sm.metrics.add(name="process.thread.count", unit="{thread}")
        for i in range(points_per_metric):
            p = gi.gauge.data_points.add(time_unix_nano=now, as_int=rng.randrange(4, 64))
            p.attributes.extend(key_values({"thread.pool": f"pool-{i}"}))
        s = sm.metrics.add(name="http.server.request.count", unit="{request}")
        s.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        s.sum.is_monotonic = True
        for i in range(points_per_metric):
            p = s.sum.data_points.add(
                start_time_unix_nano=start, time_unix_nano=now, as_int=rng.randrange(100, 100_000)
            )
            p.attributes.extend(point_attrs(i))
        d = sm.metrics.add(name="db.client.connection.count", unit="{connection}")
        d.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
        d.sum.is_monotonic = False
        for i in range(points_per_metric):
            p = d.sum.data_points.add(
                start_time_unix_nano=now - 10_000_000_000, time_unix_nano=now, as_double=rng.uniform(-5, 5)
            )
            p.attributes.extend(key_values({"db.client.connection.state": ("idle", "used")[i % 2]}))
        h = sm.metrics.add(name="http.server.request.duration", unit="s")
        h.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
        for i in range(points_per_metric):
            counts = [rng.randrange(0, 200) for _ in range(len(bounds) + 1)]
            hp = h.histogram.data_points.add(
                start_time_unix_nano=start,
                time_unix_nano=now,
                count=sum(counts),
                sum=sum(counts) * rng.uniform(0.01, 0.3),
                bucket_counts=counts,
                explicit_bounds=bounds,
                min=0.001,
                max=rng.uniform(1, 6),
            )
            hp.attributes.extend(point_attrs(i))
            ex = hp.exemplars.add(time_unix_nano=now - 1_000_000, as_double=0.42)
            ex.trace_id = _nonzero_bits(rng, 128)
            ex.span_id = _nonzero_bits(rng, 64)
        e = sm.metrics.add(name="rpc.server.duration", unit="ms")
        e.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
        for i in range(points_per_metric):
            pos = [rng.randrange(0, 50) for _ in range(8)]
            neg = [rng.randrange(0, 3) for _ in range(2)]
            ep = e.exponential_histogram.data_points.add(
                start_time_unix_nano=now - 10_000_000_000,
                time_unix_nano=now,
                count=sum(pos) + sum(neg) + 2,
                sum=rng.uniform(100, 5000),
                scale=3,
                zero_count=2,
                zero_threshold=1e-9,
                min=-1.5,
                max=rng.uniform(50, 500),
            )
            ep.positive.offset = 10
            ep.positive.bucket_counts.extend(pos)
            ep.negative.offset = -1
            ep.negative.bucket_counts.extend(neg)
            ep.attributes.extend(key_values({"rpc.method": f"Method{i}"}))
        q = sm.metrics.add(name="gc.pause.duration", unit="ms", description="legacy summary")
        for i in range(points_per_metric):
            sp = q.summary.data_points.add(
                start_time_unix_nano=start, time_unix_nano=now, count=100 + i, sum=1234.5 + i
            )
            for quantile, value in ((0.0, 0.5), (0.5, 3.0), (0.99, 40.0), (1.0, 55.5)):
                sp.quantile_values.add(quantile=quantile, value=value + i)
            sp.attributes.extend(key_values({"gc.generation": i % 3}))
    return req


def to_otlp_dict(message: Message) -> dict[str, Any]:
    """An OTLP message as the dict OTLP/JSON serializes: camelCase, hex ids, int enums."""
    d = json_format.MessageToDict(message, use_integers_for_enums=True)
    _ids_to_hex(d)
    return d


def to_otlp_json(message: Message) -> bytes:
    """An OTLP message as an OTLP/JSON request body (UTF-8 bytes)."""
    return json.dumps(to_otlp_dict(message), separators=(",", ":")).encode()


def _ids_to_hex(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ID_FIELDS_JSON and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _ids_to_hex(item)
