"""Detection of errors in decoded span and log tables, per the OpenTelemetry semantic conventions.

The masks are computed column-wise with ``pyarrow.compute`` (this runs on every batch); only
the rows that are errors, usually few, are turned into Python :class:`ErrorEvent` values.

A span is an error when any of these holds (its reasons list all that do):

- ``status_code == ERROR``;
- it recorded an exception event (``exception_type`` or ``exception_message`` set);
- ``http_status_code`` >= 500, or >= 400 on a CLIENT span (4xx on a server span is the
  caller's fault and leaves the server span unset, per the HTTP conventions);
- ``rpc_grpc_status_code`` in :data:`GRPC_SERVER_ERROR_CODES` on a SERVER span (UNKNOWN,
  DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS), or any non-OK code
  on a CLIENT span; spans of other kinds use the server rule;
- ``error_type`` is set (the conventions set ``error.type`` only when the operation failed).

A log record is an error when ``severity_number >= 17`` (ERROR, ERROR2-4, FATAL..FATAL4), or
when the number is 0/absent and ``severity_text`` names an error level, or when it carries
``exception.*`` or ``error.type`` attributes. An error log with a trace and span id is
correlated to that span when the span is in the ``spans`` table given alongside: the event
then gets the span's name as its operation and ``correlated=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.errors.model import ErrorEvent, ErrorReason, SpanKind
from faultlens.types import Signal

STATUS_ERROR = 2
SEVERITY_ERROR = 17  # SeverityNumber.ERROR; 17..24 are ERROR..FATAL4
GRPC_SERVER_ERROR_CODES: tuple[int, ...] = (2, 4, 12, 13, 14, 15)
ERROR_SEVERITY_TEXT = r"(?i)^\s*(err|error\d?|fatal\d?|crit|critical|alert|emerg|emergency|panic|severe)\s*$"
UNKNOWN_SERVICE = "unknown_service"

# Typed Arrow scalars, made once: pyarrow converts a Python scalar argument on every call,
# and each conversion tries to import ``dateutil`` (~0.25 ms when it is not installed).
_I8_0 = pa.scalar(0, pa.int8())
_CLIENT = pa.scalar(int(SpanKind.CLIENT), pa.int8())
_STATUS_ERROR = pa.scalar(STATUS_ERROR, pa.int8())
_SEVERITY_ERROR = pa.scalar(SEVERITY_ERROR, pa.int8())
_HTTP_400 = pa.scalar(400, pa.int32())
_HTTP_500 = pa.scalar(500, pa.int32())
_GRPC_OK = pa.scalar(0, pa.int32())
_EMPTY = pa.scalar("", pa.string())
_FALSE = pa.scalar(False, pa.bool_())
_GRPC_SERVER_ERRORS = pa.array(GRPC_SERVER_ERROR_CODES, pa.int32())


def _fill(arr: pa.ChunkedArray | pa.Array, value: pa.Scalar) -> pa.ChunkedArray | pa.Array:
    return pc.fill_null(arr, value)


def span_error_masks(spans: pa.Table) -> dict[ErrorReason, pa.ChunkedArray]:
    """One boolean column per reason, without nulls, aligned with ``spans``' rows."""
    kind = _fill(spans.column("kind"), _I8_0)
    is_client = pc.equal(kind, _CLIENT)
    http = spans.column("http_status_code")
    grpc = spans.column("rpc_grpc_status_code")
    http_err = pc.or_kleene(
        pc.greater_equal(http, _HTTP_500),
        pc.and_kleene(is_client, pc.greater_equal(http, _HTTP_400)),
    )
    grpc_err = pc.if_else(
        is_client,
        pc.not_equal(grpc, _GRPC_OK),
        pc.is_in(grpc, value_set=_GRPC_SERVER_ERRORS),
    )
    etype = spans.column("error_type")
    masks = {
        ErrorReason.SPAN_STATUS: pc.equal(spans.column("status_code"), _STATUS_ERROR),
        ErrorReason.EXCEPTION: pc.or_kleene(
            pc.is_valid(spans.column("exception_type")), pc.is_valid(spans.column("exception_message"))
        ),
        ErrorReason.HTTP_STATUS: http_err,
        ErrorReason.GRPC_STATUS: grpc_err,
        ErrorReason.ERROR_TYPE: pc.and_kleene(pc.is_valid(etype), pc.not_equal(etype, _EMPTY)),
    }
    return {reason: _fill(m, _FALSE) for reason, m in masks.items()}


def log_error_masks(logs: pa.Table) -> dict[ErrorReason, pa.ChunkedArray]:
    """One boolean column per reason, without nulls, aligned with ``logs``' rows."""
    number = _fill(logs.column("severity_number"), _I8_0)
    by_text = pc.and_kleene(
        pc.equal(number, _I8_0),
        pc.match_substring_regex(logs.column("severity_text"), ERROR_SEVERITY_TEXT),
    )
    etype = logs.column("error_type")
    masks = {
        ErrorReason.LOG_SEVERITY: pc.or_kleene(pc.greater_equal(number, _SEVERITY_ERROR), by_text),
        ErrorReason.EXCEPTION: pc.or_kleene(
            pc.is_valid(logs.column("exception_type")), pc.is_valid(logs.column("exception_message"))
        ),
        ErrorReason.ERROR_TYPE: pc.and_kleene(pc.is_valid(etype), pc.not_equal(etype, _EMPTY)),
    }
    return {reason: _fill(m, _FALSE) for reason, m in masks.items()}


