"""``GET /api/v1/traces`` by attribute conditions and a maximum duration, the conditions the
UI's search form and the Jaeger API send, over a real socket and the real DuckDB store."""

from __future__ import annotations

import httpx
import pytest

from .test_query import A, B, C, get, trace_ids


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"attrs": "http.route=/checkout"}, [A]),
        ({"attrs": "http.route=/checkout http.response.status_code=500"}, [A]),  # all on one span
        ({"attrs": "http.response.status_code=404"}, []),
        ({"attrs": '{"retry": true, "amount": 12.5}'}, [A]),  # Jaeger's JSON object, values as text
        ({"attrs": "retry=true"}, [A]),
        ({"attrs": "retry"}, [A]),  # logfmt: a bare key is a true flag
        ({"attrs": "retry=true", "service": "frontend"}, []),  # on the same span as the service
        ({"attrs": "retry=true http.route=/checkout"}, []),  # two spans of one trace: not one span
        ({"attrs": "service.name=payment"}, [C, A]),  # the resource's attributes count too
        ({"attrs": 'amount="12.5"', "status": "error"}, [A]),  # a quoted logfmt value
        ({"max_duration_ms": "50"}, [B, A]),  # at most: 50 ms itself matches
        ({"max_duration_ms": "49.999999"}, [B]),  # one nanosecond less does not
        ({"max_duration_ms": "0"}, []),
        ({"min_duration_ms": "5", "max_duration_ms": "50"}, [B, A]),
        ({"min_duration_ms": "50", "max_duration_ms": "50"}, [A]),
        ({"max_duration_ms": "1000", "attrs": "service.name=payment"}, [C, A]),
    ],
)
def test_traces_by_attributes_and_max_duration(
    client: httpx.Client, params: dict[str, str], expected: list[str]
) -> None:
    assert trace_ids(get(client, "/api/v1/traces", **params)) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"attrs": 'http.route="/checkout'}, "not logfmt"),
        ({"attrs": "=500"}, "has no key"),
        ({"attrs": "{not json"}, "not a JSON object"),
        ({"attrs": ""}, "at least 1 character"),
        ({"max_duration_ms": "-1"}, "greater than or equal to 0"),
        ({"max_duration_ms": "NaN"}, ""),
        ({"max_duration_ms": "1e20"}, ""),
        ({"min_duration_ms": "10", "max_duration_ms": "9.5"}, "below min_duration_ms"),
    ],
)
def test_bad_conditions_are_a_422_naming_the_parameter(
    client: httpx.Client, params: dict[str, str], message: str
) -> None:
    r = client.get("/api/v1/traces", params=params)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["query", "attrs" if "attrs" in params else "max_duration_ms"]
    assert message in problem["msg"]
    assert client.get("/api/v1/traces").status_code == 200  # and the server keeps serving
