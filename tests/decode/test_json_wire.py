"""The fast OTLP/JSON path gives exactly what the json_format reference gives, or declines.

For every body, ``json_to_wire`` either returns the very bytes that the reference path
(``json_reference_bytes``: ``parse_json`` then ``SerializeToString``) returns, or returns
None, and it returns None for every body the reference refuses, so that the reference words
the error. Since the bytes are the same, the decoded tables, rejected counts, reasons and
``raw`` are the same too (checked end to end on realistic requests). Inputs: the payload
builders' requests as OTLP/JSON, every AnyValue kind, the spellings OTLP/JSON allows
(snake_case keys, integers as numbers or strings, enum names, nulls, unknown fields),
spellings the fast path leaves to the reference, invalid values, generated requests, and
thousands of requests mutated as documents and as bytes. The realistic ones must not be
declined: the fast path is only worth having if it takes what senders send.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from faultlens.decode import decode_bytes, decode_request
from faultlens.decode._jsonwire import MAX_ANY_DEPTH, json_to_wire
from faultlens.decode.request import json_reference_bytes
from faultlens.errors import InvalidRequest
from faultlens.testing.payloads import (
    build_logs_request,
    build_metrics_request,
    build_trace_request,
    key_values,
    to_otlp_dict,
    to_otlp_json,
)
from faultlens.types import Signal

from .conftest import BASE_NS
from .test_native_spans import NESTED, SCALARS, _odd_values, _requests, _span_with, request_of

TID = "5b8efff798038103d269b633813fc60c"
SID = "eee19b7ec3c1b174"


def check(signal: Signal, body: bytes | str, *, fast: bool | None = None) -> bytes | None:
    """The fast path agrees with the reference on ``body``; returns the reference bytes.

    ``fast`` True: the fast path must take the body; False: it must decline it.
    """
    data = body.encode() if isinstance(body, str) else body
    try:
        ref: bytes | None = json_reference_bytes(signal, data)
    except InvalidRequest:
        ref = None
    got = json_to_wire(signal, data)
    if ref is None:
        assert got is None, f"the reference refuses {data[:300]!r} but the fast path took it"
    elif got is not None:
        assert got == ref, f"bytes differ for {data[:300]!r}"
    if fast is not None:
        assert (got is not None) == fast, f"fast path {'declined' if fast else 'took'} {data[:300]!r}"
    return ref


def span_doc(**fields: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": TID,
        "spanId": SID,
        "name": "GET /x",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000100000000",
    }
    span.update(fields)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
                "scopeSpans": [{"scope": {"name": "s", "version": "1"}, "spans": [span]}],
            }
        ]
    }


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


# -- realistic requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_spans", "services", "attrs", "seed", "error_ratio"),
    [(300, 4, 15, 7, 0.3), (1000, 5, 15, 0, 0.05), (5, 2, 3, 1, 0.5), (60, 3, 40, 4, 1.0), (1, 1, 0, 5, 0.0)],
)
def test_payload_builder_traces_take_the_fast_path_and_decode_identically(
    n_spans: int, services: int, attrs: int, seed: int, error_ratio: float
) -> None:
    req = build_trace_request(
        n_spans=n_spans,
        services=services,
        attrs_per_span=attrs,
        seed=seed,
        error_ratio=error_ratio,
        base_time_ns=BASE_NS,
    )
    body = to_otlp_json(req)
    ref = check(Signal.TRACES, body, fast=True)
    assert ref == req.SerializeToString()
    batch = decode_request(Signal.TRACES, body, json=True)
    reference = decode_bytes(Signal.TRACES, ref)
    assert batch.table.equals(reference.table)
    assert (batch.rejected, batch.error_message, batch.raw) == (0, "", ref)
    assert batch.accepted == n_spans


def test_payload_builder_logs_take_the_fast_path_and_decode_identically() -> None:
    req = build_logs_request(n_records=300, services=3, seed=3, base_time_ns=BASE_NS)
    body = to_otlp_json(req)
    ref = check(Signal.LOGS, body, fast=True)
    assert ref == req.SerializeToString()
    batch = decode_request(Signal.LOGS, body, json=True)
    assert batch.table.equals(decode_bytes(Signal.LOGS, ref).table)
    assert batch.raw == ref and batch.accepted == 300


def test_payload_builder_metrics_of_every_kind_take_the_fast_path() -> None:
    req = build_metrics_request(services=2, points_per_metric=3, seed=5, base_time_ns=BASE_NS)
    body = to_otlp_json(req)
    assert all(k in body for k in (b"gauge", b"sum", b"histogram", b"exponentialHistogram", b"summary"))
    assert check(Signal.METRICS, body, fast=True) == req.SerializeToString()
    batch = decode_request(Signal.METRICS, body, json=True)
    assert batch.raw == req.SerializeToString()
    assert batch.table.equals(decode_bytes(Signal.METRICS, batch.raw).table)


def _metrics_doc(metric: Any) -> bytes:
    return dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]})


def test_metric_fields_in_every_spelling() -> None:
    doubles: list[Any] = [0.0, -0.0, 1.5, 3, "NaN", "-Infinity", "1.5", True, None]
    points: list[Any] = [
        *({"asDouble": v, "timeUnixNano": "5"} for v in doubles),
        *({"asInt": v} for v in [0, "0", -1, "-9223372036854775808", 2**63, 1.0, True]),
        {"asInt": 1, "asDouble": 1.0},
        {"asInt": 1, "asDouble": None},
        {"flags": 1, "exemplars": [{"asInt": "3", "spanId": "eee19b7ec3c1b174", "traceId": TID}]},
        {"exemplars": [{"asDouble": -0.0, "filteredAttributes": [{"key": "k", "value": {}}]}, {}]},
        {"exemplars": [None]},
    ]
    metrics: list[Any] = [
        *({"name": "g", "gauge": {"dataPoints": [p]}} for p in points),
        *(
            {"name": "s", "sum": {"dataPoints": [p], "isMonotonic": m}}
            for p in points[:3]
            for m in (True, False)
        ),
        {"sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE", "isMonotonic": "true"}},
        {"sum": {"aggregationTemporality": 7}},
        {"gauge": {}, "sum": {}},
        {"gauge": {}, "sum": None},
        {"gauge": None},
        {"description": "d", "unit": "ms", "metadata": [{"key": "m", "value": {"intValue": 1}}]},
    ]
    for v in [*doubles, [], [0.5, 1], [None], "1"]:
        metrics.append({"histogram": {"dataPoints": [{"sum": v, "min": v, "max": v, "explicitBounds": v}]}})
        quantiles = [{"quantile": v, "value": v}]
        metrics.append({"summary": {"dataPoints": [{"sum": v, "quantileValues": quantiles}]}})
        metrics.append({"exponentialHistogram": {"dataPoints": [{"zeroThreshold": v, "sum": v}]}})
    for v in [0, 1, -1, 2**31 - 1, -(2**31), 2**31, "-3", [], [1, "2", 0], [-1], [2**64], None]:
        metrics.append({"histogram": {"dataPoints": [{"bucketCounts": v, "count": v}]}})
        buckets = {"offset": v, "bucketCounts": v}
        point = {"scale": v, "zeroCount": v, "positive": buckets, "negative": {}}
        metrics.append({"exponentialHistogram": {"dataPoints": [point], "aggregationTemporality": 1}})
    for metric in metrics:
        check(Signal.METRICS, _metrics_doc(metric))
    zeros = {"zeroThreshold": -0.0, "sum": 0.0, "scale": -1, "positive": {"offset": -2, "bucketCounts": [1]}}
    for metric in [
        {"gauge": {"dataPoints": [{"asDouble": -0.0}, {"asInt": "0"}, {}]}},
        {"summary": {"dataPoints": [{"sum": -0.0, "quantileValues": [{"quantile": 0.0, "value": -0.0}]}]}},
        {"exponentialHistogram": {"dataPoints": [zeros]}},
        {"histogram": {"dataPoints": [{"sum": 0.0, "bucketCounts": ["0", 0], "explicitBounds": [0]}]}},
    ]:
        check(Signal.METRICS, _metrics_doc(metric), fast=True)


def test_every_anyvalue_kind_in_spans_events_links_and_resources() -> None:
    attrs = key_values({**SCALARS, **NESTED}) + _odd_values()[1:]  # strindex: see below
    req = request_of(_span_with(attrs), resource={**SCALARS, **NESTED, "service.name": "svc"})
    body = to_otlp_json(req)
    assert b'"NaN"' in body and b'"-Infinity"' in body and b"bytesValue" in body
    assert check(Signal.TRACES, body, fast=True) == req.SerializeToString()


def test_what_the_fast_path_does_not_write_goes_to_the_reference() -> None:
    strindex = request_of(_span_with(_odd_values()[:1]))
    check(Signal.TRACES, to_otlp_json(strindex), fast=False)
    refs = span_doc()
    refs["resourceSpans"][0]["resource"]["entityRefs"] = [{"type": "service", "idKeys": ["service.name"]}]
    check(Signal.TRACES, dumps(refs), fast=False)
    key_index = span_doc(attributes=[{"keyStrindex": 3, "value": {"intValue": 1}}])
    check(Signal.TRACES, dumps(key_index), fast=False)


def test_sdk_style_spellings_are_taken() -> None:
    """Numbers for 64-bit integers, enum names, snake_case, unknown scalar fields, nulls."""
    doc = span_doc(
        kind="SPAN_KIND_CLIENT",
        startTimeUnixNano=1_700_000_000_000_000_000,
        endTimeUnixNano=1_700_000_000_100_000_000,
        status={"code": "STATUS_CODE_ERROR", "message": "boom"},
        droppedAttributesCount=3,
        flags=257,
        attributes=[
            {"key": "n", "value": {"intValue": 42}},
            {"key": "neg", "value": {"intValue": "-42"}},
            {"key": "d", "value": {"doubleValue": 7}},
            {"key": "s", "value": {"string_value": "snake"}},
            {"key": "null", "value": {"stringValue": None}},
            {"key": "nothing", "value": None},
            {"key": "empty", "value": {}},
            {"key": "unknown kind", "value": {"fancyValue": 1}},
        ],
        events=[{"time_unix_nano": "5", "name": "exception", "attributes": [], "futureField": "x"}],
        links=[{"trace_id": TID.upper(), "span_id": SID, "flags": 1, "traceState": "a=b"}],
        parent_span_id="",
        traceState=None,
        futureField=True,
    )
    doc["resourceSpans"][0]["schema_url"] = "https://opentelemetry.io/schemas/1.27.0"
    doc["resourceSpans"][0]["scopeSpans"][0]["scope"]["dropped_attributes_count"] = 0
    doc["someExtension"] = 1
    check(Signal.TRACES, dumps(doc), fast=True)


def test_log_records_in_every_spelling() -> None:
    record = {
        "timeUnixNano": 1_700_000_000_000_000_000,
        "observed_time_unix_nano": "1700000000000000001",
        "severityNumber": "SEVERITY_NUMBER_WARN",
        "severityText": "WARN",
        "body": {"kvlistValue": {"values": [{"key": "msg", "value": {"stringValue": "hi"}}]}},
        "attributes": [{"key": "k", "value": {"boolValue": True}}],
        "droppedAttributesCount": 1,
        "flags": 1,
        "traceId": TID,
        "spanId": SID,
        "eventName": "e",
    }
    doc = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"scope": {}, "logRecords": [record, {}]}]}]}
    check(Signal.LOGS, dumps(doc), fast=True)
    for severity in [-1, 25, 2**31 - 1, "SEVERITY_NUMBER_NOPE", "9", 1.0, None]:
        records = [{"severityNumber": severity}]
        check(Signal.LOGS, dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}))


# -- values, one at a time ------------------------------------------------------------------

_INT_SPELLINGS: list[Any] = [
    0,
    1,
    "0",
    "00",
    "17",
    "-1",
    -1,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    1.0,
    1.5,
    -0.0,
    1e3,
    "1.0",
    "1e3",
    " 1",
    "1 ",
    "+1",
    "1_000",
    "٣",
    "0x10",
    "",
    "-",
    True,
    None,
    [],
    {},
]


@pytest.mark.parametrize(
    "field",
    [
        "startTimeUnixNano",
        "endTimeUnixNano",
        "droppedAttributesCount",
        "droppedEventsCount",
        "droppedLinksCount",
        "flags",
        "kind",
    ],
)
def test_integer_fields_in_every_spelling(field: str) -> None:
    for value in _INT_SPELLINGS:
        check(Signal.TRACES, dumps(span_doc(**{field: value})))


def test_anyvalue_scalars_in_every_spelling() -> None:
    values: list[Any] = [
        *({"intValue": v} for v in _INT_SPELLINGS),
        *({"doubleValue": v} for v in [*_INT_SPELLINGS, "NaN", "Infinity", "-Infinity", "nan", "inf", "1.5"]),
        *({"boolValue": v} for v in [True, False, "true", 0, 1, None]),
        *({"stringValue": v} for v in ["", "é☃𝄞", "\x00", 5, True, None, ["a"]]),
        *({"bytesValue": v} for v in ["", "AQID", "AQI=", "AQI", "-_8=", "+/8=", "!!", "A", 5]),
        *({"arrayValue": v} for v in [{}, {"values": []}, {"values": None}, {"values": [None]}, [], "x"]),
        *({"kvlistValue": v} for v in [{}, {"values": [{"key": "a"}]}, {"values": [{}]}, {"values": 1}]),
        {"stringValue": "a", "intValue": 1},
        {"stringValue": "a", "intValue": None},
        {"stringValue": "a", "string_value": "b"},
        {"stringValueStrindex": 1},
        {"traceId": "zz"},
        {"[ext.field]": 1},
        {"unknown": {"deep": 1}},
        "not an object",
        [],
        None,
    ]
    for value in values:
        check(Signal.TRACES, dumps(span_doc(attributes=[{"key": "k", "value": value}])))


def test_ids_hex_base64_and_wrong() -> None:
    b64 = base64.b64encode(bytes.fromhex(TID)).decode()
    for value in [TID, TID.upper(), "", "ab", "abc", b64, TID[:-1] + "g", TID[:8] + " " + TID[8:], 5, None]:
        check(Signal.TRACES, dumps(span_doc(traceId=value)))
        check(Signal.TRACES, dumps(span_doc(links=[{"traceId": value, "spanId": SID}])))
        check(Signal.TRACES, dumps(span_doc(parentSpanId=value)))
    check(Signal.TRACES, dumps(span_doc(traceId=b64)), fast=False)  # the reference decodes base64 ids


def test_structure_errors_and_oddities() -> None:
    span = span_doc()["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    docs: list[Any] = [
        {},
        {"resourceSpans": []},
        {"resourceSpans": None},
        {"resourceSpans": {}},
        {"resourceSpans": [None]},
        {"resourceSpans": [{}]},
        {"resourceSpans": ["x"]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [None]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": ["span"]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [span, {}]}]}]},
        {"resourceSpans": [{"resource": "x", "scopeSpans": []}]},
        {"resourceSpans": [{"resource": None}]},
        {"resourceSpans": [{"resource": {"attributes": None}}]},
        {"resourceSpans": [{"resource": {"attributes": {}}}]},
        {"resource_spans": [{"scope_spans": [{"spans": [span]}]}]},
        {"resourceSpans": [], "resource_spans": []},
        {"resourceSpans": [{"scopeSpans": [{"spans": [span]}], "scope_spans": []}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "span_id": SID}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "status": {}}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "status": None}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "status": {"code": 7}}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "status": {"code": -1}}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "events": [None]}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "events": {}}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "unknown": {"a": [1]}}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "[ext]": 1}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "name": 5}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "name": "\ud800"}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "attributes": [None]}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "attributes": [{"key": 5}]}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "attributes": [{"key": "a", "x": 1}]}]}]}]},
        [],
        "x",
        5,
        None,
    ]
    for doc in docs:
        check(Signal.TRACES, dumps(doc))


@pytest.mark.parametrize("depth", [1, MAX_ANY_DEPTH - 1, MAX_ANY_DEPTH, MAX_ANY_DEPTH + 1, 40, 70, 150])
def test_nested_values_are_taken_up_to_the_bound_and_refused_like_the_reference(depth: int) -> None:
    for kind in ("arrayValue", "kvlistValue"):
        value: dict[str, Any] = {"intValue": "1"}
        for _ in range(depth):
            if kind == "arrayValue":
                value = {"arrayValue": {"values": [value]}}
            else:
                value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        ref = check(Signal.TRACES, dumps(span_doc(attributes=[{"key": "deep", "value": value}])))
        if depth < MAX_ANY_DEPTH:
            assert json_to_wire(Signal.TRACES, dumps(span_doc(attributes=[{"key": "d", "value": value}])))
        if depth >= 70:
            assert ref is None  # past json_format's message depth


def test_json_texts_the_two_parsers_read_differently() -> None:
    """orjson refuses some texts json.loads reads, and reads big integers as floats."""
    base = dumps(span_doc())
    texts = [
        b"\xef\xbb\xbf" + base,  # BOM
        base.decode().encode("utf-16"),
        base.replace(b'"kind": 2', b'"kind": NaN'),
        base.replace(b'"kind": 2', b'"kind": 2, "kind": 3'),  # duplicate keys: the last wins in both
        base.replace(b'"GET /x"', b'"\\ud800"'),
        base.replace(b'"GET /x"', b'"\\ud83d\\ude00"'),
        base.replace(b'"GET /x"', b'"\xed\xa0\x80"'),  # an encoded surrogate
        base.replace(b'"GET /x"', b'"\xff"'),
        base.replace(b'"kind": 2', b'"kind": 18446744073709551616'),
        base.replace(b'"kind": 2', b'"kind": 2.0'),
        base.replace(b'"kind": 2', b'"kind": 1e400'),
        base + b" ",
        base + b"x",
        base[:-1],
        b"",
        b"   ",
        b"null",
        b"[]",
        b"{",
    ]
    for value in ["1e400", "-1e400", "18446744073709551616", "123456789012345678901234567890", "1e-400"]:
        attr = f'[{{"key": "d", "value": {{"doubleValue": {value}}}}}]'.encode()
        texts.append(base.replace(b'"name"', b'"attributes": ' + attr + b', "name"'))
    for text in texts:
        check(Signal.TRACES, text)
    check(Signal.TRACES, base.replace(b'"kind": 2', b'"kind": 2, "kind": 3'), fast=True)


def test_deep_unknown_fields_are_refused_like_the_reference() -> None:
    for depth in (10, 190, 250, 1100):
        body = dumps(span_doc(futureField="@")).replace(b'"@"', b"[" * depth + b"]" * depth)
        ref = check(Signal.TRACES, body, fast=False)
        assert (ref is None) == (depth > 190)


# -- generated and mutated requests ------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_generated_requests_agree(data: bytes) -> None:
    req = ExportTraceServiceRequest.FromString(data)
    # enum names or numbers, as senders choose
    body = json.dumps(to_otlp_dict(req)).encode()
    check(Signal.TRACES, body)


_REPLACEMENTS: list[Any] = [
    None,
    "",
    "x",
    "abc",
    0,
    -1,
    7,
    2**32,
    2**64,
    1.5,
    True,
    [],
    {},
    [None],
    "NaN",
    TID,
    SID,
    "AQID",
    "-5",
    {"stringValue": "v"},
    {"intValue": "9"},
    [{"key": "k", "value": {"boolValue": False}}],
]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _mutate(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(doc)[1:]
        if not paths:
            break
        path = rng.choice(paths)
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        op = rng.random()
        if op < 0.6:
            parent[last] = copy.deepcopy(rng.choice(_REPLACEMENTS))
        elif op < 0.75 and isinstance(parent, dict):
            value = parent.pop(last)
            renamed = rng.choice([last, "".join("_" + c.lower() if c.isupper() else c for c in last), "zz"])
            parent[renamed] = value
        elif op < 0.85 and isinstance(parent, dict):
            parent[rng.choice(["extra", "[e]", "traceId", "value", "key", "stringValue"])] = rng.choice(
                _REPLACEMENTS
            )
        elif isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
        else:
            del parent[last]
    return doc


@pytest.mark.parametrize("signal", [Signal.TRACES, Signal.LOGS, Signal.METRICS])
def test_mutated_documents_agree(signal: Signal) -> None:
    if signal is Signal.TRACES:
        req: Any = build_trace_request(
            n_spans=3, services=1, attrs_per_span=5, seed=1, error_ratio=1.0, base_time_ns=BASE_NS
        )
        req.resource_spans[0].scope_spans[0].spans[0].links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
        req.resource_spans[0].scope_spans[0].spans[1].attributes.append(
            KeyValue(key="nested", value=key_values({"n": [1, {"a": b"\x00"}]})[0].value)
        )
    elif signal is Signal.LOGS:
        req = build_logs_request(n_records=4, services=1, seed=2, base_time_ns=BASE_NS)
    else:
        req = build_metrics_request(services=1, points_per_metric=1, seed=3, base_time_ns=BASE_NS)
    base = to_otlp_dict(req)
    rng = random.Random(signal.value)
    taken = 0
    for _ in range(1000):
        body = dumps(_mutate(base, rng))
        taken += json_to_wire(signal, body) is not None
        check(signal, body)
    assert taken > 200  # many mutations are still valid requests the fast path takes


def test_mutated_bytes_agree() -> None:
    req = build_trace_request(n_spans=2, services=1, attrs_per_span=4, seed=4, base_time_ns=BASE_NS)
    base = to_otlp_json(req)
    rng = random.Random(5)
    for _ in range(1500):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[i] = rng.choice(b'0123456789abcdefABCDEF"{}[],:-.eE \\nutrl\x00\xff')
            else:
                del data[i : i + rng.randint(1, 6)]
        check(Signal.TRACES, bytes(data))
