"""Fingerprint stability and the grouper's state machine."""

from __future__ import annotations

import json

from faultlens.analysis.errors import (
    ErrorEvent,
    ErrorGrouper,
    ErrorReason,
    ErrorType,
    GrouperConfig,
    fingerprint,
    fingerprints,
    message_template,
    normalise_type,
    top_frame,
)
from faultlens.types import Signal

MIN = 60 * 1_000_000_000

JAVA_STACK = """java.lang.IllegalStateException: order {id} in bad state
\tat com.shop.orders.OrderService.{method}(OrderService.java:{line})
\tat org.springframework.aop.framework.ReflectiveMethodInvocation.proceed(ReflectiveMethodInvocation.java:186)
\tat java.base/java.lang.Thread.run(Thread.java:833)"""


def ev(
    t: int = 0,
    *,
    service: str = "orders",
    msg: str = "order 1 in bad state",
    method: str = "place",
    line: int = 42,
    trace: bytes = b"\x01" * 16,
    op: str = "POST /orders",
) -> ErrorEvent:
    return ErrorEvent(
        time_ns=t,
        signal=Signal.TRACES,
        reasons=(ErrorReason.EXCEPTION,),
        service=service,
        operation=op,
        trace_id=trace,
        exception_type="java.lang.IllegalStateException",
        exception_message=msg,
        exception_stacktrace=JAVA_STACK.format(id=1, method=method, line=line),
    )


def test_message_template_masks_variables() -> None:
    got = message_template(
        "user 42 (bob@example.com) order 550e8400-e29b-41d4-a716-446655440000 from 10.1.2.3:8080 "
        "file /var/data/x.csv key 'abc' trace 4bf92f3577b34da6 took 35ms GET /api?x=1"
    )
    assert got == (
        "user <NUM> (<EMAIL>) order <UUID> from <IP> file <PATH> key <STR> trace <HEX> "
        "took <NUM> GET /api?<QUERY>"
    )


def test_same_error_with_different_ids_same_group() -> None:
    a = fingerprint(ev(msg="order 123 in bad state", line=42, trace=b"\x01" * 16))
    b = fingerprint(ev(msg="order 98765 in bad state", line=57, trace=b"\x02" * 16))
    assert a.group_id == b.group_id
    assert a.top_frame == "com.shop.orders.OrderService.place"


def test_different_top_frame_different_group() -> None:
    assert fingerprint(ev(method="place")).group_id != fingerprint(ev(method="cancel")).group_id


def test_different_service_different_group() -> None:
    assert fingerprint(ev(service="a")).group_id != fingerprint(ev(service="b")).group_id


def test_fingerprint_is_stable_across_processes() -> None:
    # A fixed value: the hash must not depend on PYTHONHASHSEED or the process.
    fp = fingerprint(ev())
    assert fp.group_id == fingerprint(ev()).group_id and len(fp.group_id) == 16
    assert fp.exception_type == "IllegalStateException"


def test_type_from_log_text_matches_span_attribute() -> None:
    log = ErrorEvent(
        0,
        Signal.LOGS,
        (ErrorReason.LOG_SEVERITY,),
        "orders",
        body="java.net.ConnectException: Connection refused",
    )
    assert fingerprint(log).exception_type == "ConnectException"
    assert normalise_type("builtins.ValueError") == "ValueError"
    assert normalise_type("*net.OpError") == "OpError"


def test_top_frame_skips_framework_frames_in_each_language() -> None:
    py = (
        'Traceback (most recent call last):\n  File "/app/shop/api.py", line 9, in handler\n'
        '  File "/usr/lib/python3.11/site-packages/requests/api.py", line 3, in get\nValueError: x'
    )
    go = (
        "goroutine 1 [running]:\nruntime.panicmem()\n\t/usr/local/go/src/runtime/panic.go:260 +0x2c\n"
        "main.(*Server).handle(0x0)\n\t/app/main.go:42 +0x1d"
    )
    node = (
        "TypeError: x\n    at process.tick (node:internal/process/task_queues:95:5)\n"
        "    at getUser (/app/src/users.js:10:15)"
    )
    net = (
        "System.Exception: x\n   at System.Net.Http.HttpClient.Send()\n"
        "   at Shop.Api.OrderController.Get(Int32 id) in /src/OrderController.cs:line 42"
    )
    assert top_frame(py) == "/app/shop/api.py:handler"
    assert top_frame(go) == "main.(*Server).handle"
    assert top_frame(node) == "getUser (/app/src/users.js)"
    assert top_frame(net) == "Shop.Api.OrderController.Get"


def test_grouper_counts_buckets_members_and_samples() -> None:
    g = ErrorGrouper(GrouperConfig(bucket_ns=MIN, max_samples=2))
    events = [ev(t=i * 20 * 1_000_000_000, trace=bytes([i]) * 16, op=f"op{i % 2}") for i in range(5)]
    (snap,) = g.add(events)
    assert snap.count == 5
    assert snap.first_seen_ns == 0 and snap.last_seen_ns == 80 * 1_000_000_000
    assert snap.buckets == ((0, 3), (MIN, 2))
    assert snap.operations == ("op0", "op1")
    assert snap.sample_trace_ids == (bytes([0]) * 16, bytes([1]) * 16)
    assert snap.type is ErrorType.ILLEGAL_STATE
    assert g.group(snap.group_id) == snap
    assert len(g) == 1


