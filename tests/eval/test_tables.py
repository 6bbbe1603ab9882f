"""Directory records as the tables every offline method is handed (``faultlens.eval.tables``)."""

from __future__ import annotations

import json

from faultlens.analysis.anomaly.signals import peer_column
from faultlens.datasets.otlp import COLUMN_ATTRIBUTE
from faultlens.datasets.records import MetricRecord
from faultlens.eval.tables import metrics_table


def test_a_call_edge_row_carries_its_peer_as_replay_sends_it() -> None:
    t = metrics_table(
        [
            MetricRecord(60, "front", "", (("ClientLatencyP50", 0.2),), peer="cart"),
            MetricRecord(60, "front", "", (("ClientLatencyP50", 0.3),), peer="ads"),
            MetricRecord(60, "cart", "cart-1", (("CpuUsageRate(%)", 5.0),)),
        ]
    )
    # the edge rows are told apart by their callee, as the rca and the detector read it
    assert peer_column(t).to_pylist() == ["cart", "ads", ""]
    columns = [json.loads(a)[COLUMN_ATTRIBUTE] for a in t.column("attributes").to_pylist()]
    assert columns == ["ClientLatencyP50", "ClientLatencyP50", "CpuUsageRate(%)"]
