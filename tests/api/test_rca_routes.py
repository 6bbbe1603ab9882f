"""The graph and root-cause endpoints over a real socket, a real DuckDB file and known faults.

The system (times from ``T0``; 30 requests a minute, each one trace)::

    frontend GET /checkout
     └─ checkout POST /checkout
         ├─ cart GET /cart
         └─ checkout payment.Charge (CLIENT) ─> payment Charge (SERVER, pods payment-a / payment-b)
                                                  └─ payment SELECT orders (CLIENT, db postgresql orders-db)

- ``[T0, T0+10m)``: normal;
- ``[T0+10m, T0+13m)``: fault 1: payment's own work on pod ``payment-b`` takes 80 ms more;
- ``[T0+13m, T0+30m)``: normal;
- ``[T0+30m, T0+33m)``: fault 2: half of cart's requests fail with an ERROR log
  ("connection refused"), and checkout fails with them (it only passes the error on);
- incidents: ``inc-cart`` (resolved, fault 2) and ``inc-open`` (open since fault 1).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from faultlens.analysis.incidents.types import Incident, IncidentState, Severity
from faultlens.api import ApiServer, HealthState, create_app
from faultlens.decode.base import DecodedBatch
from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.analysis_base import AnalysisResults
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
from faultlens.store.duckdb_store import DB_FILENAME, DuckDBStore
from faultlens.store.window import WindowReader
from faultlens.types import Signal

S = 1_000_000_000
MS = 1_000_000
MIN = 60 * S
T0 = 1_700_000_040 * S  # on a minute boundary
SERVER, CLIENT = 2, 3


def table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array([r.get(f.name) for r in rows], f.type) for f in schema], schema=schema
    )


@dataclass
class _Trace:
    spans: list[dict[str, Any]]
    logs: list[dict[str, Any]]


def _trace(rng: random.Random, t: int, n: int, *, slow_payment_b: bool, cart_fails: bool) -> _Trace:
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    ids = iter(rng.getrandbits(64).to_bytes(8, "big") for _ in range(6))
    spans: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []

    def span(parent: bytes | None, service: str, pod: str, name: str, kind: int, start: int, dur: int,
             error: bool = False, **extra: Any) -> bytes:  # fmt: skip
        sid = next(ids)
        spans.append(
            {
                "trace_id": trace_id, "span_id": sid, "parent_span_id": parent, "name": name,
                "kind": kind, "start_time_unix_nano": start, "end_time_unix_nano": start + dur,
                "duration_ns": dur, "status_code": 2 if error else 0, "service_name": service,
                "k8s_pod_name": pod, "attributes": "{}", "resource_attributes": "{}",
                "events": [], "links": [], **extra,
            }
        )  # fmt: skip
        return sid

    def log(span_id: bytes, service: str, pod: str, at: int, body: str, severity: int = 9) -> None:
        logs.append(
            {
                "time_unix_nano": at, "observed_time_unix_nano": at, "severity_number": severity,
                "severity_text": "ERROR" if severity >= 17 else "INFO", "body": body,
                "trace_id": trace_id, "span_id": span_id, "service_name": service, "k8s_pod_name": pod,
                "attributes": "{}", "resource_attributes": "{}",
            }
        )  # fmt: skip

    pay_pod = "payment-a" if n % 2 else "payment-b"
    cart_ms = rng.uniform(4, 6) * MS
    pay_self = rng.uniform(8, 12) * MS + (80 * MS if slow_payment_b and pay_pod == "payment-b" else 0)
    db_ms = rng.uniform(2.5, 3.5) * MS
    failed = cart_fails and n % 2 == 0
    pay_dur = int(1 * MS + db_ms + pay_self)
    client_dur = pay_dur + 2 * MS
    checkout_dur = int(3 * MS + cart_ms + client_dur + 2 * MS)
    front = span(None, "frontend", "frontend-1", "GET /checkout", SERVER, t, checkout_dur + 2 * MS, failed)
    chk = span(front, "checkout", "checkout-1", "POST /checkout", SERVER, t + 1 * MS, checkout_dur, failed)
    log(chk, "checkout", "checkout-1", t + 1 * MS, f"checkout started for order {rng.randrange(10**6)}")
    cart = span(chk, "cart", "cart-1", "GET /cart", SERVER, t + 2 * MS, int(cart_ms), failed)
    if failed:
        log(cart, "cart", "cart-1", t + 3 * MS, "cart store unavailable: connection refused redis:6379", 17)
    else:
        log(cart, "cart", "cart-1", t + 3 * MS, f"cart loaded with {rng.randrange(1, 9)} items")
    c_start = t + 3 * MS + int(cart_ms)
    call = span(chk, "checkout", "checkout-1", "payment.Charge", CLIENT, c_start, client_dur)
    pay = span(call, "payment", pay_pod, "Charge", SERVER, c_start + 1 * MS, pay_dur)
    log(pay, "payment", pay_pod, c_start + 1 * MS, f"charging card for {rng.randrange(100)} EUR")
    span(pay, "payment", pay_pod, "SELECT orders", CLIENT, c_start + 2 * MS, int(db_ms),
         db_system="postgresql", server_address="orders-db")  # fmt: skip
    return _Trace(spans, logs)


def scenario() -> tuple[pa.Table, pa.Table, pa.Table]:
    """(spans, logs, metric points) of the 33 minutes described in the module docstring."""
    rng = random.Random(5)
    spans: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    for minute in range(33):
        for i in range(30):
            t = T0 + minute * MIN + i * 2 * S + rng.randrange(S)
            tr = _trace(rng, t, i, slow_payment_b=10 <= minute < 13, cart_fails=30 <= minute < 33)
            spans += tr.spans
            logs += tr.logs
    points = [
        {
            "metric_name": "container.cpu.utilization", "metric_unit": "1", "metric_type": "gauge",
            "time_unix_nano": T0 + minute * MIN, "value": 0.2 + rng.uniform(-0.02, 0.02),
            "service_name": service, "k8s_pod_name": pod, "attributes": "{}", "resource_attributes": "{}",
        }
        for minute in range(33)
        for service, pod in (("cart", "cart-1"), ("payment", "payment-a"), ("payment", "payment-b"))
    ]  # fmt: skip
    return table(spans, SPAN_SCHEMA), table(logs, LOG_SCHEMA), table(points, METRIC_SCHEMA)


def incident(id: str, start: int, end: int, state: IncidentState) -> Incident:
    return Incident(
        id=id,
        state=state,
        severity=Severity.HIGH,
        start_ns=start,
        end_ns=end,
        opened_ns=start + MIN,
        resolved_ns=end + 3 * MIN if state is IncidentState.RESOLVED else None,
        services=("cart", "checkout"),
        anomalies=(),
        title=f"test incident {id}",
    )


def write_scenario(data_dir: Path) -> Path:
    """The scenario and its incidents in a new store in ``data_dir``; returns the file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / DB_FILENAME
    store = DuckDBStore(path)
    spans, logs, points = scenario()
    store.write(
        [
            DecodedBatch(Signal.TRACES, spans),
            DecodedBatch(Signal.LOGS, logs),
            DecodedBatch(Signal.METRICS, points),
        ]
    )
    analysis = DuckDBAnalysisStore(path)
    analysis.write_results(
        AnalysisResults(
            incidents=(
                incident("inc-cart", T0 + 30 * MIN, T0 + 33 * MIN, IncidentState.RESOLVED),
                incident("inc-open", T0 + 10 * MIN, T0 + 13 * MIN, IncidentState.OPEN),
            )
        )
    )
    analysis.close()
    store.close()
    return path


