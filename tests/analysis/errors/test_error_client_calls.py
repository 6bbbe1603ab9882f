"""Failed outgoing calls that say nothing but "ERROR": grouped per call and dependency, not blank."""

from __future__ import annotations

from faultlens.analysis.errors import ErrorGrouper, detect_span_errors, fingerprint
from faultlens.store.testing import span_row, spans_batch

SERVER, CLIENT, PRODUCER, ERROR = 2, 3, 4, 2


def _templates(rows: list[dict[str, object]]) -> list[str]:
    return [fingerprint(e).message_template for e in detect_span_errors(spans_batch(rows).table)]


def test_a_bare_failed_call_is_named_by_its_operation_and_dependency() -> None:
    rows = [
        span_row(
            1,
            1,
            kind=CLIENT,
            status_code=ERROR,
            service_name="orders",
            name="POST /charge",
            peer_service="payment",
        ),
        span_row(
            2,
            1,
            kind=CLIENT,
            status_code=ERROR,
            service_name="orders",
            name="GET /stock",
            server_address="inventory",
        ),
        span_row(3, 1, kind=PRODUCER, status_code=ERROR, service_name="orders", name="publish orders"),
        span_row(4, 1, kind=CLIENT, status_code=ERROR, service_name="orders"),
    ]
    assert _templates(rows) == [
        "POST /charge to payment failed",
        "GET /stock to inventory failed",
        "publish orders failed",
        "op failed",  # span_row's default name
    ]


def test_bare_failed_calls_to_two_dependencies_make_two_groups_not_one_blank_one() -> None:
    rows = [
        span_row(t, 1, kind=CLIENT, status_code=ERROR, service_name="orders", name="call", peer_service=peer)
        for t, peer in ((1, "payment"), (2, "payment"), (3, "inventory"))
    ]
    groups = ErrorGrouper().add(detect_span_errors(spans_batch(rows).table))
    assert sorted((g.message_template, g.count) for g in groups) == [
        ("call to inventory failed", 1),
        ("call to payment failed", 2),
    ]


def test_what_a_call_or_a_server_says_is_kept() -> None:
    rows = [
        # a status message, an HTTP code, an error.type: each is what the call says
        span_row(1, 1, kind=CLIENT, status_code=ERROR, name="c", peer_service="p", status_message="refused"),
        span_row(2, 1, kind=CLIENT, name="c", peer_service="p", http_status_code=503),
        span_row(
            3, 1, kind=CLIENT, status_code=ERROR, name="c", peer_service="p", error_type="ConnectException"
        ),
        # a server span with nothing to say keeps its blank template: the failure is its own
        span_row(4, 1, kind=SERVER, status_code=ERROR, name="GET /"),
    ]
    assert _templates(rows) == ["refused", "HTTP 503", "", ""]
