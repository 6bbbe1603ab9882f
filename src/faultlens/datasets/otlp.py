"""Turn dataset records into OTLP export requests (the ``opentelemetry-proto`` messages).

Records are grouped by resource (one per pod, or per pod and container for logs), so a
request looks like what an OpenTelemetry SDK in that pod would have sent. Nothing is
invented: spans carry no kind and no status because the data has none; logs carry the
severity parsed from their text. Pod metrics become gauges, one metric per numeric column,
named by a generic rule (:func:`metric_identity`) that works for any column header, with
the original column kept as the ``nezha.column`` attribute; rows about calls between two
services carry the other end as ``peer.service``.

``time_offset_ns`` is added to every timestamp (replay's ``--shift-to-now``); ids and
everything else pass through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from faultlens import __version__
from faultlens.datasets.records import LogRecord, MetricRecord, SpanRecord

SCOPE_NAME = "faultlens.datasets.replay"
COLUMN_ATTRIBUTE = "nezha.column"
PEER_ATTRIBUTE = "peer.service"  # the other end of a call edge (OpenTelemetry's attribute)

_UNIT = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^)]*)\)\s*$")
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+")
# Units as printed in column headers -> UCUM-style units used by OpenTelemetry.
_UNITS = {
    "m": "{millicpu}",
    "%": "%",
    "s": "s",
    "ms": "ms",
    "us": "us",
    "ns": "ns",
    "b": "By",
    "bytes": "By",
    "ki": "KiBy",
    "mi": "MiBy",
    "gi": "GiBy",
    "kb": "kBy",
    "mb": "MBy",
    "ops": "{operation}",
}
# Column prefixes that say which entity a measurement is about.
_ENTITY_PREFIXES = {"pod": "pod", "node": "node", "container": "container", "service": "service"}


@dataclass(frozen=True, slots=True)
class MetricIdentity:
    name: str
    unit: str
    column: str


@lru_cache(maxsize=1024)
def metric_identity(column: str, per_pod: bool = True) -> MetricIdentity:
    """Name and unit of the gauge made from one metric column.

    ``CpuUsage(m)`` -> ``container.cpu.usage`` in ``{millicpu}``; ``PodClientLatencyP90(s)``
    -> ``pod.client.latency.p90`` in ``s``; ``NodeMemoryUsageRate(%)`` ->
    ``node.memory.usage.rate`` in ``%``. Columns of service-level files (no pod) get the
    ``service.`` prefix. Values are never rescaled: the unit says what they are.
    """
    m = _UNIT.match(column)
    base, unit_text = (m.group("name"), m.group("unit")) if m else (column, "")
    words = [w.lower() for w in _WORDS.findall(base)] or ["value"]
    if words[0] in _ENTITY_PREFIXES:
        words[0] = _ENTITY_PREFIXES[words[0]]
    else:
        words.insert(0, "container" if per_pod else "service")
    unit = _UNITS.get(unit_text.strip().lower(), unit_text.strip())
    if not unit and words[-1] == "bytes":
        unit = "By"
    return MetricIdentity(".".join(words), unit, column)


class OtlpConverter:
    """Builds one export request from a sequence of records of one signal.

    ``pod_nodes`` maps pods to the node they run on, where known; it is shared with and
    may grow while converting (logs name their node).
    """

    def __init__(self, *, pod_nodes: dict[str, str] | None = None, time_offset_ns: int = 0) -> None:
        self.pod_nodes: dict[str, str] = pod_nodes if pod_nodes is not None else {}
        self.time_offset_ns = time_offset_ns
        self._scope = InstrumentationScope(name=SCOPE_NAME, version=__version__)

    def traces(self, spans: Sequence[SpanRecord]) -> ExportTraceServiceRequest:
        request = ExportTraceServiceRequest()
        groups: dict[tuple[str, str], ResourceSpans] = {}
        off = self.time_offset_ns
        for s in spans:
            key = (s.service, s.pod)
            rs = groups.get(key)
            if rs is None:
                rs = groups[key] = request.resource_spans.add()
                rs.resource.CopyFrom(self._resource(s.service, s.pod))
                rs.scope_spans.add().scope.CopyFrom(self._scope)
            span = rs.scope_spans[0].spans.add()
            span.trace_id = s.trace_id
            span.span_id = s.span_id
            if s.parent_span_id:
                span.parent_span_id = s.parent_span_id
            span.name = s.name
            span.start_time_unix_nano = s.start_ns + off
            span.end_time_unix_nano = s.end_ns + off
        return request

    def logs(self, records: Sequence[LogRecord]) -> ExportLogsServiceRequest:
        request = ExportLogsServiceRequest()
        groups: dict[tuple[str, str, str, str], ResourceLogs] = {}
        off = self.time_offset_ns
        for r in records:
            if r.node:
                self.pod_nodes.setdefault(r.pod, r.node)
            key = (r.service, r.pod, r.container, r.node)
            rl = groups.get(key)
            if rl is None:
                rl = groups[key] = request.resource_logs.add()
                rl.resource.CopyFrom(self._resource(r.service, r.pod, container=r.container, node=r.node))
                rl.scope_logs.add().scope.CopyFrom(self._scope)
            rec = rl.scope_logs[0].log_records.add()
            rec.time_unix_nano = r.time_ns + off
            rec.observed_time_unix_nano = r.time_ns + off
            rec.severity_number = r.severity_number  # type: ignore[assignment]
            if r.severity_text:
                rec.severity_text = r.severity_text
            rec.body.string_value = r.body
            if r.trace_id:
                rec.trace_id = r.trace_id
            if r.span_id:
                rec.span_id = r.span_id
            attrs = rec.attributes
            if r.logger:
                attrs.append(_kv("code.location", r.logger))
                _, sep, line = r.logger.rpartition("#")
                if sep and line.isdigit():
                    attrs.append(KeyValue(key="code.line.number", value=AnyValue(int_value=int(line))))
            if r.stream:
                attrs.append(_kv("log.iostream", r.stream))
        return request

    def metrics(self, rows: Sequence[MetricRecord]) -> ExportMetricsServiceRequest:
        request = ExportMetricsServiceRequest()
        groups: dict[tuple[str, str], tuple[ResourceMetrics, dict[str, Metric]]] = {}
        off = self.time_offset_ns
        for row in rows:
            key = (row.service, row.pod)  # edge rows of one service share its resource
            group = groups.get(key)
            if group is None:
                rm = request.resource_metrics.add()
                rm.resource.CopyFrom(self._resource(row.service, row.pod))
                rm.scope_metrics.add().scope.CopyFrom(self._scope)
                group = groups[key] = (rm, {})
            rm, by_name = group
            for column, value in row.values:
                ident = metric_identity(column, bool(row.pod))
                metric = by_name.get(ident.name)
                if metric is None:
                    metric = by_name[ident.name] = rm.scope_metrics[0].metrics.add()
                    metric.name = ident.name
                    metric.unit = ident.unit
                    metric.description = f"column {column}"
                point = metric.gauge.data_points.add()
                point.time_unix_nano = row.time_ns + off
                point.as_double = value
                point.attributes.append(_kv(COLUMN_ATTRIBUTE, column))
                if row.peer:
                    point.attributes.append(_kv(PEER_ATTRIBUTE, row.peer))
        return request

    def _resource(self, service: str, pod: str, *, container: str = "", node: str = "") -> Resource:
        attrs = [_kv("service.name", service)]
        if pod:
            attrs.append(_kv("k8s.pod.name", pod))
            attrs.append(_kv("service.instance.id", pod))
        if container:
            attrs.append(_kv("k8s.container.name", container))
        node = node or self.pod_nodes.get(pod, "")
        if node:
            attrs.append(_kv("k8s.node.name", node))
        return Resource(attributes=attrs)


def item_count(record: SpanRecord | LogRecord | MetricRecord) -> int:
    """How many OTLP items (spans, log records, data points) one record becomes."""
    return len(record.values) if isinstance(record, MetricRecord) else 1


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))
