"""Jaeger's HTTP query API over the same store readers, so Grafana's Jaeger data source reads faultlens.

Grafana's Jaeger data source (grafana/grafana ``public/app/plugins/datasource/jaeger``) talks to
the internal HTTP API the Jaeger UI uses, not to a documented one. It makes these requests,
and these are the routes here::

    GET /api/services                              data: [service names]
    GET /api/services/{service}/operations         data: [operation names]
    GET /api/operations?service=&spanKind=         data: [{name, spanKind}]   (the newer form)
    GET /api/traces?service=&operation=&tags=&start=&end=&lookback=&minDuration=&maxDuration=&limit=
                                                   data: [trace, ...]   (full traces, newest first)
    GET /api/traces/{traceID}                      data: [trace]        404 when unknown
    GET /api/dependencies?endTs=&lookback=         data: [{parent, child, callCount}]

Every body is Jaeger's envelope ``{"data", "total", "limit", "offset", "errors"}``; an error
is the same envelope with ``data: null`` and ``errors: [{"code", "msg"}]``, which is what
Grafana shows. Times follow Jaeger, not the rest of the API: ``start``/``end`` are Unix
**microseconds**, ``endTs``/``lookback`` of dependencies are milliseconds, durations are Go
duration strings (``1.2s``, ``100ms``, read by :func:`faultlens.durations.parse_duration_s`).

**Exact or refused.** A search runs as one :class:`~faultlens.store.base.TraceQuery`; a
condition it cannot express is refused with 400 naming the parameter, never approximated:

- ``tags``: each ``key=value`` is an :class:`~faultlens.store.base.AttributeCondition` on the
  span matching service and operation: the span's attribute, or its process's (resource)
  attribute, whose value as text is ``value`` (``500``, ``true``, ``0.5``). ``error=true``
  and ``otel.status_code=ERROR``, which the translation below sets exactly on spans whose
  status is ERROR, are the store's ``status_error`` on that same span. The other tags the
  translation makes up (``span.kind``, ``otel.status_code=OK``, ``otel.status_description``,
  ``otel.scope.name``, ``w3c.tracestate``) are not attributes, and are refused. Jaeger's
  own backends also match a tag against span log fields (OTLP event attributes); the store
  does not search events, so such a search finds fewer traces here than in Jaeger.
- ``minDuration``/``maxDuration``: the duration of that same span (Jaeger's meaning, not the
  trace's), both inclusive, compared in whole microseconds as Jaeger shows durations.

**OTLP to Jaeger** follows the OpenTelemetry Collector's jaeger translator
(``pkg/translator/jaeger``): the parent is a ``CHILD_OF`` reference and links are
``FOLLOWS_FROM``; span kind becomes a ``span.kind`` tag (``server``, ``client``, ...); status
becomes ``otel.status_code`` (``OK``/``ERROR``), ``otel.status_description`` and
``error=true``; the scope name becomes ``otel.scope.name``; the trace state becomes
``w3c.tracestate``; events become logs whose ``event`` field is the event name; resource
attributes other than ``service.name`` are the process tags. Attribute values keep their
type (string, bool, int64, float64); arrays and maps are their JSON text, as in the
Collector. The store keeps bytes values as base64 text, so they come back as strings. Log
records of the trace have no place in Jaeger's model and are left out.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from faultlens.api.params import INT64_MAX, SPAN_KIND_NAMES, parse_trace_id
from faultlens.api.rca_routes import RcaSettings, service_graph
from faultlens.decode.attributes import json_text
from faultlens.durations import parse_duration_s
from faultlens.errors import StoreError, UnsupportedQuery
from faultlens.store.base import AttributeCondition, SpanRecord, StoreReader, Trace, TraceQuery
from faultlens.store.window import WindowReader
from faultlens.types import TimeRange

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "JaegerError", "jaeger_router", "jaeger_trace", "parse_tags"]

DEFAULT_LIMIT = 20
"""Traces a search returns when ``limit`` is absent or 0 (the Jaeger UI's search form default)."""
MAX_LIMIT = 1000
DEFAULT_DEPENDENCY_LOOKBACK_MS = 24 * 3600 * 1000  # Jaeger's default for /api/dependencies

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
STATUS_OK = 1
STATUS_ERROR = 2
SERVICE_NAME = "service.name"
NO_SERVICE_NAME = "OTLP_ResourceNoServiceName"  # the Collector's name for a resource without one
STATUS_ERROR_TAGS = {("error", "true"), ("otel.status_code", "ERROR")}
"""Tags the translation sets exactly on ERROR spans: the store's ``status_error``."""
SYNTHETIC_TAGS = (
    "span.kind",
    "otel.status_code",
    "otel.status_description",
    "otel.scope.name",
    "w3c.tracestate",
)
"""Tags the translation makes up from fields that are not attributes: a search by them is refused."""


class JaegerError(Exception):
    """A request answered with Jaeger's error envelope: ``status`` and a message naming the cause."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def envelope(data: Any, total: int | None = None) -> dict[str, Any]:
    """Jaeger's structured response (``structuredResponse`` in jaeger's HTTP handler)."""
    n = total if total is not None else (len(data) if isinstance(data, list) else 0)
    return {"data": data, "total": n, "limit": 0, "offset": 0, "errors": None}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": status, "msg": message}]}


# --- parameters ----------------------------------------------------------------------------


def _duration_ns(name: str, text: str) -> int:
    """A duration parameter (``1.2s``, ``100ms``, ``2d``: the project's one duration parser) in ns."""
    try:
        return round(parse_duration_s(text) * 1e9)
    except ValueError as e:
        raise JaegerError(400, f"unable to parse param '{name}': {e}") from None


def _span_duration_bounds(params: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``minDuration``/``maxDuration`` as the store's inclusive span duration bounds in ns.

    Jaeger keeps span durations in whole microseconds and compares them with the given
    durations, so a span of ``d`` ns is kept when ``floor(d / 1 us)`` us is within them."""
    lo = hi = None
    if text := params.get("minDuration"):
        lo = -(-_duration_ns("minDuration", text) // NS_PER_US) * NS_PER_US
    if text := params.get("maxDuration"):
        hi = (_duration_ns("maxDuration", text) // NS_PER_US + 1) * NS_PER_US - 1
    return lo, hi


def _int_param(name: str, text: str | None, unit: str) -> int | None:
    """A non-negative decimal integer parameter (Jaeger's times are bare integers in ``unit``)."""
    if text is None or text == "":
        return None
    value = text.strip()
    if not (value.isascii() and value.isdigit()):
        raise JaegerError(400, f"unable to parse param '{name}': {text!r} is not an integer of {unit}")
    return int(value)


def parse_tags(text: str) -> dict[str, str]:
    """``tags`` as Jaeger takes it (a JSON object of strings) or as Grafana's search form shows
    it (logfmt: ``k=v k2="v 2"``). Raises ``ValueError``."""
    value = text.strip()
    if value.startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError as e:
            raise ValueError(f"not a JSON object: {e}") from None
        if not isinstance(parsed, dict):
            raise ValueError("not a JSON object")
        return {str(k): v if isinstance(v, str) else json_text(v) for k, v in parsed.items()}
    try:
        words = shlex.split(value)
    except ValueError as e:
        raise ValueError(f"not logfmt: {e}") from None
    tags: dict[str, str] = {}
    for word in words:
        key, eq, val = word.partition("=")
        if not key:
            raise ValueError(f"not logfmt: {word!r} has no key")
        tags[key] = val if eq else "true"  # logfmt: a bare key is a true flag
    return tags


@dataclass(frozen=True, slots=True)
class TraceSearch:
    """A Jaeger search, checked and translated to the store's :class:`TraceQuery`."""

    query: TraceQuery
    limit: int

    @classmethod
    def parse(cls, params: Mapping[str, str], now_ns: int) -> TraceSearch:
        """Validate Jaeger's search parameters; refuse what the store cannot answer exactly."""
        service = params.get("service") or None
        if service is None:
            raise JaegerError(400, "parameter 'service' is required")
        operation = params.get("operation") or None
        status_error = False
        attributes: list[AttributeCondition] = []
        if tags_text := params.get("tags"):
            try:
                tags = parse_tags(tags_text)
            except ValueError as e:
                raise JaegerError(400, f"malformed 'tags' parameter: {e}") from None
            for key, value in tags.items():
                if (key, value) in STATUS_ERROR_TAGS:
                    status_error = True
                elif key in SYNTHETIC_TAGS:
                    raise JaegerError(
                        400,
                        f"cannot search by tag {key}={value}: {key} is made from the span's kind, status "
                        "or scope, not an attribute (error=true and otel.status_code=ERROR are answered)",
                    )
                else:
                    attributes.append(AttributeCondition(key, value))
        span_min_ns, span_max_ns = _span_duration_bounds(params)
        limit = _int_param("limit", params.get("limit"), "traces") or DEFAULT_LIMIT
        if limit > MAX_LIMIT:
            raise JaegerError(400, f"'limit' must be at most {MAX_LIMIT}")
        return cls(
            TraceQuery(
                service=service,
                operation=operation,
                status_error=status_error,
                attributes=tuple(attributes),
                span_min_duration_ns=span_min_ns,
                span_max_duration_ns=span_max_ns,
                time_range=_search_range(params, now_ns),
                limit=limit,
            ),
            limit,
        )


def _search_range(params: Mapping[str, str], now_ns: int) -> TimeRange | None:
    """Span start times ``start <= t <= end`` (microseconds, both inclusive as in Jaeger) as the
    half-open nanosecond range. Without ``start``, ``lookback`` (a duration; ``custom`` means
    none) counts back from ``end`` or now; with neither, the range is open below."""
    start_us = _int_param("start", params.get("start"), "microseconds")
    end_us = _int_param("end", params.get("end"), "microseconds")
    lookback = params.get("lookback") or "custom"
    if start_us is None and end_us is None and lookback == "custom":
        return None
    hi = INT64_MAX if end_us is None else min(INT64_MAX, (end_us + 1) * NS_PER_US)
    if start_us is not None:
        lo = start_us * NS_PER_US
    elif lookback != "custom":
        lo = max(0, (now_ns if end_us is None else hi) - _duration_ns("lookback", lookback))
    else:
        lo = 0
    if lo > INT64_MAX or hi < lo:
        raise JaegerError(400, "'end' is before 'start'" if lo <= INT64_MAX else "'start' is out of range")
    return TimeRange(lo, hi)


# --- OTLP to Jaeger ------------------------------------------------------------------------


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    return {"key": key, "type": "string", "value": "" if value is None else json_text(value)}


def _span_tags(span: SpanRecord) -> list[dict[str, Any]]:
    tags = [_tag(k, v) for k, v in span.attributes.items()]
    if span.scope_name:
        tags.append(_tag("otel.scope.name", span.scope_name))
    if span.kind in SPAN_KIND_NAMES and span.kind > 0:
        tags.append(_tag("span.kind", SPAN_KIND_NAMES[span.kind].lower()))
    if span.status_code == STATUS_OK:
        tags.append(_tag("otel.status_code", "OK"))
    elif span.status_code == STATUS_ERROR:
        tags.append(_tag("otel.status_code", "ERROR"))
        tags.append(_tag("error", True))
    if span.status_message:
        tags.append(_tag("otel.status_description", span.status_message))
    if span.trace_state:
        tags.append(_tag("w3c.tracestate", span.trace_state))
    return tags


def _references(span: SpanRecord) -> list[dict[str, str]]:
    refs = []
    if span.parent_span_id:
        parent = span.parent_span_id.hex()
        refs.append({"refType": "CHILD_OF", "traceID": span.trace_id.hex(), "spanID": parent})
    for link in span.links:
        refs.append({"refType": "FOLLOWS_FROM", "traceID": link.trace_id.hex(), "spanID": link.span_id.hex()})
    return refs


def jaeger_trace(trace: Trace) -> dict[str, Any]:
    """One stored trace in Jaeger's JSON model (see the module docstring for the mapping).

    Spans keep the store's order (by start time); a process is one (service, resource
    attributes) pair, numbered ``p1``, ``p2``, ... in order of first appearance.
    """
    processes: dict[str, dict[str, Any]] = {}
    process_ids: dict[str, str] = {}
    spans = []
    for span in trace.spans:
        service = span.service or str(span.resource_attributes.get(SERVICE_NAME) or NO_SERVICE_NAME)
        resource = {k: v for k, v in span.resource_attributes.items() if k != SERVICE_NAME}
        key = json_text([service, resource])
        pid = process_ids.get(key)
        if pid is None:
            pid = process_ids[key] = f"p{len(process_ids) + 1}"
            processes[pid] = {"serviceName": service, "tags": [_tag(k, v) for k, v in resource.items()]}
        start_us = span.start_time_unix_nano // NS_PER_US
        spans.append(
            {
                "traceID": span.trace_id.hex(),
                "spanID": span.span_id.hex(),
                "operationName": span.name,
                "references": _references(span),
                "startTime": start_us,
                "duration": max(0, span.end_time_unix_nano - span.start_time_unix_nano) // NS_PER_US,
                "tags": _span_tags(span),
                "logs": [
                    {
                        "timestamp": e.time_unix_nano // NS_PER_US,
                        "fields": [_tag("event", e.name), *(_tag(k, v) for k, v in e.attributes.items())],
                    }
                    for e in span.events
                ],
                "processID": pid,
                "warnings": None,
                "flags": 1,  # sampled: an unsampled span is never exported, so never stored
            }
        )
    return {"traceID": trace.trace_id.hex(), "spans": spans, "processes": processes, "warnings": None}


# --- routes --------------------------------------------------------------------------------


class _JaegerRoute(APIRoute):
    """Answers every failure of a Jaeger route in Jaeger's error envelope, not the API's
    ``{"detail"}`` body: Grafana shows ``errors[0].msg``. The mapping is the API's (400 for a
    bad parameter or :class:`UnsupportedQuery`, 503 with ``Retry-After`` for a store error)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def jaeger_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except JaegerError as e:
                return JSONResponse(error_body(e.status, e.message), status_code=e.status)
            except RequestValidationError as e:
                problems = "; ".join(f"{err['loc'][-1]}: {err['msg']}" for err in e.errors())
                return JSONResponse(error_body(400, f"bad parameter: {problems}"), status_code=400)
            except UnsupportedQuery as e:
                return JSONResponse(error_body(400, str(e) or "unsupported query"), status_code=400)
            except StoreError as e:
                retry = getattr(e, "retry_after_s", None)
                headers = {"Retry-After": str(max(1, round(retry)))} if retry is not None else None
                return JSONResponse(error_body(503, f"store error: {e}"), status_code=503, headers=headers)

        return jaeger_handler


def jaeger_router(
    reader: StoreReader,
    windows: WindowReader | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> APIRouter:
    """The Jaeger query routes over ``reader``; with ``windows`` (the service graph's reader)
    ``/api/dependencies`` too. ``clock`` gives now in Unix nanoseconds (for ``lookback``
    without ``end``, and ``endTs`` when absent)."""
    # Not in faultlens's OpenAPI: this is Jaeger's (undocumented, internal) API, described in
    # docs/api.md; /openapi.json stays the description of faultlens's own.
    router = APIRouter(tags=["jaeger"], route_class=_JaegerRoute, include_in_schema=False)

    @router.get("/api/services")
    def services() -> dict[str, Any]:
        """Every service with stored items, sorted (Grafana's service list and data source test)."""
        return envelope(sorted(reader.services()))

    @router.get("/api/services/{service:path}/operations")  # a name may hold an encoded "/"
    def service_operations(service: str) -> dict[str, Any]:
        """The distinct span names of a service, sorted (Grafana's operation list)."""
        return envelope(sorted({o.name for o in reader.operations(service)}))

    @router.get("/api/operations")
    def operations(
        service: Annotated[str | None, Query()] = None,
        span_kind: Annotated[str | None, Query(alias="spanKind")] = None,
    ) -> dict[str, Any]:
        """Span names with their kind (``server``, ``client``, ...; ``""`` when unspecified)."""
        if not service:
            raise JaegerError(400, "parameter 'service' is required")
        kinds = {k: SPAN_KIND_NAMES[k].lower() if k > 0 else "" for k in SPAN_KIND_NAMES}
        wanted = (span_kind or "").lower()
        if wanted and wanted not in kinds.values():
            choices = ", ".join(v for v in kinds.values() if v)
            raise JaegerError(400, f"unsupported 'spanKind' {span_kind!r}: one of {choices}")
        found = sorted({(o.name, kinds.get(o.kind, "")) for o in reader.operations(service)})
        return envelope([{"name": n, "spanKind": k} for n, k in found if not wanted or k == wanted])

    @router.get("/api/traces")
    def find_traces(request: Request) -> dict[str, Any]:
        """Full traces with a span matching every condition, newest first (Grafana's search)."""
        search = TraceSearch.parse(request.query_params, clock())
        traces = []
        for summary in reader.find_traces(search.query)[: search.limit]:
            trace = reader.get_trace(summary.trace_id)
            if trace is not None and trace.spans:  # retention may delete it between the reads
                traces.append(jaeger_trace(trace))
        return envelope(traces)

    @router.get("/api/traces/{trace_id}")
    def get_trace(trace_id: str) -> dict[str, Any]:
        """One trace (Grafana's trace view). Jaeger's 64-bit ids (16 digits) are zero-padded."""
        try:
            raw = parse_trace_id(trace_id.lower().rjust(32, "0") if len(trace_id) < 32 else trace_id)
        except ValueError as e:
            raise JaegerError(400, f"malformed trace id {trace_id!r}: {e}") from None
        trace = reader.get_trace(raw)
        if trace is None or not trace.spans:
            raise JaegerError(404, "trace not found")
        return envelope([jaeger_trace(trace)])

    if windows is None:
        return router
    graph_windows = windows

    @router.get("/api/dependencies")
    def dependencies(
        end_ts: Annotated[str | None, Query(alias="endTs")] = None,
        lookback: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        """Calls between services whose callee span starts in ``(endTs - lookback, endTs]`` (ms)."""
        end_ms = _int_param("endTs", end_ts, "milliseconds")
        back_ms = _int_param("lookback", lookback, "milliseconds")
        hi = min(INT64_MAX, (clock() if end_ms is None else (end_ms + 1) * NS_PER_MS))
        lo = max(0, hi - (DEFAULT_DEPENDENCY_LOOKBACK_MS if back_ms is None else back_ms) * NS_PER_MS)
        graph = service_graph(graph_windows, TimeRange(lo, hi), RcaSettings().parent_margin_ns)
        calls: dict[tuple[str, str], int] = {}
        for edge in graph.edges:  # one Jaeger link per (parent, child): edge kinds add up
            calls[(edge.caller, edge.callee)] = calls.get((edge.caller, edge.callee), 0) + edge.calls
        return envelope([{"parent": p, "child": c, "callCount": n} for (p, c), n in sorted(calls.items())])

    return router
