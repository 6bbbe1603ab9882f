"""Incidents open from related anomalies, stay apart when unrelated, resolve when quiet."""

from __future__ import annotations

import json

from faultlens.analysis.anomaly import Anomaly, Direction, SeriesKey, SeriesKind
from faultlens.analysis.incidents import IncidentConfig, IncidentState, IncidentTracker, graph_from_edges
from faultlens.analysis.red import EdgeWindow
from faultlens.analysis.sketch import QuantileSketch

W = 60_000_000_000
GRAPH = {"front": {"orders", "users"}, "orders": {"db"}}


def anomaly(kind: SeriesKind, service: str, window: int, score: float = 8.0, peer: str = "") -> Anomaly:
    return Anomaly(SeriesKey(kind, service, "op", peer), window * W, W, 2.0, 1.0, score, Direction.UP, "x")


def test_related_anomalies_open_one_incident_and_it_resolves_after_quiet_windows() -> None:
    tr = IncidentTracker(IncidentConfig(resolve_after_windows=2))
    up = tr.update(0, [anomaly(SeriesKind.LATENCY_P99, "orders", 0)], GRAPH)
    assert not up.opened  # one ordinary anomaly is not an incident yet
    up = tr.update(W, [anomaly(SeriesKind.LATENCY_P90, "front", 1)], GRAPH)
    assert len(up.opened) == 1
    inc = up.opened[0]
    assert inc.state is IncidentState.OPEN
    assert inc.services == ("front", "orders")
    assert inc.start_ns == 0 and len(inc.anomalies) == 2
    assert tr.advance(2 * W).resolved == ()
    done = tr.advance(3 * W).resolved
    assert [i.id for i in done] == [inc.id]
    assert done[0].state is IncidentState.RESOLVED and done[0].resolved_ns == 2 * W


def test_unrelated_services_make_separate_groups_and_lone_noise_fades() -> None:
    tr = IncidentTracker()
    up = tr.update(
        0,
        [anomaly(SeriesKind.LATENCY_P99, "orders", 0), anomaly(SeriesKind.LATENCY_P99, "billing", 0)],
        GRAPH,
    )
    assert not up.opened
    for w in range(1, 6):
        assert not tr.advance(w * W)
    assert tr.open_incidents == []


def test_one_strong_anomaly_opens_alone_and_ids_are_stable() -> None:
    def run() -> str:
        tr = IncidentTracker(IncidentConfig(open_score=30))
        return tr.update(5 * W, [anomaly(SeriesKind.ERROR_RATE, "db", 5, score=40)]).opened[0].id

    assert run() == run()


def test_single_window_blips_do_not_open_and_resource_anomalies_only_support() -> None:
    tr = IncidentTracker()
    two_series_one_window = [
        anomaly(SeriesKind.LATENCY_P99, "orders", 0),
        anomaly(SeriesKind.ERROR_RATE, "orders", 0),
    ]
    assert not tr.update(0, two_series_one_window, GRAPH).opened  # needs persistence over 2 windows
    assert not tr.update(W, [anomaly(SeriesKind.RESOURCE, "orders", 1)], GRAPH).opened  # evidence only
    up = tr.update(2 * W, [anomaly(SeriesKind.LATENCY_P90, "front", 2)], GRAPH)
    assert len(up.opened) == 1
    assert {a.key.kind for a in up.opened[0].anomalies} >= {SeriesKind.RESOURCE, SeriesKind.LATENCY_P90}
    lone = IncidentTracker()
    assert not lone.update(0, [anomaly(SeriesKind.RESOURCE, "x", 0, score=99)]).opened
    assert not lone.update(W, [anomaly(SeriesKind.RESOURCE, "x", 1, score=99)]).opened


def test_state_round_trip() -> None:
    tr = IncidentTracker()
    tr.update(
        0, [anomaly(SeriesKind.LATENCY_P99, "orders", 0), anomaly(SeriesKind.ERROR_RATE, "orders", 0)], GRAPH
    )
    clone = IncidentTracker()
    clone.import_state(json.loads(json.dumps(tr.export_state())))
    assert clone.open_incidents == tr.open_incidents
    nxt = [anomaly(SeriesKind.LATENCY_P90, "front", 1)]
    assert clone.update(W, nxt, GRAPH) == tr.update(W, nxt, GRAPH)


def test_graph_from_edge_windows() -> None:
    e = EdgeWindow("front", "orders", 0, W, 3, 0, 1.0, QuantileSketch())
    assert graph_from_edges([e]) == {"front": {"orders"}}


