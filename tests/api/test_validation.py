"""Every bad parameter is a 422 whose body names the parameter, in FastAPI's shape."""

from __future__ import annotations

import httpx
import pytest

from .dataset import TRACE_A

A = TRACE_A.hex()

BAD_QUERIES = [
    # (path, params, offending parameter)
    ("/api/v1/operations", {}, "service"),
    ("/api/v1/operations", {"service": ""}, "service"),
    ("/api/v1/traces", {"status": "ok"}, "status"),
    ("/api/v1/traces", {"status": "ERROR"}, "status"),
    ("/api/v1/traces", {"status": "failed"}, "status"),
    ("/api/v1/traces", {"limit": "0"}, "limit"),
    ("/api/v1/traces", {"limit": "1001"}, "limit"),
    ("/api/v1/traces", {"limit": "ten"}, "limit"),
    ("/api/v1/traces", {"min_duration_ms": "-1"}, "min_duration_ms"),
    ("/api/v1/traces", {"min_duration_ms": "slow"}, "min_duration_ms"),
    ("/api/v1/traces", {"min_duration_ms": "NaN"}, "min_duration_ms"),
    ("/api/v1/traces", {"min_duration_ms": "Infinity"}, "min_duration_ms"),
    ("/api/v1/traces", {"min_duration_ms": "1e20"}, "min_duration_ms"),
    ("/api/v1/traces", {"service": ""}, "service"),
    ("/api/v1/traces", {"operation": ""}, "operation"),
    ("/api/v1/traces", {"start": "yesterday"}, "start"),
    ("/api/v1/traces", {"start": "2024-05-01T12"}, "start"),
    ("/api/v1/traces", {"start": "2024-05"}, "start"),
    ("/api/v1/traces", {"start": "1714564800 s"}, "start"),
    ("/api/v1/traces", {"start": "2024-13-01T00:00:00Z"}, "start"),
    ("/api/v1/traces", {"start": "2024-05-01T12:00:00.1234567891Z"}, "start"),  # below 1 ns
    ("/api/v1/traces", {"start": "1969-12-31T23:59:59Z"}, "start"),
    ("/api/v1/traces", {"start": "-5"}, "start"),
    ("/api/v1/traces", {"start": "1.5"}, "start"),
    ("/api/v1/traces", {"start": str(2**63)}, "start"),
    ("/api/v1/traces", {"end": "soon"}, "end"),
    ("/api/v1/traces", {"start": "2000", "end": "1000"}, "end"),
    ("/api/v1/logs", {"severity": "VERBOSE"}, "severity"),
    ("/api/v1/logs", {"severity": "0"}, "severity"),
    ("/api/v1/logs", {"severity": "25"}, "severity"),
    ("/api/v1/logs", {"severity": "-1"}, "severity"),
    ("/api/v1/logs", {"trace_id": "xyz"}, "trace_id"),
    ("/api/v1/logs", {"trace_id": A[:-1]}, "trace_id"),
    ("/api/v1/logs", {"trace_id": "0" * 32}, "trace_id"),
    ("/api/v1/logs", {"q": ""}, "q"),
    ("/api/v1/logs", {"service": ""}, "service"),
    ("/api/v1/logs", {"limit": "0"}, "limit"),
    ("/api/v1/logs", {"limit": "1001"}, "limit"),
    ("/api/v1/logs", {"start": "now-5"}, "start"),  # an offset needs its unit
    ("/api/v1/logs", {"start": "2024-05-01T12:00:01Z", "end": "2024-05-01T12:00:00Z"}, "end"),
    ("/api/v1/metrics", {"limit": "0"}, "limit"),
    ("/api/v1/metrics", {"limit": "1001"}, "limit"),
    ("/api/v1/metrics", {"name": ""}, "name"),
    ("/api/v1/metrics", {"service": ""}, "service"),
    ("/api/v1/metrics", {"end": "2024-05-01T25:00:00Z"}, "end"),
    ("/api/v1/metrics", {"start": "9", "end": "8"}, "end"),
]


@pytest.mark.parametrize(("path", "params", "param"), BAD_QUERIES)
def test_bad_query_parameter_is_422_naming_it(
    client: httpx.Client, path: str, params: dict[str, str], param: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [e["loc"] for e in errors] == [["query", param]]
    assert errors[0]["msg"]


@pytest.mark.parametrize(
    "trace_id",
    ["xyz", A[:-1], A + "0", "g" * 32, "0" * 32, A[:16] + "-" + A[17:]],
)
def test_bad_trace_id_in_path_is_422(client: httpx.Client, trace_id: str) -> None:
    response = client.get(f"/api/v1/traces/{trace_id}")
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["path", "trace_id"]]


def test_messages_say_what_is_expected(client: httpx.Client) -> None:
    def msg(path: str, **params: str) -> str:
        return str(client.get(path, params=params).json()["detail"][0]["msg"])

    assert "RFC 3339" in msg("/api/v1/traces", start="yesterday")
    assert "end is before start" in msg("/api/v1/traces", start="2", end="1")
    assert "ERROR" in msg("/api/v1/logs", severity="loud")
    assert "32 hexadecimal digits" in msg("/api/v1/logs", trace_id="abc")
    assert "all-zero" in msg("/api/v1/logs", trace_id="0" * 32)
    assert "'error'" in msg("/api/v1/traces", status="ok")
