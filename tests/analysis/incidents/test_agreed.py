"""Agreed weak anomalies lead: they open incidents at once, and split a new fault off an open one."""

from __future__ import annotations

import json

from faultlens.analysis.anomaly import Anomaly, Direction, SeriesKey, SeriesKind
from faultlens.analysis.incidents import IncidentConfig, IncidentTracker

W = 60_000_000_000
GRAPH = {"front": {"cart", "ads"}}


def gauge(service: str, name: str, window: int, score: float = 50.0) -> Anomaly:
    key = SeriesKey(SeriesKind.RESOURCE, service, name, resource=f"{service}-1")
    return Anomaly(key, window * W, W, 9.0, 1.0, score, Direction.UP, "x")


def latency(service: str, window: int) -> Anomaly:
    key = SeriesKey(SeriesKind.LATENCY_P90, service, "op")
    return Anomaly(key, window * W, W, 9.0, 1.0, 8.0, Direction.UP, "x")


def test_weak_anomalies_alone_never_open_but_agreed_ones_open_in_their_window() -> None:
    found = [gauge("cart", "container.cpu", 0), gauge("cart", "pod.latency", 0)]
    tr = IncidentTracker()
    assert not tr.update(0, found, GRAPH)
    assert not tr.update(W, [gauge("cart", "container.cpu", 1), gauge("cart", "pod.latency", 1)], GRAPH)
    assert tr.open_incidents == []
    up = IncidentTracker().update(0, [], GRAPH, agreed=found)
    (inc,) = up.opened
    assert inc.services == ("cart",) and inc.opened_ns == 0 and len(inc.anomalies) == 2
    held = IncidentTracker(IncidentConfig(agreement_opens=False))
    assert not held.update(0, [], GRAPH, agreed=found).opened  # then persistence decides, as for others


def test_an_agreed_anomaly_that_joined_as_evidence_is_not_counted_twice() -> None:
    tr = IncidentTracker(IncidentConfig(open_min_anomalies=1, open_min_windows=1))
    cpu = gauge("cart", "container.cpu", 0)
    (inc,) = tr.update(0, [latency("cart", 0), cpu], GRAPH).opened
    assert len(inc.anomalies) == 2
    (again,) = tr.update(W, [], GRAPH, agreed=[cpu, gauge("cart", "pod.latency", 0)]).updated
    assert len(again.anomalies) == 3


def test_a_second_fault_inside_an_open_incident_is_split_off_as_its_own() -> None:
    tr = IncidentTracker()
    (first,) = tr.update(
        0, [], GRAPH, agreed=[gauge("front", "container.cpu", 0), gauge("front", "pod.lat", 0)]
    ).opened
    for w in (1, 2, 3):  # the first fault lasts: its series stay anomalous, the incident stays open
        tr.update(w * W, [], GRAPH, agreed=[gauge("front", "container.cpu", w)])
    # A neighbour's gauges agree four windows later: past the growth window of the open incident.
    up = tr.update(
        4 * W,
        [],
        GRAPH,
        agreed=[
            gauge("front", "container.cpu", 4),
            gauge("cart", "container.cpu", 4),
            gauge("cart", "pod.lat", 4),
        ],
    )
    (second,) = up.opened
    assert second.id != first.id and second.services == ("cart",)
    assert [i.id for i in up.updated] == [first.id]
    assert {i.id for i in tr.open_incidents} == {first.id, second.id}


def test_state_keeps_agreed_groups_and_their_series() -> None:
    tr = IncidentTracker()
    tr.update(0, [], GRAPH, agreed=[gauge("cart", "container.cpu", 0), gauge("cart", "pod.lat", 0)])
    state = json.loads(json.dumps(tr.export_state()))
    back = IncidentTracker()
    back.import_state(state)
    assert back.export_state() == tr.export_state()
    # the restored incident still takes its (agreed) series after the growth window
    up = back.update(2 * W, [], GRAPH, agreed=[gauge("cart", "container.cpu", 2)])
    assert [i.id for i in up.updated] == [tr.open_incidents[0].id] and not up.opened
