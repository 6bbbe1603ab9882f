"""The store conformance suite: every backend must give these exact answers.

To run it against a new backend, add a :class:`Backend` to ``BACKENDS``: a name and a
function that opens the backend's storage under a directory (opening the same directory
again must see the same data).

The scenario below is small but covers what the queries must get right: a trace whose
spans arrive in two writes, a trace without a root, an error that is not on the span
matching the service filter, logs with and without trace ids, and every metric shape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from faultlens.errors import StoreError
from faultlens.store import (
    DuckDBStore,
    LogQuery,
    LogRecord,
    MetricPoint,
    MetricQuery,
    Operation,
    RetentionResult,
    SpanEvent,
    SpanLink,
    SpanRecord,
    Store,
    StoreStats,
    Trace,
    TraceQuery,
    TraceSummary,
)
from faultlens.store._rows import attrs
from faultlens.store.base import AttributeCondition, AttributeCount, AttributeQuery, TraceText
from faultlens.store.testing import (
    log_row,
    logs_batch,
    metric_row,
    metrics_batch,
    span_id,
    span_row,
    spans_batch,
    trace_id,
)
from faultlens.testing.memory_store import MemoryStore
from faultlens.types import TimeRange


@dataclass(frozen=True)
class Backend:
    name: str
    open: Callable[[Path], Store]


BACKENDS = [
    Backend("duckdb", lambda d: DuckDBStore(d / "faultlens.duckdb")),
    Backend("memory", MemoryStore),
]


@pytest.fixture(scope="module", params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    b: Backend = request.param
    return b


@pytest.fixture(scope="module")
def store(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The scenario, written once per backend and shared by the tests that only read."""
    s = backend.open(tmp_path_factory.mktemp(backend.name))
    write_scenario(s)
    yield s
    s.close()


@pytest.fixture
def empty_store(backend: Backend, tmp_path: Path) -> Iterator[Store]:
    s = backend.open(tmp_path)
    yield s
    s.close()


@pytest.fixture
def fresh_store(empty_store: Store) -> Store:
    """The scenario in a store of its own, for tests that change it."""
    write_scenario(empty_store)
    return empty_store


# --- the scenario ----------------------------------------------------------------------------

T1, T2, T3, T4, T5, T_UNKNOWN = (trace_id(n) for n in (1, 2, 3, 4, 5, 99))
SERVER, CLIENT = 2, 3
ERROR = 2


def first_write_spans() -> list[dict[str, object]]:
    return [
        # T1: frontend -> checkout -> db; the error is on the db span only.
        span_row(
            T1,
            11,
            start=1000,
            duration=500,
            service_name="frontend",
            name="GET /checkout",
            kind=SERVER,
            attributes={"http.route": "/checkout", "retries": 2},
            resource_attributes={"service.name": "frontend", "k8s.pod.name": "frontend-1"},
            scope_name="io.opentelemetry.http",
            trace_state="vendor=1",
            links=[
                {"trace_id": T2, "span_id": span_id(21), "trace_state": "", "attributes": {"why": "retry"}}
            ],
        ),
        # Written out of time order on purpose: reads must come back ordered.
        span_row(
            T1,
            13,
            12,
            start=1150,
            duration=100,
            service_name="db",
            name="SELECT",
            kind=CLIENT,
            status_code=ERROR,
            status_message="timeout",
            events=[
                {"time_unix_nano": 1240, "name": "exception", "attributes": {"exception.type": "Timeout"}}
            ],
        ),
        span_row(
            T1, 12, 11, start=1100, duration=300, service_name="checkout", name="PlaceOrder", kind=SERVER
        ),
        # T2: one OK span.
        span_row(
            T2,
            21,
            start=2000,
            duration=100,
            service_name="frontend",
            name="GET /",
            kind=SERVER,
            attributes={"note": "two words", "seen": "payment.method"},  # a key's text, as a value
        ),
        # T3, first part: an erroring checkout root.
        span_row(
            T3,
            31,
            start=3000,
            duration=50,
            service_name="checkout",
            name="PlaceOrder",
            kind=SERVER,
            status_code=ERROR,
        ),
        # T4: its root never arrived.
        span_row(
            T4,
            41,
            40,
            start=4000,
            duration=10,
            service_name="payment",
            name="Charge",
            kind=CLIENT,
            attributes={"payment.method": "cash", "amount": 3},
            resource_attributes={"service.name": "payment", "k8s.pod.name": "payment-1"},
        ),
    ]


