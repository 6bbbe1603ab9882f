"""The pages of the web UI: server-rendered over the readers the API uses.

Each page is a Jinja2 template filled from the same :class:`~faultlens.store.base.StoreReader`
and :class:`~faultlens.store.analysis_base.AnalysisReader` the JSON API reads, converted by
the API's own body models (``TraceSummaryOut.of``, ``IncidentDetail.of``...), so a page
shows exactly what ``/api/v1`` answers and there is no second query layer. What is drawn
in the browser (RED charts, the trace waterfall, the service map) fetches the API's JSON
from the page (``static/js/``), or reads figures the page embeds as JSON.

Every page's state is in its URL (filters are query parameters; htmx swaps the results of
a filter form and pushes the new URL), so any view can be shared. Times are rendered as
RFC 3339 in UTC inside ``<time>`` elements; ``static/js/faultlens.js`` shows them in the
browser's zone (still RFC 3339, with the local offset), the UTC form in the tooltip.

Bad parameters render the page with the problem named next to the form and status 422,
like the API; a store that cannot answer renders an error page with the status the API
would give (400 for a query it cannot answer exactly, 503, with ``Retry-After`` when its
reads are busy), and the server keeps serving.
Routes are plain ``def`` (store reads block; FastAPI runs them in its threadpool).

Two forms change something: merging error groups and splitting them again (``POST``, through
the same functions as the API's routes, with the store work off the event loop). A form
posted from another site's page is refused (403), since a server without auth would
otherwise take it from any page open in the same browser.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from faultlens.analysis.errors.grouping import ErrorGroup
from faultlens.api import models as m
from faultlens.api.analysis_routes import (
    ErrorGroupDetail,
    ErrorGroupOut,
    IncidentDetail,
    IncidentOut,
    TemplateOut,
    merge_groups,
    split_group,
)
from faultlens.api.health import HealthState
from faultlens.api.jaeger import parse_tags
from faultlens.api.params import INT64_MAX, parse_severity, parse_time, parse_trace_id
from faultlens.errors import StoreError, UnsupportedQuery
from faultlens.rca.incident import rfc3339
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.analysis_base import (
    AnalysisReader,
    ErrorGroupEditor,
    ErrorGroupQuery,
    IncidentQuery,
    TemplateQuery,
)
from faultlens.store.base import (
    AttributeCondition,
    AttributeQuery,
    LogQuery,
    LogRecord,
    StoreReader,
    TraceQuery,
)
from faultlens.types import TimeRange
from faultlens.ui.assets import STATIC_DIR, asset_path
from faultlens.ui.logmatch import TemplateShape

__all__ = ["LOOKBACKS", "mount_ui"]

NS_PER_S = 1_000_000_000
LOOKBACKS: dict[str, int] = {
    "15m": 15 * 60 * NS_PER_S,
    "1h": 3600 * NS_PER_S,
    "6h": 6 * 3600 * NS_PER_S,
    "24h": 24 * 3600 * NS_PER_S,
    "7d": 7 * 24 * 3600 * NS_PER_S,
}
"""The time ranges the pages offer, counted back from the newest data the analysis has seen."""

DEFAULT_GRAPH_LOOKBACK = "15m"
"""What the map and a service's page show by default: the graph is built from the spans of
the range, and a busy hour (a million spans) is more than one read may hold."""

MAX_LIMIT = 1000
TEMPLATE_CHANGES = ("all", "new", "missing")
TEMPLATE_SCAN = 10_000
"""Templates read to filter them by change or find one by id (the store filters by service)."""
TEMPLATE_LOG_SCAN = 5_000
"""Newest log lines holding a template's constant text that are tested against its shape."""
MAX_DURATION_MS = 10**12  # ~31 years: beyond it a duration is a typo, and past int64 ns
SUGGEST_SAMPLE = 2000
"""Newest spans (of the service) whose attributes the search suggests keys and values from."""
SUGGEST_KEYS = 100
SUGGEST_VALUES = 30
INCIDENT_MARGIN_NS = 60 * NS_PER_S  # an incident page's logs, map and error groups reach this far around it
_TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _duration(ns: float | None) -> str:
    """A duration for people: ``850 us``, ``12.3 ms``, ``4.21 s``, ``3.5 min``."""
    if ns is None or ns != ns:  # None or NaN
        return "-"
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.0f} us"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.3g} ms"
    if ns < 120 * NS_PER_S:
        return f"{ns / NS_PER_S:.3g} s"
    return f"{ns / (60 * NS_PER_S):.3g} min"


