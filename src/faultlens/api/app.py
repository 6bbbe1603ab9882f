"""The query API application: routes over a :class:`~faultlens.store.base.StoreReader`.

Store reads block, so every route that touches the store is a plain ``def``: FastAPI runs it
in its threadpool and the event loop keeps serving ``/healthz`` and ``/metrics`` meanwhile.

Errors are mapped here, once:

- bad parameters -> 422, FastAPI's validation body naming the parameter;
- :class:`~faultlens.errors.UnsupportedQuery` -> 400 with the store's message;
- any other :class:`~faultlens.errors.StoreError` -> 503 (the store cannot answer now), with
  ``Retry-After`` when it is :class:`~faultlens.errors.StoreBusy` (reads queued too long);
- an unknown trace -> 404; anything unexpected -> 500 "internal error", logged, and the
  server keeps serving.

Before any route, :class:`~faultlens.api.security.SecurityMiddleware` refuses a request whose
``Host`` is not a name of this server (421) or that lacks a good bearer token when auth is
on (401); ``/healthz`` and ``/readyz`` stay open for probes.

List endpoints ask the store for ``limit + 1`` items so they can say exactly whether the
answer was cut (``truncated``) without a second query.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faultlens.api import models as m
from faultlens.api.health import HealthState
from faultlens.api.params import (
    INT64_MAX,
    Severity,
    TraceIdBytes,
    TraceStatus,
    UnixNanos,
    invalid_param,
    time_range,
)
from faultlens.api.security import ApiSecurity, SecurityMiddleware
from faultlens.durations import parse_duration_s
from faultlens.errors import StoreError, UnsupportedQuery
from faultlens.selfmetrics import CONTENT_TYPE_LATEST, SelfMetrics
from faultlens.store.analysis_base import AnalysisReader
from faultlens.store.base import (
    AttributeCondition,
    LogQuery,
    MetricAggregation,
    MetricNameQuery,
    MetricQuery,
    MetricSeriesQuery,
    StoreReader,
    TraceQuery,
)
from faultlens.store.window import WindowReader
from faultlens.timeparse import TIME_SYNTAX

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
MAX_DURATION_MS = Decimal(INT64_MAX // 1_000_000)  # keeps the nanosecond value in int64

_TIME_DOC = TIME_SYNTAX[0].upper() + TIME_SYNTAX[1:] + "."
START = Annotated[UnixNanos | None, Query(description="Inclusive lower bound. " + _TIME_DOC)]
END = Annotated[UnixNanos | None, Query(description="Exclusive upper bound. " + _TIME_DOC)]
_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": m.ErrorResponse, "description": "The store cannot answer this query exactly."},
    503: {"model": m.ErrorResponse, "description": "The store failed to answer."},
}


def _limit(default: int) -> object:
    return Query(
        ge=1, le=MAX_LIMIT, description=f"Maximum items returned (1..{MAX_LIMIT}, default {default})."
    )


def create_app(
    reader: StoreReader,
    metrics: SelfMetrics,
    health: HealthState,
    analysis: AnalysisReader | None = None,
    windows: WindowReader | None = None,
    security: ApiSecurity | None = None,
) -> FastAPI:
    """The API over ``reader``; ``/metrics`` renders ``metrics``; ``/readyz`` reads ``health``.

    ``security`` (Host allow-list, bearer tokens) defaults to :class:`ApiSecurity`'s default:
    no auth, loopback names only; the server builds it with ``ApiSecurity.from_config``.

    With ``analysis``, the analysis endpoints (errors, templates, RED, anomalies, incidents)
    are served too (:mod:`faultlens.api.analysis_routes`). With ``windows``, the service
    graph and root-cause endpoints are (:mod:`faultlens.api.rca_routes`; the incident RCA
    route needs ``analysis`` as well).
    """
    app = FastAPI(
        title="faultlens query API",
        version="1",
        description="Read the traces, logs and metric points faultlens stored. See docs/api.md.",
        docs_url=None,  # /docs is served by faultlens.ui from vendored files (works offline)
        redoc_url=None,
    )
    _add_error_handlers(app)
    app.add_middleware(SecurityMiddleware, security=security or ApiSecurity())  # outermost
    if analysis is not None:
        from faultlens.api.analysis_routes import analysis_router

        app.include_router(analysis_router(analysis), responses=_ERRORS)
    if windows is not None:
        from faultlens.api.rca_routes import rca_router

        app.include_router(rca_router(windows, analysis), responses=_ERRORS)
    from faultlens.api.jaeger import jaeger_router, parse_tags  # Jaeger's query API, for Grafana

    app.include_router(jaeger_router(reader, windows))

    @app.get("/api/v1/services", responses=_ERRORS, tags=["query"])
    def services() -> m.ServicesResponse:
        """Every service with stored items of any signal (spans, logs, metric points), sorted."""
        return m.ServicesResponse(services=sorted(reader.services()))

    @app.get("/api/v1/operations", responses=_ERRORS, tags=["query"])
    def operations(
        service: Annotated[str, Query(min_length=1, description="Service name (required).")],
    ) -> m.OperationsResponse:
        """The span names of a service with their span kind. Unknown service: empty list."""
        ops = sorted(reader.operations(service), key=lambda o: (o.name, o.kind))
        return m.OperationsResponse(
            service=service, operations=[m.OperationOut(name=o.name, kind=m.kind_name(o.kind)) for o in ops]
        )

    @app.get("/api/v1/traces", responses=_ERRORS, tags=["query"])
    def traces(
        service: Annotated[str | None, Query(min_length=1, description="Some span has this service.")] = None,
        operation: Annotated[
            str | None, Query(min_length=1, description="Some span has this name (and service, if given).")
        ] = None,
        status: Annotated[
            TraceStatus, Query(description="`error`: the trace has an error span; `any`: no filter.")
        ] = TraceStatus.ANY,
        min_duration_ms: Annotated[
            Decimal | None,
            Query(
                ge=0,
                le=MAX_DURATION_MS,
                description="Trace duration at least this many milliseconds (decimals allowed).",
            ),
        ] = None,
        max_duration_ms: Annotated[
            Decimal | None,
            Query(
                ge=0,
                le=MAX_DURATION_MS,
                description="Trace duration at most this many milliseconds (decimals allowed).",
            ),
        ] = None,
        attrs: Annotated[
            str | None,
            Query(
                min_length=1,
                description="Attribute conditions that must all hold on one span (with service and "
                "operation), its own attributes or its resource's: logfmt as the UI and Grafana write "
                'them (`http.route=/pay k8s.pod.name="a b"`) or a JSON object. A value matches as text: '
                "`500`, `true`, `0.5`.",
            ),
        ] = None,
        start: START = None,
        end: END = None,
        limit: Annotated[int, _limit(20)] = 20,
    ) -> m.TracesResponse:
        """Summaries of traces with at least one span matching every condition, newest first."""
        min_ns = None if min_duration_ms is None else _ms_to_ns_ceil(min_duration_ms)
        max_ns = None if max_duration_ms is None else int(max_duration_ms * 1_000_000)  # rounds down
        if min_ns is not None and max_ns is not None and max_ns < min_ns:
            raise invalid_param("max_duration_ms", "below min_duration_ms", str(max_duration_ms))
        try:
            tags = parse_tags(attrs) if attrs is not None else {}
        except ValueError as e:
            raise invalid_param("attrs", str(e), attrs) from None
        query = TraceQuery(
            service=service,
            operation=operation,
            status_error=status is TraceStatus.ERROR,
            min_duration_ns=min_ns,
            max_duration_ns=max_ns,
            attributes=tuple(AttributeCondition(k, v) for k, v in tags.items()),
            time_range=time_range(start, end),
            limit=limit + 1,
        )
        found = reader.find_traces(query)
        return m.TracesResponse(
            traces=[m.TraceSummaryOut.of(s) for s in found[:limit]], limit=limit, truncated=len(found) > limit
        )

    @app.get(
        "/api/v1/traces/{trace_id}",
        response_model=m.TraceOut,
        responses={404: {"model": m.ErrorResponse, "description": "No such trace."}, **_ERRORS},
        tags=["query"],
    )
    def trace(
        trace_id: Annotated[TraceIdBytes, Path(description="32 hexadecimal digits, either case.")],
    ) -> Response:
        """Every span of one trace, ordered by start time, and the log records carrying its id."""
        found = reader.get_trace_text(trace_id)
        if found is None:
            raise HTTPException(404, f"trace {trace_id.hex()} not found")
        # TraceOut's body, written without a model per span (a 5k-span trace: half the time)
        # and with the stored attribute text written as it is where orjson would spell it so
        return Response(m.trace_text_json(found), media_type="application/json")

    @app.get("/api/v1/logs", responses=_ERRORS, tags=["query"])
    def logs(
        service: Annotated[str | None, Query(min_length=1)] = None,
        severity: Annotated[
            Severity | None,
            Query(
                description="TRACE, DEBUG, INFO, WARN, ERROR or FATAL (that level and above, any case) "
                "or a SeverityNumber 1..24 (that number and above)."
            ),
        ] = None,
        trace_id: Annotated[TraceIdBytes | None, Query(description="32 hexadecimal digits.")] = None,
        q: Annotated[
            str | None, Query(min_length=1, description="Case-insensitive substring of the body.")
        ] = None,
        start: START = None,
        end: END = None,
        limit: Annotated[int, _limit(100)] = 100,
    ) -> m.LogsResponse:
        """Log records matching every condition, newest first."""
        query = LogQuery(
            service=service,
            min_severity=severity,
            trace_id=trace_id,
            text=q,
            time_range=time_range(start, end),
            limit=limit + 1,
        )
        found = reader.find_logs(query)
        return m.LogsResponse(
            logs=[m.LogOut.of(r) for r in found[:limit]], limit=limit, truncated=len(found) > limit
        )

    @app.get("/api/v1/metrics", responses=_ERRORS, tags=["query"])
    def metric_points(
        name: Annotated[str | None, Query(min_length=1, description="Metric name.")] = None,
        service: Annotated[str | None, Query(min_length=1)] = None,
        start: START = None,
        end: END = None,
        limit: Annotated[int, _limit(MAX_LIMIT)] = MAX_LIMIT,
    ) -> m.MetricsResponse:
        """Metric data points matching every condition, oldest first."""
        query = MetricQuery(name=name, service=service, time_range=time_range(start, end), limit=limit + 1)
        found = reader.find_metric_points(query)
        return m.MetricsResponse(
            points=[m.MetricPointOut.of(p) for p in found[:limit]], limit=limit, truncated=len(found) > limit
        )

    @app.get("/api/v1/metrics/names", responses=_ERRORS, tags=["query"])
    def metric_names(
        service: Annotated[str | None, Query(min_length=1)] = None,
        start: START = None,
        end: END = None,
        limit: Annotated[int, _limit(MAX_LIMIT)] = MAX_LIMIT,
    ) -> m.MetricNamesResponse:
        """The metric names with points in the range (and of the service), newest first."""
        query = MetricNameQuery(service=service, time_range=time_range(start, end), limit=limit + 1)
        found = reader.metric_names(query)
        return m.MetricNamesResponse(
            names=[m.MetricNameOut.of(n) for n in found[:limit]], limit=limit, truncated=len(found) > limit
        )

    @app.get("/api/v1/metrics/series", responses=_ERRORS, tags=["query"])
    def metric_series(
        name: Annotated[str, Query(min_length=1, description="Metric name.")],
        start: Annotated[UnixNanos, Query(description="Inclusive start of the first step. " + _TIME_DOC)],
        end: Annotated[UnixNanos, Query(description="Exclusive end of the range. " + _TIME_DOC)],
        step: Annotated[
            str, Query(description="Step length, e.g. 10s, 1m (the range may hold 11,000 steps at most).")
        ] = "1m",
        aggregation: Annotated[
            MetricAggregation, Query(description="How the points of a step fold into one value.")
        ] = MetricAggregation.AVG,
        service: Annotated[str | None, Query(min_length=1)] = None,
    ) -> m.MetricSeriesResponse:
        """One metric per step and per service: avg, min, max, sum, count, or rate (per second,
        from each series' increases, a decrease counting as a reset) of its points."""
        try:
            step_ns = int(parse_duration_s(step) * 1e9)
        except ValueError as e:
            raise invalid_param("step", str(e), step) from None
        if step_ns <= 0:
            raise invalid_param("step", "must be positive", step)
        window = time_range(start, end)
        assert window is not None
        query = MetricSeriesQuery(name, window, step_ns, aggregation, service)
        return m.MetricSeriesResponse.of(query, reader.metric_series(query))

    @app.get("/api/v1/stats", responses=_ERRORS, tags=["query"])
    def stats() -> m.StatsResponse:
        """How many spans, log records and metric points are stored."""
        s = reader.stats()
        return m.StatsResponse(spans=s.spans, logs=s.logs, metric_points=s.metric_points)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
        tags=["operations"],
    )
    def prometheus() -> Response:
        """faultlens's own metrics in the Prometheus text format."""
        return Response(content=metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> m.HealthResponse:
        """Liveness: 200 whenever the process answers HTTP."""
        return m.HealthResponse(status="ok")

    @app.get(
        "/readyz",
        responses={503: {"model": m.ReadinessResponse, "description": "Some component is not ready."}},
        tags=["operations"],
    )
    async def readyz() -> JSONResponse:
        """Readiness: 200 when every declared component is ready, else 503 with the reasons."""
        r = health.readiness()
        body = m.ReadinessResponse(
            status="ready" if r.ready else "not ready",
            components={name: reason or "ok" for name, reason in sorted(r.components.items())},
            reasons=r.reasons,
            details=r.details,
        )
        return JSONResponse(body.model_dump(), status_code=200 if r.ready else 503)

    from faultlens.ui import mount_ui  # the web UI: pages over the same readers, /static, /docs

    mount_ui(app, reader=reader, metrics=metrics, health=health, analysis=analysis, graph=windows is not None)
    return app


def _ms_to_ns_ceil(ms: Decimal) -> int:
    """Milliseconds to whole nanoseconds, rounding up: a duration is a whole number of
    nanoseconds, so "at least 0.0000015 ms" means exactly "at least 2 ns"."""
    ns = ms * 1_000_000
    whole = int(ns)
    return whole + 1 if ns > whole else whole


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UnsupportedQuery)
    async def unsupported(_: Request, exc: UnsupportedQuery) -> JSONResponse:
        return JSONResponse({"detail": str(exc) or "unsupported query"}, status_code=400)

    @app.exception_handler(StoreError)
    async def store_failed(_: Request, exc: StoreError) -> JSONResponse:
        log.warning("store query failed: %s", exc)
        retry = getattr(exc, "retry_after_s", None)  # StoreBusy: reads queued too long
        headers = {"Retry-After": str(max(1, round(retry)))} if retry is not None else None
        return JSONResponse({"detail": f"store error: {exc}"}, status_code=503, headers=headers)

    app.add_middleware(_InternalErrors)


class _InternalErrors:
    """Answer an unexpected exception with 500 "internal error" and log it, without re-raising.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then resets
    the connection, so the client may never read the 500. A bug in one request must cost
    that request only.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in query API (%s %s)", scope.get("method"), scope.get("path"))
            if not started:
                response = JSONResponse({"detail": "internal error"}, status_code=500)
                await response(scope, receive, send)