def second_write_spans() -> list[dict[str, object]]:
    # T3, second part, in a later write: the trace now lasts 3000 .. 5010.
    return [
        span_row(
            T3,
            32,
            31,
            start=3010,
            duration=2000,
            service_name="payment",
            name="Charge",
            kind=CLIENT,
            attributes={"payment.method": "card", "amount": 12.5, "card/type": "visa", "retry": True},
            resource_attributes={"service.name": "payment", "k8s.pod.name": "payment-2"},
        )
    ]


LOGS = [
    log_row(
        time=1050,
        trace=T1,
        span=11,
        severity_number=9,
        severity_text="INFO",
        body="request started",
        service_name="frontend",
        attributes={"user": "u1"},
        resource_attributes={"service.name": "frontend"},
    ),
    log_row(
        time=1200,
        trace=T1,
        span=13,
        severity_number=17,
        severity_text="ERROR",
        body="DB Timeout after 5s",
        service_name="db",
    ),
    log_row(time=2500, severity_number=13, severity_text="WARN", body="cache miss 100%", service_name="cart"),
    log_row(
        time=5000,
        trace=T5,
        severity_number=21,
        severity_text="FATAL",
        body="panic: out of memory",
        service_name="payment",
    ),
]

METRICS = [
    metric_row(
        name="http.server.duration",
        metric_type="histogram",
        metric_unit="s",
        time=1000,
        start_time_unix_nano=900,
        value=None,
        count=3,
        sum=0.6,
        min=0.1,
        max=0.3,
        bucket_counts=[1, 2, 0],
        explicit_bounds=[0.1, 0.5],
        aggregation_temporality=2,
        service_name="frontend",
        attributes={"http.route": "/"},
    ),
    metric_row(name="cpu", time=1500, value=0.5, service_name="cart"),
    metric_row(name="cpu", time=2000, value=0.7, service_name="frontend"),
    metric_row(
        name="requests",
        metric_type="sum",
        time=2500,
        value=10.0,
        value_int=10,
        is_monotonic=True,
        aggregation_temporality=1,
        service_name="frontend",
    ),
    metric_row(
        name="latency",
        metric_type="summary",
        time=3000,
        value=None,
        count=4,
        sum=2.0,
        quantiles=[{"quantile": 0.5, "value": 0.4}, {"quantile": 0.99, "value": 0.9}],
        service_name="frontend",
    ),
]


def write_scenario(store: Store) -> None:
    store.write([spans_batch(first_write_spans()), logs_batch(LOGS), metrics_batch(METRICS)])
    store.write([spans_batch(second_write_spans())])


SUMMARY = {
    T1: TraceSummary(T1, 1000, 500, 3, 1, ("checkout", "db", "frontend"), "frontend", "GET /checkout"),
    T2: TraceSummary(T2, 2000, 100, 1, 0, ("frontend",), "frontend", "GET /"),
    T3: TraceSummary(T3, 3000, 2010, 2, 1, ("checkout", "payment"), "checkout", "PlaceOrder"),
    T4: TraceSummary(T4, 4000, 10, 1, 0, ("payment",), None, None),
}


def summaries(*ids: bytes) -> list[TraceSummary]:
    return [SUMMARY[t] for t in ids]


def log_bodies(records: list[LogRecord]) -> list[str]:
    return [r.body for r in records]