_TEMPLATES.env.filters["duration"] = _duration
_TEMPLATES.env.filters["rfc3339"] = lambda ns: "" if ns is None else rfc3339(int(ns))
_TEMPLATES.env.filters["percent"] = lambda x: f"{100 * x:.1f}%"
_TEMPLATES.env.globals["asset"] = asset_path


@dataclass
class _Form:
    """A page's query parameters as given (to refill the form) and the problems found."""

    values: dict[str, str]
    problems: list[str] = field(default_factory=list)

    def text(self, name: str) -> str | None:
        value = self.values.get(name, "").strip()
        return value or None

    def time(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return parse_time(value)
        except ValueError as e:
            self.problems.append(f"{name}: {e}")
            return None

    def limit(self, default: int) -> int:
        value = self.text("limit")
        if value is None:
            return default
        if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
            self.problems.append(f"limit: a whole number 1..{MAX_LIMIT}")
            return default
        return int(value)

    def time_range(self, latest_ns: int) -> TimeRange | None:
        """``start``/``end`` when given, else from ``last`` (a :data:`LOOKBACKS` key) before
        ``latest_ns`` on; None for all time."""
        start, end = self.time("start"), self.time("end")
        last = self.text("last")
        if start is None and end is None:
            if last is None or last == "all":
                return None
            if last not in LOOKBACKS:
                self.problems.append(f"last: one of {', '.join(LOOKBACKS)} or all")
                return None
            return TimeRange(max(0, latest_ns - LOOKBACKS[last]), INT64_MAX)  # and anything newer
        lo, hi = start or 0, end if end is not None else INT64_MAX
        if hi < lo:
            self.problems.append("end: end is before start")
            return None
        return TimeRange(lo, hi)


def _form(request: Request) -> _Form:
    return _Form({k: v for k, v in request.query_params.items()})


def mount_ui(
    app: FastAPI,
    *,
    reader: StoreReader,
    metrics: SelfMetrics,
    health: HealthState,
    analysis: AnalysisReader | None = None,
    graph: bool = False,
) -> None:
    """Serve the UI's pages, ``/static`` (the package's assets) and ``/docs`` (Swagger UI
    from the vendored files) on ``app``. ``analysis`` adds the analysis pages' content;
    ``graph`` says whether ``/api/v1/graph`` is served (the map page draws it).

    The app's middleware (Host allow-list, auth) runs before these routes as before any
    other, so the pages are exactly as protected as the API.
    """
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(_router(reader, metrics, health, analysis, graph), include_in_schema=False)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=asset_path("swagger-ui-dist", "swagger-ui-bundle.js"),
            swagger_css_url=asset_path("swagger-ui-dist", "swagger-ui.css"),
            swagger_favicon_url="/static/favicon.svg",
        )


P = ParamSpec("P")


def _store_errors(route: Callable[P, HTMLResponse]) -> Callable[P, HTMLResponse]:
    """Render a store failure inside a page route as an error page with the API's status."""

    @functools.wraps(route)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> HTMLResponse:
        try:
            return route(*args, **kwargs)
        except StoreError as e:
            request = kwargs["request"]
            assert isinstance(request, Request)
            return _store_error_page(request, e)

    return guarded


def _store_error_page(request: Request, e: StoreError) -> HTMLResponse:
    status = 400 if isinstance(e, UnsupportedQuery) else 503
    retry = getattr(e, "retry_after_s", None)  # StoreBusy
    response = _TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"nav": "", "analysis": False, "message": f"The store could not answer: {e}"},
        status_code=status,
    )
    if retry is not None:
        response.headers["Retry-After"] = str(max(1, round(retry)))
    return response


