"""RootCauseRanker: windows and baselines from the server's own history, and every answer a status.

The pure parts (:func:`pick_baseline`, :func:`busy_ranges`, :func:`incident_window`) are
checked on ranges; the ranker itself reads a real DuckDB store holding the synthetic system
of :mod:`.synth` (ten normal minutes, then a window at minute 20), with real incidents in
the analysis tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from faultlens.analysis.incidents.types import Incident, IncidentState, Severity
from faultlens.decode.base import DecodedBatch
from faultlens.rca import Observations
from faultlens.rca.incident import (
    RankerSettings,
    RootCauseRanker,
    busy_ranges,
    incident_window,
    pick_baseline,
    rfc3339,
    without_suspects,
)
from faultlens.rca.model import RcaAnswer, RcaStatus, Reason, RootCause
from faultlens.store.analysis_base import AnalysisResults
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.store.window import WindowReader
from faultlens.types import Signal, TimeRange

from .synth import MIN, PODS, Knobs, baseline, observations

S = 1_000_000_000
T = 1_800_000_000 * S  # the synthetic system's minute 0 is shifted here (a real epoch time)
SETTINGS = RankerSettings()


def _incident(id: str, start: int, end: int, state: IncidentState = IncidentState.RESOLVED) -> Incident:
    return Incident(
        id=id,
        state=state,
        severity=Severity.HIGH,
        start_ns=start,
        end_ns=end,
        opened_ns=start + MIN,
        resolved_ns=end if state is IncidentState.RESOLVED else None,
        services=("b",),
        anomalies=(),
        title=id,
    )


# --- pure parts -----------------------------------------------------------------------------


def test_baseline_is_the_latest_history_before_the_window() -> None:
    window = TimeRange(T + 60 * MIN, T + 65 * MIN)
    assert pick_baseline(window, [], SETTINGS) == (TimeRange(T + 40 * MIN, T + 60 * MIN),)


def test_baseline_steers_around_incidents_and_takes_the_rest_further_back() -> None:
    window = TimeRange(T + 60 * MIN, T + 65 * MIN)
    busy = busy_ranges([_incident("prev", T + 50 * MIN, T + 53 * MIN)], None, SETTINGS)
    # the previous incident, one minute of margin before, margin and 5 min of settling after
    assert busy == [TimeRange(T + 49 * MIN, T + 59 * MIN)]
    assert pick_baseline(window, busy, SETTINGS) == (
        TimeRange(T + 30 * MIN, T + 49 * MIN),
        TimeRange(T + 59 * MIN, T + 60 * MIN),
    )


def test_the_incident_itself_is_not_in_its_own_way() -> None:
    me = _incident("me", T + 60 * MIN, T + 62 * MIN, IncidentState.OPEN)
    assert busy_ranges([me], "me", SETTINGS) == []


def test_no_free_history_gives_no_baseline() -> None:
    window = TimeRange(T + 60 * MIN, T + 65 * MIN)
    busy = [TimeRange(T - 200 * MIN, T + 59 * MIN + 30 * S)]  # 30 s free: less than a minute
    assert pick_baseline(window, busy, SETTINGS) == ()
    assert pick_baseline(TimeRange(30 * S, MIN), [], SETTINGS) == ()  # the epoch is the floor


def test_baseline_never_reaches_past_the_lookback() -> None:
    window = TimeRange(T + 200 * MIN, T + 205 * MIN)
    busy = [TimeRange(T + 90 * MIN, T + 200 * MIN)]
    picked = pick_baseline(window, busy, SETTINGS)
    assert picked == (TimeRange(T + 80 * MIN, T + 90 * MIN),)  # 2 h back at most: 10 min left


def test_incident_window_is_its_data_time_widened_and_cut() -> None:
    inc = _incident("x", T + 10 * MIN, T + 13 * MIN)
    assert incident_window(inc, SETTINGS) == (TimeRange(T + 9 * MIN, T + 14 * MIN), False)
    long = _incident("y", T, T + 90 * MIN, IncidentState.OPEN)
    assert incident_window(long, SETTINGS) == (TimeRange(T - MIN, T + 29 * MIN), True)


def test_rfc3339_beside_nanoseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1_500_000_000) == "1970-01-01T00:00:01.5Z"


# --- the ranker over a real store -----------------------------------------------------------


def _shift(o: Observations, by: int) -> Observations:
    def moved(t: pa.Table, cols: tuple[str, ...]) -> pa.Table:
        for c in cols:
            i = t.schema.get_field_index(c)
            t = t.set_column(i, t.schema.field(i), pa.compute.add(t.column(c), by))
        return t

    return Observations(
        moved(o.spans, ("start_time_unix_nano", "end_time_unix_nano")),
        moved(o.logs, ("time_unix_nano", "observed_time_unix_nano")),
        moved(o.metrics, ("time_unix_nano",)),
    )


def _write(store: DuckDBStore, o: Observations) -> None:
    store.write(
        [
            DecodedBatch(Signal.TRACES, o.spans),
            DecodedBatch(Signal.LOGS, o.logs),
            DecodedBatch(Signal.METRICS, o.metrics),
        ]
    )


WINDOWS = {  # minute -> what happens in the 3 minutes from there
    20: Knobs(c_extra_ns=60_000_000),  # c slows down
    30: Knobs(),  # nothing
    40: Knobs(b_locations=("B#1",)),  # b stops logging a statement
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DuckDBStore, DuckDBAnalysisStore]]:
    path: Path = tmp_path_factory.mktemp("ranker") / "faultlens.duckdb"
    store = DuckDBStore(path)
    _write(store, _shift(baseline(), T))  # minutes 0..10
    _write(store, _shift(observations(300, 10 * MIN, Knobs(), first_trace=50_000, minutes=10), T))
    for i, (minute, knobs) in enumerate(WINDOWS.items()):
        _write(store, _shift(observations(120, minute * MIN, knobs, first_trace=100_000 * (i + 2)), T))
    analysis = DuckDBAnalysisStore(path)
    analysis.write_results(AnalysisResults(incidents=(_incident("inc-c", T + 20 * MIN, T + 23 * MIN),)))
    yield store, analysis
    analysis.close()
    store.close()


@pytest.fixture
def ranker(stores: tuple[DuckDBStore, DuckDBAnalysisStore]) -> RootCauseRanker:
    store, analysis = stores
    return RootCauseRanker(WindowReader.for_store(store), analysis)


def test_a_slow_pod_is_ranked_with_evidence_a_person_can_check(ranker: RootCauseRanker) -> None:
    run = ranker.rank_window(TimeRange(T + 20 * MIN, T + 23 * MIN))
    a = run.answer
    assert a.status is RcaStatus.RANKED, a.reason
    top = a.root_causes[0]
    assert (top.service, top.pod, top.reason) == ("c", PODS["c"], Reason.SLOW_EXECUTION)
    assert 0.5 < top.confidence <= 1 and top.sample_trace_ids
    f = top.findings[0]
    assert f.first_ns is not None and T + 20 * MIN <= f.first_ns < T + 23 * MIN
    assert "exclusive time" in f.evidence
    assert "judged spans, logs and metrics of the window" in a.reason


def test_a_missing_log_statement_names_its_text_and_a_sample_line(ranker: RootCauseRanker) -> None:
    a = ranker.rank_window(TimeRange(T + 40 * MIN, T + 43 * MIN)).answer
    top = a.root_causes[0]
    assert (top.service, top.reason) == ("b", Reason.LOG_PATTERN)
    (log,) = top.findings[0].logs
    assert (log.key, log.change.value, log.sample) == ("B#2", "missing", "B#2 did something 42")
    assert log.template and "B#2 did something 42" in top.findings[0].evidence


def test_a_quiet_window_is_nothing_changed(ranker: RootCauseRanker) -> None:
    a = ranker.rank_window(TimeRange(T + 30 * MIN, T + 33 * MIN)).answer
    assert a.status is RcaStatus.NOTHING_CHANGED, a.root_causes
    assert a.root_causes == () and "no change passed the bar" in a.reason


def test_the_baseline_of_a_later_window_leaves_the_earlier_incident_out(ranker: RootCauseRanker) -> None:
    run = ranker.rank_window(TimeRange(T + 30 * MIN, T + 33 * MIN))
    # inc-c (20..23 min) widened to 19..29 min: the baseline is 29..30 and 10..19 (the rest of
    # the 20 minutes reaches back before minute 10)
    assert run.baseline == (TimeRange(T + 10 * MIN, T + 19 * MIN), TimeRange(T + 29 * MIN, T + 30 * MIN)) or (
        run.baseline[-1] == TimeRange(T + 29 * MIN, T + 30 * MIN)
        and all(r.end_ns <= T + 19 * MIN for r in run.baseline[:-1])
    )
    assert "outside other incidents and their settling" in run.answer.reason


def test_an_incident_is_ranked_over_its_own_window(
    ranker: RootCauseRanker, stores: tuple[DuckDBStore, DuckDBAnalysisStore]
) -> None:
    inc = stores[1].incident("inc-c")
    assert inc is not None
    run = ranker.rank_incident(inc)
    assert run.window == TimeRange(T + 19 * MIN, T + 24 * MIN)
    assert run.baseline[-1].end_ns == T + 19 * MIN
    assert run.answer.root_causes[0].service == "c"


@pytest.mark.parametrize(
    ("window", "baseline", "words"),
    [
        # a window before any data
        (TimeRange(T - 30 * MIN, T - 27 * MIN), None, "holds 0 spans"),
        # data in the window, none in the baseline
        (TimeRange(T, T + 3 * MIN), [TimeRange(T - 10 * MIN, T)], "the baseline"),
        # one span against a one-span baseline
        (TimeRange(T + 20 * MIN, T + 20 * MIN + 1), [TimeRange(T, T + 1)], "judging needs"),
    ],
)
def test_too_little_data_is_not_enough_data_with_the_counts(
    ranker: RootCauseRanker, window: TimeRange, baseline: list[TimeRange] | None, words: str
) -> None:
    a = ranker.rank_window(window, baseline).answer
    assert a.status is RcaStatus.NOT_ENOUGH_DATA
    assert words in a.reason and a.root_causes == ()


@pytest.mark.parametrize(
    "window",
    [
        TimeRange(T + 20 * MIN, T + 20 * MIN + 1),  # one span
        TimeRange(T + 20 * MIN, T + 20 * MIN + 2 * S),  # a few spans
        TimeRange(T + 20 * MIN + 30 * S, T + 20 * MIN + 31 * S),  # spans, no metric point
    ],
)
def test_tiny_windows_against_a_full_baseline_answer(ranker: RootCauseRanker, window: TimeRange) -> None:
    a = ranker.rank_window(window).answer
    assert a.status in (RcaStatus.RANKED, RcaStatus.NOTHING_CHANGED, RcaStatus.NOT_ENOUGH_DATA)


def test_a_signal_without_enough_baseline_is_left_out_and_said(
    stores: tuple[DuckDBStore, DuckDBAnalysisStore],
) -> None:
    store, analysis = stores
    strict = RootCauseRanker(WindowReader.for_store(store), analysis, replace(SETTINGS, min_points=10_000))
    a = strict.rank_window(TimeRange(T + 20 * MIN, T + 23 * MIN)).answer
    assert a.status is RcaStatus.RANKED and "judged spans and logs of the window" in a.reason


def test_a_side_over_the_row_limit_is_read_in_slices(stores: tuple[DuckDBStore, DuckDBAnalysisStore]) -> None:
    store, analysis = stores
    small = RootCauseRanker(WindowReader.for_store(store, max_rows=600), analysis)
    run = small.rank_window(TimeRange(T + 20 * MIN, T + 23 * MIN))
    assert 0 < run.observed.coverage < 1 and run.observed.spans <= 600
    assert 0 < run.baseline_observed.coverage < 1
    assert "in slices" in run.answer.reason
    assert run.answer.root_causes[0].service == "c"
    # Metric points are few: they are read whole, not one slice's worth of each gauge.
    whole = WindowReader.for_store(store).read(run.window, frozenset({Signal.METRICS})).metrics
    assert run.observed.metrics_whole and run.observed.metric_points == whole.num_rows > 0
    assert run.baseline_observed.metrics_whole
    assert "metric points whole" in run.answer.reason


def test_an_answer_survives_its_json_form(ranker: RootCauseRanker) -> None:
    a = ranker.rank_window(TimeRange(T + 40 * MIN, T + 43 * MIN)).answer
    assert RcaAnswer.from_data(a.to_data()) == a


def test_an_incident_soon_after_the_data_begins_takes_its_margin_as_history(ranker: RootCauseRanker) -> None:
    early = _incident("early", T + 45 * S, T + 3 * MIN)
    run = ranker.rank_incident(early)
    # widened by a minute, the window would start before the first data, leaving no history
    assert run.window == TimeRange(T + 45 * S, T + 4 * MIN)
    assert run.answer.status is not RcaStatus.NOT_ENOUGH_DATA, run.answer.reason
    assert run.baseline_observed.spans >= SETTINGS.min_spans


def test_busy_ranges_relax_level_by_level() -> None:
    inc = [_incident("prev", T + 50 * MIN, T + 53 * MIN)]
    assert [busy_ranges(inc, None, SETTINGS, level) for level in range(4)] == [
        [TimeRange(T + 49 * MIN, T + 59 * MIN)],  # margin before, margin and settling after
        [TimeRange(T + 49 * MIN, T + 54 * MIN)],  # margins only
        [TimeRange(T + 50 * MIN, T + 53 * MIN)],  # its members' windows alone
        [],  # nothing left out
    ]


def test_a_baseline_without_spans_is_relaxed_until_one_holds_enough(
    stores: tuple[DuckDBStore, DuckDBAnalysisStore], tmp_path: Path
) -> None:
    store, _ = stores
    history = DuckDBAnalysisStore(tmp_path / "other.duckdb")
    try:
        # an incident over minutes 0..18: with its settling, only minutes 24..30 are free of
        # it before the window, and the store holds no data there
        history.write_results(AnalysisResults(incidents=(_incident("long", T, T + 18 * MIN),)))
        run = RootCauseRanker(WindowReader.for_store(store), history).rank_window(
            TimeRange(T + 30 * MIN, T + 33 * MIN)
        )
    finally:
        history.close()
    # margins only: minutes 19..30, and, history being crowded with incidents, all the rest of
    # the two hours before the window
    assert run.baseline == (TimeRange(T - 90 * MIN, T - MIN), TimeRange(T + 19 * MIN, T + 30 * MIN))
    assert run.baseline_observed.spans >= SETTINGS.min_spans
    assert "outside other incidents)" in run.answer.reason


# --- suspects of other incidents ----------------------------------------------------------------


def _named(service: str) -> RcaAnswer:
    cause = RootCause(service, "", "", Reason.SLOW_EXECUTION, 1.0, 1.0, ())
    return RcaAnswer(RcaStatus.RANKED, "test", 0, (cause,))


def test_without_suspects_drops_only_their_own_rows_of_their_stretches() -> None:
    obs = observations(30, 0, Knobs(), minutes=3)  # front, a, b, c: one request every 6 s
    kept, cut = without_suspects(obs, {"c": [TimeRange(MIN, 2 * MIN)]})
    assert cut == ("c",)
    for table, column in ((kept.spans, "start_time_unix_nano"), (kept.logs, "time_unix_nano")):
        rows = table.select(["service_name", column]).to_pylist()
        assert not [r for r in rows if r["service_name"] == "c" and MIN <= r[column] < 2 * MIN]
        assert [r for r in rows if r["service_name"] == "c"]  # before and after the stretch
    gone = obs.spans.num_rows - kept.spans.num_rows
    c_rows = [r["start_time_unix_nano"] for r in obs.spans.to_pylist() if r["service_name"] == "c"]
    assert gone == sum(1 for t in c_rows if MIN <= t < 2 * MIN)
    assert gone > 0 and kept.metrics.num_rows < obs.metrics.num_rows  # c's CPU points too
    assert without_suspects(obs, {"nobody": [TimeRange(0, 3 * MIN)]}) == (obs, ())


def test_a_suspect_most_of_whose_history_it_would_take_keeps_it() -> None:
    """Left with a third of its history, c would be judged against other times than its own:
    suspected in two of three minutes, it keeps them all (and a second suspect is still cut)."""
    obs = observations(30, 0, Knobs(), minutes=3)
    kept, cut = without_suspects(obs, {"c": [TimeRange(0, 2 * MIN)], "b": [TimeRange(0, MIN)]})
    assert cut == ("b",)
    services = kept.spans.column("service_name").to_pylist()
    assert services.count("c") == obs.spans.column("service_name").to_pylist().count("c")
    assert 0 < services.count("b") < obs.spans.column("service_name").to_pylist().count("b")
    looser, _ = without_suspects(obs, {"c": [TimeRange(0, 2 * MIN)]}, max_share=0.9)
    assert looser.spans.column("service_name").to_pylist().count("c") < services.count("c")


def test_a_fault_outlasting_its_incident_is_still_found_when_it_comes_back(tmp_path: Path) -> None:
    """c slows down at minute 20 and stays slow after its incident (20..23) ended; when a
    second incident opens at minute 40, history is too crowded for the strict baseline, and the
    relaxed one holds c's broken minutes 24..27: c would look normal. The first incident named
    c, so c's own rows until it settled stay out, and c is found again."""
    store = DuckDBStore(tmp_path / "x.duckdb")
    analysis = DuckDBAnalysisStore(tmp_path / "x.duckdb")
    slow = Knobs(c_extra_ns=60_000_000)
    try:
        _write(store, _shift(observations(20, 14 * MIN, Knobs(), first_trace=1, minutes=5), T))
        _write(store, _shift(observations(60, 20 * MIN, slow, first_trace=1_000, minutes=7), T))
        _write(store, _shift(observations(120, 40 * MIN, slow, first_trace=5_000), T))
        first = _incident("first", T + 20 * MIN, T + 23 * MIN)
        again = _incident("again", T + 40 * MIN, T + 43 * MIN)
        analysis.write_results(AnalysisResults(incidents=(first, again)))
        # c's broken minutes are most of its history here: the guard against that (tested
        # above) is loosened, to see the exclusion itself at work
        settings = replace(SETTINGS, lookback_ns=25 * MIN, min_spans=200, suspect_max_share=0.9)
        ranker = RootCauseRanker(WindowReader.for_store(store), analysis, settings)
        unnamed = ranker.rank_incident(again)
        assert "c" not in [rc.service for rc in unnamed.answer.root_causes[:1]]
        assert analysis.write_root_causes("first", _named("c"))
        named = ranker.rank_incident(again)
    finally:
        analysis.close()
        store.close()
    assert named.answer.status is RcaStatus.RANKED
    assert named.answer.root_causes[0].service == "c"
    assert "without what 1 services suspected there did" in named.answer.reason
    assert named.baseline == unnamed.baseline  # the same stretches, fewer of c's rows
    assert named.baseline_observed.spans < unnamed.baseline_observed.spans


