from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from faultlens.decode.attributes import MAX_ANY_DEPTH, AttrGroups, any_to_python, value_texts
from faultlens.errors import InvalidRequest
from faultlens.testing.payloads import any_value, key_values

PATHS = ("wire", "tiny", "general")


def groups_of(*dicts: dict[str, Any]) -> AttrGroups:
    kvs = [kv.SerializeToString() for d in dicts for kv in key_values(d)]
    return AttrGroups.of(kvs, [len(d) for d in dicts])


def json_of(*dicts: dict[str, Any]) -> list[Any]:
    return [json.loads(text) for text in groups_of(*dicts).json.to_pylist()]


def test_scalars_keep_their_json_types() -> None:
    d = {"s": "x", "b": True, "i": -(2**63), "big": 2**63 - 1, "d": 0.1, "whole": 3.0, "e": ""}
    [got] = json_of(d)
    assert got == d
    assert isinstance(got["whole"], float)  # "3.0", not "3"


def test_bytes_are_base64_arrays_are_lists_and_kvlists_are_objects() -> None:
    [got] = json_of({"raw": b"\x00\xff", "list": [1, "a", [True]], "map": {"k": {"n": 1.5}}})
    assert got == {"raw": "AP8=", "list": [1, "a", [True]], "map": {"k": {"n": 1.5}}}


def test_non_finite_doubles_become_strings_so_the_json_stays_valid() -> None:
    text = groups_of({"nan": math.nan, "inf": math.inf, "ninf": -math.inf}).json.to_pylist()[0]
    assert json.loads(text) == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity"}
    assert "NaN," not in text and ":NaN" not in text


def test_strings_that_need_escaping_are_escaped() -> None:
    d = {'q"uote': 'say "hi"\n', "back\\slash": "c:\\tmp", "ctl": "\x00\x1f", "uni": "é ☃ 𝄞"}
    assert json_of(d) == [d]


def test_items_without_attributes_get_an_empty_object() -> None:
    assert json_of({}, {"a": 1}, {}) == [{}, {"a": 1}, {}]
    assert AttrGroups.of([], [0, 0]).json.to_pylist() == ["{}", "{}"]


def test_duplicate_keys_keep_the_last_value_like_a_dict() -> None:
    kvs = [KeyValue(key="k", value=any_value(v)).SerializeToString() for v in (1, 2)]
    g = AttrGroups.of(kvs, [2])
    assert json.loads(g.json[0].as_py()) == {"k": 2}
    assert g.promote(["k"], pa.int32()).to_pylist() == [2]


def test_empty_key_and_unset_value_take_the_slow_path_and_agree() -> None:
    kvs = [
        KeyValue(key="", value=any_value("no key")).SerializeToString(),
        KeyValue(key="unset").SerializeToString(),
        KeyValue(key="ok", value=any_value(1)).SerializeToString(),
    ]
    assert json.loads(AttrGroups.of(kvs, [3]).json[0].as_py()) == {"": "no key", "unset": None, "ok": 1}


def test_a_value_with_two_oneof_fields_keeps_the_last_like_protobuf() -> None:
    raw_value = AnyValue(string_value="first").SerializeToString() + AnyValue(int_value=7).SerializeToString()
    kv = b"\x0a\x01k\x12" + bytes([len(raw_value)]) + raw_value
    assert AnyValue.FromString(raw_value).WhichOneof("value") == "int_value"
    assert json.loads(AttrGroups.of([kv], [1]).json[0].as_py()) == {"k": 7}


def test_promote_picks_per_item_in_key_order() -> None:
    g = groups_of({"old": "o1"}, {"new": "n2", "old": "o2"}, {"other": 1}, {"new": 5})
    assert g.promote(["new", "old"], pa.string()).to_pylist() == ["o1", "n2", None, "5"]
    assert g.promote(["new"], pa.int32()).to_pylist() == [None, None, None, 5]