def _router(
    reader: StoreReader,
    metrics: SelfMetrics,
    health: HealthState,
    analysis: AnalysisReader | None,
    graph: bool,
) -> APIRouter:
    router = APIRouter()
    editor = analysis if isinstance(analysis, ErrorGroupEditor) else None

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("nav", name.removesuffix(".html"))
        context.setdefault("analysis", analysis is not None)
        return _TEMPLATES.TemplateResponse(request, name, context, status_code=status)

    def latest_ns() -> int:
        """The newest data time the analysis reached, else the wall clock: "the last hour"
        of a replayed day is that day's last hour, not an empty hour of today."""
        watermark = metrics.registry.get_sample_value("faultlens_analysis_watermark_seconds")
        return int(watermark * NS_PER_S) if watermark else time.time_ns()

    @router.get("/", response_class=HTMLResponse)
    @_store_errors
    def overview(request: Request) -> HTMLResponse:
        end = latest_ns()
        incidents: list[dict[str, Any]] = []
        groups: list[dict[str, Any]] = []
        if analysis is not None:
            found = analysis.incidents(IncidentQuery(state="open", limit=20))
            answers = analysis.root_causes([i.id for i in found])
            incidents = [IncidentOut.of(i, answers.get(i.id)).model_dump() for i in found]
            groups = [
                ErrorGroupOut.of(s.group, s.count_in_range).model_dump()
                for s in analysis.error_groups(ErrorGroupQuery(limit=10))
            ]
        return page(
            request,
            "overview.html",
            services=sorted(reader.services()),
            red_start=end - LOOKBACKS["1h"],
            red_end=end + 1,
            incidents=incidents,
            groups=groups,
            ingest=_ingest_health(metrics),
            readiness=health.readiness(),
            stats=reader.stats(),
        )

    @router.get("/traces", response_class=HTMLResponse)
    @_store_errors
    def traces(request: Request) -> HTMLResponse:
        form = _form(request)
        status = form.text("status") or "any"
        if status not in ("any", "error"):
            form.problems.append("status: any or error")
        min_ns, max_ns = _duration_ns(form, "min_duration_ms"), _duration_ns(form, "max_duration_ms")
        if min_ns is not None and max_ns is not None and max_ns < min_ns:
            form.problems.append("max_duration_ms: below the minimum duration")
        query = TraceQuery(
            service=form.text("service"),
            operation=form.text("operation"),
            status_error=status == "error",
            min_duration_ns=min_ns,
            max_duration_ns=max_ns,
            attributes=_attribute_conditions(form),
            time_range=form.time_range(latest_ns()),
            limit=form.limit(50) + 1,
        )
        found: list[dict[str, Any]] = []
        truncated = False
        if not form.problems:
            summaries = reader.find_traces(query)
            truncated = len(summaries) >= query.limit
            found = [m.TraceSummaryOut.of(s).model_dump() for s in summaries[: query.limit - 1]]
        points = [
            [
                t["start_time_unix_nano"] / NS_PER_S,
                t["duration_ns"] / 1e6,
                t["error_count"] > 0,
                t["trace_id"],
            ]
            for t in found
        ]
        return page(
            request,
            "traces.html",
            status=422 if form.problems else 200,
            form=form,
            services=sorted(reader.services()),
            operations=_operations(reader, form.text("service")),
            traces=found,
            points=points,
            truncated=truncated,
            lookbacks=list(LOOKBACKS),
        )

    @router.get("/traces/{trace_id}", response_class=HTMLResponse)
    @_store_errors
    def trace(request: Request, trace_id: str) -> HTMLResponse:
        try:
            parsed = parse_trace_id(trace_id).hex()
        except ValueError as e:
            return page(request, "error.html", status=422, nav="traces", message=f"trace id: {e}")
        compare = request.query_params.get("compare")
        return page(request, "trace.html", nav="traces", trace_id=parsed, compare=compare)

    @router.get("/map", response_class=HTMLResponse)
    @_store_errors
    def service_map(request: Request) -> HTMLResponse:
        form = _form(request)
        if form.text("last") is None and form.text("start") is None and form.text("end") is None:
            form.values["last"] = DEFAULT_GRAPH_LOOKBACK
        window = form.time_range(latest_ns())
        return page(
            request,
            "map.html",
            nav="map",
            status=422 if form.problems else 200,
            form=form,
            graph=graph,
            start=None if window is None else window.start_ns,
            end=None if window is None else window.end_ns,
            focus=form.text("service") or "",
            incident=form.text("incident") or "",
            lookbacks=list(LOOKBACKS),
        )

    @router.get("/services/{service}", response_class=HTMLResponse)
    @_store_errors
    def service(request: Request, service: str) -> HTMLResponse:
        form = _form(request)
        if form.text("last") is None and form.text("start") is None and form.text("end") is None:
            form.values["last"] = DEFAULT_GRAPH_LOOKBACK
        window = form.time_range(latest_ns())
        groups: list[dict[str, Any]] = []
        if analysis is not None and not form.problems:
            q = ErrorGroupQuery(service=service, time_range=window, limit=20)
            groups = [
                ErrorGroupOut.of(s.group, s.count_in_range).model_dump() for s in analysis.error_groups(q)
            ]
        return page(
            request,
            "service.html",
            nav="overview",
            status=422 if form.problems else 200,
            form=form,
            service=service,
            known=service in reader.services(),
            start=None if window is None else window.start_ns,
            end=None if window is None else window.end_ns,
            groups=groups,
            graph=graph,
            lookbacks=list(LOOKBACKS),
        )

    @router.get("/incidents", response_class=HTMLResponse)
    @_store_errors
    def incidents(request: Request) -> HTMLResponse:
        form = _form(request)
        state = form.text("state")
        if state not in (None, "open", "resolved"):
            form.problems.append("state: open or resolved")
            state = None
        limit = form.limit(100)
        found: list[dict[str, Any]] = []
        if analysis is not None and not form.problems:
            rows = analysis.incidents(IncidentQuery(state=state, limit=limit))
            answers = analysis.root_causes([i.id for i in rows])
            found = [IncidentOut.of(i, answers.get(i.id)).model_dump() for i in rows]
        return page(
            request, "incidents.html", status=422 if form.problems else 200, form=form, incidents=found
        )

    @router.get("/incidents/{incident_id}", response_class=HTMLResponse)
    @_store_errors
    def incident(request: Request, incident_id: str) -> HTMLResponse:
        found = None if analysis is None else analysis.incident(incident_id)
        if analysis is None or found is None:
            return page(
                request,
                "error.html",
                status=404,
                nav="incidents",
                message=f"incident {incident_id} not found",
            )
        detail = IncidentDetail.of(found, analysis.root_causes([incident_id]).get(incident_id)).model_dump()
        wanted = list(dict.fromkeys(g for rc in detail["root_causes"] for g in rc["error_groups"]))
        around = TimeRange(max(0, found.start_ns - INCIDENT_MARGIN_NS), found.end_ns + INCIDENT_MARGIN_NS)
        seen: dict[str, ErrorGroup] = {}  # one query for all of them, not one per group
        for s in analysis.error_groups(ErrorGroupQuery(time_range=around, limit=MAX_LIMIT)):
            for gid in (s.group.group_id, *s.merged):  # a group ranked before a merge is shown merged
                seen[gid] = s.group
        groups = list({seen[g].group_id: seen[g] for g in wanted if g in seen}.values())
        traces = _sample_traces(detail)
        return page(
            request,
            "incident.html",
            nav="incidents",
            incident=detail,
            groups=[ErrorGroupOut.of(g).model_dump() for g in groups],
            unlisted_groups=[g for g in wanted if g not in seen],
            sample_traces=traces,
            timeline=[
                [a["window_start_unix_nano"] / NS_PER_S, a["score"], a["service"], a["kind"]]
                for a in detail["anomalies"]
            ],
            graph=graph,
            margin=INCIDENT_MARGIN_NS,
        )

    @router.get("/errors", response_class=HTMLResponse)
    @_store_errors
    def errors(request: Request) -> HTMLResponse:
        form = _form(request)
        window = form.time_range(latest_ns())
        limit = form.limit(100)
        groups: list[dict[str, Any]] = []
        if analysis is not None and not form.problems:
            q = ErrorGroupQuery(service=form.text("service"), time_range=window, limit=limit)
            groups = [
                ErrorGroupOut.of(s.group, s.count_in_range, s.merged).model_dump()
                for s in analysis.error_groups(q)
            ]
        return page(
            request,
            "errors.html",
            editable=editor is not None,
            status=422 if form.problems else 200,
            form=form,
            groups=groups,
            services=sorted(reader.services()),
            lookbacks=list(LOOKBACKS),
        )

    @router.get("/errors/{group_id}", response_class=HTMLResponse)
    @_store_errors
    def error_group(request: Request, group_id: str) -> HTMLResponse:
        found = None if analysis is None else analysis.error_group(group_id)
        if analysis is None or found is None:
            return page(
                request, "error.html", status=404, nav="errors", message=f"error group {group_id} not found"
            )
        links = analysis.error_group_links(group_id)
        detail = ErrorGroupDetail.of_group(found, links).model_dump()
        return page(
            request,
            "error_group.html",
            nav="errors",
            group=detail,
            asked=group_id,
            editable=editor is not None,
            linked=_groups_by_id(analysis, detail["linked"]),
            peers=list(found.peers),
            sample_message=found.sample_message,
            counts=[[start / NS_PER_S, count] for start, count in found.buckets],
        )

    async def edit(
        request: Request,
        what: str,
        change: Callable[[ErrorGroupEditor, AnalysisReader], object],
        then: str,
    ) -> Response:
        """Run a merge or split posted by a form (off the event loop), then show group ``then``."""
        if editor is None or analysis is None:
            return page(
                request, "error.html", status=404, nav="errors", message=f"{what}: no error groups to edit"
            )
        try:
            await run_in_threadpool(change, editor, analysis)
        except HTTPException as e:
            return page(
                request, "error.html", status=e.status_code, nav="errors", message=f"{what}: {e.detail}"
            )
        except StoreError as e:
            return _store_error_page(request, e)
        return RedirectResponse(f"/errors/{quote(then, safe='')}", status_code=303)

    @router.post("/errors/merge", response_class=HTMLResponse)
    async def merge_error_groups(request: Request) -> Response:
        """The merge form: ``into``, and a ``group`` field per group to merge into it."""
        if (refused := _cross_site(request)) is not None:
            return refused
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        into = (fields.get("into") or [""])[0].strip()
        groups = [g.strip() for g in fields.get("group", []) if g.strip() and g.strip() != into]
        if not into or not groups:
            return page(
                request, "error.html", status=422, nav="errors", message="merge: tick groups to merge"
            )
        return await edit(request, "merge", lambda ed, rd: merge_groups(ed, rd, into, groups), into)

    @router.post("/errors/{group_id}/split", response_class=HTMLResponse)
    async def split_error_group(request: Request, group_id: str) -> Response:
        """Undo a merge (a member leaves its group; a merged group gives back all), then the group."""
        if (refused := _cross_site(request)) is not None:
            return refused
        return await edit(request, "split", lambda ed, _: split_group(ed, group_id), group_id)

    @router.get("/templates", response_class=HTMLResponse)
    @_store_errors
    def templates(request: Request) -> HTMLResponse:
        """Log templates, most frequent first; ``change``: only those last flagged ``new`` or
        ``missing`` (the store filters by service only, so the page reads up to
        :data:`TEMPLATE_SCAN` templates and says so when there may be more)."""
        form = _form(request)
        limit = form.limit(100)
        change = form.text("change") or "all"
        if change not in TEMPLATE_CHANGES:
            form.problems.append(f"change: one of {', '.join(TEMPLATE_CHANGES)}")
        rows: list[dict[str, Any]] = []
        scanned_all = True
        if analysis is not None and not form.problems:
            if change == "all":
                found = analysis.templates(TemplateQuery(service=form.text("service"), limit=limit))
            else:
                scan = analysis.templates(TemplateQuery(service=form.text("service"), limit=TEMPLATE_SCAN))
                scanned_all = len(scan) < TEMPLATE_SCAN
                found = [t for t in scan if t.last_change == change][:limit]
            rows = [TemplateOut.of(t).model_dump() for t in found]
        return page(
            request,
            "templates.html",
            status=422 if form.problems else 200,
            form=form,
            change=change,
            changes=TEMPLATE_CHANGES,
            scanned_all=scanned_all,
            scan=TEMPLATE_SCAN,
            templates=rows,
            services=sorted(reader.services()),
        )

    @router.get("/logs", response_class=HTMLResponse)
    @_store_errors
    def logs(request: Request) -> HTMLResponse:
        form = _form(request)
        severity = None
        if (text := form.text("severity")) is not None:
            try:
                severity = parse_severity(text)
            except ValueError as e:
                form.problems.append(f"severity: {e}")
        trace_id = None
        if (text := form.text("trace_id")) is not None:
            try:
                trace_id = parse_trace_id(text)
            except ValueError as e:
                form.problems.append(f"trace_id: {e}")
        shape = _template_shape(form, analysis)
        limit = form.limit(100)
        query = LogQuery(
            service=form.text("service"),
            min_severity=severity,
            trace_id=trace_id,
            text=form.text("q"),
            time_range=form.time_range(latest_ns()),
            limit=limit,
        )
        scanned: int | None = None  # lines tested against the template's shape
        found: list[LogRecord] = []
        if form.problems:
            pass
        elif shape is None:
            found = reader.find_logs(query)
        else:  # the store narrows by the text asked, else by the template's longest constant text
            scan = reader.find_logs(replace(query, text=query.text or shape.anchor, limit=TEMPLATE_LOG_SCAN))
            scanned = len(scan)
            found = [r for r in scan if shape.fits(r.body)][:limit]
        return page(
            request,
            "logs.html",
            status=422 if form.problems else 200,
            form=form,
            logs=[m.LogOut.of(r).model_dump() for r in found],
            shape=shape,
            scanned=scanned,
            scan=TEMPLATE_LOG_SCAN,
            services=sorted(reader.services()),
            lookbacks=list(LOOKBACKS),
        )

    @router.get("/ui/operations", response_class=HTMLResponse)
    @_store_errors
    def operation_options(request: Request) -> HTMLResponse:
        """The ``<option>`` list of a service's operations (the trace search form swaps it in)."""
        service = request.query_params.get("service") or None
        return page(request, "_operations.html", operations=_operations(reader, service))

    @router.get("/ui/attribute-keys", response_class=HTMLResponse)
    @_store_errors
    def attribute_keys(request: Request) -> HTMLResponse:
        """The ``<option>`` list of the attribute keys of a service's newest spans (the trace
        search's key field loads it when focused)."""
        query = AttributeQuery(
            service=request.query_params.get("service") or None, sample=SUGGEST_SAMPLE, limit=SUGGEST_KEYS
        )
        return page(request, "_suggestions.html", counts=reader.attribute_counts(query))

    @router.get("/ui/attribute-values", response_class=HTMLResponse)
    @_store_errors
    def attribute_values(request: Request) -> HTMLResponse:
        """The ``<option>`` list of the most frequent values of one key in those spans."""
        key = request.query_params.get("key", "").strip()
        counts = []
        if key:
            query = AttributeQuery(
                service=request.query_params.get("service") or None,
                key=key,
                sample=SUGGEST_SAMPLE,
                limit=SUGGEST_VALUES,
            )
            counts = reader.attribute_counts(query)
        return page(request, "_suggestions.html", counts=counts)

    @router.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response((STATIC_DIR / "favicon.svg").read_bytes(), media_type="image/svg+xml")

    return router


