"""Fuzzing both receivers and the query API of one real server, over real sockets.

Hostile bodies are real OTLP payloads (``faultlens.testing.payloads``) mutated by hypothesis:
bytes flipped, cut or spliced, wrong or missing content types and encodings, gzip that is
not, attribute values past every limit, AnyValues nested past the depth limit. Every answer
must be one a client can act on (HTTP 200/400/413/415/429/503, 404 only for a path that
does not exist; gRPC OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE), never a 500;
the API never answers 500 to any query string. Afterwards the server is live and ready, and
a valid request is stored. Bounded: a fixed number of examples, ~25 s in all.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultlens.config.model import Config
from faultlens.testing.inprocess import InProcessServer
from faultlens.testing.payloads import (
    build_logs_request,
    build_metrics_request,
    build_trace_request,
    key_values,
    to_otlp_json,
)
from faultlens.types import Signal

LIMIT = 2 * 1024 * 1024  # receivers.max_request_bytes of the fuzzed server
HTTP_OK = {200, 400, 413, 415, 429, 503}
GRPC_OK = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}
PATHS = {Signal.TRACES: "/v1/traces", Signal.METRICS: "/v1/metrics", Signal.LOGS: "/v1/logs"}
GRPC_METHODS = {
    Signal.TRACES: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    Signal.METRICS: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    Signal.LOGS: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


def _requests() -> dict[Signal, Any]:
    trace = build_trace_request(n_spans=20, seed=1)
    span = trace.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.extend(key_values({"big": "x" * 300_000, "nested": {"a": [1, {"b": "c"}]}}))
    return {
        Signal.TRACES: trace,
        Signal.METRICS: build_metrics_request(seed=1),
        Signal.LOGS: build_logs_request(n_records=20, seed=1),
    }


REQUESTS = _requests()
PROTOBUF = {s: r.SerializeToString() for s, r in REQUESTS.items()}
JSON = {s: to_otlp_json(r) for s, r in REQUESTS.items()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    data = tmp_path_factory.mktemp("fuzz")
    cfg = Config.model_validate(
        {
            "receivers": {"grpc": {"port": 0}, "http": {"port": 0}, "max_request_bytes": LIMIT},
            "api": {"port": 0},
            "store": {"data_dir": str(data), "flush_interval": 0.2},
        }
    )
    srv = InProcessServer(cfg)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def channel(server: InProcessServer) -> Iterator[grpc.Channel]:
    options = [("grpc.max_send_message_length", 4 * LIMIT), ("grpc.max_receive_message_length", 4 * LIMIT)]
    with grpc.insecure_channel(f"127.0.0.1:{server.ports['otlp-grpc']}", options=options) as ch:
        yield ch


# --- hostile bodies -------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few byte-level mutations: flips, cuts, splices, repeats."""
    out = bytearray(data)
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 4]))):  # an unchanged body now and then
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "truncate"]))
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        if op == "flip":
            out[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del out[i : i + draw(st.integers(1, 64))]
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=32))
        elif op == "repeat":
            out[i:i] = out[i : i + draw(st.integers(1, 256))] * draw(st.integers(2, 8))
        else:
            del out[i:]
    return bytes(out)


def _deep_json(depth: int) -> bytes:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    doc = json.loads(JSON[Signal.TRACES])
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [{"key": "deep", "value": value}]
    return json.dumps(doc).encode()


