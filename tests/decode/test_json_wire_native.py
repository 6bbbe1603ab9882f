"""The C trace encoder gives exactly the Python encoder's bytes, or declines.

``traces_json_to_wire`` (``faultlens/decode/native/jsonwire.c``) walks the parsed OTLP/JSON
document that the Python encoder of :mod:`faultlens.decode._jsonwire` walks. For every
document it either returns the bytes the Python encoder returns (which
``test_json_wire.py`` holds to the json_format reference) or None, and then
``json_to_wire`` runs the Python encoder, so the final result still equals the reference.
Inputs: the payload builders' requests (which the C encoder must take, and through
``json_to_wire``: the path must really run), requests generated as protobuf messages,
documents generated around the common shape with hostile leaves (huge integers, non-hex
ids, lone surrogates, wrong types, unknown and snake_case keys), values nested past the
depth bound, and the mutated documents of ``test_json_wire.py``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.decode import _jsonwire, spans
from faultlens.decode._jsonwire import MAX_ANY_DEPTH, json_to_wire
from faultlens.decode._native_spans import NATIVE_ERROR, native_available
from faultlens.decode.request import json_reference_bytes
from faultlens.errors import InvalidRequest
from faultlens.testing.payloads import build_trace_request, to_otlp_dict, to_otlp_json
from faultlens.types import Signal

from .conftest import BASE_NS
from .test_json_wire import _INT_SPELLINGS, SID, TID, _mutate, dumps, span_doc
from .test_native_spans import _requests

_native: Any = None
if native_available():
    from faultlens.decode import _native

_BUILT = _native is not None and hasattr(_native, "traces_json_to_wire")
pytestmark = pytest.mark.skipif(
    not _BUILT,
    reason=f"native trace encoder not built: {NATIVE_ERROR or 'the extension predates it, rebuild it'}",
)

_Encode = Callable[[Any], bytes | None]


def native_encode(doc: Any) -> bytes | None:
    out: bytes | None = _native.traces_json_to_wire(doc)
    return out


def python_encode(doc: Any) -> bytes | None:
    """The Python traces encoder alone (what json_to_wire runs when the C one declines)."""
    try:
        return _jsonwire._ENCODERS[Signal.TRACES](doc)
    except _jsonwire._BAIL:
        return None


def same_as_python(doc: Any) -> bytes | None:
    """The C encoder gives the Python encoder's bytes for ``doc`` or declines; returns its result."""
    got = native_encode(doc)
    if got is not None:
        want = python_encode(doc)
        assert want is not None, f"the C encoder took what the Python encoder declines: {doc!r:.300}"
        assert got == want, f"bytes differ for {doc!r:.300}"
    return got


def agree(body: bytes) -> bytes | None:
    """C, Python encoder, json_to_wire and the reference agree on ``body``; returns the C result."""
    try:
        ref: bytes | None = json_reference_bytes(Signal.TRACES, body)
    except InvalidRequest:
        ref = None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        assert json_to_wire(Signal.TRACES, body) is None
        return None
    got = same_as_python(doc)
    if got is not None:
        assert got == ref, f"the C encoder's bytes are not the reference's for {body[:300]!r}"
    final = json_to_wire(Signal.TRACES, body)
    assert final is None or final == ref, f"json_to_wire differs from the reference for {body[:300]!r}"
    if ref is None:
        assert final is None
    return got


# -- the common shape is taken, through json_to_wire too ---------------------------------------------