def _operations(reader: StoreReader, service: str | None) -> list[str]:
    if service is None:
        return []
    return sorted({o.name for o in reader.operations(service)})


def _duration_ns(form: _Form, name: str) -> int | None:
    """A duration field in milliseconds (decimals allowed) as whole nanoseconds: a minimum
    rounds up and a maximum down, so neither lets in a trace outside what was typed."""
    value = form.text(name)
    if value is None:
        return None
    try:
        ms = Decimal(value)
    except InvalidOperation:
        ms = Decimal(-1)
    if not ms.is_finite() or ms < 0 or ms > MAX_DURATION_MS:
        form.problems.append(f"{name}: a number of milliseconds, 0 or more")
        return None
    rounding = ROUND_FLOOR if name.startswith("max") else ROUND_CEILING
    return int((ms * 1_000_000).to_integral_value(rounding=rounding))


def _template_shape(form: _Form, analysis: AnalysisReader | None) -> TemplateShape | None:
    """``template``: a template id of ``service`` (the templates page links each template to
    its lines), as the shape its lines fit; None without one."""
    text = form.text("template")
    if text is None:
        return None
    service = form.text("service")
    if not text.isdigit() or service is None:
        form.problems.append("template: a template id (a whole number), with its service")
        return None
    if analysis is None:
        form.problems.append("template: the analysis is off, so there are no log templates")
        return None
    wanted = int(text)
    for t in analysis.templates(TemplateQuery(service=service, limit=TEMPLATE_SCAN)):
        if t.template_id == wanted:
            return TemplateShape.of(t.template)
    form.problems.append(f"template: {service} has no template {wanted}")
    return None


