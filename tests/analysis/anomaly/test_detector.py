"""Baselines flag what is far from normal, ignore quiet windows, and round-trip their state."""

from __future__ import annotations

import json

import numpy as np

from faultlens.analysis.anomaly import (
    AnomalyDetector,
    DetectorConfig,
    Direction,
    Observation,
    SeriesKey,
    SeriesKind,
    red_observations,
)
from faultlens.analysis.red import RedWindow
from faultlens.analysis.sketch import QuantileSketch

W = 60_000_000_000
MS = 1e6
P99 = SeriesKey(SeriesKind.LATENCY_P99, "ts-order-service", "GET /order")


def stream(values: list[float], key: SeriesKey = P99, volume: float = 100) -> list[Observation]:
    return [Observation(key, i * W, W, v, volume) for i, v in enumerate(values)]


def test_spike_after_noisy_history_is_flagged_with_words() -> None:
    rng = np.random.default_rng(3)
    normal = list(120 * MS + rng.normal(0, 8 * MS, 40))
    det = AnomalyDetector()
    assert det.observe(stream(normal)) == []
    found = det.observe([Observation(P99, 40 * W, W, 820 * MS, 100)])
    assert len(found) == 1
    a = found[0]
    assert a.direction is Direction.UP
    assert a.expected == np.median(normal[-30:])
    assert a.score >= 5
    assert a.explanation.startswith("p99 latency of ts-order-service GET /order was 820 ms, expected 1")
    assert "%" in a.explanation


def test_warmup_and_minimum_volume_guard() -> None:
    det = AnomalyDetector()
    assert det.observe(stream([100 * MS, 100 * MS, 100 * MS, 900 * MS])) == []  # still warming up
    quiet = Observation(P99, 10 * W, W, 5000 * MS, volume=1)  # one slow request in a quiet window
    det.observe(stream([100 * MS] * 6))
    assert det.observe([quiet]) == []


def test_only_allowed_directions_and_relative_change() -> None:
    det = AnomalyDetector()
    det.observe(stream([100 * MS] * 10))
    assert det.observe([Observation(P99, 20 * W, W, 1 * MS, 100)]) == []  # latency drop is good news
    thr = SeriesKey(SeriesKind.THROUGHPUT, "a", "*")
    det.observe(stream([50.0] * 10, thr))
    drop = det.observe([Observation(thr, 20 * W, W, 5.0, 1)])
    assert [a.direction for a in drop] == [Direction.DOWN]


def test_anomalies_do_not_poison_the_baseline_until_a_shift_is_accepted() -> None:
    cfg = DetectorConfig(accept_shift_after=5)
    det = AnomalyDetector(cfg)
    det.observe(stream([100 * MS] * 10))
    flagged = det.observe([Observation(P99, (10 + i) * W, W, 1000 * MS, 100) for i in range(12)])
    assert 5 <= len(flagged) < 12  # alerts, then accepts the new level after the streak
    base = det.baseline(P99)
    assert base is not None and base.expected > 100 * MS


def test_seasonal_baseline_per_hour_of_day() -> None:
    det = AnomalyDetector(DetectorConfig(seasonal=True, seasonal_warmup=3))
    hour = 3600 * 10**9
    key = SeriesKey(SeriesKind.RESOURCE, "db", "cpu", resource="db-0")

    def day(d: int) -> list[Observation]:
        return [Observation(key, (d * 24 + h) * hour, W, 80.0 if h == 2 else 10.0) for h in range(24)]

    for d in range(4):
        det.observe(day(d))  # the first nights are flagged: nothing is known about 02:00 yet
    assert det.observe(day(4)) == []  # now the nightly batch at 02:00 is normal for 02:00
    late = det.observe([Observation(key, (6 * 24 + 14) * hour, W, 80.0)])
    assert len(late) == 1


def test_state_round_trip_through_json_gives_same_answers() -> None:
    det = AnomalyDetector(DetectorConfig(seasonal=True))
    det.observe(stream([100 * MS, 110 * MS, 90 * MS, 105 * MS, 95 * MS, 100 * MS]))
    clone = AnomalyDetector(DetectorConfig(seasonal=True))
    clone.import_state(json.loads(json.dumps(det.export_state())))
    probe = [Observation(P99, 50 * W, W, 400 * MS, 100)]
    assert det.observe(probe) == clone.observe(probe)
    assert det.export_state() == clone.export_state()


def test_repeated_window_is_ignored() -> None:
    det = AnomalyDetector()
    det.observe(stream([100 * MS] * 10))
    spike = Observation(P99, 20 * W, W, 900 * MS, 100)
    assert len(det.observe([spike])) == 1
    assert det.observe([spike]) == []


def test_red_windows_become_operation_and_service_series() -> None:
    sk = QuantileSketch()
    sk.add_many(np.full(100, 50 * MS))
    w = RedWindow("a", "GET /", 0, 0, W, 100, 5, 100 * 50 * MS, sk, 0.0, QuantileSketch())
    obs = red_observations([w], coverage=0.5)
    kinds = {(o.key.kind, o.key.name) for o in obs}
    assert (SeriesKind.LATENCY_P90, "GET /") in kinds and (SeriesKind.ERROR_RATE, "*") in kinds
    thr = next(o for o in obs if o.key.kind == SeriesKind.THROUGHPUT)
    assert thr.value == 100 / 30


def test_series_not_observed_for_forget_after_are_forgotten() -> None:
    hour = 3600 * 10**9
    det = AnomalyDetector(DetectorConfig(forget_after_s=24 * 3600))
    gone = SeriesKey(SeriesKind.LATENCY_P99, "retired", "GET /old")
    det.observe(stream([100 * MS] * 10, gone))
    det.observe(stream([100 * MS] * 10))
    assert det.baseline(gone) is not None
    # P99 keeps being observed for two days of data time; `gone` never again
    det.observe([Observation(P99, 10 * W + h * hour, W, 100 * MS, 100) for h in range(1, 49)])
    assert det.baseline(gone) is None
    assert det.baseline(P99) is not None
    assert len(det) == 1
    # a returning series starts over: warming up, so nothing is judged yet
    assert det.observe([Observation(gone, 60 * hour, W, 900 * MS, 100)]) == []


def test_new_series_past_max_series_forget_the_least_recently_observed() -> None:
    det = AnomalyDetector(DetectorConfig(max_series=20))
    keys = [SeriesKey(SeriesKind.LATENCY_P99, "svc", f"op-{i}") for i in range(50)]
    for i, key in enumerate(keys):
        det.observe([Observation(key, i * W, W, 100 * MS, 100)])
        assert len(det) <= 20
    kept = {SeriesKey.from_list(item["key"]) for item in det.export_state()["series"]}
    assert keys[-1] in kept and keys[0] not in kept
    # the newest series survive, the oldest are gone
    assert kept == set(keys[len(keys) - len(kept) :])


def test_forgetting_survives_the_state_round_trip() -> None:
    det = AnomalyDetector(DetectorConfig(forget_after_s=3600))
    gone = SeriesKey(SeriesKind.LATENCY_P99, "retired", "GET /old")
    det.observe(stream([100 * MS] * 5, gone))
    clone = AnomalyDetector(DetectorConfig(forget_after_s=3600))
    clone.import_state(json.loads(json.dumps(det.export_state())))
    hour = 3600 * 10**9
    clone.observe([Observation(P99, 5 * hour, W, 100 * MS, 100)])
    assert clone.baseline(gone) is None and len(clone) == 1