def _error_rows(
    masks: dict[ErrorReason, pa.ChunkedArray],
) -> tuple[npt.NDArray[np.intp], list[tuple[ErrorReason, ...]]]:
    """The rows where any mask holds, in order, and the reasons of each (in the masks' order).

    The masks become one bit each of an int per row, so only the error rows cost Python work.
    """
    reasons = list(masks)
    bits: npt.NDArray[np.int64] | None = None
    for i, m in enumerate(masks.values()):
        arr = np.asarray(m.to_numpy(zero_copy_only=False), dtype=np.int64) << i
        bits = arr if bits is None else bits | arr
    if bits is None:
        return np.zeros(0, dtype=np.intp), []
    rows = np.flatnonzero(bits)
    known: dict[int, tuple[ErrorReason, ...]] = {}
    why = []
    for code in bits[rows].tolist():
        got = known.get(code)
        if got is None:
            got = known[code] = tuple(r for i, r in enumerate(reasons) if code >> i & 1)
        why.append(got)
    return rows, why


def _columns(table: pa.Table, columns: tuple[str, ...], rows: npt.NDArray[np.intp]) -> list[list[Any]]:
    taken = table.select(list(columns)).take(pa.array(rows, pa.int64()))
    return [taken.column(c).to_pylist() for c in columns]


_SPAN_COLUMNS = (
    "start_time_unix_nano",
    "service_name",
    "name",
    "trace_id",
    "span_id",
    "kind",
    "k8s_pod_name",
    "exception_type",
    "exception_message",
    "exception_stacktrace",
    "status_message",
    "http_status_code",
    "rpc_grpc_status_code",
    "error_type",
    "peer_service",
    "server_address",
)


def detect_span_errors(spans: pa.Table) -> list[ErrorEvent]:
    """Every erroneous span of ``spans`` (schema ``SPAN_SCHEMA``), in row order."""
    if spans.num_rows == 0:
        return []
    rows, reasons = _error_rows(span_error_masks(spans))
    if not reasons:
        return []
    events = []
    kinds = SpanKind._value2member_map_
    for (
        start,
        service,
        name,
        trace_id,
        span_id,
        kind,
        pod,
        etype,
        emessage,
        stack,
        status_message,
        http,
        grpc,
        error_type,
        peer_service,
        server_address,
    ), why in zip(zip(*_columns(spans, _SPAN_COLUMNS, rows), strict=True), reasons, strict=True):
        events.append(
            ErrorEvent(
                time_ns=int(start),
                signal=Signal.TRACES,
                reasons=why,
                service=service or UNKNOWN_SERVICE,
                operation=name,
                trace_id=trace_id,
                span_id=span_id,
                span_kind=SpanKind(kind) if kind in kinds else None,
                pod=pod,
                exception_type=etype,
                exception_message=emessage,
                exception_stacktrace=stack,
                status_message=status_message or None,
                http_status_code=http,
                grpc_status_code=grpc,
                error_type=error_type or None,
                peer=peer_service or server_address,
            )
        )
    return events


_LOG_COLUMNS = (
    "time_unix_nano",
    "service_name",
    "trace_id",
    "span_id",
    "k8s_pod_name",
    "exception_type",
    "exception_message",
    "exception_stacktrace",
    "error_type",
    "severity_number",
    "severity_text",
    "body",
)


def _span_names(spans: pa.Table | None) -> dict[tuple[bytes, bytes], str]:
    if spans is None or spans.num_rows == 0:
        return {}
    t = spans.select(["trace_id", "span_id", "name"]).to_pydict()
    return {
        (tid, sid): name or "" for tid, sid, name in zip(t["trace_id"], t["span_id"], t["name"], strict=True)
    }


def detect_log_errors(logs: pa.Table, spans: pa.Table | None = None) -> list[ErrorEvent]:
    """Every error log record of ``logs`` (schema ``LOG_SCHEMA``), correlated to ``spans``."""
    if logs.num_rows == 0:
        return []
    rows, reasons = _error_rows(log_error_masks(logs))
    if not reasons:
        return []
    names = _span_names(spans)
    events = []
    for (
        time_ns,
        service,
        tid,
        sid,
        pod,
        etype,
        emessage,
        stack,
        error_type,
        severity_number,
        severity_text,
        body,
    ), why in zip(zip(*_columns(logs, _LOG_COLUMNS, rows), strict=True), reasons, strict=True):
        op = names.get((tid, sid)) if tid and sid else None
        events.append(
            ErrorEvent(
                time_ns=int(time_ns),
                signal=Signal.LOGS,
                reasons=why,
                service=service or UNKNOWN_SERVICE,
                operation=op or None,
                trace_id=tid or None,
                span_id=sid or None,
                pod=pod,
                exception_type=etype,
                exception_message=emessage,
                exception_stacktrace=stack,
                error_type=error_type or None,
                severity_number=severity_number,
                severity_text=severity_text,
                body=body,
                correlated=op is not None,
            )
        )
    return events


def detect_errors(spans: pa.Table | None = None, logs: pa.Table | None = None) -> list[ErrorEvent]:
    """Errors of both signals: spans first, then logs (correlated to the given spans)."""
    events = detect_span_errors(spans) if spans is not None else []
    if logs is not None:
        events.extend(detect_log_errors(logs, spans))
    return events
