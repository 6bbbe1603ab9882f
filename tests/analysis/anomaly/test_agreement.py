"""Weak anomalies (resource gauges, novelty) agree when several signals of one service move together."""

from __future__ import annotations

import pytest

from faultlens.analysis.anomaly import (
    Agreement,
    AgreementConfig,
    Anomaly,
    Direction,
    SeriesKey,
    SeriesKind,
    template_anomalies,
)
from faultlens.analysis.anomaly.agreement import reporting_services, signal
from faultlens.analysis.templates.counter import ChangeKind, TemplateChange
from faultlens.types import TimeRange

W = 60_000_000_000


def gauge(service: str, name: str, window: int, score: float = 50.0, pod: str = "") -> Anomaly:
    key = SeriesKey(SeriesKind.RESOURCE, service, name, resource=pod or f"{service}-pod")
    return Anomaly(key, window * W, W, 9.0, 1.0, score, Direction.UP, "x")


def other(kind: SeriesKind, service: str, window: int, name: str = "op") -> Anomaly:
    return Anomaly(SeriesKey(kind, service, name), window * W, W, 9.0, 1.0, 8.0, Direction.UP, "x")


CONFIG = AgreementConfig(min_series=3, min_signals=2, min_score=20.0, windows=2, novelty_with_signal=True)


def test_signal_is_the_metric_namespace_without_digits() -> None:
    assert signal("pod.server.latency.p99") == signal("pod.server.latency.p90") == "pod.server"
    assert signal("container.cpu.usage.rate") == signal("container.cpu.usage") == "container.cpu"
    assert signal("cpu") == "cpu"


def test_gauges_of_several_signals_of_one_service_agree_and_each_is_returned_once() -> None:
    ag = Agreement(CONFIG)
    found = [
        gauge("cart", "container.cpu.usage", 0),
        gauge("cart", "pod.server.latency.p90", 0),
        gauge("cart", "pod.server.latency.p99", 0),
    ]
    assert sorted(a.key.name for a in ag.observe(0, found)) == sorted(a.key.name for a in found)
    assert ag.observe(W, []) == []  # already given


def test_one_signal_or_weak_scores_or_another_service_do_not_agree() -> None:
    ag = Agreement(CONFIG)
    one_signal = [gauge("cart", f"pod.server.latency.p{q}", 0) for q in (90, 95, 99)]
    assert ag.observe(0, one_signal) == []  # p90/p95/p99 of one latency are one signal
    weak = [
        gauge("ads", "container.cpu.usage", 1, score=6),
        gauge("ads", "pod.server.latency.p90", 1, score=6),
        gauge("ads", "container.network.bytes", 1, score=6),
    ]
    assert ag.observe(W, weak) == []  # a few spreads is a busy minute, not a fault
    split = [gauge("a", "container.cpu.usage", 3), gauge("b", "pod.server.latency.p90", 3)]
    split.append(gauge("c", "container.network.bytes", 3))
    assert ag.observe(3 * W, split) == []