def test_endless_resource_noise_does_not_keep_an_incident_open() -> None:
    tr = IncidentTracker(IncidentConfig(resolve_after_windows=2))
    tr.update(0, [anomaly(SeriesKind.LATENCY_P99, "orders", 0)], GRAPH)
    assert tr.update(W, [anomaly(SeriesKind.LATENCY_P90, "orders", 1)], GRAPH).opened
    resolved = []
    for w in range(2, 6):
        resolved += tr.update(w * W, [anomaly(SeriesKind.RESOURCE, "orders", w)], GRAPH).resolved
    assert len(resolved) == 1
    assert tr.open_incidents == []


def test_errors_that_persist_open_an_incident_alone_latency_needs_a_second_series() -> None:
    tr = IncidentTracker()
    assert not tr.update(0, [anomaly(SeriesKind.ERROR_LOGS, "billing", 0)]).opened
    up = tr.update(W, [anomaly(SeriesKind.ERROR_LOGS, "billing", 1)])
    assert len(up.opened) == 1 and up.opened[0].opened_ns == W
    flapping = IncidentTracker()
    flapping.update(0, [anomaly(SeriesKind.LATENCY_P99, "billing", 0)])
    assert not flapping.update(W, [anomaly(SeriesKind.LATENCY_P99, "billing", 1)]).opened


def test_new_symptoms_after_an_incident_has_grown_open_their_own_incident() -> None:
    tr = IncidentTracker(IncidentConfig(grow_windows=1))
    tr.update(0, [anomaly(SeriesKind.LATENCY_P99, "orders", 0)], GRAPH)
    first = tr.update(W, [anomaly(SeriesKind.LATENCY_P90, "front", 1)], GRAPH).opened[0]
    # The window after it opened: still spreading, a new series joins it.
    assert tr.update(2 * W, [anomaly(SeriesKind.THROUGHPUT, "orders", 2)], GRAPH).updated[0].id == first.id
    # Later: its own series keep it going; a new symptom nearby starts a group of its own.
    up = tr.update(
        3 * W, [anomaly(SeriesKind.LATENCY_P99, "orders", 3), anomaly(SeriesKind.ERROR_LOGS, "db", 3)], GRAPH
    )
    assert [i.id for i in up.updated] == [first.id] and not up.opened
    up = tr.update(4 * W, [anomaly(SeriesKind.ERROR_LOGS, "db", 4)], GRAPH)
    assert len(up.opened) == 1 and up.opened[0].id != first.id and up.opened[0].services == ("db",)
    assert [i.id for i in tr.open_incidents] == [first.id, up.opened[0].id]
    # Without the limit, the open incident absorbs the second fault.
    absorbing = IncidentTracker(IncidentConfig(grow_windows=None))
    absorbing.update(0, [anomaly(SeriesKind.LATENCY_P99, "orders", 0)], GRAPH)
    absorbing.update(W, [anomaly(SeriesKind.LATENCY_P90, "front", 1)], GRAPH)
    absorbing.update(3 * W, [anomaly(SeriesKind.ERROR_LOGS, "db", 3)], GRAPH)
    assert not absorbing.update(4 * W, [anomaly(SeriesKind.ERROR_LOGS, "db", 4)], GRAPH).opened


def test_a_service_that_starts_failing_while_an_incident_is_open_gets_its_own() -> None:
    tr = IncidentTracker(IncidentConfig(grow_windows=1))
    tr.update(0, [anomaly(SeriesKind.LATENCY_P99, "orders", 0)], GRAPH)
    first = tr.update(W, [anomaly(SeriesKind.LATENCY_P90, "front", 1)], GRAPH).opened[0]
    # Still inside the growth window, but errors in a service the incident does not hold.
    up = tr.update(2 * W, [anomaly(SeriesKind.ERROR_LOGS, "users", 2)], GRAPH)
    assert not up.updated and not up.opened
    second = tr.update(3 * W, [anomaly(SeriesKind.ERROR_LOGS, "users", 3)], GRAPH).opened
    assert len(second) == 1 and second[0].id != first.id and second[0].services == ("users",)


def test_groups_of_one_window_that_neighbour_each_other_merge_into_one_incident() -> None:
    # Strongest first: orders opens an incident at once (open_score) and users (two hops away,
    # through front) forms a group apart; front's anomaly then joins the incident only, so no
    # anomaly bridged the two. Next window users' errors are news to the incident (errors of a
    # service it does not hold, after its opening window) unless the groups merged.
    first = [
        anomaly(SeriesKind.LATENCY_P99, "orders", 0, score=9),
        anomaly(SeriesKind.ERROR_LOGS, "users", 0, score=8),
        anomaly(SeriesKind.LATENCY_P90, "front", 0, score=7),
    ]
    second = [anomaly(SeriesKind.ERROR_LOGS, "users", 1)]
    merging = IncidentTracker(IncidentConfig(open_score=8.5))
    opened = merging.update(0, first, GRAPH).opened
    assert len(opened) == 1 and opened[0].services == ("front", "orders", "users")
    up = merging.update(W, second, GRAPH)
    assert (
        not up.opened and [i.id for i in up.updated] == [opened[0].id] and len(up.updated[0].anomalies) == 4
    )
    apart = IncidentTracker(IncidentConfig(open_score=8.5, merge_related=False))
    assert [i.services for i in apart.update(0, first, GRAPH).opened] == [("front", "orders")]
    assert [i.services for i in apart.update(W, second, GRAPH).opened] == [("users",)]


