"""Utilisation and serving-latency gauges are told apart by name and unit alone."""

from __future__ import annotations

import pytest

from faultlens.analysis.anomaly.signals import Utilisation, UtilisationOf, serving_latency, utilisation


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