@dataclass
class Served:
    client: httpx.Client
    store: DuckDBStore
    url: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    path = write_scenario(tmp_path_factory.mktemp("rca"))
    store = DuckDBStore(path)
    analysis = DuckDBAnalysisStore(path)
    app = create_app(
        store, SelfMetrics(), HealthState(["store"]), analysis=analysis, windows=WindowReader.for_store(store)
    )
    server = ApiServer(app, host="127.0.0.1", port=0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            yield Served(client, store, server.url)
    finally:
        server.shutdown()
        analysis.close()
        store.close()


@pytest.fixture
def client(served: Served) -> httpx.Client:
    return served.client


def get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ns(r: dict[str, Any] | None) -> tuple[int, int] | None:
    """(start, end) in ns of a range of the answer."""
    return None if r is None else (r["start_unix_nano"], r["end_unix_nano"])


# --- graph ----------------------------------------------------------------------------------


def test_graph_has_the_call_edges_with_their_red_figures(client: httpx.Client) -> None:
    body = get(client, "/api/v1/graph", start=T0, end=T0 + 10 * MIN)
    nodes = {n["name"]: n["kind"] for n in body["nodes"]}
    assert nodes == {
        "frontend": "service",
        "checkout": "service",
        "cart": "service",
        "payment": "service",
        "postgresql:orders-db": "database",
    }
    edges = {(e["caller"], e["callee"]): e for e in body["edges"]}
    assert set(edges) == {
        ("frontend", "checkout"),
        ("checkout", "cart"),
        ("checkout", "payment"),
        ("payment", "postgresql:orders-db"),
    }
    assert edges[("checkout", "payment")]["kind"] == "client_server"
    assert edges[("frontend", "checkout")]["kind"] == "call"
    assert edges[("payment", "postgresql:orders-db")]["kind"] == "database"
    for e in body["edges"]:
        assert e["calls"] == 300  # 10 minutes x 30 requests
        assert e["errors"] == 0
        assert 0 < e["latency_p50_ns"] <= e["latency_p90_ns"] <= e["latency_p99_ns"]
    db = edges[("payment", "postgresql:orders-db")]
    assert 2.4 * MS < db["latency_p50_ns"] < 3.6 * MS
    # the client span waits 2 ms longer than the server span it is the single parent of
    assert edges[("checkout", "payment")]["network_p50_ns"] == pytest.approx(2 * MS, rel=0.02)
    assert body["start_unix_nano"] == T0 and body["end_unix_nano"] == T0 + 10 * MIN


def test_graph_counts_errors_on_the_edges_that_carried_them(client: httpx.Client) -> None:
    body = get(client, "/api/v1/graph", start="2023-11-14T22:44:00Z", end=T0 + 33 * MIN)
    assert body["start_unix_nano"] == T0 + 30 * MIN
    edges = {(e["caller"], e["callee"]): e for e in body["edges"]}
    assert edges[("checkout", "cart")]["errors"] == 45  # half of 90
    assert edges[("checkout", "payment")]["errors"] == 0


def test_graph_of_an_empty_range_is_empty(client: httpx.Client) -> None:
    body = get(client, "/api/v1/graph", start=T0 - 60 * MIN, end=T0 - 30 * MIN)
    assert body["nodes"] == [] and body["edges"] == []


# --- rca over any window --------------------------------------------------------------------


def test_slow_pod_ranks_first_with_its_operation_and_evidence(client: httpx.Client) -> None:
    body = get(client, "/api/v1/rca", start=T0 + 10 * MIN, end=T0 + 13 * MIN)
    assert ns(body["window"]) == (T0 + 10 * MIN, T0 + 13 * MIN)
    assert body["window"]["start"] == "2023-11-14T22:24:00Z"
    # the baseline steers around the stored incident inc-open (10..13 min, widened by 1 min
    # of margin): 20 minutes of history before T0+9m, of which the store holds 9
    assert ns(body["baseline"]) == (T0 - 11 * MIN, T0 + 9 * MIN)
    assert body["observed"]["spans"] == 90 * 6 and body["baseline_observed"]["spans"] == 270 * 6
    assert body["rca_status"] == "ranked" and body["rca_reason"].startswith("judged spans, logs")
    cause = body["root_causes"][0]
    assert (cause["service"], cause["operation"], cause["pod"]) == ("payment", "Charge", "payment-b")
    assert cause["rank"] == 1 and 0 < cause["confidence"] <= 1
    evidence = cause["evidence"][0]
    assert "exclusive time" in evidence["text"] and evidence["reason"] == "slow_execution"
    assert T0 + 10 * MIN <= evidence["first_seen_unix_nano"] < T0 + 13 * MIN
    assert evidence["first_seen"].startswith("2023-11-14T22:2") and evidence["first_seen"].endswith("Z")
    assert cause["sample_trace_ids"] and all(len(t) == 32 for t in cause["sample_trace_ids"])
    top = body["candidates"][0]
    assert (top["service"], top["operation"], top["pod"]) == ("payment", "Charge", "payment-b")
    assert top["reason"] == "slow_execution"
    assert top["rank"] == 1 and 0 < top["score"] <= 1
    assert top["evidence"] and all(isinstance(line, str) and line for line in top["evidence"])
    assert top["findings"][0]["evidence"] == top["evidence"][0]
    # callers only waited for payment: none outranks it
    assert all(c["score"] <= top["score"] for c in body["candidates"][1:])


def test_chain_follows_the_slowed_edges_down_to_the_culprit(client: httpx.Client) -> None:
    body = get(client, "/api/v1/rca", start=T0 + 10 * MIN, end=T0 + 13 * MIN)
    assert body["chains"], body
    chain = body["chains"][0]
    assert chain["end"] == "payment"
    assert chain["services"] == ["frontend", "checkout", "payment"]
    for edge in chain["edges"]:
        assert edge["evidence"] and "p90" in edge["evidence"][0]
        assert edge["latency_ratio"] > 1.5


def test_explicit_baseline_is_used(client: httpx.Client) -> None:
    body = get(
        client,
        "/api/v1/rca",
        start=T0 + 30 * MIN,
        end=T0 + 33 * MIN,
        baseline_start=T0 + 15 * MIN,
        baseline_end=T0 + 25 * MIN,
    )
    assert ns(body["baseline"]) == (T0 + 15 * MIN, T0 + 25 * MIN)
    assert [ns(r) for r in body["baseline_ranges"]] == [(T0 + 15 * MIN, T0 + 25 * MIN)]
    assert body["candidates"][0]["service"] == "cart"
    assert body["root_causes"][0]["service"] == "cart"


def test_quiet_window_is_nothing_changed_with_no_root_cause(client: httpx.Client) -> None:
    body = get(client, "/api/v1/rca", start=T0 + 20 * MIN, end=T0 + 23 * MIN)
    assert body["rca_status"] == "nothing_changed", body["rca_reason"]
    assert body["root_causes"] == []
    assert "no change passed the bar" in body["rca_reason"]
    assert all(c["score"] < 0.2 for c in body["candidates"]), body["candidates"]
    assert body["chains"] == []


def test_a_window_before_any_data_is_not_enough_data_not_an_error(client: httpx.Client) -> None:
    body = get(client, "/api/v1/rca", start=T0 - 30 * MIN, end=T0 - 27 * MIN)
    assert body["rca_status"] == "not_enough_data"
    assert "holds 0 spans" in body["rca_reason"] and body["root_causes"] == []
    assert body["candidates"] == [] and body["chains"] == []


@pytest.mark.parametrize(
    "params",
    [
        # one span against an empty baseline, and against one span
        {"start": T0, "end": T0 + 1, "baseline_start": T0 - MIN, "baseline_end": T0},
        {"start": T0 + 1, "end": T0 + 2 * MS, "baseline_start": T0, "baseline_end": T0 + 1},
        # the first minutes of data: a few minutes of window over a minute of history
        {"start": T0 + MIN, "end": T0 + 4 * MIN},
        # a window of a few spans against a long baseline (the IndexError of issue 15)
        {"start": T0 + 10 * MIN, "end": T0 + 10 * MIN + 50 * MS},
        {"start": T0 + 31 * MIN, "end": T0 + 31 * MIN + 50 * MS},
    ],
)
def test_tiny_windows_and_baselines_answer_200(client: httpx.Client, params: dict[str, Any]) -> None:
    body = get(client, "/api/v1/rca", **params)
    assert body["rca_status"] in ("ranked", "not_enough_data", "nothing_changed")
    assert body["rca_reason"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"end": T0}, "start"),
        ({"start": T0}, "end"),
        ({"start": T0 + MIN, "end": T0}, "end"),
        ({"start": T0, "end": T0}, "end"),
        ({"start": "yesterday", "end": T0}, "start"),
        ({"start": T0, "end": T0 + MIN, "baseline_end": T0 + 1}, "baseline_end"),
        (
            {"start": T0, "end": T0 + MIN, "baseline_start": T0 - MIN, "baseline_end": T0 - MIN},
            "baseline_end",
        ),
    ],
)
def test_bad_rca_parameters_are_422_naming_the_parameter(
    client: httpx.Client, params: dict[str, Any], loc: str
) -> None:
    r = client.get("/api/v1/rca", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", loc]


def test_graph_end_before_start_is_422(client: httpx.Client) -> None:
    r = client.get("/api/v1/graph", params={"start": T0 + MIN, "end": T0})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "end"]