def test_an_incident_soon_after_the_traces_begin_judges_spans_with_its_margin_as_history(
    tmp_path: Path,
) -> None:
    # Metric points for 20 minutes, then spans and logs from minute 20; c slows down from 21.
    store = DuckDBStore(tmp_path / "faultlens.duckdb")
    try:
        points = observations(20, 0, Knobs(), minutes=20)
        store.write([DecodedBatch(Signal.METRICS, _shift(points, T).metrics)])
        _write(store, _shift(observations(120, 20 * MIN, Knobs(), first_trace=10_000, minutes=1), T))
        _write(
            store, _shift(observations(120, 21 * MIN, Knobs(c_extra_ns=60_000_000), first_trace=20_000), T)
        )
        ranker = RootCauseRanker(WindowReader.for_store(store), None)
        run = ranker.rank_incident(_incident("first", T + 21 * MIN, T + 24 * MIN))
        # widened by a minute, the window's history would hold metric points alone
        assert run.window == TimeRange(T + 21 * MIN, T + 25 * MIN)
        assert run.baseline_observed.spans >= SETTINGS.min_spans
        assert run.answer.status is RcaStatus.RANKED, run.answer.reason
        assert (run.answer.root_causes[0].service, run.answer.root_causes[0].reason) == (
            "c",
            Reason.SLOW_EXECUTION,
        )
    finally:
        store.close()


def test_the_margin_stays_window_when_history_would_hold_no_spans_either(tmp_path: Path) -> None:
    # Metric points for 20 minutes; spans begin with the fault at minute 21: no history of
    # spans exists anywhere, so the first answer (metric points judged) stands.
    store = DuckDBStore(tmp_path / "faultlens.duckdb")
    try:
        points = observations(20, 0, Knobs(), minutes=20)
        store.write([DecodedBatch(Signal.METRICS, _shift(points, T).metrics)])
        _write(
            store, _shift(observations(120, 21 * MIN, Knobs(c_extra_ns=60_000_000), first_trace=20_000), T)
        )
        run = RootCauseRanker(WindowReader.for_store(store), None).rank_incident(
            _incident("first", T + 21 * MIN, T + 24 * MIN)
        )
        assert run.window == TimeRange(T + 20 * MIN, T + 25 * MIN)
        assert run.answer.status is not RcaStatus.NOT_ENOUGH_DATA, run.answer.reason
        assert run.answer.reason.startswith("judged metrics against the baseline")
    finally:
        store.close()
