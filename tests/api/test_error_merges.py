"""Merging and splitting error groups through the API, over a real socket and a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from faultlens.analysis.errors import ErrorEvent, ErrorGrouper, ErrorReason
from faultlens.api import ApiServer, HealthState, create_app
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.analysis_base import AnalysisResults
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.types import Signal

S = 1_000_000_000
T0 = 1_699_999_920 * S


def _event(i: int, signal: Signal, message: str) -> ErrorEvent:
    logged = signal is Signal.LOGS
    return ErrorEvent(
        T0 + i * S,
        signal,
        (ErrorReason.LOG_SEVERITY if logged else ErrorReason.SPAN_STATUS,),
        "cart",
        trace_id=bytes([i + 1]) * 16,
        status_message=None if logged else message,
        body=message if logged else None,
    )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[httpx.Client, str, str]]:
    """The cart's failure recorded on spans and logged, in the same two traces."""
    path = tmp_path / "faultlens.duckdb"
    telemetry, analysis = DuckDBStore(path), DuckDBAnalysisStore(path)
    groups = ErrorGrouper().add(
        [
            _event(i, s, m)
            for i in range(2)
            for s, m in ((Signal.TRACES, "checkout failed"), (Signal.LOGS, "no stock"))
        ]
    )
    analysis.write_results(AnalysisResults(error_groups=tuple(groups)))
    span, log = (g.group_id for g in groups)
    server = ApiServer(create_app(telemetry, SelfMetrics(), HealthState(), analysis=analysis), port=0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client, span, log
    finally:
        server.shutdown()
        analysis.close()
        telemetry.close()


def test_linked_groups_are_merged_listed_as_one_and_split_again(api: tuple[httpx.Client, str, str]) -> None:
    client, span, log = api
    assert client.get(f"/api/v1/errors/{span}").json()["linked"] == [log]
    merged = client.post("/api/v1/errors/merges", json={"into": span, "groups": [log]})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert (body["group_id"], body["merged"], body["count"], body["linked"]) == (span, [log], 4, [])
    [listed] = client.get("/api/v1/errors").json()["groups"]
    assert (listed["group_id"], listed["merged"], listed["count"]) == (span, [log], 4)
    assert client.get(f"/api/v1/errors/{log}").json()["group_id"] == span
    split = client.delete(f"/api/v1/errors/{log}/merges")
    assert split.status_code == 200 and split.json() == {"split": [log]}
    assert sorted(g["group_id"] for g in client.get("/api/v1/errors").json()["groups"]) == sorted((span, log))


def test_a_merge_or_split_that_cannot_be_is_refused_clearly(api: tuple[httpx.Client, str, str]) -> None:
    client, span, _ = api
    unknown = client.post("/api/v1/errors/merges", json={"into": span, "groups": ["0123456789abcdef"]})
    assert unknown.status_code == 404 and "0123456789abcdef" in unknown.json()["detail"]
    itself = client.post("/api/v1/errors/merges", json={"into": span, "groups": [span]})
    assert itself.status_code == 409 and "nothing to merge" in itself.json()["detail"]
    assert client.post("/api/v1/errors/merges", json={"into": span, "groups": []}).status_code == 422
    assert (
        client.post(
            "/api/v1/errors/merges", content=b"into=x", headers={"Content-Type": "text/plain"}
        ).status_code
        == 422
    )
    nothing = client.delete(f"/api/v1/errors/{span}/merges")
    assert nothing.status_code == 409 and "not merged" in nothing.json()["detail"]
    assert client.get("/api/v1/errors").json()["groups"][0]["merged"] == []  # the server kept serving