def point_keys(points: list[MetricPoint]) -> list[tuple[str, int]]:
    return [(p.name, p.time_unix_nano) for p in points]


# --- writing -----------------------------------------------------------------------------------


def test_empty_store_answers_every_query_with_nothing(empty_store: Store) -> None:
    assert empty_store.services() == []
    assert empty_store.operations("frontend") == []
    assert empty_store.find_traces(TraceQuery()) == []
    assert empty_store.get_trace(T1) is None
    assert empty_store.find_logs(LogQuery()) == []
    assert empty_store.find_metric_points(MetricQuery()) == []
    assert empty_store.stats() == StoreStats(0, 0, 0)


def test_writing_nothing_is_a_no_op(empty_store: Store) -> None:
    empty_store.write([])
    empty_store.write([spans_batch([]), logs_batch([]), metrics_batch([])])
    assert empty_store.stats() == StoreStats(0, 0, 0)


def test_stats_count_every_item(store: Store) -> None:
    assert store.stats() == StoreStats(spans=7, logs=4, metric_points=5)


def test_writing_a_batch_twice_stores_it_twice(empty_store: Store) -> None:
    batch = spans_batch([span_row(T1, 1, service_name="a")])
    empty_store.write([batch])
    empty_store.write([batch])
    assert empty_store.stats().spans == 2
    assert empty_store.find_traces(TraceQuery())[0].span_count == 2


# --- services and operations -------------------------------------------------------------------


def test_services_are_every_service_of_every_signal_sorted(store: Store) -> None:
    assert store.services() == ["cart", "checkout", "db", "frontend", "payment"]


def test_operations_are_span_names_and_kinds_of_one_service(store: Store) -> None:
    assert store.operations("frontend") == [Operation("GET /", SERVER), Operation("GET /checkout", SERVER)]
    assert store.operations("payment") == [Operation("Charge", CLIENT)]
    assert store.operations("cart") == []  # logs and metrics only
    assert store.operations("nobody") == []


# --- find_traces -------------------------------------------------------------------------------


def test_find_traces_without_conditions_lists_all_newest_first(store: Store) -> None:
    assert store.find_traces(TraceQuery()) == summaries(T4, T3, T2, T1)