# --- rca of an incident ---------------------------------------------------------------------


def test_incident_rca_finds_where_the_errors_started(client: httpx.Client) -> None:
    body = get(client, "/api/v1/incidents/inc-cart/rca")
    assert body["incident"]["id"] == "inc-cart"
    # incident 30..33 min, one minute of margin each side; twenty minutes of baseline before,
    # around inc-open (10..13 min, widened by the margin and 5 minutes of settling after it)
    assert ns(body["window"]) == (T0 + 29 * MIN, T0 + 34 * MIN)
    assert [ns(r) for r in body["baseline_ranges"]] == [
        (T0 - 1 * MIN, T0 + 9 * MIN),
        (T0 + 19 * MIN, T0 + 29 * MIN),
    ]
    assert "2 stretches, outside other incidents and their settling" in body["rca_reason"]
    assert body["window_capped"] is False
    assert body["root_causes"][0]["service"] == "cart"
    top = body["candidates"][0]
    assert (top["service"], top["operation"], top["pod"]) == ("cart", "GET /cart", "cart-1")
    assert top["reason"] in ("error_origin", "log_pattern")
    services = [c["service"] for c in body["candidates"]]
    assert "checkout" not in services[:1]
    assert any(c["end"] == "cart" for c in body["chains"])


def test_incident_rca_margin_and_baseline_can_be_chosen(client: httpx.Client) -> None:
    body = get(client, "/api/v1/incidents/inc-cart/rca", margin="0s", baseline="5m")
    assert ns(body["window"]) == (T0 + 30 * MIN, T0 + 33 * MIN)
    assert ns(body["baseline"]) == (T0 + 25 * MIN, T0 + 30 * MIN)


