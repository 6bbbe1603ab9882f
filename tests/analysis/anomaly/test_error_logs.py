"""Error logs per service: counted in the engine, judged as counts, persistent bursts open incidents;
new templates and error fingerprints of the same service agree with a burst and open it at once."""

from __future__ import annotations

import time

import numpy as np
import pytest

from faultlens.analysis.anomaly import (
    AgreementConfig,
    AnomalyDetector,
    Observation,
    SeriesKey,
    SeriesKind,
)
from faultlens.analysis.runtime import AnalysisEngine, EngineConfig
from faultlens.analysis.runtime.windows import Segments
from faultlens.decode import decode_request
from faultlens.testing.payloads import build_logs_request
from faultlens.types import Signal

S = 1_000_000_000
W = 60 * S
ERRORS = SeriesKey(SeriesKind.ERROR_LOGS, "checkout", "severity>=ERROR")


def counts(values: list[float], start: int = 0) -> list[Observation]:
    return [Observation(ERRORS, (start + i) * W, W, v, 50) for i, v in enumerate(values)]


def test_a_burst_of_errors_is_judged_after_one_quiet_window() -> None:
    det = AnomalyDetector()
    assert det.observe(counts([0])) == []
    burst = det.observe(counts([7, 12], start=1))
    assert [a.observed for a in burst] == [7, 12]  # the flagged 7 did not become part of "normal"
    assert burst[0].explanation.startswith(
        "error logs (severity ERROR and above) of checkout was 7, expected 0"
    )
    assert det.observe(counts([3], start=3)) == []  # below the floor of one error per unit of score


def test_counts_vary_by_their_square_root() -> None:
    det = AnomalyDetector()
    det.observe(counts([50] * 10))
    assert det.observe(counts([80], start=10)) == []  # (80 - 50) / sqrt(50) = 4.2 < 5
    assert len(det.observe(counts([110], start=11))) == 1


def test_engine_counts_error_logs_of_every_service_that_logs_and_opens_on_a_lasting_burst() -> None:
    t0 = (time.time_ns() // W - 60) * W
    engine = AnalysisEngine(EngineConfig())
    steps = []
    for i, ratio in enumerate([0.0, 0.0, 0.3, 0.3]):
        request = build_logs_request(
            200, services=1, seed=i, error_ratio=ratio, base_time_ns=t0 + (i + 1) * W
        )
        steps.append(engine.process(decode_request(Signal.LOGS, request.SerializeToString(), json=False)))
    steps.append(engine.close_all())
    anomalies = [a for s in steps for a in s.results.anomalies if a.key.kind is SeriesKind.ERROR_LOGS]
    assert sorted({a.window_start_ns for a in anomalies}) == [t0 + 2 * W, t0 + 3 * W]
    assert all(a.expected == 0 and a.volume > 0 for a in anomalies)
    opened = [i for s in steps for i in s.opened]
    assert len(opened) == 1 and opened[0].opened_ns == t0 + 3 * W


def test_a_batch_from_both_sides_of_a_gap_does_not_cover_the_gap() -> None:
    seg = Segments(gap_ns=W)
    seg.add_times(np.array([10 * S, 50 * S, 5 * W + 10 * S, 5 * W + 55 * S], dtype=np.int64))
    assert seg.coverage(0, W) == pytest.approx(40 / 60)
    assert seg.coverage(2 * W, 3 * W) == 0.0  # between the two stretches: a gap, not data
    assert seg.coverage(5 * W, 6 * W) == pytest.approx(45 / 60)


def test_new_templates_and_error_fingerprints_agree_with_the_error_burst_and_open_at_once() -> None:
    t0 = (time.time_ns() // W - 60) * W
    engine = AnalysisEngine(EngineConfig(agreement=AgreementConfig(novelty_with_signal=True)))
    steps = []
    ratios = [0.0] * 8 + [0.3, 0.3]
    for i, ratio in enumerate(ratios):
        request = build_logs_request(
            200, services=1, seed=i, error_ratio=ratio, base_time_ns=t0 + (i + 1) * W
        )
        steps.append(engine.process(decode_request(Signal.LOGS, request.SerializeToString(), json=False)))
    steps.append(engine.close_all())
    found = [a for s in steps for a in s.results.anomalies]
    burst = t0 + 8 * W
    novel = {a.key.kind for a in found if a.window_start_ns == burst}
    assert {SeriesKind.NEW_LOG_TEMPLATE, SeriesKind.NEW_ERROR, SeriesKind.ERROR_LOGS} <= novel
    news = (SeriesKind.NEW_LOG_TEMPLATE, SeriesKind.NEW_ERROR)
    assert not [a for a in found if a.key.kind in news and a.window_start_ns < burst]
    opened = [i for s in steps for i in s.opened]
    # Error logs alone would need a second window (persistence); with news of the same service
    # agreeing, the incident opens in the burst's first window.
    assert len(opened) == 1 and opened[0].opened_ns == burst
    kinds = {a.key.kind for a in opened[0].anomalies}
    assert SeriesKind.NEW_LOG_TEMPLATE in kinds and SeriesKind.ERROR_LOGS in kinds


def test_by_default_novelty_only_joins_and_the_same_burst_opens_a_window_later() -> None:
    t0 = (time.time_ns() // W - 60) * W
    engine = AnalysisEngine(EngineConfig())
    steps = []
    for i, ratio in enumerate([0.0] * 8 + [0.3, 0.3]):
        request = build_logs_request(
            200, services=1, seed=i, error_ratio=ratio, base_time_ns=t0 + (i + 1) * W
        )
        steps.append(engine.process(decode_request(Signal.LOGS, request.SerializeToString(), json=False)))
    steps.append(engine.close_all())
    opened = [i for s in steps for i in s.opened]
    assert len(opened) == 1 and opened[0].opened_ns == t0 + 9 * W