def test_trace_summary_aggregates_spans_written_in_separate_writes(store: Store) -> None:
    [t3] = store.find_traces(TraceQuery(service="payment", operation="Charge", min_duration_ns=1000))
    assert t3 == SUMMARY[T3]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (TraceQuery(service="checkout"), [T3, T1]),
        (TraceQuery(service="nobody"), []),
        (TraceQuery(operation="Charge"), [T4, T3]),
        (TraceQuery(service="frontend", operation="GET /"), [T2]),
        (TraceQuery(service="frontend", operation="PlaceOrder"), []),  # both must hold on one span
        (TraceQuery(status_error=True), [T3, T1]),
        (TraceQuery(service="checkout", status_error=True), [T3]),  # T1's error is on db, not checkout
        (TraceQuery(service="db", status_error=True), [T1]),
        (TraceQuery(min_duration_ns=500), [T3, T1]),  # inclusive
        (TraceQuery(min_duration_ns=501), [T3]),
        (TraceQuery(min_duration_ns=0), [T4, T3, T2, T1]),
        (TraceQuery(service="frontend", min_duration_ns=200), [T1]),
        (TraceQuery(time_range=TimeRange(2000, 3001)), [T3, T2]),
        (TraceQuery(time_range=TimeRange(2000, 3000)), [T2]),  # half-open
        (TraceQuery(time_range=TimeRange(3005, 3020)), [T3]),  # matched by T3's later span
        (TraceQuery(time_range=TimeRange(6000, 7000)), []),
        (TraceQuery(service="payment", time_range=TimeRange(0, 3011)), [T3]),
        (TraceQuery(max_duration_ns=500), [T4, T2, T1]),  # inclusive, on the whole trace
        (TraceQuery(max_duration_ns=499), [T4, T2]),
        (TraceQuery(min_duration_ns=100, max_duration_ns=500), [T2, T1]),
        (TraceQuery(span_min_duration_ns=300), [T3, T1]),  # on one span: T1's root, T3's Charge
        (TraceQuery(span_min_duration_ns=301), [T3, T1]),  # T1's root lasts 500
        (TraceQuery(service="checkout", span_min_duration_ns=301), []),  # on the same span
        (TraceQuery(service="checkout", span_max_duration_ns=50), [T3]),
        (TraceQuery(span_min_duration_ns=100, span_max_duration_ns=100), [T2, T1]),
        (TraceQuery(attributes=(AttributeCondition("http.route", "/checkout"),)), [T1]),
        (TraceQuery(attributes=(AttributeCondition("http.route", "/"),)), []),
        (TraceQuery(attributes=(AttributeCondition("retries", "2"),)), [T1]),  # a number as its text
        (TraceQuery(attributes=(AttributeCondition("amount", "12.5"),)), [T3]),
        (TraceQuery(attributes=(AttributeCondition("retry", "true"),)), [T3]),  # a bool as its text
        (TraceQuery(attributes=(AttributeCondition("card/type", "visa"),)), [T3]),  # "/" in a key
        (TraceQuery(attributes=(AttributeCondition("k8s.pod.name", "payment-1"),)), [T4]),  # resource
        (TraceQuery(attributes=(AttributeCondition("payment.method", "card"),)), [T3]),
        (TraceQuery(attributes=(AttributeCondition("payment.method", "cash"),)), [T4]),  # not T2
        (TraceQuery(attributes=(AttributeCondition("note", "two words"),)), [T2]),
        (TraceQuery(attributes=(AttributeCondition("note", "two"),)), []),  # the whole value
        (TraceQuery(attributes=(AttributeCondition("seen", "payment.method"),)), [T2]),
        (
            TraceQuery(
                attributes=(AttributeCondition("payment.method", "card"), AttributeCondition("amount", "3"))
            ),
            [],  # both on one span: T3's card span has amount 12.5, T4's cash span amount 3
        ),
        (
            TraceQuery(
                service="payment",
                attributes=(AttributeCondition("payment.method", "cash"), AttributeCondition("amount", "3")),
            ),
            [T4],
        ),
        (TraceQuery(service="checkout", attributes=(AttributeCondition("payment.method", "card"),)), []),
        (TraceQuery(attributes=(AttributeCondition("nothing.here", "x"),)), []),
        (TraceQuery(limit=2), [T4, T3]),
        (TraceQuery(status_error=True, limit=1), [T3]),
        (TraceQuery(limit=0), []),
    ],
    ids=lambda v: repr(v) if isinstance(v, TraceQuery) else "",
)
def test_find_traces_answers_each_condition_exactly(
    store: Store, query: TraceQuery, expected: list[bytes]
) -> None:
    assert store.find_traces(query) == summaries(*expected)


