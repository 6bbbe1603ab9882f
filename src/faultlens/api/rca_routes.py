"""Routes of the service graph and root-cause analysis over stored telemetry.

- ``GET /api/v1/graph?start=&end=``: the service dependency graph of a time range, with
  RED figures on every edge (:func:`faultlens.graph.build_service_graph`).
- ``GET /api/v1/rca?start=&end=&baseline_start=&baseline_end=``: root causes of what changed
  in a window. Without a baseline the server picks one from its own history (the latest
  data before the window outside any incident, :func:`faultlens.rca.incident.pick_baseline`).
- ``GET /api/v1/incidents/{id}/rca``: the same, ranked now, for an incident the streaming
  analysis opened: its window is the incident's ``start .. end`` widened by a margin. (The
  root causes ranked when it opened or grew are stored with it: ``GET /api/v1/incidents/{id}``.)

The work is :class:`~faultlens.rca.incident.RootCauseRanker`'s (the orchestration lives in
``rca``; ``faultlens rca --data-dir`` runs the same), and the body is
:func:`faultlens.rca.report.run_report`'s, validated here for the OpenAPI schema. Too little
data, or nothing significant, is an answer (200 with ``rca_status``), never an error. Routes
run in FastAPI's threadpool.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from faultlens.api.analysis_routes import Id, IncidentOut, RootCauseFields
from faultlens.api.params import INT64_MAX, UnixNanos
from faultlens.durations import parse_duration_ns
from faultlens.graph import ServiceGraph, build_service_graph
from faultlens.rca.incident import IncidentHistory, RankerSettings, RcaRun, RootCauseRanker
from faultlens.rca.report import run_report
from faultlens.store.analysis_base import AnalysisReader
from faultlens.store.window import WindowReader
from faultlens.types import Signal, TimeRange

__all__ = [
    "GraphResponse",
    "RangeProblem",
    "RcaResponse",
    "RcaSettings",
    "parse_duration",
    "rca_router",
    "resolve_ranges",
    "service_graph",
]

NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S


@dataclass(frozen=True, slots=True)
class RcaSettings:
    """Defaults of the graph and RCA endpoints.

    - ``ranker``: windows, baselines and the significance bar (``margin`` and ``baseline``
      on the incident route override its margin and baseline length).
    - ``parent_margin_ns``: the graph also reads spans starting this much before ``start``,
      so calls near the start find their caller's span.
    """

    ranker: RankerSettings = field(default_factory=RankerSettings)
    parent_margin_ns: int = 1 * NS_PER_MIN


# --- time ranges ----------------------------------------------------------------------------


class RangeProblem(ValueError):
    """A window or baseline that cannot be analysed; ``param`` names the parameter at fault."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def resolve_ranges(
    start: int, end: int, baseline_start: int | None, baseline_end: int | None, baseline_ns: int
) -> tuple[TimeRange, TimeRange | None]:
    """The window ``[start, end)`` and the baseline the caller asked for, which must end at
    or before ``start``; None when neither bound was given (the server picks one).

    A missing ``baseline_end`` is ``start``; a missing ``baseline_start`` is
    ``baseline_end - baseline_ns`` (clipped at the epoch). Raises :class:`RangeProblem`.
    """
    if end <= start:
        raise RangeProblem("end", "end must be after start")
    if baseline_start is None and baseline_end is None:
        return TimeRange(start, end), None
    b_end = start if baseline_end is None else baseline_end
    b_start = max(0, b_end - baseline_ns) if baseline_start is None else baseline_start
    if b_end <= b_start:
        raise RangeProblem("baseline_end", "baseline_end must be after baseline_start")
    if b_end > start:
        raise RangeProblem(
            "baseline_end", "the baseline must end at or before the window's start (they may not overlap)"
        )
    return TimeRange(start, end), TimeRange(b_start, b_end)


# --- response bodies ------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")


class RangeOut(_Body):
    start_unix_nano: int
    end_unix_nano: int = Field(description="Exclusive.")

    @classmethod
    def of(cls, r: TimeRange) -> RangeOut:
        return cls(start_unix_nano=r.start_ns, end_unix_nano=r.end_ns)


class CountsOut(_Body):
    spans: int
    logs: int
    metric_points: int


class NodeOut(_Body):
    name: str
    kind: str = Field(description="`service`, `database`, `external` or `messaging`.")


class EdgeOut(_Body):
    caller: str
    callee: str
    kind: str = Field(description="`call`, `client_server`, `messaging`, `database` or `external`.")
    calls: int
    errors: int
    error_rate: float
    latency_p50_ns: float = Field(description="Callee-side duration (1% relative accuracy).")
    latency_p90_ns: float
    latency_p95_ns: float
    latency_p99_ns: float
    latency_mean_ns: float
    network_p50_ns: float | None = Field(
        description="Time the caller waited beyond the callee's span (single-child calls only); "
        "null when unmeasured."
    )
    network_p90_ns: float | None