def _attribute_conditions(form: _Form) -> tuple[AttributeCondition, ...]:
    """``attrs``: ``key=value`` conditions, several, in the logfmt Grafana's Jaeger search
    shows (``http.route=/pay k8s.pod.name="a b"``), or Jaeger's JSON object; all must hold on
    one span (its attributes or its resource's)."""
    text = form.text("attrs")
    if text is None:
        return ()
    try:
        tags = parse_tags(text)
    except ValueError as e:
        form.problems.append(f"attrs: {e}")
        return ()
    return tuple(AttributeCondition(k, v) for k, v in tags.items())


def _cross_site(request: Request) -> HTMLResponse | None:
    """Refuse a form posted from another site (a browser sends ``Origin`` with every POST):
    without it, any page open in the same browser could merge groups on a server without auth."""
    origin = request.headers.get("origin")
    if origin is None or urlsplit(origin).netloc == request.headers.get("host"):
        return None
    return HTMLResponse("a form of this server must be posted from its own pages", status_code=403)


def _groups_by_id(analysis: AnalysisReader, ids: list[str]) -> list[dict[str, Any]]:
    """The groups (as shown) of these ids, each once."""
    out: dict[str, dict[str, Any]] = {}
    for gid in ids:
        g = analysis.error_group(gid)
        if g is not None:
            out.setdefault(g.group_id, ErrorGroupOut.of(g).model_dump())
    return list(out.values())


