"""Fresh ids for a load generator: unique per copy, links intact, nothing else changed."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from faultlens.testing.fresh_ids import FreshIds
from faultlens.testing.payloads import build_trace_request

BASE = 1_700_000_000_000_000_000


def _spans(payload: bytes) -> list[Span]:
    req = ExportTraceServiceRequest.FromString(payload)
    return [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_every_id_byte_is_found() -> None:
    payload = build_trace_request(n_spans=300, base_time_ns=BASE, seed=3).SerializeToString()
    spans = _spans(payload)
    with_parent = sum(1 for s in spans if s.parent_span_id)
    link_bytes = sum(24 for s in spans for _ in s.links)
    assert FreshIds(payload).offsets.size == 24 * len(spans) + 8 * with_parent + link_bytes
    assert link_bytes > 0  # the builder makes some links, so they are covered


def test_copies_have_unique_ids_and_keep_their_links() -> None:
    fresh = FreshIds(build_trace_request(n_spans=300, base_time_ns=BASE, seed=3).SerializeToString())
    original = _spans(fresh.copy(0))
    seen: set[bytes] = set()
    for number in (0, 1, 2, 255, 2**40 + 7):
        spans = _spans(fresh.copy(number))
        assert len(spans) == len(original)
        ids = {s.span_id for s in spans}
        assert len(ids) == len(spans) and not ids & seen
        seen |= ids
        by_id = {s.span_id: s for s in spans}
        for before, after in zip(original, spans, strict=True):
            # Everything but the ids is as it was.
            assert (after.name, after.start_time_unix_nano, list(after.attributes)) == (
                before.name,
                before.start_time_unix_nano,
                list(before.attributes),
            )
            assert len(after.trace_id) == 16 and len(after.span_id) == 8
            if before.parent_span_id:
                parent = by_id.get(after.parent_span_id)
                original_parent = next(s for s in original if s.span_id == before.parent_span_id)
                assert parent is not None and parent.name == original_parent.name
                assert parent.trace_id == after.trace_id
            else:
                assert after.parent_span_id == b""


def test_a_shifted_copy_moves_every_span_and_event_time_and_nothing_else() -> None:
    fresh = FreshIds(build_trace_request(n_spans=300, base_time_ns=BASE, seed=3).SerializeToString())
    shift = 90 * 10**9 + 123
    original, moved = _spans(fresh.copy(5)), _spans(fresh.copy(5, shift_ns=shift))
    assert sum(len(s.events) for s in original) > 0  # the builder makes events, so they are covered
    for before, after in zip(original, moved, strict=True):
        assert after.start_time_unix_nano == before.start_time_unix_nano + shift
        assert after.end_time_unix_nano == before.end_time_unix_nano + shift
        assert [e.time_unix_nano for e in after.events] == [e.time_unix_nano + shift for e in before.events]
        assert (after.span_id, after.parent_span_id, after.name) == (
            before.span_id,
            before.parent_span_id,
            before.name,
        )
        assert after.attributes == before.attributes and after.links == before.links
    # Shifted alone, the ids stay those of the request.
    shifted_only = _spans(fresh.copy(0, shift_ns=shift))
    assert [s.span_id for s in shifted_only] == [s.span_id for s in _spans(fresh.payload)]
