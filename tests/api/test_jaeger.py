"""Jaeger's query API as Grafana's Jaeger data source uses it, against a real server.

A real faultlens server (in this process, real sockets, bearer auth on) is fed spans by the
OpenTelemetry SDK over OTLP/HTTP; then the request sequence Grafana makes, recorded in
``grafana_jaeger_requests.json`` from grafana/grafana's ``datasource.ts`` and
``SearchForm.tsx``, is replayed and each answer is checked for the fields Grafana reads
(``responseTransform.ts``: traceID, spanID, the CHILD_OF reference as parent, operationName,
processes[processID].serviceName/tags, startTime/duration in microseconds, logs, tags).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from faultlens.config.model import Config
from faultlens.testing.inprocess import InProcessServer

TOKEN = "grafana-reads-jaeger"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIXTURE = Path(__file__).with_name("grafana_jaeger_requests.json")
MS = 1_000_000
S = 1_000_000_000


@dataclass(frozen=True)
class Sent:
    """What the SDK sent: ids as lowercase hex, and the base time (ns) of the spans."""

    checkout: str  # trace: frontend GET /checkout -> POST /pay (error) -> payment charge (error)
    home: str  # trace: frontend GET /home -> render
    root: str
    pay: str
    charge: str
    home_root: str
    base_ns: int


@dataclass(frozen=True)
class Served:
    api: httpx.Client
    sent: Sent


def _provider(endpoint: str, service: str, **resource: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=AUTH)))
    return provider


def _hex(span: otel_trace.Span, trace: bool = False) -> str:
    ctx = span.get_span_context()
    return f"{ctx.trace_id:032x}" if trace else f"{ctx.span_id:016x}"


def _send(endpoint: str) -> Sent:
    frontend = _provider(endpoint, "frontend", **{"host.name": "web-1"})
    payment = _provider(endpoint, "payment", **{"host.name": "pay-1"})
    t = (time.time_ns() // S - 60) * S  # a minute ago, inside the default retention
    web = frontend.get_tracer("web")
    home = web.start_span("GET /home", kind=SpanKind.SERVER, start_time=t)
    render = web.start_span(
        "render", context=otel_trace.set_span_in_context(home), kind=SpanKind.INTERNAL, start_time=t + MS
    )
    render.end(end_time=t + 2 * MS)
    home.set_status(Status(StatusCode.OK))
    home.end(end_time=t + 3 * MS)

    root = web.start_span(
        "GET /checkout",
        kind=SpanKind.SERVER,
        start_time=t + S + 1_500,  # not a whole microsecond: Jaeger's times are floored
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 500,
            "sample.ratio": 0.5,
            "cache.hit": False,
            "cart.items": ["a", "b"],
        },
    )
    in_root = otel_trace.set_span_in_context(root)
    pay = web.start_span("POST /pay", context=in_root, kind=SpanKind.CLIENT, start_time=t + S + 2 * MS)
    charge = payment.get_tracer("payment-lib", "1.2").start_span(
        "charge",
        context=otel_trace.set_span_in_context(pay),
        kind=SpanKind.SERVER,
        start_time=t + S + 3 * MS,
        links=[Link(home.get_span_context())],
    )
    charge.add_event("exception", {"exception.type": "CardDeclined"}, timestamp=t + S + 4 * MS + 999)
    charge.set_status(Status(StatusCode.ERROR, "card declined"))
    charge.end(end_time=t + S + 5 * MS)
    pay.set_status(Status(StatusCode.ERROR))
    pay.end(end_time=t + S + 6 * MS)
    root.end(end_time=t + S + 10 * MS + 1_500)
    frontend.shutdown()
    payment.shutdown()
    return Sent(
        checkout=_hex(root, trace=True),
        home=_hex(home, trace=True),
        root=_hex(root),
        pay=_hex(pay),
        charge=_hex(charge),
        home_root=_hex(home),
        base_ns=t,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    config = Config.model_validate(
        {
            "store": {"data_dir": str(tmp_path_factory.mktemp("jaeger")), "flush_interval": 0.1},
            "receivers": {"grpc": {"port": 0}, "http": {"port": 0}, "auth": {"bearer_tokens": [TOKEN]}},
            "api": {"port": 0},
        }
    )
    server = InProcessServer(config)
    try:
        sent = _send(f"http://127.0.0.1:{server.ports['otlp-http']}/v1/traces")
        deadline = time.monotonic() + 20
        while True:  # the store flushes every 0.1 s; both traces must be whole
            answers = [server.api.get(f"/api/traces/{i}", headers=AUTH) for i in (sent.checkout, sent.home)]
            counts = [len(r.json()["data"][0]["spans"]) if r.status_code == 200 else 0 for r in answers]
            if counts == [3, 2]:
                break
            assert time.monotonic() < deadline, f"spans not stored in time: {counts}"
            time.sleep(0.1)
        yield Served(server.api, sent)
    finally:
        server.stop()


def _get(served: Served, path: str, **params: Any) -> httpx.Response:
    return served.api.get(path, params=params, headers=AUTH)


def _ok(served: Served, path: str, **params: Any) -> Any:
    r = _get(served, path, **params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["errors"] is None and body["limit"] == 0 and body["offset"] == 0, body
    return body["data"]


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _tags(tags: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    return {t["key"]: (t["type"], t["value"]) for t in tags}


def _check_grafana_trace(trace: dict[str, Any]) -> None:
    """What responseTransform.ts toSpanRow and transformTraceData read from every span."""
    assert set(trace) >= {"traceID", "spans", "processes", "warnings"}
    ids = {s["spanID"] for s in trace["spans"]}
    for span in trace["spans"]:
        assert span["traceID"] == trace["traceID"]
        assert isinstance(span["startTime"], int) and isinstance(span["duration"], int)
        assert trace["processes"][span["processID"]]["serviceName"]
        assert isinstance(span["logs"], list) and isinstance(span["tags"], list)
        for ref in span["references"]:
            assert ref["refType"] in ("CHILD_OF", "FOLLOWS_FROM")
            if ref["refType"] == "CHILD_OF":
                assert ref["spanID"] in ids and ref["traceID"] == trace["traceID"]


def test_the_recorded_grafana_request_sequence_gets_the_shapes_grafana_parses(served: Served) -> None:
    sent = served.sent
    start_us = sent.base_ns // 1000 - 60_000_000
    end_us = sent.base_ns // 1000 + 60_000_000
    values = {
        "service": "frontend",
        "operation": "GET /checkout",
        "error_service": "payment",
        "trace_id": sent.checkout,
        "start_us": str(start_us),
        "end_us": str(end_us),
        "end_ms": str(end_us // 1000),
        "lookback_ms": str((end_us - start_us) // 1000),
    }
    recorded = json.loads(FIXTURE.read_text())["requests"]
    assert [r["reads"] for r in recorded] == [
        "services",
        "services",
        "operations",
        "search",
        "search",
        "trace",
        "dependencies",
    ]
    for request in recorded:
        params = {k: _fill(v, values) for k, v in request["params"].items()}
        data = _ok(served, _fill(request["path"], values), **params)
        reads = request["reads"]
        if reads == "services":
            assert data == ["frontend", "payment"], request["step"]
        elif reads == "operations":
            assert data == ["GET /checkout", "GET /home", "POST /pay", "render"]
        elif reads == "search":
            assert [t["traceID"] for t in data] == [sent.checkout], request["step"]
            _check_grafana_trace(data[0])
            assert len(data[0]["spans"]) == 3  # the whole trace, not only the matching span
        elif reads == "trace":
            assert len(data) == 1
            _check_grafana_trace(data[0])
        else:
            assert data == [{"parent": "frontend", "child": "payment", "callCount": 1}]


def test_a_trace_maps_otlp_as_the_collectors_jaeger_translator_does(served: Served) -> None:
    sent = served.sent
    [trace] = _ok(served, f"/api/traces/{sent.checkout.upper()}")
    spans = {s["operationName"]: s for s in trace["spans"]}
    root, pay, charge = spans["GET /checkout"], spans["POST /pay"], spans["charge"]
    base_us = sent.base_ns // 1000

    assert (root["spanID"], root["references"]) == (sent.root, [])
    assert root["startTime"] == base_us + 1_000_000 + 1  # 1.5 us floored
    assert root["duration"] == 10_000
    assert _tags(root["tags"]) == {
        "http.request.method": ("string", "GET"),
        "http.response.status_code": ("int64", 500),
        "sample.ratio": ("float64", 0.5),
        "cache.hit": ("bool", False),
        "cart.items": ("string", '["a","b"]'),
        "otel.scope.name": ("string", "web"),
        "span.kind": ("string", "server"),
    }
    assert pay["references"] == [{"refType": "CHILD_OF", "traceID": sent.checkout, "spanID": sent.root}]
    assert _tags(pay["tags"])["otel.status_code"] == ("string", "ERROR")
    assert _tags(pay["tags"])["error"] == ("bool", True)
    assert "otel.status_description" not in _tags(pay["tags"])

    assert charge["references"] == [
        {"refType": "CHILD_OF", "traceID": sent.checkout, "spanID": sent.pay},
        {"refType": "FOLLOWS_FROM", "traceID": sent.home, "spanID": sent.home_root},
    ]
    tags = _tags(charge["tags"])
    assert tags["span.kind"] == ("string", "server")
    assert tags["otel.scope.name"] == ("string", "payment-lib")
    assert tags["otel.status_description"] == ("string", "card declined")
    assert tags["error"] == ("bool", True)
    assert charge["logs"] == [
        {
            "timestamp": base_us + 1_000_000 + 4_000,
            "fields": [
                {"key": "event", "type": "string", "value": "exception"},
                {"key": "exception.type", "type": "string", "value": "CardDeclined"},
            ],
        }
    ]
    assert (charge["flags"], charge["warnings"]) == (1, None)

    services = {p["serviceName"]: p for p in trace["processes"].values()}
    assert set(services) == {"frontend", "payment"} and set(trace["processes"]) == {"p1", "p2"}
    assert root["processID"] == pay["processID"] != charge["processID"]
    frontend_tags = _tags(services["frontend"]["tags"])
    assert frontend_tags["host.name"] == ("string", "web-1") and "service.name" not in frontend_tags

    [home] = _ok(served, f"/api/traces/{sent.home}")
    home_tags = _tags(home["spans"][0]["tags"])
    assert home_tags["otel.status_code"] == ("string", "OK") and "error" not in home_tags


def test_operations_in_the_newer_form_carry_the_span_kind(served: Served) -> None:
    assert _ok(served, "/api/operations", service="frontend") == [
        {"name": "GET /checkout", "spanKind": "server"},
        {"name": "GET /home", "spanKind": "server"},
        {"name": "POST /pay", "spanKind": "client"},
        {"name": "render", "spanKind": "internal"},
    ]
    assert _ok(served, "/api/operations", service="frontend", spanKind="client") == [
        {"name": "POST /pay", "spanKind": "client"}
    ]
    assert _ok(served, "/api/services/nobody/operations") == []


def test_search_honours_time_limit_and_lookback(served: Served) -> None:
    sent = served.sent
    base_us = sent.base_ns // 1000
    newest_first = _ok(served, "/api/traces", service="frontend")
    assert [t["traceID"] for t in newest_first] == [sent.checkout, sent.home]
    one = _ok(served, "/api/traces", service="frontend", limit="1")
    assert [t["traceID"] for t in one] == [sent.checkout]
    # end is inclusive, in microseconds: the home trace's root starts exactly at base_us
    until_home = _ok(served, "/api/traces", service="frontend", end=str(base_us))
    assert [t["traceID"] for t in until_home] == [sent.home]
    assert _ok(served, "/api/traces", service="frontend", end=str(base_us - 1)) == []
    assert len(_ok(served, "/api/traces", service="frontend", lookback="1h")) == 2
    assert _ok(served, "/api/traces", service="frontend", lookback="1s", end=str(base_us - 10_000_000)) == []
    logfmt = _ok(served, "/api/traces", service="frontend", tags="error=true")
    assert [t["traceID"] for t in logfmt] == [sent.checkout]


@pytest.mark.parametrize(
    ("params", "found"),
    [
        ({"tags": "http.response.status_code=500"}, ["checkout"]),  # an int attribute as its text
        ({"tags": '{"cache.hit":"false","sample.ratio":"0.5"}'}, ["checkout"]),  # Jaeger's JSON form
        ({"tags": "http.request.method=GET"}, ["checkout"]),
        ({"tags": "http.request.method=POST"}, []),
        ({"tags": "host.name=web-1"}, ["checkout", "home"]),  # a process (resource) tag
        ({"tags": "host.name=pay-1"}, []),  # payment's process: not a frontend span
        ({"tags": "otel.status_code=ERROR"}, ["checkout"]),
        ({"tags": "error=true http.request.method=GET"}, []),  # the error span is POST /pay, not the root
        ({"operation": "POST /pay", "tags": "error=true"}, ["checkout"]),
        ({"minDuration": "10ms"}, ["checkout"]),  # the root lasts exactly 10 ms: inclusive
        ({"minDuration": "10.001ms"}, []),
        ({"maxDuration": "1ms"}, ["home"]),  # render lasts exactly 1 ms
        ({"maxDuration": "999us"}, []),
        ({"minDuration": "3ms", "maxDuration": "4ms"}, ["checkout", "home"]),  # POST /pay 4 ms, GET /home 3
        ({"operation": "GET /home", "maxDuration": "2ms"}, []),  # on the same span as the operation
    ],
)
def test_search_by_tags_and_span_duration_holds_on_one_span(
    served: Served, params: dict[str, str], found: list[str]
) -> None:
    ids = {served.sent.checkout: "checkout", served.sent.home: "home"}
    traces = _ok(served, "/api/traces", service="frontend", **params)
    assert [ids[t["traceID"]] for t in traces] == found


def _refused(served: Served, status: int, path: str, **params: Any) -> str:
    r = _get(served, path, **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert (body["data"], body["total"], body["limit"], body["offset"]) == (None, 0, 0, 0)
    [error] = body["errors"]
    assert error["code"] == status
    return str(error["msg"])


def test_an_unknown_trace_is_404_in_jaegers_shape(served: Served) -> None:
    assert _refused(served, 404, "/api/traces/" + "ab" * 16) == "trace not found"
    assert _refused(served, 404, "/api/traces/00000000000000ab") == "trace not found"  # 64-bit id
    assert "malformed trace id" in _refused(served, 400, "/api/traces/not-hex")


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({}, "parameter 'service' is required"),
        ({"service": "frontend", "start": "yesterday"}, "unable to parse param 'start'"),
        ({"service": "frontend", "start": "20", "end": "10"}, "'end' is before 'start'"),
        ({"service": "frontend", "limit": "-1"}, "unable to parse param 'limit'"),
        ({"service": "frontend", "limit": "100000"}, "'limit' must be at most"),
        ({"service": "frontend", "lookback": "soon"}, "unable to parse param 'lookback'"),
        ({"service": "frontend", "tags": '{"error": "true"'}, "malformed 'tags' parameter"),
        ({"service": "frontend", "tags": "span.kind=server"}, "cannot search by tag span.kind=server"),
        ({"service": "frontend", "tags": "otel.status_code=OK"}, "cannot search by tag otel.status_code=OK"),
        ({"service": "frontend", "tags": "w3c.tracestate=a"}, "cannot search by tag w3c.tracestate"),
        ({"service": "frontend", "minDuration": "fast"}, "unable to parse param 'minDuration'"),
        ({"service": "frontend", "maxDuration": "-"}, "unable to parse param 'maxDuration'"),
    ],
)
def test_a_search_the_store_cannot_answer_exactly_is_400_in_jaegers_shape(
    served: Served, params: dict[str, str], says: str
) -> None:
    assert says in _refused(served, 400, "/api/traces", **params)


def test_other_bad_parameters_are_400_in_jaegers_shape(served: Served) -> None:
    assert "service" in _refused(served, 400, "/api/operations")
    assert "spanKind" in _refused(served, 400, "/api/operations", service="frontend", spanKind="sideways")
    assert "endTs" in _refused(served, 400, "/api/dependencies", endTs="now")


def test_the_jaeger_api_is_behind_auth_and_metrics_stay_prometheus(served: Served) -> None:
    assert served.api.get("/api/services").status_code == 401
    assert served.api.get("/api/services", headers={**AUTH, "Host": "evil.example"}).status_code == 421
    r = served.api.get("/metrics", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "# TYPE " in r.text