def _sample_traces(detail: Mapping[str, Any]) -> list[str]:
    """The root causes' sample traces, strongest evidence first, without repeats."""
    seen: dict[str, None] = {}
    for rc in detail["root_causes"]:
        for ev in rc["evidence"]:
            seen.update(dict.fromkeys(ev["sample_trace_ids"]))
        seen.update(dict.fromkeys(rc["sample_trace_ids"]))
    return list(seen)[:20]


def _ingest_health(metrics: SelfMetrics) -> list[dict[str, Any]]:
    """Per signal: items received, accepted, rejected, refused, written and dropped so far
    (the counters ``/metrics`` exposes, summed over their other labels)."""
    wanted = {
        "faultlens_receiver_received_items_total": "received",
        "faultlens_receiver_accepted_items_total": "accepted",
        "faultlens_receiver_rejected_items_total": "rejected",
        "faultlens_receiver_refused_items_total": "refused",
        "faultlens_store_written_items_total": "written",
        "faultlens_dropped_items_total": "dropped",
    }
    rows: dict[str, dict[str, Any]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            column = wanted.get(sample.name)
            if column is None:
                continue
            signal = sample.labels.get("signal", "all")
            row = rows.setdefault(signal, {"signal": signal, **dict.fromkeys(wanted.values(), 0)})
            row[column] += int(sample.value)
    return [rows[s] for s in sorted(rows)]