def test_a_search_by_attribute_over_hours_keeps_the_newest_trace_starts_first(empty_store: Store) -> None:
    """Spans hours apart (a backend may read a long range in parts, newest first): a trace
    whose matching span is recent but which started long ago still comes after the traces
    that started later, and the page is the same as over the whole range."""
    h = 3600 * 1_000_000_000
    match = {"k": "v"}
    a, b, c, d, e = (trace_id(n) for n in (61, 62, 63, 64, 65))
    empty_store.write(
        [
            spans_batch(
                [
                    span_row(a, 1, start=0, duration=9 * h + 10, service_name="s", name="job"),
                    span_row(a, 2, 1, start=9 * h, duration=10, service_name="s", attributes=match),
                    span_row(b, 1, start=5 * h, duration=10, service_name="s", attributes=match),
                    span_row(c, 1, start=int(8.9 * h), duration=10, service_name="s", attributes=match),
                    span_row(d, 1, start=int(9.5 * h), duration=10, service_name="s", attributes={"k": "w"}),
                    span_row(e, 1, start=1 * h, duration=10, service_name="s", attributes=match),
                ]
            )
        ]
    )
    cond = (AttributeCondition("k", "v"),)

    def found(limit: int, time_range: TimeRange | None = None) -> list[bytes]:
        query = TraceQuery(attributes=cond, limit=limit, time_range=time_range)
        return [t.trace_id for t in empty_store.find_traces(query)]

    assert found(limit=2) == [c, b]
    assert found(limit=4) == [c, b, e, a]
    assert found(limit=10, time_range=TimeRange(2 * h, 10 * h)) == [c, b, a]
    assert found(limit=10, time_range=TimeRange(9 * h + 1, 10 * h)) == []


# --- attribute_counts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            AttributeQuery(service="payment"),
            [
                ("amount", 2),
                ("k8s.pod.name", 2),
                ("payment.method", 2),
                ("service.name", 2),
                ("card/type", 1),
                ("retry", 1),
            ],
        ),
        (AttributeQuery(service="payment", key="payment.method"), [("card", 1), ("cash", 1)]),
        (AttributeQuery(service="payment", key="amount"), [("12.5", 1), ("3", 1)]),
        (AttributeQuery(service="payment", key="k8s.pod.name"), [("payment-1", 1), ("payment-2", 1)]),
        (AttributeQuery(key="k8s.pod.name"), [("frontend-1", 1), ("payment-1", 1), ("payment-2", 1)]),
        (AttributeQuery(service="payment", key="payment.method", sample=1), [("cash", 1)]),  # the newest
        (AttributeQuery(service="payment", key="amount", limit=1), [("12.5", 1)]),
        (
            AttributeQuery(service="payment", key="payment.method", time_range=TimeRange(3000, 4000)),
            [("card", 1)],
        ),
        (AttributeQuery(service="frontend", key="missing"), []),
        (AttributeQuery(service="nobody"), []),
        (AttributeQuery(service="payment", limit=0), []),
    ],
    ids=lambda v: repr(v) if isinstance(v, AttributeQuery) else "",
)
def test_attribute_counts_count_the_newest_spans_holding_each_key_or_value(
    store: Store, query: AttributeQuery, expected: list[tuple[str, int]]
) -> None:
    assert store.attribute_counts(query) == [AttributeCount(t, n) for t, n in expected]


# --- get_trace ---------------------------------------------------------------------------------


def test_get_trace_returns_every_span_in_start_order_with_all_fields(store: Store) -> None:
    trace = store.get_trace(T1)
    assert trace is not None
    assert trace.trace_id == T1
    assert [s.span_id for s in trace.spans] == [span_id(11), span_id(12), span_id(13)]
    assert trace.spans[0] == SpanRecord(
        trace_id=T1,
        span_id=span_id(11),
        parent_span_id=None,
        service="frontend",
        name="GET /checkout",
        kind=SERVER,
        start_time_unix_nano=1000,
        end_time_unix_nano=1500,
        status_code=0,
        status_message="",
        attributes={"http.route": "/checkout", "retries": 2},
        resource_attributes={"service.name": "frontend", "k8s.pod.name": "frontend-1"},
        events=(),
        links=(SpanLink(T2, span_id(21), "", {"why": "retry"}),),
        scope_name="io.opentelemetry.http",
        trace_state="vendor=1",
    )
    db = trace.spans[2]
    assert db.parent_span_id == span_id(12)
    assert (db.status_code, db.status_message) == (ERROR, "timeout")
    assert db.events == (SpanEvent(1240, "exception", {"exception.type": "Timeout"}),)