def test_an_open_incident_window_is_its_data_time_cut_to_the_longest_window(client: httpx.Client) -> None:
    body = get(client, "/api/v1/incidents/inc-open/rca")
    assert body["window_capped"] is False
    assert ns(body["window"]) == (T0 + 9 * MIN, T0 + 14 * MIN)  # the wall clock plays no part
    assert body["baseline"]["end_unix_nano"] == T0 + 9 * MIN
    body = get(client, "/api/v1/incidents/inc-open/rca", margin="20m")
    assert body["window_capped"] is True  # 10 - 20 .. 13 + 20 min: 43 min, cut to 30 from its start
    # no data before T0, so the window starts at the incident's start and the margin is history
    assert ns(body["window"]) == (T0 + 10 * MIN, T0 + 20 * MIN)
    assert body["rca_status"] == "ranked" and body["root_causes"][0]["service"] == "payment"


def test_the_incident_route_shows_the_stored_root_causes_beside_the_fresh_ones(client: httpx.Client) -> None:
    body = get(client, "/api/v1/incidents/inc-cart/rca")
    assert body["incident"]["rca_status"] == "pending"  # never ranked by a worker in this store
    assert body["incident"]["root_causes"] == []


def test_unknown_incident_is_404(client: httpx.Client) -> None:
    r = client.get("/api/v1/incidents/inc-nope/rca")
    assert r.status_code == 404
    assert r.json() == {"detail": "incident inc-nope not found"}