def test_too_deep_values_are_refused() -> None:
    v: Any = "leaf"
    for _ in range(MAX_ANY_DEPTH + 2):
        v = [v]
    with pytest.raises(InvalidRequest, match="nested deeper"):
        any_to_python(any_value(v))
    with pytest.raises(InvalidRequest):
        groups_of({"deep": v})


def test_malformed_keyvalue_bytes_are_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="malformed OTLP protobuf"):
        AttrGroups.of([b"\x0a\x05ab"], [1])
    bad_utf8_key = b"\x0a\x02\xff\xfe\x12\x02\x08\x01"
    with pytest.raises(InvalidRequest):
        AttrGroups.of([bad_utf8_key], [1])
    bad_utf8_value = b"\x0a\x01k\x12\x04\x0a\x02\xff\xfe"
    with pytest.raises(InvalidRequest):
        AttrGroups.of([bad_utf8_value], [1])


def test_value_texts_render_strings_as_is_and_the_rest_as_json() -> None:
    raws = [any_value(v).SerializeToString() for v in ("text", 3, 2.0, False, [1, "x"], b"\x01")] + [b""]
    assert value_texts(raws).to_pylist() == ["text", "3", "2.0", "false", '[1,"x"]', '"AQ=="', None]


scalars = (
    st.text(max_size=12)
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.binary(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
attribute_dicts = st.dictionaries(st.text(max_size=10), values, max_size=6)


@settings(max_examples=40, deadline=None)
@given(st.lists(attribute_dicts, min_size=1, max_size=5))
def test_bulk_json_matches_decoding_each_value_alone(dicts: list[dict[str, Any]]) -> None:
    g = groups_of(*dicts)
    for d, text in zip(dicts, g.json.to_pylist(), strict=True):
        expected = {kv.key: any_to_python(kv.value) for kv in key_values(d)}
        assert json.loads(text) == expected


def test_every_path_agrees_on_escapes_doubles_bytes_and_empty_items() -> None:
    dicts = [
        {"a": 'x"y', "k\\ey": 1, "d": 2.5, "whole": 7.0, "nan": math.nan, "b": False, "u": "é"},
        {},
        {"list": [1, {"m": None}], "raw": b"\x01\x02", "n": -(2**63)},
        {},
    ]
    kvs = [kv.SerializeToString() for d in dicts for kv in key_values(d)]
    counts = [len(d) for d in dicts]
    specs = [
        (("a", "u"), pa.string()),
        (("n", "k\\ey"), pa.int64()),
        (("d",), pa.string()),
        (("b",), pa.string()),
    ]
    results = [
        ([json.loads(t) for t in g.json.to_pylist()], [c.to_pylist() for c in g.promote_many(specs)])
        for g in (AttrGroups.of(kvs, counts, path=p) for p in PATHS)
    ]
    assert results[0] == results[1] == results[2]
    assert results[0][1] == [
        ['x"y', None, None, None],
        [1, None, -(2**63), None],
        ["2.5", None, None, None],
        ["false", None, None, None],
    ]
    assert results[0][0][2]["raw"] == "AQI=" and results[0][0][0]["nan"] == "NaN"


@settings(max_examples=40, deadline=None)
@given(st.lists(attribute_dicts, min_size=1, max_size=5), st.lists(st.text(max_size=10), max_size=4))
def test_every_path_gives_the_same_json_and_promotions(
    dicts: list[dict[str, Any]], extra_keys: list[str]
) -> None:
    kvs = [kv.SerializeToString() for d in dicts for kv in key_values(d)]
    counts = [len(d) for d in dicts]
    keys = sorted({k for d in dicts for k in d} | set(extra_keys))
    specs = [((k,), typ) for k in keys for typ in (pa.string(), pa.int32())]
    results = [
        ([json.loads(t) for t in g.json.to_pylist()], [c.to_pylist() for c in g.promote_many(specs)])
        for g in (AttrGroups.of(kvs, counts, path=p) for p in PATHS)
    ]
    assert results[0] == results[1] == results[2]