class GraphResponse(_Body):
    start_unix_nano: int
    end_unix_nano: int
    spans: int = Field(description="Spans read (the range plus the parent margin before it).")
    nodes: list[NodeOut] = Field(description="Sorted by name.")
    edges: list[EdgeOut] = Field(description="Sorted by caller, callee, kind.")

    @classmethod
    def of(cls, graph: ServiceGraph, time_range: TimeRange, spans: int) -> GraphResponse:
        return cls(
            start_unix_nano=time_range.start_ns,
            end_unix_nano=time_range.end_ns,
            spans=spans,
            nodes=[NodeOut(name=n.name, kind=n.kind.value) for n in graph.nodes],
            edges=[
                EdgeOut(
                    caller=e.caller,
                    callee=e.callee,
                    kind=e.kind.value,
                    calls=e.stats.calls,
                    errors=e.stats.errors,
                    error_rate=e.stats.error_rate,
                    latency_p50_ns=e.stats.latency_p50_ns,
                    latency_p90_ns=e.stats.latency_p90_ns,
                    latency_p95_ns=e.stats.latency_p95_ns,
                    latency_p99_ns=e.stats.latency_p99_ns,
                    latency_mean_ns=e.stats.latency_mean_ns,
                    network_p50_ns=e.stats.network_p50_ns,
                    network_p90_ns=e.stats.network_p90_ns,
                )
                for e in graph.edges
            ],
        )


class FindingOut(_Body):
    reason: str
    operation: str
    pod: str
    effect: float = Field(description="Share of requests (or of capacity) that changed, lower bound.")
    z: float
    evidence: str


class CandidateOut(_Body):
    rank: int
    service: str
    operation: str = Field(description='The operation of the strongest finding ("" when none).')
    pod: str = Field(description='The pod of the strongest finding ("" when none).')
    reason: str = Field(
        description="`log_pattern`, `error_origin`, `changed_answer`, `slow_execution`, "
        "`slow_calls_into`, `failed_calls_into`, `failed_requests`, `cpu_saturation` or "
        "`memory_pressure`."
    )
    score: float = Field(description="Effect of the strongest finding, 0..1.")
    evidence: list[str] = Field(description="One line per finding, strongest first.")
    findings: list[FindingOut]


class ChainEdgeOut(_Body):
    caller: str
    callee: str
    evidence: list[str] = Field(description="Why this edge counts as carrying the fault.")
    latency_ratio: float
    error_rate: float
    baseline_error_rate: float


class ChainOut(_Body):
    services: list[str] = Field(description="From the entry service down to where the chain ends.")
    end: str
    edges: list[ChainEdgeOut]


class TimeRangeOut(RangeOut):
    start: str = Field(description="RFC 3339.")
    end: str = Field(description="RFC 3339, exclusive.")


class SideOut(CountsOut):
    time_read: float = Field(
        description="Share of the range's time read: below 1 when it held more rows than one read "
        "may, and was read as evenly spread slices of every minute."
    )


class RcaResponse(RootCauseFields):
    window: TimeRangeOut
    baseline: TimeRangeOut | None = Field(
        description="From the first baseline stretch's start to the last one's end; null when no "
        "history was free to serve as one."
    )
    baseline_ranges: list[TimeRangeOut] = Field(
        description="The stretches read as the baseline, oldest first (other incidents left out)."
    )
    window_capped: bool = Field(
        default=False, description="The incident lasted longer than the longest window; its start is kept."
    )
    incident: IncidentOut | None = Field(default=None, description="Set on the incident route.")
    observed: SideOut = Field(description="Rows read for the window.")
    baseline_observed: SideOut = Field(description="Rows read for the baseline.")
    candidates: list[CandidateOut] = Field(
        description="Every ranked candidate, significant or not, best first (root_causes holds the "
        "significant ones with their evidence)."
    )
    chains: list[ChainOut] = Field(description="Propagation chains of anomalous edges, longest first.")
    origin_spans: int = Field(description="Window spans that changed with no changed span below them.")
    duration_ms: float = Field(description="Time taken to read and rank.")

    @classmethod
    def of(cls, run: RcaRun, incident: IncidentOut | None = None) -> RcaResponse:
        return cls.model_validate({**run_report(run), "incident": incident})


# --- computing ------------------------------------------------------------------------------


