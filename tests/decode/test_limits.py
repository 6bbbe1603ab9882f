"""Attribute and record limits: values cut with a marker, attributes dropped and counted, the
schema kept, and the store healthy after requests that used to break it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.config import load_config
from faultlens.config.model import STORE_RECORD_SHARE, STORE_VECTOR_ROWS, LimitsConfig, StoreConfig
from faultlens.decode.base import SCHEMAS, DecodedBatch
from faultlens.decode.limits import (
    LimitedWhat,
    apply_limits,
    enforce_limits,
    record_bytes,
    truncate_text,
)
from faultlens.decode.request import decode_bytes
from faultlens.errors import ConfigError
from faultlens.selfmetrics import SelfMetrics
from faultlens.store import DuckDBStore, StoreConsumer
from faultlens.testing.payloads import (
    build_logs_request,
    build_metrics_request,
    build_trace_request,
    key_values,
)
from faultlens.types import Signal

LIMITS = LimitsConfig()
KIB = 1024
MIB = 2**20
MARKER_TAIL = " bytes]"


def _spans(req: ExportTraceServiceRequest) -> DecodedBatch:
    return decode_bytes(Signal.TRACES, req.SerializeToString())


def _logs(req: ExportLogsServiceRequest) -> DecodedBatch:
    return decode_bytes(Signal.LOGS, req.SerializeToString())


def _with_attribute(n_spans: int, key: str, value: object, seed: int = 0) -> DecodedBatch:
    req = build_trace_request(n_spans=n_spans, seed=seed)
    req.resource_spans[0].scope_spans[0].spans[0].attributes.extend(key_values({key: value}))
    return _spans(req)


def _first_attrs(batch: DecodedBatch, name: str = "attributes") -> dict[str, object]:
    rows = batch.table.column(name).to_pylist()
    found = [json.loads(r) for r in rows if r is not None]
    return max(found, key=lambda d: len(json.dumps(d)))


# --- nothing exceeds: nothing changes ----------------------------------------------------


@pytest.mark.parametrize(
    "batch",
    [
        _spans(build_trace_request(n_spans=500, attrs_per_span=30)),
        _logs(build_logs_request(n_records=500)),
        decode_bytes(Signal.METRICS, build_metrics_request().SerializeToString()),
    ],
    ids=["spans", "logs", "metrics"],
)
def test_a_batch_within_the_limits_is_returned_as_it_is(batch: DecodedBatch) -> None:
    outcome = enforce_limits(batch, LIMITS)
    assert outcome.batch is batch
    assert outcome.counts == ()


# --- values ------------------------------------------------------------------------------


def test_a_20_mib_attribute_is_cut_to_the_limit_with_a_marker_and_the_rest_kept() -> None:
    batch = _with_attribute(20, "payload", "x" * (20 * MIB))
    outcome = enforce_limits(batch, LIMITS)
    table = outcome.batch.table
    assert table.schema == SCHEMAS[Signal.TRACES]
    assert table.num_rows == batch.table.num_rows
    attrs = _first_attrs(outcome.batch)
    value = attrs["payload"]
    assert isinstance(value, str)
    assert len(value.encode()) <= LIMITS.attribute_value_max_bytes
    removed = 20 * MIB - value.index("...[truncated")
    assert value.endswith(f"...[truncated {removed} bytes]")
    assert "http.route" in attrs or "http.request.method" in attrs  # the others are still there
    longest = max(len(r.encode()) for r in table.column("attributes").to_pylist() if r)
    assert longest <= LIMITS.attributes_max_bytes
    assert outcome.count(LimitedWhat.ATTRIBUTE_VALUE) == 1
    assert outcome.dropped_attributes == 0
    # Every other row is untouched.
    before, after = batch.table.column("attributes").to_pylist(), table.column("attributes").to_pylist()
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1


def test_a_cut_stops_at_a_character_boundary() -> None:
    text = "é" * 10_000  # two bytes each
    cut = truncate_text(text, 1001)
    assert len(cut.encode()) <= 1001
    prefix = cut[: cut.index("...[truncated")]
    assert set(prefix) == {"é"}
    assert cut.endswith(f"[truncated {20_000 - 2 * len(prefix)} bytes]")


@settings(max_examples=60)
@given(st.text(max_size=400), st.integers(min_value=64, max_value=300))
def test_truncate_text_keeps_a_prefix_within_the_limit(text: str, limit: int) -> None:
    cut = truncate_text(text, limit)
    if len(text.encode()) <= limit:
        assert cut == text
        return
    assert len(cut.encode()) <= limit
    prefix = cut[: cut.rindex("...[truncated ")]
    assert text.startswith(prefix)
    removed = int(cut[cut.rindex(" ", 0, -len(MARKER_TAIL)) + 1 : -len(MARKER_TAIL)])
    assert removed == len(text.encode()) - len(prefix.encode())


def test_strings_inside_arrays_and_maps_are_cut_too() -> None:
    big = "y" * (40 * KIB)
    batch = _with_attribute(4, "nested", {"inner": [big, "small"], "k": big})
    limits = LimitsConfig(attribute_value_max_bytes=KIB)
    attrs = _first_attrs(enforce_limits(batch, limits).batch)
    nested = attrs["nested"]
    assert isinstance(nested, dict)
    assert nested["inner"][1] == "small"
    assert all(len(v.encode()) <= KIB for v in (nested["inner"][0], nested["k"]))
    assert nested["k"] == truncate_text(big, KIB)


def test_an_exception_stack_trace_is_cut_alike_in_the_event_and_the_promoted_column() -> None:
    req = build_trace_request(n_spans=40, error_ratio=1.0, seed=3)
    trace = "\n".join(f"  at frame{i} (file{i}.py:{i})" for i in range(8000))
    for rs in req.resource_spans:
        for span in rs.scope_spans[0].spans:
            for event in span.events:
                if event.name == "exception":
                    event.attributes.extend(key_values({"exception.stacktrace": trace}))
    batch = _spans(req)
    wide = LimitsConfig(record_max_bytes=MIB, attributes_max_bytes=64 * KIB)  # the value limit alone
    outcome = enforce_limits(batch, wide)
    table = outcome.batch.table
    stacks = [s for s in table.column("exception_stacktrace").to_pylist() if s]
    assert stacks and all(s == truncate_text(trace, LIMITS.attribute_value_max_bytes) for s in stacks)
    events = [e for row in table.column("events").to_pylist() for e in row or [] if e["name"] == "exception"]
    in_events = {json.loads(e["attributes"])["exception.stacktrace"] for e in events}
    assert in_events == {truncate_text(trace, LIMITS.attribute_value_max_bytes)}
    assert table.schema == SCHEMAS[Signal.TRACES]
    assert outcome.count(LimitedWhat.FIELD) == len(stacks)


def test_a_log_body_has_its_own_limit() -> None:
    req = build_logs_request(n_records=10)
    req.resource_logs[0].scope_logs[0].log_records[0].body.string_value = "b" * (3 * MIB)
    limits = LimitsConfig(log_body_max_bytes=4 * KIB)
    outcome = enforce_limits(_logs(req), limits)
    bodies = outcome.batch.table.column("body").to_pylist()
    assert max(len(b.encode()) for b in bodies if b) <= 4 * KIB
    assert outcome.count(LimitedWhat.LOG_BODY) == 1
    assert outcome.batch.table.schema == SCHEMAS[Signal.LOGS]


# --- counts and records ------------------------------------------------------------------


def test_past_the_count_limit_the_first_attributes_stay_and_the_rest_are_counted_as_dropped() -> None:
    req = build_trace_request(n_spans=10, attrs_per_span=3)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    before = len(span.attributes)
    span.attributes.extend(key_values({f"extra.{i:03d}": i for i in range(200)}))
    span.dropped_attributes_count = 5
    outcome = enforce_limits(_spans(req), LIMITS)
    table = outcome.batch.table
    row = next(i for i, r in enumerate(table.column("attributes").to_pylist()) if "extra.000" in r)
    kept = json.loads(table.column("attributes")[row].as_py())
    assert len(kept) == 128
    assert list(kept)[-1] == f"extra.{128 - before - 1:03d}"
    dropped = before + 200 - 128
    assert outcome.dropped_attributes == dropped
    assert table.column("dropped_attributes_count")[row].as_py() == 5 + dropped


def test_an_attribute_set_over_the_record_limit_keeps_what_fits_and_cuts_the_last_string() -> None:
    req = build_trace_request(n_spans=4, attrs_per_span=2)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.extend(key_values({f"k{i}": "v" * 5000 for i in range(10)}))
    outcome = enforce_limits(_spans(req), LimitsConfig(record_max_bytes=MIB))  # the set limit alone
    cells = outcome.batch.table.column("attributes").to_pylist()
    big = json.loads(max(cells, key=len))
    assert (
        len(json.dumps(big, separators=(",", ":"), ensure_ascii=False).encode())
        <= LIMITS.attributes_max_bytes
    )
    assert [k for k in big if k.startswith("k")] == ["k0", "k1", "k2", "k3"]  # 16 KiB
    assert all(big[f"k{i}"] == "v" * 5000 for i in range(3))
    assert "...[truncated" in big["k3"]  # the one that no longer fitted whole
    assert outcome.dropped_attributes == 6


def test_an_attribute_with_a_key_over_the_value_limit_is_dropped() -> None:
    batch = _with_attribute(4, "k" * (20 * KIB), "v")
    outcome = enforce_limits(batch, LIMITS)
    assert not any("kkkk" in r for r in outcome.batch.table.column("attributes").to_pylist() if r)
    assert outcome.dropped_attributes == 1


def test_apply_limits_counts_in_the_self_metric() -> None:
    metrics = SelfMetrics()
    limited = apply_limits(_with_attribute(3, "big", "z" * (100 * KIB)), LIMITS, metrics)
    assert limited.table.schema == SCHEMAS[Signal.TRACES]
    sample = metrics.registry.get_sample_value(
        "faultlens_truncated_values_total", {"signal": "traces", "what": "attribute_value"}
    )
    assert sample == 1.0


def test_a_record_over_the_record_limit_has_its_longest_parts_cut_and_events_dropped() -> None:
    req = build_trace_request(n_spans=6, attrs_per_span=4, error_ratio=0.0)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.name = "n" * (12 * KIB)
    span.attributes.extend(key_values({"a": "v" * (12 * KIB)}))
    for i in range(6):
        event = span.events.add()
        event.name = f"e{i}"
        event.attributes.extend(key_values({"x": "w" * (3 * KIB)}))
    outcome = enforce_limits(_spans(req), LIMITS)
    table = outcome.batch.table
    assert table.schema == SCHEMAS[Signal.TRACES]
    row = next(i for i, n in enumerate(table.column("name").to_pylist()) if n.startswith("nnn"))
    record = table.slice(row, 1).to_pylist()[0]
    strings = sum(len(v.encode()) for k, v in record.items() if isinstance(v, str))
    strings += sum(len(e["name"]) + len(e["attributes"]) for e in record["events"])
    assert LIMITS.record_max_bytes - 4 * KIB < strings <= LIMITS.record_max_bytes
    assert "...[truncated" in record["name"]
    assert 0 < len(record["events"]) < 6
    assert [e["name"] for e in record["events"]] == [f"e{i}" for i in range(len(record["events"]))]
    assert record["dropped_events_count"] == 6 - len(record["events"])
    others = [r for i, r in enumerate(table.to_pylist()) if i != row]
    assert others == [r for i, r in enumerate(_spans(req).table.to_pylist()) if i != row]


# --- config -------------------------------------------------------------------------------


def test_a_record_limit_past_what_the_store_memory_holds_is_refused_at_load() -> None:
    longer = {"receivers": {"limits": {"record_max_bytes": 64 * KIB}}}
    with pytest.raises(ConfigError, match=r"store\.memory_limit_mib of at least 256"):
        load_config(None, longer)
    with pytest.raises(ConfigError, match="lower the record limit to 12288 at most"):
        load_config(None, {"store": {"memory_limit_mib": 48}})  # the default record limit
    cfg = load_config(None, {**longer, "store": {"memory_limit_mib": 256}})
    assert cfg.receivers.limits.record_max_bytes == 64 * KIB
    default = load_config(None)
    need = STORE_VECTOR_ROWS * default.receivers.limits.record_max_bytes
    assert need <= default.store.memory_limit_mib * MIB * STORE_RECORD_SHARE


# --- the store after limited batches ------------------------------------------------------


def _consume_all(store: DuckDBStore, batches: list[DecodedBatch], metrics: SelfMetrics) -> None:
    consumer = StoreConsumer(store, StoreConfig(flush_rows=1_000_000, flush_interval=60.0), metrics)
    consumer.start()
    try:
        for b in batches:
            consumer.consume(b)
        assert consumer.flush(timeout_s=60)
    finally:
        consumer.shutdown()


def test_three_20_mib_attributes_limited_leave_the_store_healthy(tmp_path: Path) -> None:
    """The requests of issue 14 (each under the request limit, together over DuckDB's memory
    limit) go through enforce_limits and one coalesced write; every row lands and the store
    goes on writing."""
    metrics = SelfMetrics()
    store = DuckDBStore(tmp_path / "s.duckdb")  # the default memory limit
    try:
        big = [_with_attribute(10, "blob", "x" * (20 * MIB), seed=i) for i in range(3)]
        limited = [apply_limits(b, LIMITS, metrics) for b in big]
        _consume_all(store, limited, metrics)
        assert store.stats().spans == 30
        _consume_all(store, [_spans(build_trace_request(n_spans=100, seed=9))], metrics)
        assert store.stats().spans == 130
        assert metrics.registry.get_sample_value(
            "faultlens_dropped_items_total",
            {"signal": "traces", "consumer": "store", "reason": "store_error"},
        ) in (None, 0.0)
    finally:
        store.close()


def test_a_write_of_strings_all_at_the_limits_fits_the_default_memory_limit(tmp_path: Path) -> None:
    """The worst the limits let through: every record at the record limit, over 2,048 of them
    (~40 MiB of strings) in one write, against 64 MiB of DuckDB memory."""
    req = build_trace_request(n_spans=2600, attrs_per_span=2, error_ratio=0.0, seed=5)
    filler = {f"f{i}": "w" * 3000 for i in range(8)}  # ~24 KiB: over the set limit, cut to it
    for rs in req.resource_spans:
        for span in rs.scope_spans[0].spans:
            span.attributes.extend(key_values(filler))
            event = span.events.add()
            event.name = "big"
            event.attributes.extend(key_values(filler))
    batch = enforce_limits(_spans(req), LIMITS).batch
    sizes = record_bytes(batch.table)
    assert LIMITS.record_max_bytes - KIB < sizes.min() and sizes.max() <= LIMITS.record_max_bytes
    metrics = SelfMetrics()
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        _consume_all(store, [batch], metrics)
        assert store.stats().spans == 2600
    finally:
        store.close()


SMALL = LimitsConfig(
    attribute_value_max_bytes=256,
    attribute_count_max=5,
    log_body_max_bytes=256,
    attributes_max_bytes=512,
    record_max_bytes=4096,
)
VALUES = st.one_of(
    st.text(max_size=600),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.text(max_size=300), max_size=4),
    st.dictionaries(st.text(max_size=8), st.text(max_size=300), max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(
    attrs=st.dictionaries(st.text(max_size=300), VALUES, max_size=12),
    events=st.lists(st.dictionaries(st.text(max_size=10), VALUES, max_size=6), max_size=8),
    name=st.text(max_size=700),
)
def test_any_span_comes_out_within_every_limit_with_valid_attribute_sets(
    attrs: dict[str, object], events: list[dict[str, object]], name: str
) -> None:
    req = build_trace_request(n_spans=3, seed=7)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.name = name
    span.attributes.extend(key_values(attrs))
    for i, event_attrs in enumerate(events):
        event = span.events.add()
        event.name = f"e{i}"
        event.attributes.extend(key_values(event_attrs))
    batch = _spans(req)
    outcome = enforce_limits(batch, SMALL)
    table = outcome.batch.table
    assert table.schema == SCHEMAS[Signal.TRACES]
    assert table.num_rows == batch.table.num_rows
    assert record_bytes(table).max() <= SMALL.record_max_bytes
    for row in table.to_pylist():
        for column in ("attributes", "resource_attributes"):
            cell = row[column]
            assert len(cell.encode()) <= SMALL.attributes_max_bytes
            assert len(json.loads(cell)) <= SMALL.attribute_count_max
        for event in row["events"] or []:
            assert len(json.loads(event["attributes"])) <= SMALL.attribute_count_max
        assert len(row["name"].encode()) <= SMALL.attribute_value_max_bytes