def test_get_trace_includes_logs_carrying_the_trace_id_in_time_order(store: Store) -> None:
    trace = store.get_trace(T1)
    assert trace is not None
    assert trace.logs == (
        LogRecord(
            time_unix_nano=1050,
            observed_time_unix_nano=1050,
            severity_number=9,
            severity_text="INFO",
            body="request started",
            trace_id=T1,
            span_id=span_id(11),
            service="frontend",
            attributes={"user": "u1"},
            resource_attributes={"service.name": "frontend"},
        ),
        LogRecord(1200, 1200, 17, "ERROR", "DB Timeout after 5s", T1, span_id(13), "db", {}, {}),
    )


def test_get_trace_joins_spans_of_separate_writes(store: Store) -> None:
    trace = store.get_trace(T3)
    assert trace is not None
    assert [s.span_id for s in trace.spans] == [span_id(31), span_id(32)]
    assert trace.logs == ()


def test_get_trace_of_a_trace_with_only_logs_has_no_spans(store: Store) -> None:
    trace = store.get_trace(T5)
    assert trace is not None
    assert trace.spans == ()
    assert log_bodies(list(trace.logs)) == ["panic: out of memory"]


def test_get_trace_with_a_time_hint_returns_what_starts_within_it(store: Store) -> None:
    trace = store.get_trace(T1, time_hint=TimeRange(1100, 1200))  # half-open, like every range
    assert trace is not None
    assert [s.span_id for s in trace.spans] == [span_id(12), span_id(13)]
    assert trace.logs == ()
    with_logs = store.get_trace(T1, time_hint=TimeRange(1000, 1201))
    assert with_logs is not None
    assert log_bodies(list(with_logs.logs)) == ["request started", "DB Timeout after 5s"]
    assert store.get_trace(T1, time_hint=TimeRange(5000, 6000)) is None
    assert store.get_trace(T1, time_hint=TimeRange(0, 10_000)) == store.get_trace(T1)


def test_get_trace_of_an_unknown_trace_is_none(store: Store) -> None:
    assert store.get_trace(T_UNKNOWN) is None
    assert store.get_trace_text(T_UNKNOWN) is None


def _parsed(t: TraceText) -> Trace:
    """``get_trace``'s answer from ``get_trace_text``'s, through the one reading of the text."""
    spans = (
        replace(s.record, attributes=attrs(s.attributes), resource_attributes=attrs(s.resource_attributes))
        for s in t.spans
    )
    return Trace(t.trace_id, tuple(spans), t.logs)


@pytest.mark.parametrize("trace", [T1, T3, T5])
def test_get_trace_text_is_get_trace_with_the_attribute_maps_unparsed(store: Store, trace: bytes) -> None:
    text = store.get_trace_text(trace)
    assert text is not None
    assert all(s.record.attributes == {} and s.record.resource_attributes == {} for s in text.spans)
    assert _parsed(text) == store.get_trace(trace)
    hint = TimeRange(1100, 1200)
    within = store.get_trace_text(T1, time_hint=hint)
    assert within is not None and _parsed(within) == store.get_trace(T1, time_hint=hint)
    assert store.get_trace_text(T1, time_hint=TimeRange(5000, 6000)) is None


def test_get_trace_text_returns_the_stored_text_as_it_is(empty_store: Store) -> None:
    texts = ['{"b": 1,  "a": [1.5e-07, "\\u00e9", NaN]}', "not json", "[1]", None]
    resource = '{"service.name":"s","n":2}'
    empty_store.write(
        [
            spans_batch(
                [
                    span_row(9, n + 1, start=1000 + n, attributes=t, resource_attributes=resource)
                    for n, t in enumerate(texts)
                ]
            )
        ]
    )
    text = empty_store.get_trace_text(trace_id(9))
    assert text is not None
    assert [s.attributes for s in text.spans] == [*texts[:3], ""]  # nothing stored: ""
    assert [s.resource_attributes for s in text.spans] == [resource] * 4
    assert [s.record.span_id for s in text.spans] == [span_id(n + 1) for n in range(4)]
    assert _parsed(text) == empty_store.get_trace(trace_id(9))


