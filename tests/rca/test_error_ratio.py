"""A service's own success or error ratio gauge is evidence against it: ``failed_requests``."""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa

from faultlens.decode.schema import METRIC_SCHEMA
from faultlens.rca import Observations, RcaConfig, Reason, rank_root_causes
from faultlens.rca.resources import error_ratio_findings
from faultlens.store.testing import metric_row

from .synth import MIN, Knobs, baseline, window


def _gauge(
    service: str, t0: int, values: list[float], name: str = "service.success.rate", unit: str = "%"
) -> pa.Table:
    rows = [
        metric_row(name=name, time=t0 + i * MIN, value=v, metric_unit=unit, service_name=service)
        for i, v in enumerate(values)
    ]
    return pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)


def _with(obs: Observations, gauge: pa.Table) -> Observations:
    return replace(obs, metrics=pa.concat_tables([obs.metrics, gauge]))


NORMAL = [100.0, 99.8, 100.0, 99.9, 100.0, 99.7, 100.0, 100.0, 99.9, 100.0]


def test_a_fall_in_success_is_the_failed_share_risen_above_the_baseline() -> None:
    (f,) = error_ratio_findings(_gauge("shop", 20 * MIN, [100.0, 60.0, 58.0]), _gauge("shop", 0, NORMAL))
    assert (f.service, f.reason, f.pod) == ("shop", Reason.FAILED_REQUESTS, "")
    assert abs(f.effect - (0.42 - 0.003)) < 1e-9  # the highest failed share less the baseline's highest
    assert f.z > 50
    assert (f.first_ns, f.last_ns) == (21 * MIN, 22 * MIN)
    assert f.evidence == (
        "shop: service.success.rate reports 42.0% of requests failed vs baseline median 0.0%, "
        f"max 0.3% (robust z {f.z:.1f})"
    )


def test_an_error_ratio_in_unit_one_counts_failures_directly() -> None:
    base = _gauge("api", 0, [0.01, 0.012, 0.011, 0.01, 0.009], name="http.server.error.ratio", unit="1")
    now = _gauge("api", 20 * MIN, [0.2], name="http.server.error.ratio", unit="1")
    (f,) = error_ratio_findings(now, base)
    assert abs(f.effect - 0.188) < 1e-9


def test_no_rise_no_finding() -> None:
    base = _gauge("shop", 0, NORMAL)
    assert error_ratio_findings(_gauge("shop", 20 * MIN, [100.0, 99.8, 100.0]), base) == []
    # A broken probe that always reads 0% success: failing "everything" is its normal.
    assert error_ratio_findings(_gauge("shop", 20 * MIN, [0.0, 0.0]), _gauge("shop", 0, [0.0] * 10)) == []
    # Without a baseline of its own the gauge is not judged; other gauges are not ratios.
    assert error_ratio_findings(_gauge("shop", 20 * MIN, [50.0]), _gauge("other", 0, NORMAL)) == []
    latency = _gauge("shop", 20 * MIN, [900.0], name="service.latency.p90", unit="ms")
    assert error_ratio_findings(latency, _gauge("shop", 0, [10.0] * 10, "service.latency.p90", "ms")) == []


def test_a_gauge_named_in_another_letter_case_is_the_service_its_spans_name() -> None:
    # front's spans say "front"; its success gauge comes from a scrape job that says "Front".
    base = _with(baseline(), _gauge("Front", 0, NORMAL))
    win = _with(window(Knobs()), _gauge("Front", 20 * MIN, [100.0, 70.0, 72.0]))
    top = rank_root_causes(win, base, RcaConfig()).candidates[0]
    assert (top.service, top.reason) == ("front", Reason.FAILED_REQUESTS)
    assert top.findings[0].service == "front"
    assert top.findings[0].evidence.startswith("Front: service.success.rate reports 30.0%")
