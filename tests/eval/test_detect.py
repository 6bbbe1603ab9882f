"""Scoring of ``eval detect``: which incidents count as detections, delays, false incidents."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from faultlens.analysis.anomaly import Anomaly, Direction, SeriesKey, SeriesKind
from faultlens.analysis.incidents import Incident, IncidentState, Severity
from faultlens.datasets import Fault
from faultlens.eval.detect import evaluate, score
from faultlens.types import TimeRange

S = 1_000_000_000
M = 60 * S
T0 = 1_700_000_040 * S - (1_700_000_040 * S) % M  # a minute boundary


def _incident(
    name: str,
    opened_minute: int,
    members: tuple[int, ...] = (),
    services: tuple[str, ...] = ("svc",),
    start_minute: int | None = None,
) -> Incident:
    anomalies = tuple(
        Anomaly(
            SeriesKey(SeriesKind.LATENCY_P90, "svc", name), T0 + m * M, M, 2.0, 1.0, 9.0, Direction.UP, "x"
        )
        for m in members
    )
    return Incident(
        id=name,
        state=IncidentState.RESOLVED,
        severity=Severity.LOW,
        start_ns=T0 + (opened_minute if start_minute is None else start_minute) * M,
        end_ns=T0 + (opened_minute + 1) * M,
        opened_ns=T0 + opened_minute * M,
        resolved_ns=T0 + (opened_minute + 2) * M,
        services=services,
        anomalies=anomalies,
        title=name,
    )


def _fault(minute: int, second: int = 20) -> Fault:
    return Fault(dt.date(2023, 11, 14), T0 + minute * M + second * S, "svc-1-a", "svc", "exception")


def test_detections_delays_absorbed_faults_and_false_incidents() -> None:
    faults = [_fault(10), _fault(30), _fault(50)]
    incidents = [
        _incident("hit", 11),  # opened in the second minute of the first fault
        _incident("early", 28, members=(28, 30, 31)),  # opened before the second fault, took its windows
        _incident("false", 2),  # long before any fault
        _incident("late", 54),  # past the fault window (injection minute + 3): a miss, not false
    ]
    data_windows = [T0 + m * M for m in range(70)]
    span_windows = [T0 + m * M for m in (1, 2, 3, 10, 11, 12, 29, 30, 31)]
    r = score(faults, incidents, data_windows, window_s=60, span_windows=span_windows)
    hit, absorbed, missed = r["per_fault"]
    assert hit["detected"] and hit["incident"] == "hit"
    assert hit["delay_s"] == 60 + 60 + 10 - 20  # to the end of the opening window + lateness
    assert not absorbed["detected"] and absorbed["joined_earlier_incident"] == "early"
    assert not missed["detected"] and missed["joined_earlier_incident"] is None
    assert r["detected_within_3_min"] == 1 and r["missed_but_joined_an_earlier_open_incident"] == 1
    # Fault zones: injection minute .. +4 min, + 3 min cooldown -> 7 windows each.
    assert r["fault_free_hours"] == round((70 - 3 * 7) / 60, 3)
    assert r["false_incidents"] == 2  # "false" (minute 2) and "early" (minute 28)
    assert r["false_incidents_with_spans"] == 1  # only minute 2 held spans
    assert r["fault_free_hours_with_spans"] == round(4 / 60, 3)  # minutes 1, 2, 3 and 29
    assert r["false_incidents_per_hour_with_spans"] == 15.0  # 1 in 4 minutes
    assert r["targets_met"]["at_most_1_false_incident_per_hour"] is False  # 2 in 49 minutes
    assert r["targets_met"]["at_most_1_false_incident_per_hour_with_spans"] is False


def test_the_opening_incident_is_the_earliest_and_the_faulty_service_is_looked_for_in_each() -> None:
    faults = [_fault(10), _fault(30)]
    incidents = [
        # Two open in the same window of the first fault: the one whose symptoms began first
        # is its opening incident; the faulty service is only in the other.
        _incident("later-start", 11, services=("svc", "db"), start_minute=11),
        _incident("earlier-start", 11, services=("gateway",), start_minute=9),
        _incident("other", 31, services=("gateway",)),
    ]
    r = score(faults, incidents, [T0 + m * M for m in range(40)], window_s=60)
    first, second = r["per_fault"]
    assert first["incident"] == "earlier-start" and first["incidents_opened_in_window"] == 2
    assert not first["root_service_in_incident"] and first["root_service_in_any_incident_of_window"]
    assert not second["root_service_in_incident"] and not second["root_service_in_any_incident_of_window"]
    assert r["root_service_in_opening_incident"] == 0 and r["root_service_in_any_incident_of_window"] == 1
    assert r["incidents_opened_in_fault_windows"] == 3 and r["incidents_per_fault"] == 1.5
    assert r["mean_services_per_incident"] == round(4 / 3, 2)
    # No false incident: both false-rate targets hold (spans: none given, so no rate at all).
    assert r["targets_met"]["at_most_1_false_incident_per_hour"] is True
    assert r["targets_met"]["at_most_1_false_incident_per_hour_with_spans"] is False


@pytest.mark.timeout(120)
def test_first_fault_of_a_day_is_detected_through_the_server(datasets_dir: Path) -> None:
    """Five minutes of the shared data, over OTLP/gRPC into a fresh server: the contacts
    fault at 08:43 shows as error logs the minute after the server first saw data."""
    root = datasets_dir / "nezha-tt"
    if not root.is_dir():
        pytest.skip("nezha-tt not present")
    start = dt.datetime(2023, 1, 29, 8, 41, tzinfo=dt.UTC)
    window = TimeRange(int(start.timestamp()) * S, int(start.timestamp() + 300) * S)
    r = evaluate(root, time_range=window)
    assert r["faults"] == 1 and r["detected_within_3_min"] == 1
    assert r["per_fault"][0]["root_service_in_incident"]
    assert r["analysis_dropped_items"] == 0
    assert r["analysis_late_items"]["logs_and_points_after_their_window_was_judged"] == 0
    signals = r["replay"]["signals"]
    assert all(s["failed"] == 0 and s["rejected"] == 0 for s in signals.values())
