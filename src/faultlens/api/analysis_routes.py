"""Routes over the analysis results: error groups, templates, RED, anomalies, incidents.

An ``APIRouter`` built over an :class:`~faultlens.store.analysis_base.AnalysisReader`;
:func:`faultlens.api.app.create_app` includes it when the server runs the analysis. The
conventions are those of the rest of the API (docs/api.md): times in Unix nanoseconds (or
RFC 3339 in parameters), ids as strings, 422 for bad parameters, 404 for unknown ids, and
every value reaches SQL as a bound parameter. Store failures become 503 through the app's
handlers.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from faultlens.analysis.anomaly.types import Anomaly
from faultlens.analysis.errors.grouping import ErrorGroup
from faultlens.analysis.errors.model import Category
from faultlens.analysis.incidents.types import Incident
from faultlens.analysis.sketch import QuantileSketch
from faultlens.api.params import SPAN_KIND_NAMES, UnixNanos, time_range
from faultlens.rca.model import RcaAnswer
from faultlens.rca.report import answer_fields
from faultlens.store.analysis_base import (
    AnalysisReader,
    AnomalyQuery,
    ErrorGroupEditor,
    ErrorGroupLinks,
    ErrorGroupQuery,
    IncidentQuery,
    RedQuery,
    RedRow,
    StoredTemplate,
    TemplateQuery,
)

__all__ = ["IncidentOut", "RootCauseFields", "RootCauseOut", "analysis_router"]

MAX_LIMIT = 1000
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STEP = re.compile(r"^\s*(\d+)\s*(ns|us|ms|s|m|h)\s*$")
_STEP_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_TIME_DOC = "RFC 3339 timestamp with offset, or an integer of Unix nanoseconds."
START = Annotated[UnixNanos | None, Query(description="Inclusive lower bound. " + _TIME_DOC)]
END = Annotated[UnixNanos | None, Query(description="Exclusive upper bound. " + _TIME_DOC)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such id."}}


def parse_step(value: Any) -> int:
    """A duration with its unit (``10s``, ``1m``, ``5m``, ``1h``) as nanoseconds.

    A bare number is refused: guessing seconds or nanoseconds would answer another question.
    """
    m = _STEP.match(str(value))
    if m is None:
        raise ValueError("step is a duration with a unit, e.g. 60s, 5m or 1h")
    ns = int(m.group(1)) * _STEP_NS[m.group(2)]
    if ns <= 0:
        raise ValueError("step must be positive")
    return ns


def parse_id(value: Any) -> str:
    text = str(value)
    if not _ID.match(text):
        raise ValueError("an id is 1 to 64 letters, digits, '.', '_' or '-'")
    return text


Step = Annotated[int, BeforeValidator(parse_step)]
Id = Annotated[str, BeforeValidator(parse_id)]


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")


# --- bodies ---------------------------------------------------------------------------------


class ClassificationOut(_Body):
    category: str
    type: str
    source: str = Field(description="`rule` (certain), `model` (the text model's best guess) or `none`.")
    confidence: float
    rule: str = Field(description="The rule that matched, or the model's evidence.")


class ErrorGroupOut(_Body):
    group_id: str
    service: str
    exception_type: str
    message_template: str
    top_frame: str
    classification: ClassificationOut
    first_seen_unix_nano: int
    last_seen_unix_nano: int
    count: int
    count_in_range: int = Field(description="Errors in the buckets that start inside start..end.")
    services: list[str]
    operations: list[str]
    sample_trace_ids: list[str]
    merged: list[str] = Field(
        default=[], description="Groups merged into this one (their errors are counted here)."
    )

    @classmethod
    def of(
        cls, g: ErrorGroup, count_in_range: int | None = None, merged: tuple[str, ...] = ()
    ) -> ErrorGroupOut:
        return cls(
            group_id=g.group_id,
            service=g.service,
            exception_type=g.exception_type,
            message_template=g.message_template,
            top_frame=g.top_frame,
            classification=ClassificationOut(
                category=g.category.value,
                type=g.type.value,
                source=g.classification_source.value,
                confidence=g.confidence,
                rule=g.rule,
            ),
            first_seen_unix_nano=g.first_seen_ns,
            last_seen_unix_nano=g.last_seen_ns,
            count=g.count,
            count_in_range=g.count if count_in_range is None else count_in_range,
            services=list(g.services),
            operations=list(g.operations),
            sample_trace_ids=[t.hex() for t in g.sample_trace_ids],
            merged=list(merged),
        )


class ErrorGroupsResponse(_Body):
    groups: list[ErrorGroupOut] = Field(description="Most recently seen first.")
    limit: int
    truncated: bool


class BucketOut(_Body):
    start_unix_nano: int
    count: int


class ErrorGroupDetail(ErrorGroupOut):
    peers: list[str] = Field(
        description="Dependencies the failing calls went to (peer.service, server.address)."
    )
    sample_message: str
    counts: list[BucketOut] = Field(description="Errors per time bucket, oldest first.")
    linked: list[str] = Field(
        default=[],
        description="Groups of the same service, not merged with this one, seen in the same traces "
        "(from the first sample traces of each group): e.g. a failure logged and recorded on its span.",
    )

    @classmethod
    def of_group(cls, g: ErrorGroup, links: ErrorGroupLinks | None) -> ErrorGroupDetail:
        merged = () if links is None else links.merged
        return cls(
            **ErrorGroupOut.of(g, merged=merged).model_dump(),
            peers=list(g.peers),
            sample_message=g.sample_message,
            counts=[BucketOut(start_unix_nano=s, count=c) for s, c in g.buckets],
            linked=[] if links is None else list(links.linked),
        )


class MergeIn(_Body):
    into: str = Field(description="The group the others are merged into (it keeps its identity).")
    groups: list[str] = Field(min_length=1, max_length=MAX_LIMIT, description="Groups to merge into it.")


class SplitOut(_Body):
    split: list[str] = Field(description="Groups that are their own again.")


class TemplateOut(_Body):
    service: str
    template_id: int
    template: str
    count: int
    first_seen_unix_nano: int
    last_seen_unix_nano: int
    last_change: str | None = Field(description="`new` or `missing` when the template was last flagged.")
    last_change_window_unix_nano: int | None

    @classmethod
    def of(cls, t: StoredTemplate) -> TemplateOut:
        return cls(
            service=t.service,
            template_id=t.template_id,
            template=t.template,
            count=t.count,
            first_seen_unix_nano=t.first_seen_ns,
            last_seen_unix_nano=t.last_seen_ns,
            last_change=t.last_change,
            last_change_window_unix_nano=t.last_change_window_ns,
        )


class TemplatesResponse(_Body):
    templates: list[TemplateOut] = Field(description="Most frequent first.")
    limit: int
    truncated: bool


class RedPointOut(_Body):
    start_unix_nano: int
    requests: int
    errors: int
    error_rate: float
    mean_ns: float
    p50_ns: float
    p90_ns: float
    p95_ns: float
    p99_ns: float


class RedSeriesOut(_Body):
    operation: str
    kind: str
    points: list[RedPointOut] = Field(description="One per step with data, oldest first.")
    total: RedPointOut = Field(
        description="The whole range as one point (counts add, sketches merge): its percentiles are "
        "the range's, not an average of the steps'. Starts at the first step."
    )


class RedResponse(_Body):
    service: str
    window_ns: int | None = Field(description="Length of the stored windows (null when none matched).")
    step_ns: int | None
    series: list[RedSeriesOut]


class AnomalyOut(_Body):
    id: str
    kind: str
    service: str
    name: str
    peer: str
    resource: str
    window_start_unix_nano: int
    window_ns: int
    observed: float
    expected: float
    score: float
    direction: str
    explanation: str

    @classmethod
    def of(cls, a: Anomaly) -> AnomalyOut:
        return cls(
            id=a.id,
            kind=a.key.kind.value,
            service=a.key.service,
            name=a.key.name,
            peer=a.key.peer,
            resource=a.key.resource,
            window_start_unix_nano=a.window_start_ns,
            window_ns=a.window_ns,
            observed=a.observed,
            expected=a.expected,
            score=a.score,
            direction=a.direction.value,
            explanation=a.explanation,
        )


class AnomaliesResponse(_Body):
    anomalies: list[AnomalyOut] = Field(description="Newest window first, then highest score.")
    limit: int
    truncated: bool


class LogStatementOut(_Body):
    key: str = Field(description="How the ranking knows the statement: a code location, or `template:<id>`.")
    change: str = Field(description="`new` or `missing`.")
    template: str = Field(description="The statement's text, variable parts as `<*>`.")
    sample: str = Field(description="One line as it was logged.")


class EvidenceOut(_Body):
    text: str = Field(description="What changed, in words and figures a person can check.")
    reason: str
    operation: str
    pod: str
    effect: float = Field(description="Share of requests (or of capacity) that changed, lower bound.")
    z: float
    first_seen_unix_nano: int | None = Field(description="First changed request (or point) in the window.")
    first_seen: str | None = Field(description="The same, RFC 3339.")
    last_seen_unix_nano: int | None
    last_seen: str | None
    sample_trace_ids: list[str]
    log_statements: list[LogStatementOut] = Field(
        description="The log statements behind a log_pattern finding."
    )


class RootCauseOut(_Body):
    rank: int
    service: str
    operation: str = Field(description='The operation of the strongest evidence ("" when none).')
    pod: str = Field(description='The pod of the strongest evidence ("" when none).')
    reason: str = Field(
        description="`log_pattern`, `error_origin`, `changed_answer`, `slow_execution`, "
        "`slow_calls_into`, `failed_calls_into`, `failed_requests`, `cpu_saturation` or "
        "`memory_pressure`."
    )
    score: float = Field(description="Effect of the strongest evidence, 0..1.")
    confidence: float = Field(description="This root cause's share of the scores of all listed, 0..1.")
    evidence: list[EvidenceOut] = Field(description="Strongest first.")
    error_groups: list[str] = Field(description="Ids of the service's error groups seen in the window.")
    sample_trace_ids: list[str]


class RootCauseFields(_Body):
    rca_status: str = Field(description="`pending`, `ranked`, `not_enough_data` or `nothing_changed`.")
    rca_reason: str = Field(description="Why the status is what it is, in words.")
    rca_at_unix_nano: int | None = Field(description="When the root causes were ranked (wall clock).")
    rca_at: str | None = Field(description="The same, RFC 3339.")
    rca_duration_s: float | None = Field(
        description="How long reading the window and baseline and ranking took (the ranking's own time)."
    )
    root_causes: list[RootCauseOut] = Field(
        description="Best first; only candidates that passed the significance bar."
    )


class IncidentOut(RootCauseFields):
    id: str
    state: str
    severity: str
    title: str
    services: list[str]
    start_unix_nano: int
    end_unix_nano: int
    opened_unix_nano: int
    resolved_unix_nano: int | None
    score: float
    anomaly_count: int

    @classmethod
    def of(cls, i: Incident, answer: RcaAnswer | None = None) -> IncidentOut:
        return cls(**_incident_fields(i), **answer_fields(answer))


class IncidentsResponse(_Body):
    incidents: list[IncidentOut] = Field(description="Latest opened first.")
    limit: int
    truncated: bool


class IncidentDetail(IncidentOut):
    anomalies: list[AnomalyOut] = Field(description="Members, oldest window first.")

    @classmethod
    def of(cls, i: Incident, answer: RcaAnswer | None = None) -> IncidentDetail:
        return cls(
            **_incident_fields(i), **answer_fields(answer), anomalies=[AnomalyOut.of(a) for a in i.anomalies]
        )


def _incident_fields(i: Incident) -> dict[str, Any]:
    return {
        "id": i.id,
        "state": i.state.value,
        "severity": i.severity.name,
        "title": i.title,
        "services": list(i.services),
        "start_unix_nano": i.start_ns,
        "end_unix_nano": i.end_ns,
        "opened_unix_nano": i.opened_ns,
        "resolved_unix_nano": i.resolved_ns,
        "score": i.score,
        "anomaly_count": len(i.anomalies),
    }


# --- routes ---------------------------------------------------------------------------------


def _limit(default: int) -> Any:
    return Query(
        ge=1, le=MAX_LIMIT, description=f"Maximum items returned (1..{MAX_LIMIT}, default {default})."
    )


def analysis_router(reader: AnalysisReader) -> APIRouter:
    """The analysis endpoints over ``reader``."""
    router = APIRouter(tags=["analysis"])

    @router.get("/api/v1/errors")
    def errors(
        service: Annotated[str | None, Query(min_length=1, description="Owner or affected service.")] = None,
        category: Annotated[Category | None, Query(description="Taxonomy category (docs/errors.md).")] = None,
        start: START = None,
        end: END = None,
        limit: Annotated[int, _limit(100)] = 100,
    ) -> ErrorGroupsResponse:
        """Error groups seen inside start..end, most recently seen first."""
        query = ErrorGroupQuery(
            service=service,
            category=None if category is None else category.value,
            time_range=time_range(start, end),
            limit=limit + 1,
        )
        found = reader.error_groups(query)
        return ErrorGroupsResponse(
            groups=[ErrorGroupOut.of(s.group, s.count_in_range, s.merged) for s in found[:limit]],
            limit=limit,
            truncated=len(found) > limit,
        )

    @router.get("/api/v1/errors/{group_id}", responses=_NOT_FOUND)
    def error_group(group_id: Annotated[Id, Path(description="The group's id.")]) -> ErrorGroupDetail:
        """One group: counts over time, affected services and operations, samples, classification.
        A group merged into another answers that one (its ``group_id`` says which)."""
        g = reader.error_group(group_id)
        if g is None:
            raise HTTPException(404, f"error group {group_id} not found")
        return ErrorGroupDetail.of_group(g, reader.error_group_links(group_id))

    if isinstance(reader, ErrorGroupEditor):
        editor = reader

        @router.post(
            "/api/v1/errors/merges", responses={**_NOT_FOUND, 409: {"description": "Nothing to merge."}}
        )
        def merge_error_groups(body: MergeIn) -> ErrorGroupDetail:
            """Merge groups into ``into``: from then on they are listed, counted and used as
            evidence as one group, across restarts. Merges are flat (merging into a merged
            group goes to the group it is in); ``DELETE`` splits them again."""
            return ErrorGroupDetail.of_group(*merge_groups(editor, reader, body.into, body.groups))

        @router.delete(
            "/api/v1/errors/{group_id}/merges", responses={409: {"description": "Nothing merged."}}
        )
        def split_error_group(
            group_id: Annotated[Id, Path(description="A merged group or a member.")],
        ) -> SplitOut:
            """Undo merges: a member becomes its own group again; a group with members gives
            them all back."""
            return SplitOut(split=list(split_group(editor, group_id)))

    @router.get("/api/v1/templates")
    def templates(
        service: Annotated[str | None, Query(min_length=1)] = None,
        limit: Annotated[int, _limit(100)] = 100,
    ) -> TemplatesResponse:
        """Log templates mined from log bodies, most frequent first."""
        found = reader.templates(TemplateQuery(service=service, limit=limit + 1))
        return TemplatesResponse(
            templates=[TemplateOut.of(t) for t in found[:limit]], limit=limit, truncated=len(found) > limit
        )

    @router.get("/api/v1/services/{service}/red")
    def red(
        service: Annotated[str, Path(min_length=1)],
        start: START = None,
        end: END = None,
        step: Annotated[
            Step | None,
            Query(
                description="Merge windows into steps of this length (60s, 5m...): a multiple of the window."
            ),
        ] = None,
    ) -> RedResponse:
        """Requests, errors and latency percentiles per operation and span kind, per step."""
        rows = reader.red_rows(RedQuery(service=service, time_range=time_range(start, end)))
        if not rows:
            return RedResponse(service=service, window_ns=None, step_ns=step, series=[])
        window = max(r.window_ns for r in rows)
        if step is not None and step % window:
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("query", "step"),
                        "msg": f"step must be a multiple of the window ({window} ns)",
                        "input": step,
                    }
                ]
            )
        return RedResponse(
            service=service, window_ns=window, step_ns=step or window, series=_series(rows, step or window)
        )

    @router.get("/api/v1/anomalies")
    def anomalies(
        service: Annotated[
            str | None, Query(min_length=1, description="Either end of an edge counts.")
        ] = None,
        start: START = None,
        end: END = None,
        limit: Annotated[int, _limit(100)] = 100,
    ) -> AnomaliesResponse:
        """Anomalies whose window starts inside start..end."""
        found = reader.anomalies(
            AnomalyQuery(service=service, time_range=time_range(start, end), limit=limit + 1)
        )
        return AnomaliesResponse(
            anomalies=[AnomalyOut.of(a) for a in found[:limit]], limit=limit, truncated=len(found) > limit
        )

    @router.get("/api/v1/incidents")
    def incidents(
        status: Annotated[
            IncidentStatus | None, Query(description="`open` or `resolved`; both when absent.")
        ] = None,
        limit: Annotated[int, _limit(100)] = 100,
    ) -> IncidentsResponse:
        """Incidents, latest opened first."""
        found = reader.incidents(
            IncidentQuery(state=None if status is None else status.value, limit=limit + 1)
        )
        answers = reader.root_causes([i.id for i in found[:limit]])
        return IncidentsResponse(
            incidents=[IncidentOut.of(i, answers.get(i.id)) for i in found[:limit]],
            limit=limit,
            truncated=len(found) > limit,
        )

    @router.get("/api/v1/incidents/{incident_id}", responses=_NOT_FOUND)
    def incident(incident_id: Annotated[Id, Path()]) -> IncidentDetail:
        """One incident with its member anomalies and its ranked root causes."""
        found = reader.incident(incident_id)
        if found is None:
            raise HTTPException(404, f"incident {incident_id} not found")
        return IncidentDetail.of(found, reader.root_causes([incident_id]).get(incident_id))

    return router


def merge_groups(
    editor: ErrorGroupEditor, reader: AnalysisReader, into: str, groups: list[str]
) -> tuple[ErrorGroup, ErrorGroupLinks | None]:
    """Merge (the API's and the UI's one way): 404 for an unknown group, 409 for nothing to do."""
    try:
        editor.merge_error_groups(into, groups)
    except KeyError as e:
        raise HTTPException(404, f"error group {e.args[0]} not found") from None
    except ValueError as e:
        raise HTTPException(409, str(e)) from None
    g = reader.error_group(into)
    if g is None:  # only a concurrent change of the store could do this
        raise HTTPException(404, f"error group {into} not found")
    return g, reader.error_group_links(into)


def split_group(editor: ErrorGroupEditor, group_id: str) -> tuple[str, ...]:
    """Split (the API's and the UI's one way): 409 when nothing was merged with the group."""
    split = editor.split_error_group(group_id)
    if not split:
        raise HTTPException(409, f"error group {group_id} is not merged with any other")
    return split


def _series(rows: list[RedRow], step: int) -> list[RedSeriesOut]:
    """Windows merged into steps (counts add, sketches merge), per operation and kind."""
    merged: dict[tuple[str, int], dict[int, list[Any]]] = {}
    for r in rows:
        bucket = r.window_start_ns - r.window_start_ns % step
        points = merged.setdefault((r.operation, r.span_kind), {})
        acc = points.get(bucket)
        if acc is None:
            points[bucket] = [r.requests, r.errors, r.duration_sum_ns, r.latency.copy()]
        else:
            acc[0] += r.requests
            acc[1] += r.errors
            acc[2] += r.duration_sum_ns
            acc[3].merge(r.latency)
    out = []
    for (op, kind), points in sorted(merged.items()):
        steps = sorted(points.items())
        whole = steps[0][1][3].copy()
        for _, acc in steps[1:]:
            whole.merge(acc[3])
        total = _point(
            steps[0][0],
            sum(acc[0] for _, acc in steps),
            sum(acc[1] for _, acc in steps),
            sum(acc[2] for _, acc in steps),
            whole,
        )
        out.append(
            RedSeriesOut(
                operation=op,
                kind=SPAN_KIND_NAMES.get(kind, str(kind)),
                points=[_point(start, *acc) for start, acc in steps],
                total=total,
            )
        )
    return out


def _point(start: int, requests: int, errors: int, total: float, sketch: QuantileSketch) -> RedPointOut:
    p50, p90, p95, p99 = sketch.quantiles((0.5, 0.9, 0.95, 0.99))
    return RedPointOut(
        start_unix_nano=start,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        mean_ns=total / requests if requests else float("nan"),
        p50_ns=p50,
        p90_ns=p90,
        p95_ns=p95,
        p99_ns=p99,
    )
