from __future__ import annotations

import json

from faultlens.testing.payloads import (
    build_logs_request,
    build_metrics_request,
    build_trace_request,
    to_otlp_dict,
)

BASE = 1_700_000_000_000_000_000


def test_builders_are_deterministic_for_a_seed_and_base_time() -> None:
    for build in (build_trace_request, build_logs_request, build_metrics_request):
        assert (
            build(seed=4, base_time_ns=BASE).SerializeToString()
            == build(seed=4, base_time_ns=BASE).SerializeToString()
        )
        assert (
            build(seed=4, base_time_ns=BASE).SerializeToString()
            != build(seed=5, base_time_ns=BASE).SerializeToString()
        )


def test_trace_builder_makes_the_spans_asked_for_across_services() -> None:
    req = build_trace_request(n_spans=250, services=6, attrs_per_span=12, base_time_ns=BASE, error_ratio=0.5)
    spans = [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert len(spans) == 250
    assert len(req.resource_spans) == 6
    by_id = {s.span_id: s for s in spans}
    for s in spans:
        assert len(s.attributes) >= 12
        assert s.start_time_unix_nano <= s.end_time_unix_nano < BASE
        if s.parent_span_id:
            parent = by_id[s.parent_span_id]
            assert parent.trace_id == s.trace_id
    assert any(e.name == "exception" for s in spans for e in s.events)


def test_json_rendering_uses_hex_ids_camel_case_and_integer_enums() -> None:
    doc = to_otlp_dict(build_trace_request(n_spans=3, base_time_ns=BASE))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and int(span["traceId"], 16)
    assert len(span["spanId"]) == 16
    assert isinstance(span["kind"], int)
    assert isinstance(span["startTimeUnixNano"], str)
    json.dumps(doc)