def test_a_group_does_not_merge_into_an_incident_opened_in_an_earlier_window() -> None:
    tr = IncidentTracker()
    tr.update(0, [anomaly(SeriesKind.LATENCY_P99, "orders", 0)], GRAPH)
    first = tr.update(W, [anomaly(SeriesKind.LATENCY_P90, "front", 1)], GRAPH).opened[0]
    # Two windows later users (a neighbour of front) starts failing: news of its own, although
    # its group and the incident are related and both take anomalies in the same window.
    tr.update(
        3 * W,
        [anomaly(SeriesKind.LATENCY_P99, "orders", 3), anomaly(SeriesKind.ERROR_LOGS, "users", 3)],
        GRAPH,
    )
    up = tr.update(4 * W, [anomaly(SeriesKind.ERROR_LOGS, "users", 4)], GRAPH)
    assert len(up.opened) == 1 and up.opened[0].services == ("users",)
    assert first.id in {i.id for i in tr.open_incidents}


def test_by_default_one_anomaly_a_hundred_spreads_out_opens_in_its_first_window() -> None:
    strong = IncidentTracker()
    up = strong.update(0, [anomaly(SeriesKind.LATENCY_P90, "orders", 0, score=100.0)], GRAPH)
    assert [i.services for i in up.opened] == [("orders",)]
    weaker = IncidentTracker()
    assert not weaker.update(0, [anomaly(SeriesKind.LATENCY_P90, "orders", 0, score=99.0)], GRAPH).opened
    assert weaker.update(W, [anomaly(SeriesKind.LATENCY_P90, "orders", 1, score=99.0)], GRAPH).opened == ()
    assert len(weaker.update(W * 2, [anomaly(SeriesKind.LATENCY_P99, "orders", 2)], GRAPH).opened) == 1
    evidence = IncidentTracker()  # a supporting kind stays evidence however strong
    assert not evidence.update(0, [anomaly(SeriesKind.RESOURCE, "orders", 0, score=5000.0)], GRAPH).opened


def test_errors_that_stop_for_a_window_and_come_back_are_a_new_incident() -> None:
    def opened_by_errors(tr: IncidentTracker) -> str:
        tr.update(0, [anomaly(SeriesKind.ERROR_LOGS, "front", 0)], GRAPH)
        return tr.update(W, [anomaly(SeriesKind.ERROR_LOGS, "front", 1)], GRAPH).opened[0].id

    going_on = IncidentTracker()
    first = opened_by_errors(going_on)
    up = going_on.update(2 * W, [anomaly(SeriesKind.ERROR_LOGS, "front", 2)], GRAPH)
    assert [i.id for i in up.updated] == [first] and not up.opened  # no quiet window: the same

    again = IncidentTracker()
    first = opened_by_errors(again)
    assert not again.advance(2 * W)  # a whole window without errors
    up = again.update(3 * W, [anomaly(SeriesKind.ERROR_LOGS, "front", 3)], GRAPH)
    assert not up.updated and not up.opened  # not the old incident's; one window is not enough
    up = again.update(4 * W, [anomaly(SeriesKind.ERROR_LOGS, "front", 4)], GRAPH)
    assert [i.services for i in up.opened] == [("front",)] and up.opened[0].id != first
    assert [i.id for i in up.resolved] == [first]

    old_rule = IncidentTracker(IncidentConfig(new_onset_after_quiet=False))
    first = opened_by_errors(old_rule)
    old_rule.advance(2 * W)
    up = old_rule.update(3 * W, [anomaly(SeriesKind.ERROR_LOGS, "front", 3)], GRAPH)
    assert [i.id for i in up.updated] == [first]

    latency = IncidentTracker()  # other series it holds rejoin after a quiet window
    latency.update(0, [anomaly(SeriesKind.LATENCY_P99, "orders", 0)], GRAPH)
    held = latency.update(W, [anomaly(SeriesKind.LATENCY_P90, "front", 1)], GRAPH).opened[0].id
    latency.advance(2 * W)
    up = latency.update(3 * W, [anomaly(SeriesKind.LATENCY_P99, "orders", 3)], GRAPH)
    assert [i.id for i in up.updated] == [held]