def test_adjacent_windows_agree_and_earlier_members_come_back_but_distant_ones_do_not() -> None:
    ag = Agreement(CONFIG)
    assert ag.observe(0, [gauge("cart", "container.cpu.usage", 0)]) == []
    assert ag.observe(W, [gauge("cart", "pod.server.latency.p90", 1)]) == []
    # window 0 is out of reach (two windows: this one and the one before): two series, not three
    assert ag.observe(2 * W, [gauge("cart", "container.memory.usage", 2)]) == []
    ag = Agreement(CONFIG)
    ag.observe(0, [gauge("cart", "container.cpu.usage", 0), gauge("cart", "pod.server.latency.p90", 0)])
    out = ag.observe(W, [gauge("cart", "container.memory.usage", 1)])
    assert sorted(a.window_start_ns // W for a in out) == [0, 0, 1]


def test_a_gauge_out_of_line_in_most_services_speaks_for_none() -> None:
    ag = Agreement(CONFIG)
    services = ["a", "b", "c", "d", "e"]
    reporting = reporting_services((SeriesKind.RESOURCE, s, "node.cpu.usage") for s in services)
    reporting.update(
        reporting_services((SeriesKind.RESOURCE, "a", n) for n in ("container.cpu.x", "pod.l.p9"))
    )
    found = [gauge(s, "node.cpu.usage", 0) for s in services]
    found += [gauge("a", "container.cpu.x", 0), gauge("a", "pod.l.p9", 0)]
    assert ag.observe(0, found, reporting) == []  # node.cpu is shared: two signals left, one series short
    found.append(gauge("a", "pod.l.p99", 0))
    assert {a.key.name for a in Agreement(CONFIG).observe(0, found, reporting)} == {
        "container.cpu.x",
        "pod.l.p9",
        "pod.l.p99",
    }


def test_one_gauge_across_pods_counts_as_several_series() -> None:
    cfg = AgreementConfig(min_series=3, min_signals=1, min_score=20.0)
    found = [gauge("cart", "container.cpu.usage", 0, pod=f"cart-{i}") for i in range(3)]
    assert len(Agreement(cfg).observe(0, found)) == 3
    assert Agreement(cfg).observe(0, found[:2]) == []


def test_novelty_agrees_with_a_second_signal_of_its_service_only() -> None:
    change = TemplateChange(ChangeKind.NEW, "cart", 7, "failed to charge <*>", TimeRange(0, W), 5, 0.0, 0.0)
    (new,) = template_anomalies([change])
    assert new.key == SeriesKey(SeriesKind.NEW_LOG_TEMPLATE, "cart", "failed to charge <*>")
    assert new.window_start_ns == 0 and new.score == 5.0 and "new log template" in new.explanation
    assert Agreement(CONFIG).observe(0, [new]) == []
    assert Agreement(CONFIG).observe(0, [new, other(SeriesKind.ERROR_LOGS, "other", 0)]) == []
    assert Agreement(CONFIG).observe(0, [new, other(SeriesKind.ERROR_LOGS, "cart", 0)]) == [new]
    off = AgreementConfig(novelty_with_signal=False)
    assert Agreement(off).observe(0, [new, other(SeriesKind.ERROR_LOGS, "cart", 0)]) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"min_series": 1}, {"windows": 0}, {"shared_fraction": 0.0}, {"shared_min_services": 1}],
)
def test_config_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AgreementConfig(**kwargs)  # type: ignore[arg-type]


def test_a_hosts_gauge_a_gauge_from_zero_and_a_missing_template_do_not_agree() -> None:
    cfg = AgreementConfig(min_series=3, min_signals=3, min_score=20.0, novelty_with_signal=True)
    own = [gauge("cart", "container.cpu.usage", 0), gauge("cart", "pod.server.latency.p90", 0)]
    host = gauge("cart", "node.network.bytes", 0)
    same_node = gauge("orders", "node.network.bytes", 0)  # the same value: one node, two pods
    assert Agreement(cfg).observe(0, [*own, host, same_node]) == []
    assert len(Agreement(cfg).observe(0, [*own, host])) == 3
    idle = Anomaly(host.key, 0, W, 9.0, 0.0, 1e6, Direction.UP, "x")  # from zero: presence, not level
    assert Agreement(cfg).observe(0, [*own, idle]) == []
    gone = TemplateChange(ChangeKind.MISSING, "cart", 3, "ok <*>", TimeRange(0, W), 0, 9.0, 1.0)
    (missing,) = template_anomalies([gone])
    assert missing.key.kind is SeriesKind.MISSING_LOG_TEMPLATE
    assert Agreement(cfg).observe(0, [missing, other(SeriesKind.ERROR_LOGS, "cart", 0)]) == []


def test_defaults_are_strict() -> None:
    found = [gauge("cart", n, 0, score=150.0) for n in ("container.cpu.a", "pod.server.l", "container.net.b")]
    assert Agreement().observe(0, found) == []  # three signals are not enough by default
    found.append(gauge("cart", "container.fs.c", 0, score=150.0))
    assert len(Agreement().observe(0, found)) == 4


UNITS = {
    "container.cpu.usage.rate": "%",
    "container.memory.usage.rate": "%",
    "pod.server.latency.p90": "s",
    "pod.client.latency.p90": "s",
    "container.network.receive.bytes": "By",
}


def level(
    service: str, name: str, window: int, observed: float, expected: float, score: float = 8.0
) -> Anomaly:
    key = SeriesKey(SeriesKind.RESOURCE, service, name, resource=f"{service}-pod")
    d = Direction.UP if observed > expected else Direction.DOWN
    return Anomaly(key, window * W, W, observed, expected, score, d, "x")


def test_a_pod_taken_by_cpu_with_its_own_latency_up_agrees_by_default() -> None:
    cpu = level("cart", "container.cpu.usage.rate", 0, 85.0, 1.0)
    slow = level("cart", "pod.server.latency.p90", 1, 0.45, 0.005)  # the next window: still adjacent
    ag = Agreement()
    assert ag.observe(0, [cpu], units=UNITS) == []  # a resource taken, nobody slowed yet
    assert {a.key.name for a in ag.observe(W, [slow], units=UNITS)} == {cpu.key.name, slow.key.name}