def service_graph(windows: WindowReader, time_range: TimeRange, parent_margin_ns: int) -> GraphResponse:
    """The service graph of the calls whose callee span starts in ``time_range``."""
    read_from = max(0, time_range.start_ns - parent_margin_ns)
    spans = windows.read(TimeRange(read_from, time_range.end_ns), frozenset({Signal.TRACES}), lean=True).spans
    return GraphResponse.of(build_service_graph(spans, time_range), time_range, spans.num_rows)


# --- routes ---------------------------------------------------------------------------------

_MAX_DURATION_S = 7 * 24 * 3600.0


def parse_duration(value: Any) -> int:
    """A duration with its unit (``500ms``, ``90s``, ``10m``, ``1h``; at most a week) as ns."""
    return parse_duration_ns(value, max_s=_MAX_DURATION_S)


Duration = Annotated[int, BeforeValidator(parse_duration)]

_TIME_DOC = "RFC 3339 timestamp with offset, or an integer of Unix nanoseconds."
_BAD_WINDOW: dict[int | str, dict[str, Any]] = {
    400: {"description": "The window holds more rows than a window may (the message says how many)."}
}


def _invalid(param: str, message: str, value: Any) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", param), "msg": message, "input": value}]
    )


def rca_router(
    windows: WindowReader, analysis: AnalysisReader | None = None, settings: RcaSettings | None = None
) -> APIRouter:
    """The graph and RCA endpoints over ``windows``; ``analysis`` adds the incident route and
    lets baselines steer around stored incidents."""
    cfg = settings or RcaSettings()
    history: IncidentHistory | None = analysis
    ranker = RootCauseRanker(windows, history, cfg.ranker)
    router = APIRouter(tags=["rca"])

    @router.get("/api/v1/graph", responses=_BAD_WINDOW)
    def graph(
        start: Annotated[UnixNanos | None, Query(description="Inclusive. " + _TIME_DOC)] = None,
        end: Annotated[UnixNanos | None, Query(description="Exclusive. " + _TIME_DOC)] = None,
    ) -> GraphResponse:
        """The service dependency graph of the calls whose callee-side span starts in start..end."""
        lo = 0 if start is None else start
        hi = INT64_MAX if end is None else end
        if hi < lo:
            raise _invalid("end", "end is before start", end)
        return service_graph(windows, TimeRange(lo, hi), cfg.parent_margin_ns)

    @router.get("/api/v1/rca", responses=_BAD_WINDOW)
    def rca(
        start: Annotated[UnixNanos, Query(description="Window start, inclusive. " + _TIME_DOC)],
        end: Annotated[UnixNanos, Query(description="Window end, exclusive. " + _TIME_DOC)],
        baseline_start: Annotated[
            UnixNanos | None,
            Query(
                description="Default: picked from history (see baseline_end), else baseline_end minus 20 min."
            ),
        ] = None,
        baseline_end: Annotated[
            UnixNanos | None,
            Query(
                description="Default: when neither baseline bound is given, the server picks the latest "
                "history before the window outside any incident; else start. Not after start."
            ),
        ] = None,
    ) -> RcaResponse:
        """Root causes of what changed in start..end against a baseline before it."""
        try:
            window, baseline = resolve_ranges(
                start, end, baseline_start, baseline_end, cfg.ranker.baseline_ns
            )
        except RangeProblem as e:
            given = {"end": end, "baseline_start": baseline_start, "baseline_end": baseline_end}
            raise _invalid(e.param, str(e), given.get(e.param)) from None
        return RcaResponse.of(ranker.rank_window(window, None if baseline is None else [baseline]))

    if analysis is not None:

        @router.get(
            "/api/v1/incidents/{incident_id}/rca",
            responses={404: {"description": "No such incident."}, **_BAD_WINDOW},
        )
        def incident_rca(
            incident_id: Annotated[Id, Path()],
            margin: Annotated[
                Duration | None,
                Query(description="Widen the incident by this much on each side (default 1m)."),
            ] = None,
            baseline: Annotated[
                Duration | None,
                Query(description="Most history the baseline takes (default 20m)."),
            ] = None,
        ) -> RcaResponse:
            """Root causes of an incident ranked now, with how the fault propagated."""
            found = analysis.incident(incident_id)
            if found is None:
                raise HTTPException(404, f"incident {incident_id} not found")
            if baseline is not None and baseline <= 0:
                raise _invalid("baseline", "the baseline must be longer than zero", baseline)
            s = cfg.ranker
            s = replace(
                s,
                margin_ns=s.margin_ns if margin is None else margin,
                baseline_ns=s.baseline_ns if baseline is None else baseline,
            )
            run = RootCauseRanker(windows, history, s).rank_incident(found)
            stored = analysis.root_causes([incident_id]).get(incident_id)
            return RcaResponse.of(run, IncidentOut.of(found, stored))

    return router
