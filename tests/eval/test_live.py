"""``eval live``: a data set replayed into a real server as live telemetry, scored from its API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faultlens.datasets import Fault
from faultlens.eval.live import (
    INCIDENT_ROUTE,
    RootCauses,
    evaluate_live,
    render_table,
    score_live,
    service_rank,
)
from faultlens.eval.matching import IncidentRecord

from .nezha_fault import build_faulty_day

S = 1_000_000_000
M = 60 * S
T0 = 1_700_000_040 * S  # 2023-11-14T22:14:00Z


def _fault(minute: int, service: str = "cart", kind: str = "exception", second: int = 20) -> Fault:
    return Fault(dt.date(2023, 11, 14), T0 + minute * M + second * S, f"{service}-1-a", service, kind)


def _incident(name: str, opened_minute: int, services: tuple[str, ...] = ("cart",)) -> IncidentRecord:
    return IncidentRecord(name, T0 + opened_minute * M, T0 + opened_minute * M, services, name)


def _causes(*services: tuple[str, float]) -> RootCauses:
    return RootCauses("test", tuple({"service": s, "score": v, "reason": "x"} for s, v in services), 0.5)


def test_rank_counts_each_service_once_and_ties_against_the_truth() -> None:
    causes = [("a", 0.9), ("b", 0.5), ("a", 0.4), ("c", 0.5), ("d", 0.1)]
    assert service_rank("a", causes) == 1
    assert service_rank("b", causes) == 3  # c ties with it and counts before it
    assert service_rank("c", causes) == 3
    assert service_rank("d", causes) == 4
    assert service_rank("zzz", causes) is None
    assert service_rank("a", []) is None


def test_faults_take_the_first_incident_opened_from_a_minute_before_to_five_after() -> None:
    faults = [
        _fault(10),  # 10:20 -> window [09:20, 15:20): the incident of minute 10 answers it
        _fault(30, "db", "cpu_contention"),  # the incident of minute 28 opened too early
        _fault(50, "pay", "network_delay"),  # nothing opens: a miss
    ]
    incidents = [
        _incident("hit", 10, ("gateway", "cart")),
        _incident("later", 12),  # second in the same window: not the detection
        _incident("early", 28),  # before the second fault's window: false
        _incident("after", 36),  # 36:00 is past 35:20: false
        _incident("quiet", 110),  # false, on no fault at all, the next day (UTC)
    ]
    causes = {"hit": _causes(("gateway", 0.8), ("cart", 0.7)), "later": _causes(("cart", 0.9))}
    asked = {"hit": _causes(("cart", 0.9), ("gateway", 0.1))}
    r = score_live(
        faults,
        incidents,
        causes,
        [T0 + m * M for m in range(120)],
        span_windows=[T0 + 110 * M],
        on_request=asked,
    )
    hit, early, missed = r["per_fault"]
    assert hit["detected"] and hit["incident_id"] == "hit" and hit["rank"] == 2
    assert hit["incidents_opened_in_window"] == 2
    assert hit["delay_s"] == 60 + 10 - 20  # to the end of the opening window + lateness
    assert hit["inject_time"] == "2023-11-14T22:24:20+00:00" and hit["inject_time_ns"] == T0 + 10 * M + 20 * S
    assert hit["root_causes_top3"][0] == {"service": "gateway", "score": 0.8, "reason": "x"}
    assert hit["rank_on_request"] == 1 and early["rank_on_request"] is None
    assert r["on_request"]["ac1"] == 0.333 and r["on_request"]["ac3"] == 0.333
    assert not early["detected"] and early["rank"] is None and early["incident_id"] is None
    assert not missed["detected"]
    # AC@k over every fault: one of three within the top 3, none at top 1.
    assert (r["faults"], r["detected"], r["ac1"], r["ac3"], r["ac5"]) == (3, 1, 0.0, 0.333, 0.333)
    assert r["per_type"]["exception"] == {"count": 1, "detected": 1, "ac1": 0.0, "ac3": 1.0, "ac5": 1.0}
    assert r["per_type"]["network_delay"]["detected"] == 0
    assert r["false_incidents"] == 3 and r["data_hours"] == 2.0 and r["false_per_hour"] == 1.5
    assert r["false_incidents_in_span_windows"] == 1 and r["false_per_hour_with_spans"] == 60.0
    assert r["per_day"]["2023-11-14"]["false_incidents"] == 2
    assert r["per_day"]["2023-11-15"] == {
        "count": 0, "detected": 0, "ac1": 0.0, "ac3": 0.0, "ac5": 0.0, "false_incidents": 1,
    }  # fmt: skip
    assert r["rca_latency_s"]["n"] == 2 and r["rca_latency_s"]["median"] == 0.5
    assert not r["targets_met"]["every_fault_within_2_min"]


def test_an_incident_opened_in_the_injection_minute_counts_and_one_opened_before_it_does_not() -> None:
    # Injected at 22:24:20; the analysis window holding it starts 20 s before (inside the minute
    # before), the one before that 80 s before (outside).
    f = _fault(10)
    r = score_live([f], [_incident("in", 10)], {}, [T0])
    assert r["per_fault"][0]["incident_id"] == "in" and r["per_fault"][0]["rank"] is None
    r = score_live([f], [_incident("before", 9)], {}, [T0])
    assert not r["per_fault"][0]["detected"] and r["false_incidents"] == 1


@pytest.mark.timeout(120)
def test_a_clear_fault_is_detected_and_its_root_cause_ranked_through_the_server(tmp_path: Path) -> None:
    """Thirteen minutes of steady traffic with one fault, over OTLP/gRPC into a fresh server:
    the incident that opens names the faulty service first, read back over the HTTP API."""
    day = build_faulty_day(tmp_path / "nezha")
    r = evaluate_live(day.root, lodo=True, on_request=True)
    assert r["days"] == ["2024-03-01"] and r["faults"] == 1
    (p,) = r["per_fault"]
    assert p["detected"] and p["service"] == day.service and p["rank"] == 1
    assert p["inject_time_ns"] == day.inject_time_ns
    assert dt.datetime.fromisoformat(p["inject_time"]).timestamp() * S == day.inject_time_ns
    assert p["incident_id"].startswith("inc-") and day.service in p["incident_services"]
    assert 0 < p["delay_s"] <= 180 and p["incident_opened_ns"] >= day.inject_time_ns - M
    # The root causes the server stored with the incident when it ranked them.
    assert r["root_cause_source"] == p["root_cause_source"] == INCIDENT_ROUTE
    assert p["rca_status"] == "ranked" and p["root_causes_top3"][0]["service"] == day.service
    assert r["server"]["rca_from_metrics"]["rankings_by_outcome"]["ranked"] >= 1
    # Asked again by hand once the replay is over, the incident route names it first too.
    assert p["rank_on_request"] == 1 and r["on_request"]["ac1"] == 1.0
    assert (r["detected"], r["ac1"], r["ac3"], r["ac5"]) == (1, 1.0, 1.0, 1.0)
    assert r["false_incidents"] == 0 and r["false_per_hour"] == 0.0
    assert r["data_hours"] == round(day.minutes / 60, 3)
    assert r["per_type"] == {"exception": {"count": 1, "detected": 1, "ac1": 1.0, "ac3": 1.0, "ac5": 1.0}}
    assert r["lodo"]["held_out"]["2024-03-01"]["ac1"] == 1.0
    assert r["rca_latency_s"]["n"] == 1 and r["rca_latency_s"]["median"] is not None
    # the ranking's own time, as the server stored it: part of the wait above
    assert (
        r["rca_ranking_s"]["n"] == 1
        and 0 < r["rca_ranking_s"]["median"] <= r["rca_latency_s"]["median"] + 0.5
    )
    assert r["server"]["analysis_dropped_items"] == 0
    assert all(s["failed"] == 0 and s["rejected"] == 0 for s in r["replay"]["signals"].values())
    table = render_table(r)
    assert f"#1 {p['inject_time']} exception" in table and "false incidents: 0 of 1" in table
    assert "ranked on request" in table


def test_the_command_refuses_an_unknown_layout_a_bad_day_and_a_day_not_in_the_data(tmp_path: Path) -> None:
    from faultlens.cli.main import _register_optional_commands, app

    _register_optional_commands()
    day = build_faulty_day(tmp_path / "nezha", minutes=1, fault_minute=0)
    runner = CliRunner()
    cases = {
        "unknown dataset layout 'loghub'": ["--dataset", "loghub"],
        "not a date: 'yesterday'": ["--days", "2024-03-01,yesterday"],
        "no such day": ["--days", "2024-03-02"],
    }
    for message, args in cases.items():
        result = runner.invoke(app, ["eval", "live", str(day.root), *args])
        assert result.exit_code == 2 and message in result.output, result.output
    result = runner.invoke(app, ["eval", "live", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "not a directory" in result.output


@pytest.mark.timeout(120)
def test_the_first_fault_of_the_shared_data_is_scored_from_the_api(datasets_dir: Path) -> None:
    root = datasets_dir / "nezha-tt"
    if not root.is_dir():
        pytest.skip("nezha-tt not present")
    r = evaluate_live(root, limit=1)
    assert r["days"] == ["2023-01-29"] and r["faults"] == 1 and r["detected"] == 1
    (p,) = r["per_fault"]
    assert p["delay_s"] <= 300 and p["root_cause_source"] is not None
    assert r["root_cause_source"] == INCIDENT_ROUTE and p["rca_status"] in ("ranked", "nothing_changed")
    assert r["server"]["analysis_dropped_items"] == 0
