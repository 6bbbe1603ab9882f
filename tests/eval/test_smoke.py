"""The evaluation end to end on the first faults of the shared Nezha data (skipped if absent)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from faultlens.datasets.nezha import Fault, NormalPeriod
from faultlens.eval.cases import NS_PER_MIN, WindowPolicy, baseline_ranges
from faultlens.eval.rca import OURS, evaluate
from faultlens.types import TimeRange


def test_baseline_ranges_leave_out_every_fault_horizon() -> None:
    day = dt.date(2023, 1, 1)
    t = 10 * 60 * NS_PER_MIN
    f1 = Fault(day, t + 30 * 1_000_000_000, "p", "s", "x")
    f2 = Fault(day, t + 4 * NS_PER_MIN, "p", "s", "x")
    normal = [NormalPeriod(day, t - 60 * NS_PER_MIN, TimeRange(t - 60 * NS_PER_MIN, t - 59 * NS_PER_MIN))]
    window, trace, metric = baseline_ranges(
        f2, [f1, f2], normal, WindowPolicy(horizon_minutes=6, lead_minutes=0)
    )
    assert window == TimeRange(t + 4 * NS_PER_MIN, t + 7 * NS_PER_MIN)
    # f1's horizon [t, t+6min) covers all of the lookback after t; only before t remains
    assert trace == [normal[0].time_range, TimeRange(t - 6 * NS_PER_MIN, t)]  # sorted, disjoint
    assert metric == [TimeRange(t - 56 * NS_PER_MIN, t)]


def test_baseline_ranges_leave_out_the_minute_before_every_fault() -> None:
    day = dt.date(2023, 1, 1)
    t = 10 * 60 * NS_PER_MIN
    f1 = Fault(day, t - 20 * NS_PER_MIN, "p", "s", "x")
    f2 = Fault(day, t, "p", "s", "x")
    _, trace, metric = baseline_ranges(
        f2, [f1, f2], [], WindowPolicy(trace_lookback_minutes=30, lead_minutes=1)
    )
    # f1 disturbs [t-21min, t-14min); f2's own minute before the window is left out too
    assert trace == [
        TimeRange(t - 30 * NS_PER_MIN, t - 21 * NS_PER_MIN),
        TimeRange(t - 14 * NS_PER_MIN, t - NS_PER_MIN),
    ]
    assert metric[-1].end_ns == t - NS_PER_MIN


@pytest.mark.timeout(120)
def test_evaluation_runs_on_real_faults(datasets_dir: Path, tmp_path: Path) -> None:
    root = datasets_dir / "nezha-tt"
    if not root.is_dir():
        pytest.skip("nezha-tt not present")
    report = evaluate(root, limit=2)
    assert len(report.cases) == 2
    for case in report.cases:
        assert set(case.methods) >= {OURS, "baro", "tracerca", "largest_latency_increase"}
        assert case.methods[OURS].seconds < 2.0
    summary = report.summary[OURS]["overall"]
    assert summary["n"] == 2 and 0.0 <= summary["AC@1"] <= 1.0
    assert report.cases[0].ours_evidence  # evidence is written out
