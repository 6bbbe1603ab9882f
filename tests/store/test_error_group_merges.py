"""Merging and splitting error groups in a real DuckDB file: what readers show, across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from faultlens.analysis.errors import ErrorEvent, ErrorGroup, ErrorGrouper, ErrorReason
from faultlens.store.analysis_base import (
    AnalysisResults,
    ErrorGroupEditor,
    ErrorGroupLinks,
    ErrorGroupQuery,
)
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
from faultlens.types import Signal, TimeRange

S = 1_000_000_000
T0 = 1_699_999_980 * S  # on a minute boundary


def _event(at_s: int, trace: int, service: str, message: str, signal: Signal = Signal.TRACES) -> ErrorEvent:
    return ErrorEvent(
        time_ns=T0 + at_s * S,
        signal=signal,
        reasons=(ErrorReason.LOG_SEVERITY if signal is Signal.LOGS else ErrorReason.SPAN_STATUS,),
        service=service,
        operation="POST /pay" if signal is Signal.TRACES else None,
        trace_id=bytes([trace]) * 16,
        status_message=message if signal is Signal.TRACES else None,
        body=message if signal is Signal.LOGS else None,
    )


def _groups(store: DuckDBAnalysisStore) -> dict[str, ErrorGroup]:
    """Three groups of ``pay``: a declined card seen on spans (traces 1, 2, at 0 s and 70 s),
    the same failure logged (traces 1, 2, at 0 s and 70 s), and a timeout (trace 9, at 200 s);
    and one of ``cart``, logged in trace 1 too."""
    grouper = ErrorGrouper()
    events = [
        _event(0, 1, "pay", "card declined"),
        _event(70, 2, "pay", "card declined"),
        _event(0, 1, "pay", "payment failed: declined by issuer", Signal.LOGS),
        _event(70, 2, "pay", "payment failed: declined by issuer", Signal.LOGS),
        _event(200, 9, "pay", "upstream timed out"),
        _event(0, 1, "cart", "cart refused the order", Signal.LOGS),
    ]
    groups = grouper.add(events)
    store.write_results(AnalysisResults(error_groups=tuple(groups)))
    by_message = {g.sample_message: g for g in groups}
    return {
        "span": by_message["card declined"],
        "log": by_message["payment failed: declined by issuer"],
        "timeout": by_message["upstream timed out"],
        "cart": by_message["cart refused the order"],
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBAnalysisStore]:
    s = DuckDBAnalysisStore(tmp_path / "faultlens.duckdb")
    yield s
    s.close()


def test_the_store_is_an_error_group_editor(store: DuckDBAnalysisStore) -> None:
    assert isinstance(store, ErrorGroupEditor)


def test_a_failure_logged_and_recorded_on_its_span_is_shown_as_linked(store: DuckDBAnalysisStore) -> None:
    g = _groups(store)
    span, log = g["span"].group_id, g["log"].group_id
    assert store.error_group_links(span) == ErrorGroupLinks(span, (), (log,))
    assert store.error_group_links(log) == ErrorGroupLinks(log, (), (span,))
    # the timeout shares no trace; the cart's log shares trace 1 but is another service's
    assert store.error_group_links(g["timeout"].group_id) == ErrorGroupLinks(g["timeout"].group_id, (), ())
    assert store.error_group_links(g["cart"].group_id) == ErrorGroupLinks(g["cart"].group_id, (), ())
    assert store.error_group_links("0123456789abcdef") is None


def test_merged_groups_are_listed_as_one_with_everything_of_their_members(store: DuckDBAnalysisStore) -> None:
    g = _groups(store)
    span, log = g["span"].group_id, g["log"].group_id
    assert store.merge_error_groups(span, [log]) == (log,)
    listed = {s.group.group_id: s for s in store.error_groups(ErrorGroupQuery(service="pay"))}
    assert set(listed) == {span, g["timeout"].group_id}
    merged = listed[span]
    assert merged.merged == (log,)
    assert (merged.group.count, merged.count_in_range) == (4, 4)
    assert merged.group.message_template == g["span"].message_template  # the group merged into
    assert merged.group.buckets == ((T0, 2), (T0 + 60 * S, 2))
    assert merged.group.sample_trace_ids == (bytes([1]) * 16, bytes([2]) * 16)
    assert merged.group.operations == ("POST /pay",)
    assert (merged.group.first_seen_ns, merged.group.last_seen_ns) == (T0, T0 + 70 * S)
    # the range counts the members' buckets too
    [late] = [
        s
        for s in store.error_groups(ErrorGroupQuery(time_range=TimeRange(T0 + 60 * S, T0 + 120 * S)))
        if s.group.group_id == span
    ]
    assert late.count_in_range == 2
    # a member's id answers the group it is shown as
    assert store.error_group(log) == merged.group
    assert store.error_group_links(log) == ErrorGroupLinks(span, (log,), ())


def test_merges_stay_flat_and_refuse_what_cannot_be(store: DuckDBAnalysisStore) -> None:
    g = _groups(store)
    span, log, timeout = g["span"].group_id, g["log"].group_id, g["timeout"].group_id
    store.merge_error_groups(span, [log])
    # merging the merged group into another moves its member with it
    assert store.merge_error_groups(timeout, [span]) == tuple(sorted((span, log)))
    [shown] = store.error_groups(ErrorGroupQuery(service="pay"))
    assert shown.group.group_id == timeout and shown.group.count == 5
    # merging into a member goes to the group it is shown as
    with pytest.raises(ValueError, match="nothing to merge"):
        store.merge_error_groups(log, [span])
    with pytest.raises(KeyError, match="0123456789abcdef"):
        store.merge_error_groups(timeout, ["0123456789abcdef"])
    with pytest.raises(ValueError, match="nothing to merge"):
        store.merge_error_groups(timeout, [timeout])


def test_a_split_undoes_a_merge_exactly(store: DuckDBAnalysisStore) -> None:
    g = _groups(store)
    span, log, timeout = g["span"].group_id, g["log"].group_id, g["timeout"].group_id
    before = store.error_groups(ErrorGroupQuery())
    store.merge_error_groups(span, [log, timeout])
    assert store.split_error_group(log) == (log,)  # a member leaves
    assert store.error_group_links(span) == ErrorGroupLinks(span, (timeout,), (log,))
    assert store.split_error_group(span) == (timeout,)  # the group gives back all it has
    assert store.split_error_group(span) == ()
    assert store.error_groups(ErrorGroupQuery()) == before


def test_merges_are_kept_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "faultlens.duckdb"
    first = DuckDBAnalysisStore(path)
    g = _groups(first)
    first.merge_error_groups(g["span"].group_id, [g["log"].group_id])
    first.close()
    again = DuckDBAnalysisStore(path)
    try:
        [shown] = [s for s in again.error_groups(ErrorGroupQuery()) if s.merged]
        assert shown.group.group_id == g["span"].group_id and shown.merged == (g["log"].group_id,)
        # new errors of a member still count, in the group it is shown as
        more = ErrorGrouper().add([_event(300, 3, "pay", "payment failed: declined by issuer", Signal.LOGS)])
        again.write_results(AnalysisResults(error_groups=tuple(more)))
        shown_again = again.error_group(g["span"].group_id)
        assert shown_again is not None and shown_again.last_seen_ns == T0 + 300 * S
    finally:
        again.close()


def test_retention_drops_the_merges_of_member_groups_it_deleted(store: DuckDBAnalysisStore) -> None:
    import time

    g = _groups(store)
    store.merge_error_groups(g["span"].group_id, [g["log"].group_id])
    store.merge_error_groups(g["timeout"].group_id, [g["cart"].group_id])
    # The logged failure keeps coming (seen an hour from now); everything else is old.
    fresh_s = (time.time_ns() - T0) // S + 3600
    more = ErrorGrouper().add([_event(fresh_s, 4, "pay", "payment failed: declined by issuer", Signal.LOGS)])
    store.write_results(AnalysisResults(error_groups=tuple(more)))
    store.enforce_retention(time.time_ns() + 10 * S, S)
    with store._cursor() as cur:
        kept = cur.execute("SELECT group_id, into_id FROM error_group_merges").fetchall()
    assert kept == [(g["log"].group_id, g["span"].group_id)]