@pytest.mark.parametrize(
    ("n_spans", "services", "attrs", "seed", "error_ratio"),
    [(300, 4, 15, 7, 0.3), (1000, 5, 15, 0, 0.05), (5, 2, 3, 1, 0.5), (60, 3, 40, 4, 1.0), (1, 1, 0, 5, 0.0)],
)
def test_payload_builder_traces_are_taken_by_the_c_encoder(
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
    assert agree(to_otlp_json(req)) == req.SerializeToString()


def test_json_to_wire_runs_the_c_encoder_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The C encoder is wired in: json_to_wire returns its bytes for the common shape."""
    if not spans.NATIVE:
        pytest.skip(f"{spans.NATIVE_ENV}=0 turns native code off")
    assert _jsonwire._NATIVE_ENCODERS.get(Signal.TRACES) is _native.traces_json_to_wire
    results: list[bytes | None] = []

    def counting(doc: Any) -> bytes | None:
        out = native_encode(doc)
        results.append(out)
        return out

    monkeypatch.setitem(_jsonwire._NATIVE_ENCODERS, Signal.TRACES, counting)
    req = build_trace_request(n_spans=50, services=2, attrs_per_span=10, seed=3, base_time_ns=BASE_NS)
    wire = json_to_wire(Signal.TRACES, to_otlp_json(req))
    assert results == [req.SerializeToString()] and wire == results[0]
    # a spelling the C encoder leaves to Python: declined there, taken by the Python encoder
    snake = dumps(span_doc(parent_span_id=SID))
    assert json_to_wire(Signal.TRACES, snake) == json_reference_bytes(Signal.TRACES, snake)
    assert results[1:] == [None]
    # logs and metrics have no C encoder
    assert set(_jsonwire._NATIVE_ENCODERS) == {Signal.TRACES}


def test_the_environment_turns_the_c_encoder_off_with_the_native_decoder() -> None:
    code = (
        "from faultlens.decode import _jsonwire; print(sorted(s.value for s in _jsonwire._NATIVE_ENCODERS))"
    )
    env = {**os.environ, spans.NATIVE_ENV: "0"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_the_c_encoder_the_python_encoder_takes_the_same_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_jsonwire, "_NATIVE_ENCODERS", {})
    req = build_trace_request(n_spans=100, services=3, attrs_per_span=15, seed=2, base_time_ns=BASE_NS)
    assert json_to_wire(Signal.TRACES, to_otlp_json(req)) == req.SerializeToString()


def test_the_gc_stays_paused_while_the_c_encoder_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    seen: list[bool] = []

    def watching(doc: Any) -> bytes | None:
        seen.append(gc.isenabled())
        return native_encode(doc)

    monkeypatch.setitem(_jsonwire._NATIVE_ENCODERS, Signal.TRACES, watching)
    assert gc.isenabled()
    assert json_to_wire(Signal.TRACES, dumps(span_doc())) is not None
    assert seen == [False] and gc.isenabled()


# -- spellings: taken where the Python encoder takes them, or declined ------------------------------


def test_sdk_spellings_the_c_encoder_takes() -> None:
    doc = span_doc(
        traceState="a=b",
        parentSpanId=SID.upper(),
        kind=-1,
        droppedAttributesCount="7",
        droppedEventsCount=2**32 - 1,
        droppedLinksCount=0,
        flags="257",
        status={"code": 2, "message": "boom é"},
        attributes=[
            {"key": "s", "value": {"stringValue": "plain"}},
            {"key": "empty", "value": {"stringValue": ""}},
            {"key": "", "value": {"stringValue": "empty key"}},
            {"key": "u", "value": {"stringValue": "é ☃ 𝄞 中文 \x00"}},
            {"key": "n", "value": {"intValue": "-9223372036854775808"}},
            {"key": "n2", "value": {"intValue": 2**63 - 1}},
            {"key": "n0", "value": {"intValue": "-0"}},
            {"key": "d", "value": {"doubleValue": -0.0}},
            {"key": "d2", "value": {"doubleValue": 2**60 + 1}},
            {"key": "d3", "value": {"doubleValue": 5e-324}},
            {"key": "b", "value": {"boolValue": False}},
            {"key": "null", "value": {"stringValue": None}},
            {"key": "nothing", "value": None},
            {"value": {"intValue": 1}},
            {"key": "no value"},
            {},
            {"key": "e", "value": {}},
            {"key": "a", "value": {"arrayValue": {"values": [{"intValue": 1}, {}, {"arrayValue": {}}]}}},
            {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "x", "value": {"boolValue": True}}]}}},
            {"key": "kv0", "value": {"kvlistValue": {"values": None}}},
        ],
        events=[{}, {"timeUnixNano": 5, "name": "e", "attributes": [], "droppedAttributesCount": 1}],
        links=[{"traceId": TID, "spanId": SID, "traceState": "k=v", "flags": 1, "attributes": None}],
    )
    doc["resourceSpans"][0]["schemaUrl"] = "https://opentelemetry.io/schemas/1.27.0"
    doc["resourceSpans"][0]["scopeSpans"][0]["schemaUrl"] = ""
    doc["resourceSpans"].append({})
    doc["resourceSpans"].append({"resource": {}, "scopeSpans": [{}, {"scope": {}, "spans": [{}]}]})
    assert agree(dumps(doc)) is not None
    empties: list[Any] = [{}, {"resourceSpans": None}, {"resourceSpans": []}]
    for empty in empties:
        assert agree(dumps(empty)) == b""


def test_what_the_c_encoder_leaves_to_the_python_encoder() -> None:
    """Spellings the Python encoder takes: the C encoder declines and json_to_wire still takes them."""
    docs = [
        span_doc(kind="SPAN_KIND_CLIENT"),
        span_doc(status={"code": "STATUS_CODE_ERROR"}),
        span_doc(parent_span_id=SID),
        span_doc(futureField=1),
        span_doc(attributes=[{"key": "b", "value": {"bytesValue": "AQID"}}]),
        span_doc(attributes=[{"key": "d", "value": {"doubleValue": "NaN"}}]),
        span_doc(attributes=[{"key": "s", "value": {"string_value": "snake"}}]),
        span_doc(startTimeUnixNano="0" * 21 + "5"),
    ]
    for doc in docs:
        body = dumps(doc)
        assert native_encode(orjson.loads(body)) is None, doc
        assert json_to_wire(Signal.TRACES, body) == json_reference_bytes(Signal.TRACES, body)


@pytest.mark.parametrize(
    "field",
    ["startTimeUnixNano", "endTimeUnixNano", "droppedAttributesCount", "droppedEventsCount", "flags", "kind"],
)
def test_integer_fields_in_every_spelling(field: str) -> None:
    for value in _INT_SPELLINGS:
        agree(dumps(span_doc(**{field: value})))
        agree(dumps(span_doc(events=[{field: value}], links=[{field: value}])))


def test_anyvalue_scalars_in_every_spelling() -> None:
    values: list[Any] = [
        *({"intValue": v} for v in _INT_SPELLINGS),
        *({"doubleValue": v} for v in [*_INT_SPELLINGS, "NaN", "Infinity", 1e308, -1e-308, 0.1]),
        *({"boolValue": v} for v in [True, False, "true", 0, 1, None]),
        *({"stringValue": v} for v in ["", "é☃𝄞", "\x00", 5, True, None, ["a"], {}]),
        {"stringValue": "a", "intValue": 1},
        {"stringValue": "a", "intValue": None},
        {"stringValueStrindex": 1},
        {"arrayValue": {"values": [None]}},
        {"arrayValue": {"values": {}}},
        {"arrayValue": []},
        {"kvlistValue": {"values": [None]}},
        {"kvlistValue": {"values": [{"key": 1}]}},
        {"kvlistValue": {"values": {}}},
        "not an object",
        [],
        5,
    ]
    for value in values:
        agree(dumps(span_doc(attributes=[{"key": "k", "value": value}])))
        agree(dumps(span_doc(events=[{"attributes": [{"key": "k", "value": value}]}])))


def test_ids_hex_and_not() -> None:
    for value in [
        TID,
        TID.upper(),
        "",
        "ab",
        "abc",
        TID[:-1] + "g",
        TID[:8] + " " + TID[8:],
        "é" * 32,
        5,
        [],
    ]:
        agree(dumps(span_doc(traceId=value)))
        agree(dumps(span_doc(spanId=value, parentSpanId=value)))
        agree(dumps(span_doc(links=[{"traceId": value, "spanId": value}])))


@pytest.mark.parametrize("depth", [1, MAX_ANY_DEPTH - 1, MAX_ANY_DEPTH, MAX_ANY_DEPTH + 1, 70, 1000])
def test_nesting_is_taken_below_the_bound_and_declined_past_it(depth: int) -> None:
    for kind in ("arrayValue", "kvlistValue"):
        value: dict[str, Any] = {"intValue": "1"}
        for _ in range(depth):
            if kind == "arrayValue":
                value = {"arrayValue": {"values": [value]}}
            else:
                value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        doc = span_doc(attributes=[{"key": "deep", "value": value}])
        got = same_as_python(doc)  # objects, so past orjson's own nesting limit too
        assert (got is not None) == (depth <= MAX_ANY_DEPTH)
        if depth < 70:
            agree(dumps(doc))


# -- hostile documents, straight to both encoders ----------------------------------------------------

_HOSTILE: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**31,
    2**32,
    2**63,
    2**64 - 1,
    2**64,
    10**40,
    -(10**40),
    -(2**63) - 1,
    0.5,
    -0.0,
    float("nan"),
    float("inf"),
    1e308,
    "",
    "0",
    "-0",
    "00",
    "+1",
    " 1",
    "1e3",
    "-",
    "٣",
    "1" * 21,
    "0" * 30 + "1",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "\ud800",
    "a\udfffb",
    "é",
    "zz",
    TID,
    TID.upper(),
    SID,
    TID[:-1],
    [],
    [None],
    {},
    {"stringValue": "\ud83d"},
    ("tuple",),
    b"bytes",
]


class _Str(str):
    pass


class _Dict(dict[str, Any]):
    pass


_HOSTILE += [_Str("subclass"), _Dict(stringValue="v"), _Str(TID)]


def test_hostile_leaves_in_every_field() -> None:
    base = span_doc(
        traceState="s",
        parentSpanId=SID,
        attributes=[
            {"key": "k", "value": {"stringValue": "v"}},
            {"key": "n", "value": {"intValue": "1"}},
            {"key": "d", "value": {"doubleValue": 1.5}},
            {"key": "b", "value": {"boolValue": True}},
            {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "x"}]}}},
        ],
        events=[{"timeUnixNano": "1", "name": "e", "attributes": []}],
        links=[{"traceId": TID, "spanId": SID, "flags": 1}],
        status={"code": 1, "message": "m"},
        flags=1,
    )
    assert same_as_python(base) is not None
    paths = [p for p in _leaf_paths(base) if p]
    rng = random.Random(11)
    taken = 0
    for path in paths:
        for value in _HOSTILE:
            doc = _replaced(base, path, value)
            taken += same_as_python(doc) is not None
    for _ in range(2000):
        doc = base
        for _ in range(rng.randint(1, 3)):
            doc = _replaced(doc, rng.choice(paths), rng.choice(_HOSTILE))
        same_as_python(doc)
    assert taken > 100  # None in most fields, and valid spellings, are taken


def test_hostile_keys() -> None:
    for key in ["trace_id", "unknown", "\ud800", "traceId\x00", "é", "", "[ext]", _Str("traceId"), 5]:
        doc = span_doc()
        span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        del span["traceId"]
        span[key] = TID
        assert same_as_python(doc) is None
        assert same_as_python({"resourceSpans": [], key: 1}) is None
        assert same_as_python(span_doc(attributes=[{"key": "k", "value": {key: "v"}}])) is None


def _leaf_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaf_paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaf_paths(v, (*path, i))
    return out


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``doc`` with the node at ``path`` replaced (only the path is copied)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        copy = dict(doc)
        if head in copy:
            copy[head] = _replaced(copy[head], rest, value)
        return copy
    if isinstance(doc, list) and isinstance(head, int) and head < len(doc):
        items = list(doc)
        items[head] = _replaced(items[head], rest, value)
        return items
    return doc


# -- generated documents -----------------------------------------------------------------------------


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(_requests())
def test_generated_requests_agree(data: bytes) -> None:
    req = ExportTraceServiceRequest.FromString(data)
    agree(json.dumps(to_otlp_dict(req)).encode())


_text = st.text(st.characters(codec="utf-8", max_codepoint=0x1F600), max_size=5)
_any_text = st.text(st.characters(exclude_categories=()), max_size=4)  # surrogates too
_int_leaf = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=-(2**63), max_value=2**63).map(str),
    st.sampled_from(["", "-", "+1", "1.0", "0" * 25 + "1", "٣"]),
)
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    _int_leaf,
    st.floats(),
    _any_text,
    st.sampled_from([TID, SID, TID.upper(), "abc", "zz", [], {}]),
)
_scalar_value = st.one_of(
    st.builds(lambda s: {"stringValue": s}, _any_text | _leaf),
    st.builds(lambda v: {"intValue": v}, _int_leaf | _leaf),
    st.builds(lambda v: {"doubleValue": v}, st.floats() | st.integers(-(2**70), 2**70) | _leaf),
    st.builds(lambda v: {"boolValue": v}, _leaf),
    st.sampled_from([{}, {"bytesValue": "AQID"}, {"stringValue": "a", "intValue": 1}, {"x": 1}]),
    _leaf,
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    kv = st.fixed_dictionaries({"key": _text | _leaf, "value": inner})
    return st.one_of(
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3)),
        st.builds(lambda kvs: {"kvlistValue": {"values": kvs}}, st.lists(kv, max_size=3)),
    )


_any_values = st.recursive(_scalar_value, _containers, max_leaves=6)
_kvs = st.lists(
    st.fixed_dictionaries({"key": st.sampled_from(["k", "http.method", ""]) | _text, "value": _any_values}),
    max_size=4,
)


@st.composite
def _documents(draw: st.DrawFn) -> Any:
    """A trace document around the common shape, each field sometimes a hostile leaf."""

    def maybe(good: Any) -> Any:
        return draw(_leaf) if draw(st.integers(0, 9)) == 0 else good

    span = {
        "traceId": maybe(TID),
        "spanId": maybe(SID),
        "parentSpanId": maybe(""),
        "name": maybe(draw(_text)),
        "kind": maybe(draw(st.integers(-2, 6))),
        "startTimeUnixNano": maybe(str(draw(st.integers(0, 2**64 - 1)))),
        "endTimeUnixNano": maybe(draw(st.integers(0, 2**64 - 1))),
        "attributes": maybe(draw(_kvs)),
        "events": maybe([{"timeUnixNano": maybe("5"), "name": maybe("e"), "attributes": maybe(draw(_kvs))}]),
        "links": maybe([{"traceId": maybe(TID), "spanId": maybe(SID), "attributes": maybe(draw(_kvs))}]),
        "status": maybe({"code": maybe(draw(st.integers(0, 2))), "message": maybe(draw(_text))}),
        "flags": maybe(draw(st.integers(0, 2**32))),
    }
    dropped = draw(st.sets(st.sampled_from(sorted(span))))
    span = {k: v for k, v in span.items() if k not in dropped}
    scope = {"scope": maybe({"name": maybe("s"), "attributes": maybe(draw(_kvs))}), "spans": maybe([span])}
    return {
        "resourceSpans": maybe(
            [{"resource": maybe({"attributes": maybe(draw(_kvs))}), "scopeSpans": [scope]}]
        )
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_generated_documents_agree(doc: Any) -> None:
    same_as_python(doc)
    try:
        body = json.dumps(doc, allow_nan=False).encode()
        orjson.loads(body)
    except (ValueError, orjson.JSONDecodeError):  # NaN, lone surrogates: no JSON text for it
        return
    agree(body)


def test_mutated_documents_agree() -> None:
    req = build_trace_request(
        n_spans=3, services=1, attrs_per_span=5, seed=1, error_ratio=1.0, base_time_ns=BASE_NS
    )
    req.resource_spans[0].scope_spans[0].spans[0].links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    base = to_otlp_dict(req)
    rng = random.Random(7)
    taken = 0
    for _ in range(1000):
        taken += agree(dumps(_mutate(base, rng))) is not None
    assert taken > 200