# --- find_logs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (LogQuery(), ["panic: out of memory", "cache miss 100%", "DB Timeout after 5s", "request started"]),
        (LogQuery(min_severity=17), ["panic: out of memory", "DB Timeout after 5s"]),
        (LogQuery(min_severity=21), ["panic: out of memory"]),
        (LogQuery(service="db"), ["DB Timeout after 5s"]),
        (LogQuery(trace_id=T1), ["DB Timeout after 5s", "request started"]),
        (LogQuery(trace_id=T_UNKNOWN), []),
        (LogQuery(text="timeout"), ["DB Timeout after 5s"]),  # case-insensitive
        (LogQuery(text="TIMEOUT AFTER"), ["DB Timeout after 5s"]),
        (LogQuery(text="100%"), ["cache miss 100%"]),  # a literal, not a pattern
        (LogQuery(text="%"), ["cache miss 100%"]),
        (LogQuery(text="_"), []),
        (LogQuery(time_range=TimeRange(1050, 2500)), ["DB Timeout after 5s", "request started"]),
        (LogQuery(service="frontend", min_severity=17), []),
        (LogQuery(trace_id=T1, min_severity=17, text="db"), ["DB Timeout after 5s"]),
        (LogQuery(limit=1), ["panic: out of memory"]),
        (LogQuery(limit=0), []),
    ],
    ids=lambda v: repr(v) if isinstance(v, LogQuery) else "",
)
def test_find_logs_answers_each_condition_exactly(store: Store, query: LogQuery, expected: list[str]) -> None:
    assert log_bodies(store.find_logs(query)) == expected


def test_find_logs_returns_full_records(store: Store) -> None:
    [record] = store.find_logs(LogQuery(service="cart"))
    assert record == LogRecord(2500, 2500, 13, "WARN", "cache miss 100%", None, None, "cart", {}, {})


# --- find_metric_points ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            MetricQuery(),
            [
                ("http.server.duration", 1000),
                ("cpu", 1500),
                ("cpu", 2000),
                ("requests", 2500),
                ("latency", 3000),
            ],
        ),
        (MetricQuery(name="cpu"), [("cpu", 1500), ("cpu", 2000)]),
        (MetricQuery(service="cart"), [("cpu", 1500)]),
        (MetricQuery(name="cpu", service="frontend"), [("cpu", 2000)]),
        (MetricQuery(time_range=TimeRange(1500, 2500)), [("cpu", 1500), ("cpu", 2000)]),
        (MetricQuery(name="nothing"), []),
        (MetricQuery(limit=2), [("http.server.duration", 1000), ("cpu", 1500)]),
        (MetricQuery(limit=0), []),
    ],
    ids=lambda v: repr(v) if isinstance(v, MetricQuery) else "",
)
def test_find_metric_points_answers_each_condition_exactly(
    store: Store, query: MetricQuery, expected: list[tuple[str, int]]
) -> None:
    assert point_keys(store.find_metric_points(query)) == expected


def test_metric_points_keep_every_shape(store: Store) -> None:
    histogram, gauge, _, counter, summary = store.find_metric_points(MetricQuery())
    assert histogram == MetricPoint(
        name="http.server.duration",
        metric_type="histogram",
        unit="s",
        service="frontend",
        time_unix_nano=1000,
        start_time_unix_nano=900,
        value=None,
        count=3,
        sum=0.6,
        attributes={"http.route": "/"},
        details={
            "aggregation_temporality": 2,
            "min": 0.1,
            "max": 0.3,
            "bucket_counts": [1, 2, 0],
            "explicit_bounds": [0.1, 0.5],
        },
    )
    assert gauge == MetricPoint("cpu", "gauge", "", "cart", 1500, None, 0.5, None, None, {}, {})
    assert (counter.value, counter.details) == (
        10.0,
        {"aggregation_temporality": 1, "is_monotonic": True, "value_int": 10},
    )
    assert (summary.count, summary.sum) == (4, 2.0)
    assert summary.details["quantiles"] == [{"quantile": 0.5, "value": 0.4}, {"quantile": 0.99, "value": 0.9}]