def test_grouper_state_round_trip_through_json() -> None:
    g = ErrorGrouper()
    g.add([ev(t=1), ev(t=2, method="cancel"), ev(t=3, service="other")])
    state = json.loads(json.dumps(g.export_state()))
    g2 = ErrorGrouper.from_state(state)
    assert g2.groups() == g.groups()
    # And it keeps counting where it left off.
    (after,) = g2.add([ev(t=10)])
    assert after.count == 2 and after.last_seen_ns == 10


def test_grouper_bounds_groups() -> None:
    g = ErrorGrouper(GrouperConfig(max_groups=2))
    g.add([ev(t=1, service="a"), ev(t=2, service="b"), ev(t=3, service="c")])
    assert len(g) == 2 and g.evicted_groups == 1
    assert {s.service for s in g.groups()} == {"b", "c"}


_LANG_STACKS = {
    "py": 'Traceback (most recent call last):\n  File "/app/shop/api.py", line 9, in handler\n'
    '  File "/usr/lib/python3.11/site-packages/requests/api.py", line 3, in get\nValueError: x',
    "go": "goroutine 1 [running]:\nruntime.panicmem()\n\t/usr/local/go/src/runtime/panic.go:260 +0x2c\n"
    "main.(*Server).handle(0x0)\n\t/app/main.go:42 +0x1d",
    "node": "TypeError: x\n    at process.tick (node:internal/process/task_queues:95:5)\n"
    "    at getUser (/app/src/users.js:10:15)",
    "net": "System.Exception: x\n   at System.Net.Http.HttpClient.Send()\n"
    "   at Shop.Api.OrderController.Get(Int32 id) in /src/OrderController.cs:line 42",
}


def _varied_events() -> list[ErrorEvent]:
    out = [
        ErrorEvent(
            0,
            Signal.TRACES,
            (ErrorReason.EXCEPTION,),
            "svc-" + name,
            exception_type="x." + name.upper() + "Error",
            exception_message=f"order 12 for bob@example.com at /var/data/x.db took 35ms ({name})",
            exception_stacktrace=stack,
        )
        for name, stack in _LANG_STACKS.items()
    ]
    out.append(
        ErrorEvent(
            0,
            Signal.LOGS,
            (ErrorReason.LOG_SEVERITY,),
            "orders",
            body='java.net.ConnectException: Connection refused to "db-1" 10.0.0.7:5432\n'
            "\tat com.shop.Db.open(Db.java:10)",
        )
    )
    out.append(ErrorEvent(0, Signal.TRACES, (ErrorReason.HTTP_STATUS,), "gw", http_status_code=503))
    out.append(
        ErrorEvent(
            0, Signal.TRACES, (ErrorReason.GRPC_STATUS,), "gw", grpc_status_code=14, status_message="  \n"
        )
    )
    return out


def test_group_ids_do_not_change_between_versions() -> None:
    """Stored groups are keyed by these ids: a faster fingerprint must give the same ones."""
    got = [
        (f.exception_type, f.message_template, f.top_frame, f.group_id)
        for f in map(fingerprint, _varied_events())
    ]
    assert got == [
        (
            "PYError",
            "order <NUM> for <EMAIL> at <PATH> took <NUM> (py)",
            "/app/shop/api.py:handler",
            "96a1de93f6b474ce",
        ),
        (
            "GOError",
            "order <NUM> for <EMAIL> at <PATH> took <NUM> (go)",
            "main.(*Server).handle",
            "533a02ec0ab603c2",
        ),
        (
            "NODEError",
            "order <NUM> for <EMAIL> at <PATH> took <NUM> (node)",
            "getUser (/app/src/users.js)",
            "c4a580ebb4b366cb",
        ),
        (
            "NETError",
            "order <NUM> for <EMAIL> at <PATH> took <NUM> (net)",
            "Shop.Api.OrderController.Get",
            "3eab1709af49ed22",
        ),
        (
            "ConnectException",
            "java.net.ConnectException: Connection refused to <STR> <IP>",
            "com.shop.Db.open",
            "d98be4e512c4141f",
        ),
        ("", "HTTP 503", "", "bd40d49c3ef5fbd2"),
        ("", "gRPC 14", "", "e1ae85f2447e0de9"),
    ]


def test_fingerprints_of_a_batch_are_those_of_each_event() -> None:
    events = (
        _varied_events()
        + [ev(i, msg=f"order {i} in bad state", line=i) for i in range(20)]
        + _varied_events()
    )
    assert fingerprints(events) == [fingerprint(e) for e in events]
    assert fingerprints([]) == []
