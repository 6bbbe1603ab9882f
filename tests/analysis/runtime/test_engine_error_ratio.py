"""A service level indicator reported as a gauge (a success or error ratio) is an error signal:
its failures opening an incident on their own, as errors in spans do, when no span says so."""

from __future__ import annotations

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from faultlens.analysis.anomaly.types import SeriesKind
from faultlens.analysis.runtime import AnalysisEngine, EngineConfig
from faultlens.decode import decode_request
from faultlens.types import Signal

S = 1_000_000_000
W = 60 * S
T0 = 1_700_000_040 * S - (1_700_000_040 * S) % W


def _gauges(minute: int, values: dict[str, tuple[str, float]]) -> bytes:
    """One request: per metric name, (unit, value) of service ``shop``, at second 19 of ``minute``."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    attr = rm.resource.attributes.add(key="service.name")
    attr.value.string_value = "shop"
    sm = rm.scope_metrics.add()
    for name, (unit, value) in values.items():
        m = sm.metrics.add(name=name, unit=unit)
        m.gauge.data_points.add(time_unix_nano=T0 + minute * W + 19 * S, as_double=value)
    return req.SerializeToString()


def test_a_drop_in_a_success_rate_gauge_opens_an_incident_of_its_own() -> None:
    engine = AnalysisEngine(EngineConfig(), wall_ns=lambda: T0 + 10_000 * W)
    opened, kinds = [], set()
    for minute, value in enumerate([100.0] * 12 + [95.0, 94.0, 96.0] + [100.0] * 3):
        body = _gauges(minute, {"service.success.rate": ("%", value), "process.cpu.utilization": ("1", 0.2)})
        step = engine.process(decode_request(Signal.METRICS, body, json=False))
        opened += step.opened
        kinds |= {a.key.kind for a in step.results.anomalies}
    assert len(opened) == 1, opened
    inc = opened[0]
    assert inc.services == ("shop",)
    assert {a.key.kind for a in inc.anomalies} == {SeriesKind.GAUGE_ERROR_RATE}
    assert "failed share of shop (from service.success.rate) was 6.0%, expected 0.0% (from zero)" in inc.title
    # The utilisation beside it stays a resource gauge, and flat, it says nothing.
    assert SeriesKind.RESOURCE not in kinds


def test_a_success_rate_that_wobbles_under_the_floor_or_stays_broken_opens_nothing() -> None:
    engine = AnalysisEngine(EngineConfig(), wall_ns=lambda: T0 + 10_000 * W)
    wobble = [100.0, 99.5, 100.0, 99.0, 100.0, 99.5, 100.0, 100.0, 99.0, 98.5, 99.0, 100.0]
    broken = [0.0] * 12  # a collector that reports 0% throughout: no change, no incident
    for minute, (a, b) in enumerate(zip(wobble, broken, strict=True)):
        body = _gauges(minute, {"service.success.rate": ("%", a), "edge.success.ratio": ("1", b)})
        step = engine.process(decode_request(Signal.METRICS, body, json=False))
        assert not step.opened
        assert not step.results.anomalies
