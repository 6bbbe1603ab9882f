"""Routes of the service graph and root-cause analysis over stored telemetry.

- ``GET /api/v1/graph?start=&end=``: the service dependency graph of a time range, with
  RED figures on every edge (:func:`faultlens.graph.build_service_graph`).
- ``GET /api/v1/rca?start=&end=&baseline_start=&baseline_end=``: candidates for the root
  cause of what changed in a window against a baseline (:func:`faultlens.rca.rank_root_causes`),
  with the propagation chains of anomalous edges and the evidence of each.
- ``GET /api/v1/incidents/{id}/rca``: the same for an incident the streaming analysis
  opened: the window is the incident's ``start .. end`` (``now`` while it is open) widened
  by a margin, the baseline the period just before the window.

The telemetry is read back from the store with :class:`~faultlens.store.window.WindowReader`
(bounded: a window with too many rows is a 400 naming the limit, never a sample). The
work of a request (read, graph, ranking) runs in FastAPI's threadpool; the computing
functions (:func:`analyse`, :func:`service_graph`, :func:`resolve_ranges`) are plain
functions shared with ``faultlens rca --data-dir``, so the command and the API give the
same answers in the same JSON.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from faultlens.analysis.incidents.types import Incident, IncidentState
from faultlens.api.analysis_routes import Id, IncidentOut
from faultlens.api.params import INT64_MAX, UnixNanos
from faultlens.graph import ServiceGraph, build_service_graph
from faultlens.graph.propagation import PropagationChain
from faultlens.rca import Candidate, Observations, RcaConfig, RcaResult, rank_root_causes
from faultlens.store.analysis_base import AnalysisReader
from faultlens.store.window import TelemetryWindow, WindowReader
from faultlens.types import Signal, TimeRange

__all__ = [
    "GraphResponse",
    "RangeProblem",
    "RcaResponse",
    "RcaSettings",
    "analyse",
    "incident_ranges",
    "rca_router",
    "resolve_ranges",
    "service_graph",
]

NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S


@dataclass(frozen=True, slots=True)
class RcaSettings:
    """Defaults of the graph and RCA endpoints (each may be overridden per request where noted).

    - ``baseline_ns``: length of the baseline taken just before the window when the request
      names none (``baseline`` on the incident route).
    - ``margin_ns``: how far an incident's window reaches before its start and after its
      end (``margin`` on the incident route): anomalies are cut in whole analysis windows,
      and a fault starts a little before its first anomalous window closes.
    - ``max_window_ns``: an incident window is cut to this length from its start (the start
      is where the cause shows; a long open incident would otherwise read hours of data).
    - ``parent_margin_ns``: the graph also reads spans starting this much before ``start``,
      so calls near the start find their caller's span.
    """

    baseline_ns: int = 10 * NS_PER_MIN
    margin_ns: int = 1 * NS_PER_MIN
    max_window_ns: int = 30 * NS_PER_MIN
    parent_margin_ns: int = 1 * NS_PER_MIN
    rca: RcaConfig = field(default_factory=RcaConfig)


# --- time ranges ----------------------------------------------------------------------------


class RangeProblem(ValueError):
    """A window or baseline that cannot be analysed; ``param`` names the parameter at fault."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def resolve_ranges(
    start: int, end: int, baseline_start: int | None, baseline_end: int | None, baseline_ns: int
) -> tuple[TimeRange, TimeRange]:
    """The window ``[start, end)`` and its baseline, which must end at or before ``start``.

    A missing ``baseline_end`` is ``start``; a missing ``baseline_start`` is
    ``baseline_end - baseline_ns`` (clipped at the epoch). Raises :class:`RangeProblem`.
    """
    if end <= start:
        raise RangeProblem("end", "end must be after start")
    b_end = start if baseline_end is None else baseline_end
    b_start = max(0, b_end - baseline_ns) if baseline_start is None else baseline_start
    if b_end <= b_start:
        raise RangeProblem("baseline_end", "baseline_end must be after baseline_start")
    if b_end > start:
        raise RangeProblem(
            "baseline_end", "the baseline must end at or before the window's start (they may not overlap)"
        )
    return TimeRange(start, end), TimeRange(b_start, b_end)


def incident_ranges(
    incident: Incident, now_ns: int, margin_ns: int, baseline_ns: int, max_window_ns: int
) -> tuple[TimeRange, TimeRange, bool]:
    """(window, baseline, whether the window was cut to ``max_window_ns``) of an incident."""
    start = max(0, incident.start_ns - margin_ns)
    last = incident.end_ns if incident.state is IncidentState.RESOLVED else max(incident.end_ns, now_ns)
    end = min(last + margin_ns, INT64_MAX)
    capped = end - start > max_window_ns
    if capped:
        end = start + max_window_ns
    end = max(end, start + 1)
    return TimeRange(start, end), TimeRange(max(0, start - baseline_ns), start), capped


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

    @classmethod
    def of(cls, w: TelemetryWindow) -> CountsOut:
        return cls(spans=w.spans.num_rows, logs=w.logs.num_rows, metric_points=w.metrics.num_rows)


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
        description="`log_pattern`, `error_origin`, `slow_execution`, `slow_calls_into`, "
        "`cpu_saturation` or `memory_pressure`."
    )
    score: float = Field(description="Effect of the strongest finding, 0..1.")
    evidence: list[str] = Field(description="One line per finding, strongest first.")
    findings: list[FindingOut]

    @classmethod
    def of(cls, c: Candidate) -> CandidateOut:
        return cls(
            rank=c.rank,
            service=c.service,
            operation=c.operation,
            pod=c.pod,
            reason=c.reason.value,
            score=c.score,
            evidence=list(c.evidence),
            findings=[
                FindingOut(
                    reason=f.reason.value,
                    operation=f.operation,
                    pod=f.pod,
                    effect=f.effect,
                    z=f.z,
                    evidence=f.evidence,
                )
                for f in c.findings
            ],
        )


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

    @classmethod
    def of(cls, c: PropagationChain) -> ChainOut:
        return cls(
            services=list(c.services),
            end=c.end,
            edges=[
                ChainEdgeOut(
                    caller=e.caller,
                    callee=e.callee,
                    evidence=list(e.evidence),
                    latency_ratio=e.latency_ratio,
                    error_rate=e.error_rate,
                    baseline_error_rate=e.baseline_error_rate,
                )
                for e in c.edges
            ],
        )


