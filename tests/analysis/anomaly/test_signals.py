"""Utilisation and serving-latency gauges are told apart by name and unit alone."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from faultlens.analysis.anomaly import explain, resource_observations
from faultlens.analysis.anomaly.signals import (
    ErrorRatio,
    Utilisation,
    UtilisationOf,
    error_ratio,
    resource_key,
    serving_latency,
    utilisation,
)
from faultlens.decode.schema import METRIC_SCHEMA
from faultlens.store.testing import metric_row


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("service.success.rate", "%", ErrorRatio(100.0, counts_successes=True)),
        ("grpc_success_ratio", "1", ErrorRatio(1.0, counts_successes=True)),
        ("http.server.error.rate", "%", ErrorRatio(100.0, counts_successes=False)),
        ("rpc.failure.ratio", "1", ErrorRatio(1.0, counts_successes=False)),
        ("http.server.error.rate", "{error}/s", None),  # errors per second: a count, not a share
        ("service.success.count", "1", None),  # no rate or ratio in the name
        ("container.cpu.usage.rate", "%", None),
    ],
)
def test_error_ratio(name: str, unit: str, expected: ErrorRatio | None) -> None:
    assert error_ratio(name, unit) == expected


def test_failed_share_is_the_complement_of_successes_and_clamped() -> None:
    assert ErrorRatio(100.0, counts_successes=True).failed_share(94.0) == pytest.approx(0.06)
    assert ErrorRatio(1.0, counts_successes=False).failed_share(0.25) == pytest.approx(0.25)
    assert ErrorRatio(100.0, counts_successes=True).failed_share(101.0) == 0.0
    assert ErrorRatio(1.0, counts_successes=False).failed_share(3.0) == 1.0


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("container.cpu.utilization", "1", Utilisation(UtilisationOf.CPU, 1.0)),
        ("k8s.pod.memory.utilization", "1", Utilisation(UtilisationOf.MEMORY, 1.0)),
        ("container.cpu.usage.rate", "%", Utilisation(UtilisationOf.CPU, 100.0)),
        ("process.cpu.utilization", "1", Utilisation(UtilisationOf.CPU, 1.0)),
        ("container.cpu.usage", "{millicpu}", None),  # an amount, not a share
        ("node.cpu.usage.rate", "%", None),  # a host's gauge speaks for no one service
        ("container.network.rate", "%", None),
    ],
)
def test_utilisation(name: str, unit: str, expected: Utilisation | None) -> None:
    assert utilisation(name, unit) == expected


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("http.server.request.duration", "s", True),
        ("rpc.server.duration", "ms", True),
        ("pod.server.latency.p99", "s", True),
        ("http.client.request.duration", "s", False),  # the calls it makes
        ("pod.client.latency.p90", "s", False),
        ("pod.server.latency.p90", "By", False),
        ("container.cpu.time", "", False),
    ],
)
def test_serving_latency(name: str, unit: str, expected: bool) -> None:
    assert serving_latency(name, unit) is expected


def test_a_gauge_with_a_peer_is_a_series_of_the_call_edge_whichever_end_reported_it() -> None:
    def point(service: str, name: str, peer: str, value: float) -> dict[str, object]:
        attrs = json.dumps({"nezha.column": "x", "peer.service": peer})
        return metric_row(
            name=name, time=0, value=value, metric_unit="s", service_name=service, attributes=attrs
        )

    rows = [
        point("frontend", "service.client.latency.p50", "cart", 0.3),
        point("frontend", "service.client.latency.p50", "ads", 0.01),
        point("cart", "service.server.latency.p50", "frontend", 0.004),
        metric_row(
            name="service.client.latency.p50", time=0, value=0.2, metric_unit="s", service_name="frontend"
        ),
    ]
    obs = resource_observations(pa.Table.from_pylist(rows, schema=METRIC_SCHEMA), 60_000_000_000)
    got = {(o.key.service, o.key.peer, o.key.name, o.key.resource): o.value for o in obs}
    assert got == {
        ("frontend", "cart", "service.client.latency.p50", "frontend"): 0.3,
        ("frontend", "ads", "service.client.latency.p50", "frontend"): 0.01,
        ("frontend", "cart", "service.server.latency.p50", "cart"): 0.004,  # cart's side of the same edge
        ("frontend", "", "service.client.latency.p50", "frontend"): 0.2,
    }
    assert all(o.key.focus_service == "cart" for o in obs if o.key.peer == "cart")


def test_an_edge_gauge_is_explained_as_calls_from_one_service_to_another() -> None:
    from_caller = resource_key("frontend", "service.client.latency.p50", "frontend", "cart")
    assert explain(from_caller, 0.3, 0.003) == (
        "service.client.latency.p50 of calls from frontend to cart (as frontend saw them) was 0.3, "
        "expected 0.003 (+9900%)"
    )
    from_callee = resource_key("cart", "service.server.latency.p50", "cart", "frontend")
    assert "of calls from frontend to cart (as cart saw them)" in explain(from_callee, 0.3, 0.003)
