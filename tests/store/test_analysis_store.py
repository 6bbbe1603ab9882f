"""The analysis tables in a real DuckDB file: writes, reads, merges, state, restarts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from faultlens.analysis.anomaly.types import Anomaly, Direction, SeriesKey, SeriesKind
from faultlens.analysis.errors import ErrorEvent, ErrorGrouper, ErrorReason
from faultlens.analysis.incidents.types import Incident, IncidentState, Severity
from faultlens.analysis.red import RedAggregator, RedConfig
from faultlens.analysis.templates.counter import ChangeKind, TemplateChange, WindowCounts
from faultlens.decode.schema import SPAN_SCHEMA
from faultlens.errors import StoreError
from faultlens.store.analysis_base import (
    AnalysisResults,
    AnomalyQuery,
    ErrorGroupQuery,
    IncidentQuery,
    RedQuery,
    TemplateQuery,
    TemplateSeen,
)
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.types import Signal, TimeRange

S = 1_000_000_000
T0 = 1_699_999_980 * S  # on a minute boundary
W = 60 * S


def _event(
    i: int, service: str = "checkout", message: str = "timed out after 3000 ms", etype: str = "TimeoutError"
) -> ErrorEvent:
    return ErrorEvent(
        time_ns=T0 + i * 10 * S,
        signal=Signal.TRACES,
        reasons=(ErrorReason.EXCEPTION,),
        service=service,
        operation="POST /pay",
        trace_id=bytes([i + 1]) * 16,
        exception_type=etype,
        exception_message=message,
    )


def _anomaly(service: str, window: int, score: float = 9.0, peer: str = "") -> Anomaly:
    kind = SeriesKind.EDGE_LATENCY_P90 if peer else SeriesKind.ERROR_RATE
    return Anomaly(
        SeriesKey(kind, service, "*", peer),
        T0 + window * W,
        W,
        observed=0.5,
        expected=0.01,
        score=score,
        direction=Direction.UP,
        explanation=f"error rate of {service} went up",
    )


def _incident(members: tuple[Anomaly, ...], state: IncidentState = IncidentState.OPEN) -> Incident:
    return Incident(
        id="inc-000000000001",
        state=state,
        severity=Severity.HIGH,
        start_ns=members[0].window_start_ns,
        end_ns=members[-1].window_start_ns + W,
        opened_ns=members[0].window_start_ns,
        resolved_ns=None if state is IncidentState.OPEN else members[-1].window_start_ns + W,
        services=tuple(sorted({a.key.service for a in members})),
        anomalies=members,
        title="error rate went up",
    )


def red_table(end_ns: int, n: int) -> pa.Table:
    """``n`` root spans of service ``api`` ending at ``end_ns``, 10 ms each."""
    cols = {
        "trace_id": [bytes([1]) * 16] * n,
        "span_id": [(i + 1).to_bytes(8, "big") for i in range(n)],
        "name": ["GET /x"] * n,
        "kind": [2] * n,
        "start_time_unix_nano": [end_ns - 10_000_000] * n,
        "end_time_unix_nano": [end_ns] * n,
        "duration_ns": [10_000_000] * n,
        "service_name": ["api"] * n,
    }
    return pa.Table.from_arrays(
        [pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type) for f in SPAN_SCHEMA],
        schema=SPAN_SCHEMA,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBAnalysisStore]:
    s = DuckDBAnalysisStore(tmp_path / "faultlens.duckdb")
    yield s
    s.close()


def test_error_groups_round_trip_with_buckets_samples_and_classification(store: DuckDBAnalysisStore) -> None:
    grouper = ErrorGrouper()
    groups = grouper.add([_event(i) for i in range(12)])
    store.write_results(AnalysisResults(error_groups=tuple(groups)))
    [stored] = store.error_groups(ErrorGroupQuery())
    assert stored.group == groups[0]
    assert stored.count_in_range == 12
    assert stored.group.classification_source.value == "rule"
    assert len(stored.group.sample_trace_ids) == 5
    # A later snapshot replaces counts per bucket and keeps samples.
    later = grouper.add([_event(20), _event(21)])
    store.write_results(AnalysisResults(error_groups=tuple(later)))
    got = store.error_group(groups[0].group_id)
    assert got is not None and got.count == 14
    assert sum(c for _, c in got.buckets) == 14
    assert store.error_group("0123456789abcdef") is None


def test_error_group_filters_by_service_category_and_time(store: DuckDBAnalysisStore) -> None:
    grouper = ErrorGrouper()
    store.write_results(
        AnalysisResults(
            error_groups=tuple(
                grouper.add(
                    [
                        _event(0),
                        _event(1, "cart", "connection refused: db:5432", "ConnectionRefusedError"),
                        _event(30),
                    ]
                )
            )
        )
    )
    assert {g.group.service for g in store.error_groups(ErrorGroupQuery(service="cart"))} == {"cart"}
    timeouts = store.error_groups(ErrorGroupQuery(category="timeout"))
    assert [g.group.service for g in timeouts] == ["checkout"]
    late = store.error_groups(ErrorGroupQuery(time_range=TimeRange(T0 + 200 * S, T0 + 400 * S)))
    assert [(g.group.service, g.count_in_range) for g in late] == [("checkout", 1)]
    assert store.error_groups(ErrorGroupQuery(time_range=TimeRange(0, T0 - 1))) == []
    assert len(store.error_groups(ErrorGroupQuery(limit=1))) == 1


def test_templates_add_counts_and_keep_the_last_change(store: DuckDBAnalysisStore) -> None:
    seen = TemplateSeen("cart", 1, "user <*> logged in", T0, T0 + S, 5)
    store.write_results(AnalysisResults(templates=(seen,)))
    store.write_results(
        AnalysisResults(
            templates=(dataclasses.replace(seen, lines=3, last_seen_ns=T0 + 9 * S),),
            template_windows=(WindowCounts("cart", TimeRange(T0, T0 + W), ((1, 8),)),),
            template_changes=(
                TemplateChange(
                    ChangeKind.NEW, "cart", 1, "user <*> logged in", TimeRange(T0, T0 + W), 8, 0, 0
                ),
            ),
        )
    )
    [t] = store.templates(TemplateQuery(service="cart"))
    assert (t.count, t.first_seen_ns, t.last_seen_ns, t.last_change) == (8, T0, T0 + 9 * S, "new")
    assert store.templates(TemplateQuery(service="nope")) == []


def test_red_windows_written_twice_are_merged_by_the_reader(store: DuckDBAnalysisStore) -> None:
    first = RedAggregator(RedConfig()).flush()
    assert not first
    agg = RedAggregator(RedConfig())
    agg.consume(red_table(T0 + 5 * S, 10))
    part1 = agg.flush().red
    agg2 = RedAggregator(RedConfig())
    agg2.consume(red_table(T0 + 30 * S, 30))
    part2 = agg2.flush().red
    store.write_results(AnalysisResults(red_windows=part1))
    store.write_results(AnalysisResults(red_windows=part2))
    [row] = store.red_rows(RedQuery(service="api"))
    assert row.requests == 40
    assert row.latency.count == 40
    assert store.red_rows(RedQuery(service="api", time_range=TimeRange(0, T0))) == []


def test_anomalies_and_incidents_upsert_and_filter(store: DuckDBAnalysisStore) -> None:
    a1, a2 = _anomaly("cart", 1), _anomaly("frontend", 2, peer="cart")
    store.write_results(AnalysisResults(anomalies=(a1, a1)))
    store.write_results(AnalysisResults(anomalies=(a2,), incidents=(_incident((a1, a2)),)))
    assert [a.id for a in store.anomalies(AnomalyQuery(service="cart"))] == [a2.id, a1.id]
    assert store.anomalies(AnomalyQuery(service="frontend")) == [a2]
    assert store.anomalies(AnomalyQuery(time_range=TimeRange(T0 + 2 * W, T0 + 3 * W))) == [a2]
    [open_] = store.incidents(IncidentQuery(state="open"))
    assert open_.anomalies == (a1, a2)
    store.write_results(AnalysisResults(incidents=(_incident((a1, a2), IncidentState.RESOLVED),)))
    assert store.incidents(IncidentQuery(state="open")) == []
    got = store.incident("inc-000000000001")
    assert got is not None and got.state is IncidentState.RESOLVED and got.resolved_ns is not None
    assert store.incident("inc-nope") is None


def test_state_survives_reopening_next_to_the_telemetry_store(tmp_path: Path) -> None:
    path = tmp_path / "faultlens.duckdb"
    telemetry = DuckDBStore(path)
    analysis = DuckDBAnalysisStore(path)
    analysis.save_state("errors", {"version": 1, "groups": [1, 2]})
    analysis.write_results(AnalysisResults(anomalies=(_anomaly("cart", 1),)))
    analysis.close()
    analysis.close()  # twice is fine
    telemetry.close()
    again = DuckDBAnalysisStore(path)
    try:
        assert again.load_state("errors") == {"version": 1, "groups": [1, 2]}
        assert again.load_state("missing") is None
        assert len(again.anomalies(AnomalyQuery())) == 1
    finally:
        again.close()
    with pytest.raises(StoreError):
        again.anomalies(AnomalyQuery())


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "faultlens.duckdb"
    DuckDBAnalysisStore(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE analysis_state SET state = '{\"version\": 99}' WHERE name = '_schema'")
    con.close()
    with pytest.raises(StoreError, match="newer"):
        DuckDBAnalysisStore(path)


def test_empty_results_write_nothing(store: DuckDBAnalysisStore) -> None:
    store.write_results(AnalysisResults())
    assert store.incidents(IncidentQuery()) == []
    assert store.error_groups(ErrorGroupQuery(limit=0)) == []


def test_retention_drops_resolved_incidents_and_old_anomalies_but_keeps_open_incidents(
    store: DuckDBAnalysisStore,
) -> None:
    old_a, old_b, kept_c, new_d = (_anomaly(s, w) for s, w in (("a", 1), ("b", 2), ("c", 3), ("d", 50)))
    resolved = _incident((old_a,), IncidentState.RESOLVED)
    still_open = dataclasses.replace(_incident((kept_c,)), id="inc-000000000002")
    store.write_results(
        AnalysisResults(anomalies=(old_a, old_b, kept_c, new_d), incidents=(resolved, still_open))
    )
    cutoff = T0 + 10 * W
    deleted = store.enforce_retention(cutoff + 100, 100)
    assert deleted == 4  # one member row, one incident, two anomalies
    assert [i.id for i in store.incidents(IncidentQuery())] == ["inc-000000000002"]
    assert sorted(a.key.service for a in store.anomalies(AnomalyQuery())) == ["c", "d"]
    got = store.incident("inc-000000000002")
    assert got is not None and got.anomalies == (kept_c,)
    assert store.enforce_retention(cutoff + 100, 100) == 0


def test_retention_drops_error_groups_and_templates_not_seen_since_the_cutoff(
    store: DuckDBAnalysisStore,
) -> None:
    grouper = ErrorGrouper()
    old = grouper.add([_event(0, service="cart", etype="OldError")])
    new = grouper.add([_event(100, service="cart", etype="NewError")])  # 1000 s later
    store.write_results(AnalysisResults(error_groups=(*old, *new)))
    store.write_results(
        AnalysisResults(
            templates=(
                TemplateSeen("cart", 1, "old <*>", T0, T0 + S, 1),
                TemplateSeen("cart", 2, "new <*>", T0, T0 + 1000 * S, 1),
            )
        )
    )
    store.enforce_retention(T0 + 600 * S, 60 * S)  # cutoff at T0 + 540 s
    assert [g.group.exception_type for g in store.error_groups(ErrorGroupQuery())] == ["NewError"]
    assert store.error_group(old[0].group_id) is None
    assert [t.template for t in store.templates(TemplateQuery())] == ["new <*>"]
    # seen again, a group is written afresh
    again = grouper.add([_event(101, service="cart", etype="OldError")])
    store.write_results(AnalysisResults(error_groups=tuple(again)))
    assert store.error_group(old[0].group_id) is not None