class RcaResponse(_Body):
    window: RangeOut
    baseline: RangeOut
    window_capped: bool = Field(
        default=False, description="The incident lasted longer than the longest window; its start is kept."
    )
    incident: IncidentOut | None = Field(default=None, description="Set on the incident route.")
    observed: CountsOut = Field(description="Rows read for the window.")
    baseline_observed: CountsOut = Field(description="Rows read for the baseline.")
    candidates: list[CandidateOut] = Field(description="Best first; services with no finding are left out.")
    chains: list[ChainOut] = Field(description="Propagation chains of anomalous edges, longest first.")
    origin_spans: int = Field(description="Window spans that changed with no changed span below them.")
    duration_ms: float = Field(description="Time taken to read and rank.")

    @classmethod
    def of(
        cls,
        result: RcaResult,
        current: TelemetryWindow,
        baseline: TelemetryWindow,
        duration_ms: float,
        incident: Incident | None = None,
        window_capped: bool = False,
    ) -> RcaResponse:
        return cls(
            window=RangeOut.of(current.time_range),
            baseline=RangeOut.of(baseline.time_range),
            window_capped=window_capped,
            incident=None if incident is None else IncidentOut.of(incident),
            observed=CountsOut.of(current),
            baseline_observed=CountsOut.of(baseline),
            candidates=[CandidateOut.of(c) for c in result.candidates],
            chains=[ChainOut.of(c) for c in result.chains],
            origin_spans=result.origin_spans,
            duration_ms=duration_ms,
        )


# --- computing ------------------------------------------------------------------------------


def analyse(
    windows: WindowReader,
    window: TimeRange,
    baseline: TimeRange,
    config: RcaConfig | None = None,
    *,
    incident: Incident | None = None,
    window_capped: bool = False,
) -> RcaResponse:
    """Read the window and its baseline, rank root-cause candidates, and shape the answer."""
    t0 = time.perf_counter()
    current = windows.read(window)
    base = windows.read(baseline)
    result = rank_root_causes(
        Observations(current.spans, current.logs, current.metrics),
        Observations(base.spans, base.logs, base.metrics),
        config,
    )
    elapsed = (time.perf_counter() - t0) * 1e3
    return RcaResponse.of(result, current, base, round(elapsed, 1), incident, window_capped)


def service_graph(windows: WindowReader, time_range: TimeRange, parent_margin_ns: int) -> GraphResponse:
    """The service graph of the calls whose callee span starts in ``time_range``."""
    read_from = max(0, time_range.start_ns - parent_margin_ns)
    spans = windows.read(TimeRange(read_from, time_range.end_ns), frozenset({Signal.TRACES})).spans
    return GraphResponse.of(build_service_graph(spans, time_range), time_range, spans.num_rows)


# --- routes ---------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h)\s*$")
_UNIT_NS = {"ms": 1_000_000, "s": NS_PER_S, "m": NS_PER_MIN, "h": 60 * NS_PER_MIN}
_MAX_DURATION_NS = 7 * 24 * 60 * NS_PER_MIN


def parse_duration(value: Any) -> int:
    """A duration with its unit (``500ms``, ``90s``, ``10m``, ``1h``; at most a week) as ns."""
    m = _DURATION.match(str(value))
    if m is None:
        raise ValueError("expected a duration with a unit, e.g. 90s, 10m or 1h")
    ns = int(m.group(1)) * _UNIT_NS[m.group(2)]
    if ns > _MAX_DURATION_NS:
        raise ValueError("at most 7 days")
    return ns


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
    """The graph and RCA endpoints over ``windows``; the incident route needs ``analysis``."""
    cfg = settings or RcaSettings()
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
            Query(description="Default: baseline_end minus the default baseline length (10 min)."),
        ] = None,
        baseline_end: Annotated[
            UnixNanos | None, Query(description="Default: start. Must not be after start.")
        ] = None,
    ) -> RcaResponse:
        """Root-cause candidates of what changed in start..end against the baseline before it."""
        try:
            window, baseline = resolve_ranges(start, end, baseline_start, baseline_end, cfg.baseline_ns)
        except RangeProblem as e:
            given = {"end": end, "baseline_start": baseline_start, "baseline_end": baseline_end}
            raise _invalid(e.param, str(e), given.get(e.param)) from None
        return analyse(windows, window, baseline, cfg.rca)

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
                Query(description="Length of the baseline just before the window (default 10m)."),
            ] = None,
        ) -> RcaResponse:
            """Root-cause candidates of an incident, with how the fault propagated."""
            found = analysis.incident(incident_id)
            if found is None:
                raise HTTPException(404, f"incident {incident_id} not found")
            if baseline is not None and baseline <= 0:
                raise _invalid("baseline", "the baseline must be longer than zero", baseline)
            window, base, capped = incident_ranges(
                found,
                time.time_ns(),
                cfg.margin_ns if margin is None else margin,
                cfg.baseline_ns if baseline is None else baseline,
                cfg.max_window_ns,
            )
            return analyse(windows, window, base, cfg.rca, incident=found, window_capped=capped)

    return router
