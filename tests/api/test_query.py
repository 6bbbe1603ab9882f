"""Every query endpoint's happy path, with exact expected bodies, over a real socket."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from .dataset import MS, SPAN_A1, SPAN_A2, SPAN_B1, T0, TRACE_A, TRACE_B, TRACE_C, S

A = TRACE_A.hex()
B = TRACE_B.hex()
C = TRACE_C.hex()

SUMMARY_A = {
    "trace_id": A,
    "start_time_unix_nano": T0,
    "duration_ns": 50 * MS,
    "span_count": 2,
    "error_count": 1,
    "services": ["frontend", "payment"],
    "root_service": "frontend",
    "root_name": "GET /checkout",
}
SUMMARY_B = {
    "trace_id": B,
    "start_time_unix_nano": T0 + S,
    "duration_ns": 5 * MS,
    "span_count": 1,
    "error_count": 0,
    "services": ["frontend"],
    "root_service": "frontend",
    "root_name": "GET /home",
}
SUMMARY_C = {
    "trace_id": C,
    "start_time_unix_nano": T0 + 2 * S,
    "duration_ns": 200 * MS,
    "span_count": 1,
    "error_count": 0,
    "services": ["payment"],
    "root_service": "payment",
    "root_name": "SELECT orders",
}

LOG_A = {
    "time_unix_nano": T0 + 20 * MS,
    "observed_time_unix_nano": T0 + 20 * MS + 1,
    "severity_number": 17,
    "severity_text": "ERROR",
    "body": "payment failed: card declined",
    "trace_id": A,
    "span_id": SPAN_A2.hex(),
    "service": "payment",
    "attributes": {"code.function": "handle"},
    "resource_attributes": {"service.name": "payment"},
}
LOG_B = {
    "time_unix_nano": T0 + S + MS,
    "observed_time_unix_nano": T0 + S + MS + 1,
    "severity_number": 9,
    "severity_text": "INFO",
    "body": "home rendered",
    "trace_id": B,
    "span_id": SPAN_B1.hex(),
    "service": "frontend",
    "attributes": {"code.function": "handle"},
    "resource_attributes": {"service.name": "frontend"},
}
LOG_NO_TRACE = {
    "time_unix_nano": T0 + 3 * S,
    "observed_time_unix_nano": T0 + 3 * S + 1,
    "severity_number": 13,
    "severity_text": "WARN",
    "body": "Cache MISS for user 7",
    "trace_id": None,
    "span_id": None,
    "service": "frontend",
    "attributes": {"code.function": "handle"},
    "resource_attributes": {"service.name": "frontend"},
}

GAUGE_T0 = {
    "name": "queue.depth",
    "type": "gauge",
    "unit": "{items}",
    "service": "payment",
    "time_unix_nano": T0,
    "start_time_unix_nano": T0 - S,
    "value": 3.0,
    "count": None,
    "sum": None,
    "attributes": {},
    "details": {},
}
GAUGE_T1 = {**GAUGE_T0, "time_unix_nano": T0 + S, "value": 5.0}
HISTOGRAM = {
    "name": "http.server.duration",
    "type": "histogram",
    "unit": "ms",
    "service": "frontend",
    "time_unix_nano": T0 + 1500 * MS,
    "start_time_unix_nano": T0 - S,
    "value": None,
    "count": 4,
    "sum": 12.5,
    "attributes": {},
    "details": {"aggregation_temporality": 2, "bucket_counts": [1, 2, 1], "explicit_bounds": [1.0, 5.0]},
}


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def trace_ids(body: dict[str, Any]) -> list[str]:
    return [t["trace_id"] for t in body["traces"]]


# --- services, operations, stats -------------------------------------------------------------


def test_services_lists_every_service_sorted(client: httpx.Client) -> None:
    assert get(client, "/api/v1/services") == {"services": ["frontend", "payment"]}


def test_operations_name_span_kinds(client: httpx.Client) -> None:
    assert get(client, "/api/v1/operations", service="payment") == {
        "service": "payment",
        "operations": [
            {"name": "POST /charge", "kind": "SERVER"},
            {"name": "SELECT orders", "kind": "CLIENT"},
        ],
    }


def test_operations_of_unknown_service_is_empty(client: httpx.Client) -> None:
    assert get(client, "/api/v1/operations", service="nobody") == {"service": "nobody", "operations": []}


def test_stats_counts_stored_items(client: httpx.Client) -> None:
    assert get(client, "/api/v1/stats") == {"spans": 4, "logs": 3, "metric_points": 3}


# --- trace search ----------------------------------------------------------------------------


def test_traces_newest_first_with_exact_summaries(client: httpx.Client) -> None:
    assert get(client, "/api/v1/traces") == {
        "traces": [SUMMARY_C, SUMMARY_B, SUMMARY_A],
        "limit": 20,
        "truncated": False,
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "error"}, [A]),
        ({"status": "any"}, [C, B, A]),
        ({"service": "payment"}, [C, A]),
        ({"service": "frontend", "operation": "GET /home"}, [B]),
        ({"operation": "POST /charge"}, [A]),
        ({"service": "frontend", "operation": "POST /charge"}, []),
        ({"service": "nobody"}, []),
        ({"min_duration_ms": "50"}, [C, A]),  # at least: 50 ms itself matches
        ({"min_duration_ms": "50.000001"}, [C]),  # one nanosecond more does not
        ({"min_duration_ms": "0"}, [C, B, A]),
        ({"start": str(T0 + S)}, [C, B]),  # start is inclusive
        ({"end": str(T0 + S)}, [A]),  # end is exclusive
        ({"start": "2024-05-01T12:00:01Z", "end": "2024-05-01T12:00:02Z"}, [B]),
        ({"start": "2024-05-01T14:00:01+02:00"}, [C, B]),  # offsets are honoured
        ({"start": "2024-05-01T12:00:00.999999999Z"}, [C, B]),
        ({"start": str(T0 + S), "end": str(T0 + S)}, []),  # empty range
        ({"service": "payment", "status": "error", "min_duration_ms": "10"}, [A]),
    ],
)
def test_traces_filters(client: httpx.Client, params: dict[str, str], expected: list[str]) -> None:
    assert trace_ids(get(client, "/api/v1/traces", **params)) == expected


def test_traces_limit_reports_truncation_exactly(client: httpx.Client) -> None:
    body = get(client, "/api/v1/traces", limit=2)
    assert (trace_ids(body), body["limit"], body["truncated"]) == ([C, B], 2, True)
    body = get(client, "/api/v1/traces", limit=3)
    assert (trace_ids(body), body["limit"], body["truncated"]) == ([C, B, A], 3, False)
    assert get(client, "/api/v1/traces", limit=1000)["truncated"] is False


# --- one trace -------------------------------------------------------------------------------


def test_trace_by_id_returns_every_span_and_its_logs(client: httpx.Client) -> None:
    body = get(client, f"/api/v1/traces/{A}")
    assert body == {
        "trace_id": A,
        "spans": [
            {
                "trace_id": A,
                "span_id": SPAN_A1.hex(),
                "parent_span_id": None,
                "service": "frontend",
                "name": "GET /checkout",
                "kind": "SERVER",
                "start_time_unix_nano": T0,
                "end_time_unix_nano": T0 + 50 * MS,
                "duration_ns": 50 * MS,
                "status_code": "UNSET",
                "status_message": "",
                "trace_state": "",
                "scope_name": "test-scope",
                "attributes": {"http.route": "/checkout", "http.response.status_code": 500},
                "resource_attributes": {"service.name": "frontend"},
                "events": [],
                "links": [],
            },
            {
                "trace_id": A,
                "span_id": "00f067aa0ba902b7",
                "parent_span_id": "b7ad6b7169203331",
                "service": "payment",
                "name": "POST /charge",
                "kind": "SERVER",
                "start_time_unix_nano": T0 + 10 * MS + 1,
                "end_time_unix_nano": T0 + 40 * MS,
                "duration_ns": 30 * MS - 1,
                "status_code": "ERROR",
                "status_message": "card declined",
                "trace_state": "",
                "scope_name": "test-scope",
                "attributes": {"retry": True, "amount": 12.5},
                "resource_attributes": {"service.name": "payment"},
                "events": [
                    {
                        "time_unix_nano": T0 + 39 * MS,
                        "name": "exception",
                        "attributes": {"exception.type": "CardDeclined"},
                    }
                ],
                "links": [
                    {
                        "trace_id": "ffffffffffffffffffffffffffffffff",
                        "span_id": "4444444444444444",
                        "trace_state": "k=v",
                        "attributes": {"link.kind": "follows"},
                    }
                ],
            },
        ],
        "logs": [LOG_A],
    }


def test_trace_id_is_accepted_in_upper_case_and_answered_in_lower_case(client: httpx.Client) -> None:
    body = get(client, f"/api/v1/traces/{A.upper()}")
    assert body["trace_id"] == A == "0af7651916cd43dd8448eb211c80319c"
    assert {s["span_id"] for s in body["spans"]} == {"b7ad6b7169203331", "00f067aa0ba902b7"}


def test_trace_without_logs_has_empty_logs(client: httpx.Client) -> None:
    body = get(client, f"/api/v1/traces/{C}")
    assert [s["name"] for s in body["spans"]] == ["SELECT orders"]
    assert body["spans"][0]["kind"] == "CLIENT"
    assert body["logs"] == []


def test_unknown_trace_is_404_naming_it(client: httpx.Client) -> None:
    unknown = "1234567890abcdef1234567890abcdef"
    response = client.get(f"/api/v1/traces/{unknown}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"trace {unknown} not found"}


def test_nanosecond_times_survive_json_exactly(client: httpx.Client) -> None:
    raw = client.get(f"/api/v1/traces/{A}").text
    start = T0 + 10 * MS + 1
    assert float(start) != start  # a float64 would have rounded it
    assert f'"start_time_unix_nano":{start}' in raw
    assert json.loads(raw)["spans"][1]["start_time_unix_nano"] == start


# --- logs ------------------------------------------------------------------------------------


def test_logs_newest_first_with_exact_records(client: httpx.Client) -> None:
    assert get(client, "/api/v1/logs") == {
        "logs": [LOG_NO_TRACE, LOG_B, LOG_A],
        "limit": 100,
        "truncated": False,
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"severity": "TRACE"}, ["Cache MISS for user 7", "home rendered", "payment failed: card declined"]),
        ({"severity": "info"}, ["Cache MISS for user 7", "home rendered", "payment failed: card declined"]),
        ({"severity": "WARN"}, ["Cache MISS for user 7", "payment failed: card declined"]),
        ({"severity": "10"}, ["Cache MISS for user 7", "payment failed: card declined"]),
        ({"severity": "Error"}, ["payment failed: card declined"]),
        ({"severity": "FATAL"}, []),
        ({"service": "frontend"}, ["Cache MISS for user 7", "home rendered"]),
        ({"trace_id": A}, ["payment failed: card declined"]),
        ({"trace_id": B.upper()}, ["home rendered"]),
        ({"q": "cache miss"}, ["Cache MISS for user 7"]),
        ({"q": "CARD"}, ["payment failed: card declined"]),
        ({"start": str(T0 + S + MS)}, ["Cache MISS for user 7", "home rendered"]),
        ({"end": "2024-05-01T12:00:01.001Z"}, ["payment failed: card declined"]),
        ({"service": "frontend", "severity": "WARN"}, ["Cache MISS for user 7"]),
    ],
)
def test_logs_filters(client: httpx.Client, params: dict[str, str], expected: list[str]) -> None:
    assert [r["body"] for r in get(client, "/api/v1/logs", **params)["logs"]] == expected


def test_logs_limit_reports_truncation(client: httpx.Client) -> None:
    body = get(client, "/api/v1/logs", limit=1)
    assert (body["logs"], body["limit"], body["truncated"]) == ([LOG_NO_TRACE], 1, True)


# --- metrics ---------------------------------------------------------------------------------


def test_metric_points_oldest_first_with_exact_values(client: httpx.Client) -> None:
    assert get(client, "/api/v1/metrics") == {
        "points": [GAUGE_T0, GAUGE_T1, HISTOGRAM],
        "limit": 1000,
        "truncated": False,
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "queue.depth"}, [GAUGE_T0, GAUGE_T1]),
        ({"service": "frontend"}, [HISTOGRAM]),
        ({"name": "queue.depth", "service": "frontend"}, []),
        ({"start": str(T0 + S)}, [GAUGE_T1, HISTOGRAM]),
        ({"end": str(T0 + S)}, [GAUGE_T0]),
        ({"name": "nothing"}, []),
    ],
)
def test_metric_points_filters(
    client: httpx.Client, params: dict[str, str], expected: list[dict[str, Any]]
) -> None:
    assert get(client, "/api/v1/metrics", **params)["points"] == expected


def test_metric_points_limit_reports_truncation(client: httpx.Client) -> None:
    body = get(client, "/api/v1/metrics", limit=2)
    assert (body["points"], body["truncated"]) == ([GAUGE_T0, GAUGE_T1], True)
