"""Dataset records as decoded Arrow tables (SPAN_SCHEMA, LOG_SCHEMA, METRIC_SCHEMA).

Why this exists: the RCA core reads the same Arrow tables the pipeline's decode stage
produces, but the evaluation reads a Nezha-layout directory directly instead of replaying
it through OTLP (the full replay replaces this module later). The conversion mirrors what
:class:`faultlens.datasets.otlp.OtlpConverter` puts on the wire and decode turns into
columns: ``service.name`` and ``k8s.pod.name`` on every row, the log's ``code.location``
in the ``attributes`` JSON, metric names from :func:`faultlens.datasets.otlp.metric_identity`.
Columns the data does not have stay null, as decode leaves them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pyarrow as pa

from faultlens.datasets.otlp import COLUMN_ATTRIBUTE, PEER_ATTRIBUTE, metric_identity
from faultlens.datasets.records import LogRecord, MetricRecord, SpanRecord
from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA

__all__ = ["TABLES_VERSION", "logs_table", "metrics_table", "spans_table"]

TABLES_VERSION = 2
"""What these tables hold, for caches of them (``eval rca --cache-dir``): 2 since the metric
points carry a call edge's ``peer.service``."""


def _complete(columns: dict[str, list[object]], schema: pa.Schema, n: int) -> pa.Table:
    arrays = []
    for f in schema:
        values = columns.get(f.name)
        arrays.append(pa.nulls(n, f.type) if values is None else pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def spans_table(records: Iterable[SpanRecord]) -> pa.Table:
    """Spans as SPAN_SCHEMA rows: no kind and no status, as the data has none."""
    recs = list(records)
    cols: dict[str, list[object]] = {
        "trace_id": [r.trace_id for r in recs],
        "span_id": [r.span_id for r in recs],
        "parent_span_id": [r.parent_span_id or None for r in recs],
        "name": [r.name for r in recs],
        "start_time_unix_nano": [r.start_ns for r in recs],
        "end_time_unix_nano": [r.end_ns for r in recs],
        "duration_ns": [r.end_ns - r.start_ns for r in recs],
        "service_name": [r.service for r in recs],
        "k8s_pod_name": [r.pod or None for r in recs],
        "service_instance_id": [r.pod or None for r in recs],
    }
    return _complete(cols, SPAN_SCHEMA, len(recs))


def logs_table(records: Iterable[LogRecord]) -> pa.Table:
    """Log records as LOG_SCHEMA rows; the logger goes to ``attributes['code.location']``."""
    recs = list(records)
    cols: dict[str, list[object]] = {
        "time_unix_nano": [r.time_ns for r in recs],
        "observed_time_unix_nano": [r.time_ns for r in recs],
        "severity_number": [r.severity_number for r in recs],
        "severity_text": [r.severity_text or None for r in recs],
        "body": [r.body for r in recs],
        "trace_id": [r.trace_id or None for r in recs],
        "span_id": [r.span_id or None for r in recs],
        "service_name": [r.service for r in recs],
        "k8s_pod_name": [r.pod or None for r in recs],
        "service_instance_id": [r.pod or None for r in recs],
        "attributes": [json.dumps({"code.location": r.logger}) if r.logger else None for r in recs],
    }
    return _complete(cols, LOG_SCHEMA, len(recs))


def metrics_table(records: Iterable[MetricRecord]) -> pa.Table:
    """One METRIC_SCHEMA gauge point per (row, numeric column), named and attributed as replay
    sends it (the source column, and ``peer.service`` for a call edge's row)."""
    cols: dict[str, list[object]] = {
        k: []
        for k in (
            "metric_name",
            "metric_unit",
            "metric_type",
            "time_unix_nano",
            "value",
            "service_name",
            "k8s_pod_name",
            "attributes",
        )
    }
    attrs: dict[tuple[str, str], str] = {}
    for r in records:
        for column, value in r.values:
            ident = metric_identity(column, bool(r.pod))
            cols["metric_name"].append(ident.name)
            cols["metric_unit"].append(ident.unit)
            cols["metric_type"].append("gauge")
            cols["time_unix_nano"].append(r.time_ns)
            cols["value"].append(value)
            cols["service_name"].append(r.service)
            cols["k8s_pod_name"].append(r.pod or None)
            a = attrs.get((column, r.peer))
            if a is None:
                peer = {PEER_ATTRIBUTE: r.peer} if r.peer else {}
                a = attrs[(column, r.peer)] = json.dumps({COLUMN_ATTRIBUTE: column, **peer})
            cols["attributes"].append(a)
    return _complete(cols, METRIC_SCHEMA, len(cols["value"]))