@st.composite
def json_bodies(draw: st.DrawFn, signal: Signal) -> bytes:
    """OTLP/JSON: mutated text, values of the wrong type, huge strings, deep nesting."""
    kind = draw(st.sampled_from(["bytes", "wrong-type", "huge", "deep", "junk", "oversize"]))
    if kind == "oversize":  # past receivers.max_request_bytes once inflated
        return JSON[signal][:-1] + b" " * LIMIT + b"}"
    if kind == "bytes":
        return draw(mutated(JSON[signal]))
    if kind == "deep":
        return _deep_json(draw(st.integers(20, 200)))
    if kind == "junk":
        return draw(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
    doc = json.loads(JSON[signal])
    top = next(iter(doc))
    weird = draw(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=False),
            st.text(max_size=50),
            st.lists(st.integers(), max_size=3),
        )
    )
    if kind == "huge":
        weird = "h" * draw(st.sampled_from([100_000, LIMIT // 2, LIMIT + 10]))
    target = doc[top][0]
    key = draw(st.sampled_from(sorted(target)))
    target[key] = (
        weird if kind == "wrong-type" else {"attributes": [{"key": "h", "value": {"stringValue": weird}}]}
    )
    return json.dumps(doc).encode()


def _encode(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body, compresslevel=1)
    if encoding == "deflate":
        return zlib.compress(body, 1)
    return body


# --- the tests ------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_http_receiver_answers_hostile_bodies_with_a_client_status(
    server: InProcessServer, data: st.DataObject
) -> None:
    signal = data.draw(st.sampled_from(list(Signal)))
    as_json = data.draw(st.booleans())
    body = data.draw(json_bodies(signal) if as_json else mutated(PROTOBUF[signal]))
    matching = "application/json; charset=utf-8" if as_json else "application/x-protobuf"
    content_type = data.draw(
        st.sampled_from(
            [
                matching,
                matching,
                matching,
                "application/json",
                "application/x-protobuf",
                "text/plain",
                "",
                "application/grpc",
                "multipart/form-data; boundary=x",
                "application/json; q",
            ]
        )
    )
    encoding = data.draw(st.sampled_from([None, None, None, "gzip", "gzip", "deflate", "br", "gzip, gzip"]))
    wire = _encode(body, encoding)
    if encoding == "gzip" and data.draw(st.booleans()):
        wire = data.draw(mutated(wire))  # gzip that is not
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    r = server.otlp.post(PATHS[signal], content=wire, headers=headers)
    assert r.status_code in HTTP_OK, (r.status_code, r.text[:300])


@FUZZ
@given(data=st.data())
def test_grpc_receiver_answers_hostile_messages_with_a_client_code(
    channel: grpc.Channel, data: st.DataObject
) -> None:
    signal = data.draw(st.sampled_from(list(Signal)))
    body = data.draw(
        st.one_of(mutated(PROTOBUF[signal]), st.binary(max_size=300), st.just(PROTOBUF[Signal.TRACES]))
    )
    call = channel.unary_unary(GRPC_METHODS[signal], request_serializer=None, response_deserializer=None)
    metadata = (("grpc-encoding", "gzip"),) if data.draw(st.booleans()) else None
    try:
        call(body, timeout=20, metadata=metadata)
        code = grpc.StatusCode.OK
    except grpc.RpcError as e:
        code = e.code()
    assert code in GRPC_OK, code


@pytest.fixture(scope="module")
def api_routes(server: InProcessServer) -> list[tuple[str, list[str]]]:
    """Every GET route of the API with its query parameters, from its own OpenAPI document."""
    spec = server.get("/openapi.json")
    routes = []
    for path, ops in spec["paths"].items():
        if "get" in ops and path.startswith("/api/"):
            routes.append((path, [p["name"] for p in ops["get"].get("parameters", []) if p["in"] == "query"]))
    return routes


QUERY_VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        ["now", "now-15m", "now+1h", "2026-12-07T00:00:00Z", "", "0", "-1", "1e400", "error", "any"]
    ),
    st.binary(max_size=20).map(lambda b: b.hex()),
)


@FUZZ
@given(data=st.data())
def test_api_never_answers_500_to_any_query(
    server: InProcessServer, api_routes: list[tuple[str, list[str]]], data: st.DataObject
) -> None:
    path, names = data.draw(st.sampled_from(api_routes))
    filled = path
    while "{" in filled:
        start, end = filled.index("{"), filled.index("}")
        value = data.draw(
            st.one_of(st.text(min_size=1, max_size=20), st.binary(min_size=1, max_size=16).map(bytes.hex))
        )
        filled = filled[:start] + quote(value, safe="") + filled[end + 1 :]
    keys = (
        st.one_of(st.sampled_from(names), st.text(min_size=1, max_size=10))
        if names
        else st.text(min_size=1, max_size=10)
    )
    params: list[tuple[str, str | int | float | bool | None]] = list(
        data.draw(st.lists(st.tuples(keys, QUERY_VALUES), max_size=5))
    )
    r = server.api.get(filled, params=params)
    assert r.status_code != 500 and (r.status_code < 500 or r.status_code == 503), (
        filled,
        params,
        r.text[:300],
    )


def test_after_the_fuzzing_the_server_is_ready_and_stores_a_valid_request(server: InProcessServer) -> None:
    """Runs after the fuzz tests in this module (pytest keeps file order)."""
    assert server.api.get("/healthz").status_code == 200
    service = f"fuzz-check-{time.time_ns()}"
    req = build_trace_request(n_spans=10, services=1, seed=99)
    for kv in req.resource_spans[0].resource.attributes:
        if kv.key == "service.name":
            kv.value.string_value = service
    r = server.otlp.post(
        "/v1/traces", content=req.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
    )
    assert r.status_code == 200
    deadline = time.monotonic() + 20
    found: list[Any] = []
    while time.monotonic() < deadline and not found:
        found = server.get("/api/v1/traces", service=service)["traces"]
        time.sleep(0.1)
    assert found
    ready = server.api.get("/readyz")
    assert ready.status_code == 200, ready.text