@pytest.mark.parametrize(
    ("path", "loc"),
    [
        ("/api/v1/incidents/inc%20cart/rca", ["path", "incident_id"]),
        ("/api/v1/incidents/inc-cart/rca?margin=60", ["query", "margin"]),
        ("/api/v1/incidents/inc-cart/rca?baseline=0s", ["query", "baseline"]),
    ],
)
def test_bad_incident_rca_parameters_are_422(client: httpx.Client, path: str, loc: list[str]) -> None:
    r = client.get(path)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc


# --- limits and wiring ----------------------------------------------------------------------


def test_window_over_the_row_limit_is_read_in_slices_and_says_so(served: Served) -> None:
    app = create_app(
        served.store,
        SelfMetrics(),
        HealthState([]),
        windows=WindowReader.for_store(served.store, max_rows=500),
    )
    server = ApiServer(app, host="127.0.0.1", port=0)
    server.start()
    try:
        r = httpx.get(f"{server.url}/api/v1/rca", params={"start": T0 + 10 * MIN, "end": T0 + 13 * MIN})
        assert r.status_code == 200, r.text
        body = r.json()
        assert 0 < body["observed"]["time_read"] < 1 and 0 < body["observed"]["spans"] <= 500
        assert 0 < body["baseline_observed"]["time_read"] < 1
        assert "in slices" in body["rca_reason"]
        assert body["root_causes"][0]["service"] == "payment"
        r = httpx.get(f"{server.url}/api/v1/graph", params={"start": T0, "end": T0 + MIN})
        assert r.status_code == 200  # 180 spans of the minute, 0 before it
        # without the analysis there are no incidents to analyse
        assert httpx.get(f"{server.url}/api/v1/incidents/inc-cart/rca").status_code == 404
    finally:
        server.shutdown()


def test_endpoints_are_in_the_openapi_schema(client: httpx.Client) -> None:
    paths = get(client, "/openapi.json")["paths"]
    assert {"/api/v1/graph", "/api/v1/rca", "/api/v1/incidents/{incident_id}/rca"} <= set(paths)


def test_responses_are_plain_json(client: httpx.Client) -> None:
    r = client.get("/api/v1/rca", params={"start": T0 + 10 * MIN, "end": T0 + 13 * MIN})
    assert r.headers["content-type"] == "application/json"
    json.loads(r.text)
