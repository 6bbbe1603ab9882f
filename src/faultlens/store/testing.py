"""Builders of decoded batches for tests: rows of the exact Arrow schemas with defaults filled.

Tests of the store, the API or analysis need data in a store without going through OTLP;
these helpers let a test state only the fields it cares about::

    batch = spans_batch([span_row(trace_id=T1, name="GET /", service_name="front")])

Ids given as ``int`` are turned into fixed-width bytes (16 for trace ids, 8 for span ids) so
tests can write ``trace_id=1``.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from faultlens.decode.base import DecodedBatch
from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.types import Signal

__all__ = [
    "log_row",
    "logs_batch",
    "metric_row",
    "metrics_batch",
    "span_id",
    "span_row",
    "spans_batch",
    "trace_id",
]


def trace_id(n: int | bytes) -> bytes:
    """A 16-byte trace id from a small number (bytes pass through)."""
    return n if isinstance(n, bytes) else n.to_bytes(16, "big")


def span_id(n: int | bytes) -> bytes:
    """An 8-byte span id from a small number (bytes pass through)."""
    return n if isinstance(n, bytes) else n.to_bytes(8, "big")


def _json(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict) else value


def _row(schema: pa.Schema, values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(schema.names)
    if unknown:
        raise KeyError(f"not columns of the schema: {sorted(unknown)}")
    return {name: _json(values.get(name)) for name in schema.names}


def span_row(
    trace: int | bytes = 1,
    span: int | bytes = 1,
    parent: int | bytes | None = None,
    *,
    start: int = 1_000,
    duration: int = 100,
    **columns: Any,
) -> dict[str, Any]:
    """One span row; ``attributes`` / ``resource_attributes`` may be given as dicts."""
    events = columns.pop("events", None)
    if events is not None:
        events = [{**e, "attributes": _json(e.get("attributes"))} for e in events]
    links = columns.pop("links", None)
    if links is not None:
        links = [{**lk, "attributes": _json(lk.get("attributes"))} for lk in links]
    values: dict[str, Any] = {
        "trace_id": trace_id(trace),
        "span_id": span_id(span),
        "parent_span_id": None if parent is None else span_id(parent),
        "name": "op",
        "kind": 1,
        "start_time_unix_nano": start,
        "end_time_unix_nano": start + duration,
        "duration_ns": duration,
        "status_code": 0,
        "events": events,
        "links": links,
        **columns,
    }
    return _row(SPAN_SCHEMA, values)


def log_row(
    *, time: int = 1_000, trace: int | bytes | None = None, span: int | bytes | None = None, **columns: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "time_unix_nano": time,
        "observed_time_unix_nano": time,
        "severity_number": 9,
        "severity_text": "INFO",
        "body": "hello",
        "trace_id": None if trace is None else trace_id(trace),
        "span_id": None if span is None else span_id(span),
        **columns,
    }
    return _row(LOG_SCHEMA, values)


def metric_row(
    *, name: str = "m", time: int = 1_000, value: float | None = 1.0, **columns: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "metric_name": name,
        "metric_type": "gauge",
        "time_unix_nano": time,
        "value": value,
        **columns,
    }
    return _row(METRIC_SCHEMA, values)


def spans_batch(rows: list[dict[str, Any]]) -> DecodedBatch:
    return DecodedBatch(Signal.TRACES, pa.Table.from_pylist(rows, schema=SPAN_SCHEMA))


def logs_batch(rows: list[dict[str, Any]]) -> DecodedBatch:
    return DecodedBatch(Signal.LOGS, pa.Table.from_pylist(rows, schema=LOG_SCHEMA))


def metrics_batch(rows: list[dict[str, Any]]) -> DecodedBatch:
    return DecodedBatch(Signal.METRICS, pa.Table.from_pylist(rows, schema=METRIC_SCHEMA))