# --- restart, retention, lifecycle -------------------------------------------------------------


def test_reopening_the_same_storage_keeps_everything(backend: Backend, tmp_path: Path) -> None:
    first = backend.open(tmp_path)
    write_scenario(first)
    before = (first.find_traces(TraceQuery()), first.get_trace(T1), first.services(), first.stats())
    first.close()

    second = backend.open(tmp_path)
    try:
        after = (second.find_traces(TraceQuery()), second.get_trace(T1), second.services(), second.stats())
        assert after == before
        second.write([spans_batch([span_row(T_UNKNOWN, 1, start=9000, service_name="late")])])
        assert second.stats().spans == 8
    finally:
        second.close()


def test_retention_deletes_items_older_than_the_cutoff_from_every_signal(fresh_store: Store) -> None:
    assert fresh_store.enforce_retention(now_unix_nano=3000, retention_ns=1000) == RetentionResult(
        cutoff_unix_nano=2000, spans_deleted=3, logs_deleted=2, metric_points_deleted=2
    )
    assert fresh_store.stats() == StoreStats(spans=4, logs=2, metric_points=3)
    assert fresh_store.find_traces(TraceQuery()) == summaries(T4, T3, T2)
    assert fresh_store.get_trace(T1) is None
    assert fresh_store.find_logs(LogQuery(trace_id=T1)) == []
    assert point_keys(fresh_store.find_metric_points(MetricQuery(name="cpu"))) == [("cpu", 2000)]
    assert fresh_store.services() == ["cart", "checkout", "frontend", "payment"]  # db's last item is gone
    assert fresh_store.operations("frontend") == [Operation("GET /", SERVER)]


def test_retention_keeps_exact_summaries_of_traces_straddling_the_cutoff(fresh_store: Store) -> None:
    fresh_store.enforce_retention(now_unix_nano=3005, retention_ns=0)
    # T3 lost its root (3000) and keeps its later span (3010 .. 5010).
    assert fresh_store.find_traces(TraceQuery(operation="Charge")) == [
        SUMMARY[T4],
        TraceSummary(T3, 3010, 2000, 1, 0, ("payment",), None, None),
    ]
    trace = fresh_store.get_trace(T3)
    assert trace is not None
    assert [s.span_id for s in trace.spans] == [span_id(32)]
    assert fresh_store.operations("checkout") == []


def test_retention_twice_deletes_nothing_more(fresh_store: Store) -> None:
    fresh_store.enforce_retention(3000, 1000)
    assert fresh_store.enforce_retention(3000, 1000) == RetentionResult(2000, 0, 0, 0)


def test_close_is_idempotent_and_later_calls_fail_clearly(empty_store: Store) -> None:
    empty_store.close()
    empty_store.close()
    with pytest.raises(StoreError):
        empty_store.stats()


def test_concurrent_reads_during_writes_see_consistent_data(empty_store: Store) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                for summary in empty_store.find_traces(TraceQuery(limit=5)):
                    trace = empty_store.get_trace(summary.trace_id)
                    assert trace is not None
                    # The summary may be older than the trace, never the other way round.
                    assert len(trace.spans) >= summary.span_count
        except BaseException as e:
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for r in readers:
        r.start()
    for i in range(15):
        empty_store.write([spans_batch([span_row(i % 7, i * 10 + j, start=i * 100 + j) for j in range(10)])])
    stop.set()
    for r in readers:
        r.join()
    assert errors == []
    assert empty_store.stats().spans == 150
    assert sum(s.span_count for s in empty_store.find_traces(TraceQuery(limit=100))) == 150