def test_saturation_needs_a_share_of_capacity_a_serving_latency_and_units() -> None:
    slow = level("cart", "pod.server.latency.p90", 0, 0.45, 0.005)
    small = level("cart", "container.cpu.usage.rate", 0, 7.0, 0.01, score=1e4)  # a batch job's minute
    assert Agreement().observe(0, [small, slow], units=UNITS) == []
    cpu = level("cart", "container.cpu.usage.rate", 0, 85.0, 1.0)
    outgoing = level("cart", "pod.client.latency.p90", 0, 0.45, 0.005)  # a slow callee, not cart
    assert Agreement().observe(0, [cpu, outgoing], units=UNITS) == []
    elsewhere = level("orders", "pod.server.latency.p90", 0, 0.45, 0.005)
    assert Agreement().observe(0, [cpu, elsewhere], units=UNITS) == []
    assert Agreement().observe(0, [cpu, slow]) == []  # no units known: no way to tell
    fraction = {**UNITS, "container.cpu.usage.rate": "1"}  # the same rise read as a share of 1 core
    assert (
        len(
            Agreement().observe(
                0, [level("cart", "container.cpu.usage.rate", 0, 0.85, 0.01), slow], units=fraction
            )
        )
        == 2
    )
    assert Agreement(AgreementConfig(saturation_share=None)).observe(0, [cpu, slow], units=UNITS) == []


def test_span_latency_is_a_symptom_and_only_the_gauge_is_returned() -> None:
    cpu = level("cart", "container.cpu.usage.rate", 0, 85.0, 1.0)
    spans = other(SeriesKind.LATENCY_P90, "cart", 0, name="GetCart")
    assert Agreement().observe(0, [cpu, spans], units=UNITS) == [cpu]


EDGE_UNITS = {**UNITS, "service.client.latency.p50": "s", "service.server.latency.p50": "s"}


def edge(
    caller: str, callee: str, side: str, window: int, observed: float, expected: float, score: float
) -> Anomaly:
    name = f"service.{side}.latency.p50"
    key = SeriesKey(
        SeriesKind.RESOURCE, caller, name, peer=callee, resource=caller if side == "client" else callee
    )
    return Anomaly(key, window * W, W, observed, expected, score, Direction.UP, "x")


def test_calls_slowed_on_the_wire_for_two_windows_agree_and_point_at_the_callee() -> None:
    first = edge("frontend", "cart", "client", 0, 0.3, 0.003, 300.0)
    then = edge("frontend", "cart", "client", 1, 0.3, 0.003, 300.0)
    ag = Agreement()
    assert ag.observe(0, [first], units=EDGE_UNITS) == []  # one slow minute is a blip
    assert ag.observe(W, [then], units=EDGE_UNITS) == [first, then]
    assert then.key.focus_service == "cart"
    blip = Agreement()
    assert blip.observe(0, [first], units=EDGE_UNITS) == []
    assert (
        blip.observe(2 * W, [edge("frontend", "cart", "client", 2, 0.3, 0.003, 300.0)], units=EDGE_UNITS)
        == []
    )


def test_slower_on_both_ends_weak_or_without_units_is_not_the_wire() -> None:
    cfg = AgreementConfig(wire_windows=1)
    wire = edge("frontend", "cart", "client", 0, 0.3, 0.003, 300.0)
    served = edge("frontend", "cart", "server", 0, 0.3, 0.003, 280.0)  # the callee itself was slow
    assert Agreement(cfg).observe(0, [wire], units=EDGE_UNITS) == [wire]
    assert Agreement(cfg).observe(0, [wire, served], units=EDGE_UNITS) == []
    weak = edge("frontend", "cart", "client", 0, 0.3, 0.1, 20.0)
    assert Agreement(cfg).observe(0, [weak], units=EDGE_UNITS) == []
    assert Agreement(cfg).observe(0, [wire]) == []
    off = AgreementConfig(wire_min_score=None, wire_windows=1)
    assert Agreement(off).observe(0, [wire], units=EDGE_UNITS) == []


def test_several_callers_of_one_callee_are_not_a_shared_gauge() -> None:
    callers = [edge(c, "cart", "client", 0, 0.3, 0.003, 300.0) for c in ("a", "b", "c", "d")]
    reporting = {"service.client.latency.p50": {"a", "b", "c", "d"}}
    assert len(Agreement(AgreementConfig(wire_windows=1)).observe(0, callers, reporting, EDGE_UNITS)) == 4
