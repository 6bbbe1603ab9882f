"""Calls slower as their callers report them than as the callee does: evidence against the callee."""

from __future__ import annotations

import json

import pyarrow as pa

from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.rca import Observations, RcaConfig, Reason, rank_root_causes
from faultlens.rca.resources import edge_findings
from faultlens.store.testing import metric_row

MIN = 60_000_000_000


def _edges(t0: int, minutes: int, wire_s: float = 0.0, served_s: float = 0.0) -> pa.Table:
    """front -> cart and front -> ads, 3 ms each as both ends see them; ``wire_s`` added on
    front -> cart as front sees it, ``served_s`` as cart sees it too."""
    rows = []
    for m in range(minutes):
        t = t0 + m * MIN
        for callee, extra_client, extra_server in (("cart", wire_s + served_s, served_s), ("ads", 0.0, 0.0)):
            for reporter, name, peer, v in (
                ("front", "service.client.latency.p50", callee, 0.003 + 0.0002 * (m % 3) + extra_client),
                (callee, "service.server.latency.p50", "front", 0.003 + 0.0001 * (m % 2) + extra_server),
            ):
                attrs = json.dumps({"peer.service": peer})
                rows.append(
                    metric_row(
                        name=name, time=t, value=v, metric_unit="s", service_name=reporter, attributes=attrs
                    )
                )
    return pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)


def _obs(metrics: pa.Table) -> Observations:
    return Observations(SPAN_SCHEMA.empty_table(), LOG_SCHEMA.empty_table(), metrics)


def test_time_added_between_the_ends_of_an_edge_is_evidence_against_the_callee() -> None:
    base = _edges(0, 20)
    (f,) = edge_findings(_edges(30 * MIN, 3, wire_s=0.3), base, RcaConfig())
    assert (f.service, f.reason) == ("cart", Reason.SLOW_CALLS_INTO)
    assert f.effect > 0.95 and f.z > 100
    assert f.evidence.startswith("cart: calls from front took 0.303 s")
    result = rank_root_causes(_obs(_edges(30 * MIN, 3, wire_s=0.3)), _obs(base))
    assert result.candidates[0].service == "cart"


def test_a_callee_slow_on_its_own_side_or_no_change_is_not_time_on_the_wire() -> None:
    base = _edges(0, 20)
    assert edge_findings(_edges(30 * MIN, 3, served_s=0.3), base, RcaConfig()) == []
    assert edge_findings(_edges(30 * MIN, 3), base, RcaConfig()) == []
    assert edge_findings(_edges(30 * MIN, 3, wire_s=0.3), METRIC_SCHEMA.empty_table(), RcaConfig()) == []


def _two_callers(
    t0: int, minutes: int, wire_s: dict[str, float], callers: tuple[str, ...] = ("front", "checkout")
) -> pa.Table:
    """``callers`` -> cart, 3 ms as both ends see them, plus ``wire_s[caller]`` as that caller sees it."""
    rows = []
    for m in range(minutes):
        t = t0 + m * MIN
        for caller in callers:
            for reporter, name, peer, v in (
                (
                    "caller",
                    "service.client.latency.p50",
                    "cart",
                    0.003 + 0.0002 * (m % 3) + wire_s.get(caller, 0.0),
                ),
                ("cart", "service.server.latency.p50", caller, 0.003 + 0.0001 * (m % 2)),
            ):
                attrs = json.dumps({"peer.service": peer})
                service = caller if reporter == "caller" else reporter
                rows.append(
                    metric_row(
                        name=name, time=t, value=v, metric_unit="s", service_name=service, attributes=attrs
                    )
                )
    return pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)


def test_time_added_into_a_callee_must_be_seen_by_every_caller() -> None:
    base = _two_callers(0, 20, {})
    both = edge_findings(_two_callers(30 * MIN, 3, {"front": 0.3, "checkout": 0.2}), base, RcaConfig())
    assert sorted((f.service, f.evidence.split(" took")[0]) for f in both) == [
        ("cart", "cart: calls from checkout"),
        ("cart", "cart: calls from front"),
    ]
    # Only one caller's calls slowed: the time was added on that caller's side, not cart's.
    assert edge_findings(_two_callers(30 * MIN, 3, {"front": 0.3}), base, RcaConfig()) == []
    # A caller that made no calls in the window cannot disagree.
    (alone,) = edge_findings(_two_callers(30 * MIN, 3, {"front": 0.3}, callers=("front",)), base, RcaConfig())
    assert alone.service == "cart" and alone.effect > 0.95
