"""Expected rows computed the slow way, straight from the generated OTLP messages.

Nothing here is shared with the columnar decoder except ``any_to_python``, so the tests
compare two independent readings of the same request.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.decode.attributes import any_to_python


def attrs_dict(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_to_python(kv.value) for kv in kvs}


def expected_spans(req: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """Rows as the schema documents them, computed straight from the messages."""
    rows = []
    for rs in req.resource_spans:
        res = attrs_dict(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                exc = next((e for e in s.events if e.name == "exception"), None)
                exc_attrs = attrs_dict(exc.attributes) if exc else {}
                rows.append(
                    {
                        "trace_id": s.trace_id,
                        "span_id": s.span_id,
                        "parent_span_id": s.parent_span_id or None,
                        "name": s.name,
                        "kind": s.kind,
                        "start_time_unix_nano": s.start_time_unix_nano,
                        "end_time_unix_nano": s.end_time_unix_nano,
                        "duration_ns": s.end_time_unix_nano - s.start_time_unix_nano,
                        "status_code": s.status.code,
                        "status_message": s.status.message,
                        "flags": s.flags,
                        "service_name": res.get("service.name"),
                        "k8s_pod_name": res.get("k8s.pod.name"),
                        "scope_name": ss.scope.name,
                        "scope_version": ss.scope.version,
                        "attributes": attrs_dict(s.attributes),
                        "resource_attributes": res,
                        "exception_type": exc_attrs.get("exception.type"),
                        "exception_message": exc_attrs.get("exception.message"),
                        "events": [
                            {
                                "time_unix_nano": e.time_unix_nano,
                                "name": e.name,
                                "attributes": attrs_dict(e.attributes),
                            }
                            for e in s.events
                        ],
                        "links": [
                            {
                                "trace_id": lk.trace_id,
                                "span_id": lk.span_id,
                                "trace_state": lk.trace_state,
                                "attributes": attrs_dict(lk.attributes),
                            }
                            for lk in s.links
                        ],
                    }
                )
    return rows


def decoded_rows(table: Any, columns: list[str]) -> list[dict[str, Any]]:
    """Table rows restricted to ``columns``, with JSON columns parsed back."""
    rows = table.select(columns).to_pylist()
    for row in rows:
        for key in ("attributes", "resource_attributes"):
            if key in row and row[key] is not None:
                row[key] = json.loads(row[key])
        for key in ("events", "links"):
            for item in row.get(key) or []:
                item["attributes"] = json.loads(item["attributes"])
    return rows
