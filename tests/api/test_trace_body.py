"""``GET /api/v1/traces/{id}`` writes its body without a model per span (``trace_json``): the
bytes must be exactly what the models write (``TraceOut.of(t).model_dump_json()``), for odd
attributes too: non-finite doubles, bytes, nested maps and arrays, text that needs escaping,
integers beyond 64 bits (which orjson refuses, so they take the models' way).
The route reads the trace with its attribute maps as stored text (``get_trace_text``) and
writes a text as it is where orjson would spell it so: each spelling must give the same bytes."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from faultlens.api import ApiServer, HealthState, create_app
from faultlens.api import models as m
from faultlens.config import StoreConfig
from faultlens.decode import decode_message
from faultlens.decode._anyvalue import json_text
from faultlens.decode.base import DecodedBatch
from faultlens.decode.schema import SPAN_SCHEMA
from faultlens.selfmetrics import SelfMetrics
from faultlens.store import open_store
from faultlens.store._rows import attrs
from faultlens.store.base import Store
from faultlens.testing.payloads import build_trace_request, key_values
from faultlens.types import Signal

from .dataset import MS, T0, span

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)

ODD = bytes.fromhex("0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd01")
WIDE = bytes.fromhex("0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd02")  # an integer orjson cannot write
DECODED = bytes.fromhex("0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd03")  # through the OTLP decoder
ODD_ATTRIBUTES = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "nested": {"list": [1, 2.5, math.nan, {"deep": [True, None]}], "empty": {}},
    "text": 'quote " backslash \\ newline \n tab \t nul \x00 del \x7f é ✓ 😀 </script>',
    "floats": [0.1, 1e-7, 1e16, 1e300, -0.0, 100.0, 5e-324],
    "ints": [0, -1, 2**53 + 1, 2**63 - 1, -(2**63)],
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, httpx.Client]]:
    store = open_store(StoreConfig(data_dir=tmp_path_factory.mktemp("trace-body")))
    rows = [
        span(
            ODD,
            bytes.fromhex("1111111111111111"),
            None,
            "ödd",
            "root",
            2,
            T0,
            T0 + 9 * MS,
            attributes=ODD_ATTRIBUTES,
        ),
        span(
            ODD,
            bytes.fromhex("2222222222222222"),
            bytes.fromhex("1111111111111111"),
            "ödd",
            "child",
            3,
            T0 + MS,
            T0 + 2 * MS,
            status_code=2,
            status_message="bad\u2028line",
            events=[
                {"time_unix_nano": T0 + MS, "name": "exception", "attributes": json.dumps({"x": math.nan})}
            ],
        ),
        span(
            WIDE,
            bytes.fromhex("3333333333333333"),
            None,
            "wide",
            "big",
            1,
            T0,
            T0 + MS,
            attributes={"n": 2**70},
        ),
    ]
    store.write([DecodedBatch(Signal.TRACES, pa.Table.from_pylist(rows, schema=SPAN_SCHEMA))])
    store.write([decode_message(Signal.TRACES, _decoded_request())])
    server = ApiServer(create_app(store, SelfMetrics(), HealthState(["store"])), host="127.0.0.1", port=0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            assert store.stats().spans == len(rows) + 40
            yield store, client
    finally:
        server.shutdown()
        store.close()


def _decoded_request() -> ExportTraceServiceRequest:
    """A 40-span trace from the payload builder whose first span also carries odd OTLP values."""
    req = build_trace_request(n_spans=40, services=3, seed=11, spans_per_trace=40)
    spans = [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    for s in spans:
        s.trace_id = DECODED
    first: Span = spans[0]
    first.attributes.extend(
        key_values({"raw": b"\x00\xffbytes", "nan": math.nan, "map": {"a": [1, "b", math.inf]}, "ü": "ß"})
    )
    return req


@pytest.mark.parametrize("trace_id", [ODD, WIDE, DECODED], ids=["odd", "wide-int", "decoded"])
def test_the_body_is_the_models_body_byte_for_byte(
    served: tuple[Store, httpx.Client], trace_id: bytes
) -> None:
    store, client = served
    r = client.get(f"/api/v1/traces/{trace_id.hex()}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    trace = store.get_trace(trace_id)
    assert trace is not None
    assert r.content == m.TraceOut.of(trace).model_dump_json().encode()
    assert m.trace_json(trace) == r.content
    text = store.get_trace_text(trace_id)
    assert text is not None and m.trace_text_json(text) == r.content


def test_the_decoders_attribute_text_is_written_as_it_is_and_other_spellings_are_parsed(
    served: tuple[Store, httpx.Client],
) -> None:
    store, _ = served
    decoded = store.get_trace_text(DECODED)
    assert decoded is not None
    maps = [t for s in decoded.spans for t in (s.attributes, s.resource_attributes)]
    assert len(maps) == 80
    assert all(isinstance(m.attributes_json(t), orjson.Fragment) for t in maps)  # odd values too
    odd = store.get_trace_text(ODD)  # written with json.dumps's default spacing
    assert odd is not None
    assert not isinstance(m.attributes_json(odd.spans[0].attributes), orjson.Fragment)


# Spellings of the same maps that orjson does not write back as they are, and texts that are
# not a JSON object at all: each must come out as get_trace's parse of it would.
SPELLINGS = [
    '{"a":1}',
    '{"a": 1}',
    '{"a":1e-07}',
    '{"a":1e+16}',
    '{"a":1E5}',
    '{"a":1.50}',
    '{"a":-0.0}',
    '{"a":1e999}',
    '{"a":NaN,"b":-Infinity}',
    '{"a":18446744073709551616}',
    '{"a":"\\u00e9\\/"}',
    '{"a":"\\u001f\\u001F"}',
    '{"a":1,"a":2}',
    '{"é":"✓ \\n"}',
    "[1,2]",
    '"text"',
    "",
    "not json",
    '{"a":1',
    ' {"a":1}',
]


@pytest.mark.parametrize("text", SPELLINGS)
def test_an_attribute_text_is_written_as_its_parse_would_be(text: str) -> None:
    _same_as_parsed(text)


@given(values=st.dictionaries(st.text(max_size=8), _JSON, max_size=6))
@settings(max_examples=300, deadline=None)
def test_the_project_encoders_text_is_written_as_its_parse_would_be(values: dict[str, Any]) -> None:
    text = json_text(values)
    _same_as_parsed(text)
    _same_as_parsed(json.dumps(values))  # another encoder's spelling of the same map


def _same_as_parsed(text: str) -> None:
    """``attributes_json`` (text or parse) writes what the parse made JSON-safe writes."""
    try:
        expected = orjson.dumps({"x": m.json_safe(attrs(text))})
    except TypeError:  # orjson refuses the parse (an integer past 64 bits): the models' way
        expected = None
    if expected is not None:
        assert orjson.dumps({"x": m.attributes_json(text)}) == expected, text
    seen: dict[str, Any] = {}
    first = m.attributes_json(text, seen)
    assert m.attributes_json(text, seen) is first  # remembered


def test_odd_values_are_strict_json_as_documented(served: tuple[Store, httpx.Client]) -> None:
    _, client = served
    body = orjson.loads(client.get(f"/api/v1/traces/{ODD.hex()}").content)  # strict: no NaN tokens
    root, child = body["spans"]
    assert root["service"] == "ödd"
    attrs = root["attributes"]
    assert (attrs["nan"], attrs["inf"], attrs["-inf"]) == ("NaN", "Infinity", "-Infinity")
    assert attrs["nested"] == {"list": [1, 2.5, "NaN", {"deep": [True, None]}], "empty": {}}
    assert attrs["text"] == ODD_ATTRIBUTES["text"]
    assert attrs["floats"] == ODD_ATTRIBUTES["floats"] and attrs["ints"] == ODD_ATTRIBUTES["ints"]
    assert child["events"] == [{"time_unix_nano": T0 + MS, "name": "exception", "attributes": {"x": "NaN"}}]
    assert child["status_message"] == "bad\u2028line"
    wide = json.loads(client.get(f"/api/v1/traces/{WIDE.hex()}").content)
    assert wide["spans"][0]["attributes"] == {"n": 2**70}
    decoded = orjson.loads(client.get(f"/api/v1/traces/{DECODED.hex()}").content)
    assert len(decoded["spans"]) == 40
    odd = next(s["attributes"] for s in decoded["spans"] if "raw" in s["attributes"])
    assert odd["nan"] == "NaN" and odd["map"] == {"a": [1, "b", "Infinity"]} and odd["ü"] == "ß"


def test_an_unknown_trace_is_still_a_404(served: tuple[Store, httpx.Client]) -> None:
    _, client = served
    r = client.get(f"/api/v1/traces/{'ab' * 16}")
    assert r.status_code == 404 and r.json() == {"detail": f"trace {'ab' * 16} not found"}


def test_the_openapi_document_still_names_the_body(served: tuple[Store, httpx.Client]) -> None:
    _, client = served
    doc = client.get("/openapi.json").json()
    ok = doc["paths"]["/api/v1/traces/{trace_id}"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TraceOut"}
