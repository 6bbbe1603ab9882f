"""``faultlens eval live``: what a user of the server gets, scored end to end.

::

    NezhaDataset ──replay_as_live (full speed, OTLP/gRPC on loopback)──> InProcessServer
        (no label, no fault time, no hint:                              (temp data dir, free
         only telemetry, as services send it)                            ports, analysis on,
                                                                          its own data time)
    while it runs: _Watcher polls GET /api/v1/incidents[/{id}]  -> when each incident showed,
                                                                   when its root causes did
    then: analysis drained, open windows closed
          GET /api/v1/incidents, GET /api/v1/incidents/{id}      -> IncidentRecords + root causes
          (GET /api/v1/incidents/{id}/rca while incidents carry no ``root_causes``)
    score_live: labels x what the server answered                -> report

The server is the product as a user runs it: the default analysis and incident settings,
one configuration for every data set. What differs from a live deployment is capacity only
(:data:`CAPACITY_OVERRIDES`: a full-speed replay needs deeper queues than a live feed, and
retention must keep data that is years old by the wall clock). The evaluation never talks
to the analysis cores: it waits for the analysis to drain (an in-process call, as ``eval
detect`` does), and reads every figure it scores over the HTTP API.

Scoring (:func:`score_live`, pure) matches incidents to faults with the one matcher of the
detection scores (:func:`faultlens.eval.matching.match_faults`) and issue 15's window,
``[injection - 1 min, injection + 5 min)`` (:data:`~faultlens.eval.matching.LIVE_WINDOW`):
per fault the first incident that opened inside it (data time: the start of the analysis
window that opened it), its delay (from the injection to the end of that window plus the
lateness the analysis waits, as ``eval detect``), and the rank of the true service in that
incident's root causes (:func:`service_rank`: best first, ties counted against it; a miss
or an unranked service has no rank). AC@k is over every labelled fault, so a missed fault
counts as a miss at every k. False incidents are those opened in no fault's window, per hour
of replayed data time (windows holding any data) and of data time holding spans.

Root causes come from the incident itself (``root_causes`` on ``GET /api/v1/incidents/{id}``,
what the server stored when it ranked them; known once ``rca_status`` is past ``pending``)
or, on servers that do not attach them, from ``GET /api/v1/incidents/{id}/rca`` (ranked on
request, after the replay); the report says which (``root_cause_source``). With
``on_request`` the route is asked too, and its rank reported beside the stored one
(``rank_on_request``): what ranking at open time costs against ranking with all data in.
``rca_latency_s``
is, per incident, the wall time from the incident showing in the API to its root causes
showing (polled every 0.5 s while the replay runs; the route's own time on the fallback);
``rca_ranking_s`` is the ranking's own time (``rca_duration_s``: reading both sides and
ranking), without the wait in the server's queue that a replay at full speed makes;
``server.rca_from_metrics`` is the server's account from ``GET /metrics`` (rankings by
outcome, and its open-to-stored histogram). Nothing here names a service, pod, operation or
time of a data set.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import itertools
import math
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from faultlens.eval.matching import LIVE_WINDOW, MINUTE_NS, NS_PER_S, FaultMatch, IncidentRecord, match_faults
from faultlens.eval.metrics import accuracy_at
from faultlens.types import TimeRange

if TYPE_CHECKING:
    from faultlens.config.model import Config
    from faultlens.datasets import Fault, NezhaDataset, OtlpSender, Record, ReplaySummary

__all__ = [
    "CAPACITY_OVERRIDES",
    "INCIDENT_ROUTE",
    "RCA_ROUTE",
    "RootCauseSource",
    "RootCauses",
    "evaluate_live",
    "render_table",
    "replay_config",
    "score_live",
    "service_rank",
]

DAY_NS = 86_400 * NS_PER_S


class RootCauseSource(enum.StrEnum):
    """Where an incident's root causes were read."""

    INCIDENT = "GET /api/v1/incidents/{id} root_causes"  # stored by the server when it ranked
    RCA_ROUTE = "GET /api/v1/incidents/{id}/rca"  # ranked on request (servers that store none)


INCIDENT_ROUTE = RootCauseSource.INCIDENT
RCA_ROUTE = RootCauseSource.RCA_ROUTE
# Issue 15's targets, reported beside the figures.
TARGET_DELAY_S = 120.0
TARGET_AC1 = 0.90
TARGET_AC3 = 0.97
TARGET_TYPE_AC3 = 0.90
TARGET_FALSE_PER_DAY = 1.0
TARGET_RCA_MEDIAN_S = 2.0
# What a full-speed replay of old data needs beyond the defaults; nothing here changes what
# the analysis does. Retention: ~63 years, so data stamped years ago by the wall clock stays.
CAPACITY_OVERRIDES: dict[str, dict[str, Any]] = {
    "store": {"memory_limit_mib": 512, "retention": 2e9, "retention_check_interval": 86400},
    "admission": {"memory_soft_limit_mib": None},
    "analysis": {"queue_max_items": 5_000_000, "state_interval": 3600},
}


@dataclass(frozen=True, slots=True)
class RootCauses:
    """The ranked root causes the server gave for one incident, best first."""

    source: RootCauseSource
    causes: tuple[Mapping[str, Any], ...]
    latency_s: float | None = None  # incident shown -> causes shown (or the route's own time)
    status: str = ""  # the server's rca_status (ranked, nothing_changed, not_enough_data, ...)
    reason: str = ""  # and its words for it
    ranking_s: float | None = None  # the ranking's own time, as the server reports it

    def services(self) -> list[tuple[str, float]]:
        return [(str(c.get("service", "")), float(c.get("score") or 0.0)) for c in self.causes]

    def top(self, n: int = 3) -> list[dict[str, Any]]:
        keys = ("service", "operation", "pod", "reason", "score", "confidence")
        return [{k: c[k] for k in keys if k in c} for c in self.causes[:n]]


def service_rank(truth: str, causes: Sequence[tuple[str, float]]) -> int | None:
    """1-based rank of ``truth`` among the distinct services of ``causes`` (best first).

    A service counts once, at its first (best) entry; a service listed after ``truth`` with
    a score at least as high ties with it and is counted before it. None when not listed.
    """
    best: dict[str, float] = {}
    for service, score in causes:
        best.setdefault(service, score)
    if truth not in best:
        return None
    order = list(best)
    pos = order.index(truth)
    tied_after = sum(1 for s in order[pos + 1 :] if best[s] >= best[truth])
    return pos + 1 + tied_after


# --- scoring (pure) --------------------------------------------------------------------------


def _figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ranks: list[int | None] = [r["rank"] for r in rows]
    return {
        "count": len(rows),
        "detected": sum(1 for r in rows if r["detected"]),
        "ac1": round(accuracy_at(ranks, 1), 3),
        "ac3": round(accuracy_at(ranks, 3), 3),
        "ac5": round(accuracy_at(ranks, 5), 3),
    }


def _quantiles(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None}
    s = sorted(values)
    return {
        "n": len(s),
        "median": round(statistics.median(s), 3),
        "p95": round(s[math.ceil(0.95 * len(s)) - 1], 3),  # nearest rank
        "max": round(s[-1], 3),
    }


def score_live(
    faults: Sequence[Fault],
    incidents: Sequence[IncidentRecord],
    root_causes: Mapping[str, RootCauses],
    data_windows: Sequence[int] | set[int],
    *,
    window_ns: int = MINUTE_NS,
    lateness_ns: int = 10 * NS_PER_S,
    span_windows: Sequence[int] | set[int] = (),
    on_request: Mapping[str, RootCauses] | None = None,
) -> dict[str, Any]:
    """The figures of ``eval live`` (see the module doc) from what the server answered.

    ``root_causes`` maps incident ids to their ranked causes; ``data_windows`` and
    ``span_windows`` are the starts of the analysis windows that held any data and spans.
    ``on_request``: causes ranked by the incident route after the replay, scored beside them.
    """
    matches: list[FaultMatch] = match_faults(faults, incidents, LIVE_WINDOW)
    per_fault: list[dict[str, Any]] = []
    for m in matches:
        f, first = m.fault, m.first
        causes = None if first is None else root_causes.get(first.id)
        delay = m.delay_s(window_ns, lateness_ns)
        per_fault.append(
            {
                "inject_time": f.inject_time.isoformat(),
                "inject_time_ns": f.inject_time_ns,
                "day": f.day.isoformat(),
                "service": f.service,
                "pod": f.pod,
                "type": f.fault_type,
                "detected": first is not None,
                "delay_s": None if delay is None else round(delay, 1),
                "rank": None if causes is None else service_rank(f.service, causes.services()),
                "incident_id": None if first is None else first.id,
                "incident_opened": None if first is None else _rfc3339(first.opened_ns),
                "incident_opened_ns": None if first is None else first.opened_ns,
                "incident_services": [] if first is None else list(first.services),
                "incidents_opened_in_window": len(m.opened),
                "joined_earlier_incident": m.joined[0] if m.joined and first is None else None,
                "root_cause_source": None if causes is None else causes.source,
                "rca_status": None if causes is None else causes.status,
                "rca_reason": None if causes is None else causes.reason,
                "root_causes_top3": [] if causes is None else causes.top(3),
            }
        )
        if on_request is not None:
            asked = None if first is None else on_request.get(first.id)
            per_fault[-1]["rank_on_request"] = (
                None if asked is None else service_rank(f.service, asked.services())
            )
    in_window = {i.id for m in matches for i in m.opened}
    false = [i for i in incidents if i.id not in in_window]
    spans = set(span_windows)
    false_in_spans = [i for i in false if i.opened_ns - i.opened_ns % window_ns in spans]
    hours = len(set(data_windows)) * window_ns / (3600 * NS_PER_S)
    span_hours = len(spans) * window_ns / (3600 * NS_PER_S)
    overall = _figures(per_fault)
    delays = [p["delay_s"] for p in per_fault if p["delay_s"] is not None]
    within = sum(1 for d in delays if d <= TARGET_DELAY_S)
    per_type = {t: _figures(list(rows)) for t, rows in _grouped(per_fault, "type").items()}
    false_by_day = Counter(_rfc3339(i.opened_ns)[:10] for i in false)
    by_day = _grouped(per_fault, "day")
    per_day = {
        day: {**_figures(by_day.get(day, [])), "false_incidents": false_by_day.get(day, 0)}
        for day in sorted(set(by_day) | set(false_by_day))
    }
    known = {i.id for i in incidents}
    latencies = [c.latency_s for i, c in root_causes.items() if c.latency_s is not None and i in known]
    false_per_hour = None if hours == 0 else round(len(false) / hours, 3)
    rca = _quantiles(latencies)
    ranking = _quantiles(
        [c.ranking_s for i, c in root_causes.items() if c.ranking_s is not None and i in known]
    )
    return {
        "faults": overall["count"],
        "detected": overall["detected"],
        "detected_within_2_min": within,
        "ac1": overall["ac1"],
        "ac3": overall["ac3"],
        "ac5": overall["ac5"],
        "mean_delay_s": round(sum(delays) / len(delays), 1) if delays else None,
        "max_delay_s": max(delays) if delays else None,
        "incidents": len(incidents),
        "false_incidents": len(false),
        "data_hours": round(hours, 3),
        "false_per_hour": false_per_hour,
        "span_hours": round(span_hours, 3),
        "false_incidents_in_span_windows": len(false_in_spans),
        "false_per_hour_with_spans": None if span_hours == 0 else round(len(false_in_spans) / span_hours, 3),
        "missed_but_joined_an_earlier_incident": sum(1 for p in per_fault if p["joined_earlier_incident"]),
        "root_service_in_opening_incident": sum(
            1 for p in per_fault if p["service"] in p["incident_services"]
        ),
        "rca_latency_s": rca,
        "rca_ranking_s": ranking,
        "per_type": per_type,
        "per_day": per_day,
        "targets_met": {
            "every_fault_within_2_min": bool(per_fault) and within == len(per_fault),
            "ac1_at_least_0.90": overall["ac1"] >= TARGET_AC1,
            "ac3_at_least_0.97": overall["ac3"] >= TARGET_AC3,
            "every_type_ac3_at_least_0.90": bool(per_type)
            and all(t["ac3"] >= TARGET_TYPE_AC3 for t in per_type.values()),
            "at_most_1_false_incident_per_day": false_per_hour is not None
            and false_per_hour * 24 <= TARGET_FALSE_PER_DAY,
            "rca_median_below_2_s": rca["median"] is not None and rca["median"] < TARGET_RCA_MEDIAN_S,
        },
        **({} if on_request is None else {"on_request": _on_request(per_fault)}),
        "match_window": LIVE_WINDOW.describe(),
        "per_fault": per_fault,
        "false_incident_titles": [f"{_rfc3339(i.opened_ns)} {i.title}" for i in false[:30]],
    }


def _on_request(per_fault: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ranks: list[int | None] = [p["rank_on_request"] for p in per_fault]
    return {
        "source": RCA_ROUTE,
        "ac1": round(accuracy_at(ranks, 1), 3),
        "ac3": round(accuracy_at(ranks, 3), 3),
        "ac5": round(accuracy_at(ranks, 5), 3),
    }


def _grouped(rows: Sequence[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(str(r[key]), []).append(r)
    return dict(sorted(out.items()))


def _rfc3339(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // NS_PER_S, tz=dt.UTC).isoformat()


# --- reading the server back over its API ----------------------------------------------------


def _ranked(detail: Mapping[str, Any]) -> bool:
    """Whether an incident's root causes are known: its ``rca_status`` is past ``pending``
    (``root_causes`` is then the answer, empty when nothing changed)."""
    if "rca_status" in detail:
        return bool(detail["rca_status"] != "pending")
    return detail.get("root_causes") is not None


def _carries(detail: Mapping[str, Any]) -> bool:
    return "rca_status" in detail or "root_causes" in detail


def _record(detail: Mapping[str, Any]) -> IncidentRecord:
    return IncidentRecord(
        id=str(detail["id"]),
        opened_ns=int(detail["opened_unix_nano"]),
        start_ns=int(detail["start_unix_nano"]),
        services=tuple(str(s) for s in detail.get("services") or ()),
        title=str(detail.get("title", "")),
        member_windows=tuple(int(a["window_start_unix_nano"]) for a in detail.get("anomalies") or ()),
    )


class _Watcher:
    """Polls the API while the replay runs: when each incident first shows and when its root
    causes do (wall clock, to ``interval_s``). Only incidents shown in the last ``follow_s``
    are polled for causes, and none once the server shows it attaches none."""

    def __init__(self, base_url: str, interval_s: float = 0.5, follow_s: float = 300.0) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=60)
        self.interval_s = interval_s
        self.follow_s = follow_s
        self.shown: dict[str, float] = {}
        self.causes_shown: dict[str, float] = {}
        self.errors = 0
        self.no_root_causes = False  # the server's incidents carry no root causes at all
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eval-live-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and close the client; safe to call twice."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(120)
        self.client.close()

    def latency_s(self, incident_id: str) -> float | None:
        shown, causes = self.shown.get(incident_id), self.causes_shown.get(incident_id)
        return None if shown is None or causes is None else round(causes - shown, 3)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except (httpx.HTTPError, ValueError, KeyError):
                self.errors += 1

    def poll(self) -> None:
        r = self.client.get("/api/v1/incidents", params={"limit": 1000})
        r.raise_for_status()
        now = time.perf_counter()
        for inc in r.json()["incidents"]:
            self.shown.setdefault(str(inc["id"]), now)
        for iid, shown in list(self.shown.items()):
            if self.no_root_causes or self._stop.is_set():
                return
            if iid in self.causes_shown or now - shown > self.follow_s:
                continue
            d = self.client.get(f"/api/v1/incidents/{iid}")
            if d.status_code == 200:
                detail = d.json()
                self.no_root_causes = not _carries(detail)
                if _ranked(detail):
                    self.causes_shown[iid] = time.perf_counter()


def _read_back(
    api: httpx.Client, wait_s: float, say: Callable[[str], None]
) -> tuple[list[IncidentRecord], dict[str, RootCauses], dict[str, Any]]:
    """Every incident with its root causes as the API gives them once the analysis is done."""
    r = api.get("/api/v1/incidents", params={"limit": 1000})
    r.raise_for_status()
    listing = r.json()
    ids = [str(i["id"]) for i in listing["incidents"]]
    details: dict[str, dict[str, Any]] = {}
    deadline = time.perf_counter() + wait_s
    last_pending, progress_at = len(ids) + 1, time.perf_counter()
    while True:
        for iid in ids:
            if iid not in details or not _ranked(details[iid]):
                got = api.get(f"/api/v1/incidents/{iid}")
                got.raise_for_status()
                details[iid] = got.json()
        carries = any(_carries(d) for d in details.values())
        pending = [i for i in ids if not _ranked(details[i])]
        now = time.perf_counter()
        if len(pending) < last_pending:
            last_pending, progress_at = len(pending), now
        # Wait while rankings still land; give up after a minute without one.
        if not carries or not pending or now > deadline or now - progress_at > 60:
            break
        say(f"waiting for the root causes of {len(pending)} incidents")
        time.sleep(2.0)
    incidents = sorted((_record(d) for d in details.values()), key=lambda i: (i.opened_ns, i.id))
    causes: dict[str, RootCauses] = {}
    for iid, d in details.items():
        if carries:
            causes[iid] = RootCauses(
                INCIDENT_ROUTE,
                tuple(d.get("root_causes") or ()) if _ranked(d) else (),
                None,
                str(d.get("rca_status", "")),
                str(d.get("rca_reason", "")),
                d["rca_duration_s"] if isinstance(d.get("rca_duration_s"), int | float) else None,
            )
    info = {
        "incidents_listing_truncated": bool(listing.get("truncated")),
        "incidents_carry_root_causes": carries,
        "rca_status_of_incidents": dict(Counter(c.status for c in causes.values())) if carries else None,
    }
    return incidents, causes, info


def _rca_metrics(api: httpx.Client) -> dict[str, Any] | None:
    """The server's own account of its rankings from ``GET /metrics``: outcomes, and the time
    from an incident opening or growing to its root causes being stored (a histogram: the
    quantiles are the upper bounds of their buckets). None when it keeps no such metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    r = api.get("/metrics")
    if r.status_code != 200:
        return None
    outcomes: dict[str, int] = {}
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == "faultlens_rca_rankings_total":
                outcomes[sample.labels.get("outcome", "")] = int(sample.value)
            elif sample.name == "faultlens_rca_attach_seconds_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name == "faultlens_rca_attach_seconds_sum":
                total = sample.value
            elif sample.name == "faultlens_rca_attach_seconds_count":
                count = sample.value
    if not outcomes and not count:
        return None
    buckets.sort()

    def upper(q: float) -> float | None:
        return next((le for le, n in buckets if count and n >= q * count), None)

    return {
        "rankings_by_outcome": outcomes,
        "attach_s": {
            "n": int(count),
            "mean": round(total / count, 3) if count else None,
            "median_at_most": upper(0.5),
            "p95_at_most": upper(0.95),
        },
    }


def _rca_route(api: httpx.Client, incident_ids: Sequence[str]) -> dict[str, RootCauses]:
    """Root causes ranked on request by ``GET /api/v1/incidents/{id}/rca`` (for servers that
    do not attach them, or to compare): its ``root_causes`` (the significant ones) where it
    gives them, else its ``candidates``."""
    out: dict[str, RootCauses] = {}
    for iid in incident_ids:
        r = api.get(f"/api/v1/incidents/{iid}/rca")
        if r.status_code != 200:
            out[iid] = RootCauses(RCA_ROUTE, (), status=f"HTTP {r.status_code}", reason=r.text[:200])
            continue
        body = r.json()
        listed = body["root_causes"] if "root_causes" in body else body.get("candidates", [])
        causes = tuple(
            {
                "service": c["service"],
                "operation": c.get("operation", ""),
                "pod": c.get("pod", ""),
                "reason": c.get("reason", ""),
                "score": c.get("score", 0.0),
                "evidence": c.get("evidence", []),
            }
            for c in listed
        )
        out[iid] = RootCauses(
            RCA_ROUTE,
            causes,
            round(float(body.get("duration_ms", 0.0)) / 1e3, 3),
            str(body.get("rca_status", "")),
            str(body.get("rca_reason", "")),
        )
    return out


# --- the run ---------------------------------------------------------------------------------


@dataclass
class _Replayed:
    data_windows: set[int] = field(default_factory=set)
    span_windows: set[int] = field(default_factory=set)


def _ranges(days: Sequence[dt.date], end_ns: int | None) -> dict[dt.date, TimeRange]:
    """Each day's UTC hours, cut at ``end_ns``; days wholly after it are left out."""
    out: dict[dt.date, TimeRange] = {}
    for d in days:
        lo = int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * NS_PER_S
        hi = lo + DAY_NS if end_ns is None else min(lo + DAY_NS, end_ns)
        if hi > lo:
            out[d] = TimeRange(lo, hi)
    return out


def replay_config(data_dir: Path, *, analysis: Mapping[str, Any] | None = None) -> Config:
    """The configuration of a server a data set is replayed into: the defaults, free ports,
    ``data_dir``, and :data:`CAPACITY_OVERRIDES`; ``analysis`` adds analysis settings (``eval
    detect`` picks its window with it)."""
    from faultlens.config.model import Config

    overrides = {k: dict(v) for k, v in CAPACITY_OVERRIDES.items()}
    return Config.model_validate(
        {
            **overrides,
            "store": {**overrides["store"], "data_dir": str(data_dir)},
            "analysis": {**overrides["analysis"], **(analysis or {})},
            "receivers": {"grpc": {"port": 0}, "http": {"port": 0}},
            "api": {"enabled": True, "port": 0},
            "log_level": "warning",
        }
    )


def live_window_ns() -> int:
    """The analysis window of the server :func:`run_live` starts (its data dir changes nothing)."""
    return int(replay_config(Path(tempfile.gettempdir())).analysis.window * NS_PER_S)


@dataclass(frozen=True, slots=True)
class LiveRun:
    """What one replay into a fresh in-process server left: its incidents with their stored
    root causes (and, asked for, ranked on request), and the server's own account."""

    incidents: list[IncidentRecord]
    causes: dict[str, RootCauses]
    requested: dict[str, RootCauses] | None
    summary: ReplaySummary
    info: dict[str, Any]
    window_ns: int
    lateness_ns: int
    poll_errors: int
    server_rca: dict[str, Any] | None
    late: dict[str, int]
    dropped: int
    drain_s: float
    cpu_s: float

    def server_section(self) -> dict[str, Any]:
        return {
            "capacity_overrides": CAPACITY_OVERRIDES,
            "analysis_window_s": self.window_ns / NS_PER_S,
            **self.info,
            "analysis_dropped_items": self.dropped,
            "analysis_late_items": self.late,
            "api_poll_errors": self.poll_errors,
            "rca_from_metrics": self.server_rca,
        }

    def timing(self, wall_t0: float) -> dict[str, float]:
        return {
            "replay_s": round(self.summary.elapsed_s, 1),
            "analysis_drain_s": round(self.drain_s, 1),
            "process_cpu_s": round(self.cpu_s, 1),
            "wall_s": round(time.perf_counter() - wall_t0, 1),
        }


def run_live(
    replay: Callable[[OtlpSender], ReplaySummary],
    faults: Sequence[Fault],
    *,
    on_request: bool = False,
    rca_wait_s: float = 900.0,
    keep: Path | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> LiveRun:
    """Start a fresh in-process server (:func:`replay_config`), let ``replay`` send its data
    over OTLP/gRPC, drain the analysis and the root-cause worker, and read every incident and
    its root causes back over the API. ``faults`` only pick which incidents ``on_request``
    ranks again (no label reaches the server). ``keep``: run in this directory (created; it
    must be empty) and leave the store there."""
    from faultlens.datasets import make_sender
    from faultlens.eval.detect import _dropped
    from faultlens.testing.inprocess import InProcessServer
    from faultlens.types import Transport

    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        if any(keep.iterdir()):
            raise ValueError(f"--keep: {keep} is not empty")
    scratch = contextlib.nullcontext(str(keep)) if keep is not None else None
    with scratch or tempfile.TemporaryDirectory(prefix="faultlens-eval-live-") as tmp:
        config = replay_config(Path(tmp))
        server = InProcessServer(config, shutdown_timeout_s=120)
        api = httpx.Client(base_url=f"http://127.0.0.1:{server.ports['api']}", timeout=300)
        watcher = _Watcher(f"http://127.0.0.1:{server.ports['api']}")
        try:
            analysis = server.server.analysis
            assert analysis is not None
            sender = make_sender(
                f"http://127.0.0.1:{server.ports['otlp-grpc']}", Transport.GRPC, timeout_s=60
            )
            watcher.start()
            cpu0 = time.process_time()
            try:
                summary = replay(sender)
            finally:
                sender.close()
            say(f"replayed {summary.items} items in {summary.elapsed_s:.0f} s; waiting for the analysis")
            drain_t0 = time.perf_counter()
            if not analysis.drain(1800, close_windows=True):
                raise RuntimeError("the analysis did not drain within 30 minutes")
            drain_s = time.perf_counter() - drain_t0
            ranking = server.server.root_causes
            if ranking is not None and not ranking.drain(rca_wait_s):  # resolutions rank once more
                say(f"the root-cause worker was still busy after {rca_wait_s:.0f} s; reading what it stored")
            # The watcher goes on while the last rankings land, so their latency counts too.
            incidents, causes, info = _read_back(api, rca_wait_s, say)
            watcher.stop()
            causes = {i: replace(c, latency_s=watcher.latency_s(i)) for i, c in causes.items()}
            server_rca = _rca_metrics(api)
            cpu_s = time.process_time() - cpu0
            requested: dict[str, RootCauses] | None = None
            if on_request or not info["incidents_carry_root_causes"]:
                if not info["incidents_carry_root_causes"]:
                    say(f"incidents carry no root_causes: asking {RCA_ROUTE} for the incidents that matched")
                first = {m.first.id for m in match_faults(faults, incidents, LIVE_WINDOW) if m.first}
                requested = _rca_route(api, sorted(first))
                if not info["incidents_carry_root_causes"]:
                    causes, requested = requested, None
            late = {
                "logs_and_points_after_their_window_was_judged": analysis.engine.late_items,
                "spans_after_their_red_window_closed": analysis.engine.red.counters.late_spans,
            }
            dropped = _dropped(server.server.metrics.dropped_items)
        finally:
            watcher.stop()
            api.close()
            server.stop()
    return LiveRun(
        incidents,
        causes,
        requested,
        summary,
        info,
        int(config.analysis.window * NS_PER_S),
        int(config.analysis.lateness * NS_PER_S),
        watcher.errors,
        server_rca,
        late,
        dropped,
        drain_s,
        cpu_s,
    )


def evaluate_live(
    root: Path,
    *,
    days: Sequence[dt.date] = (),
    limit: int | None = None,
    lodo: bool = False,
    on_request: bool = False,
    rca_wait_s: float = 900.0,
    keep: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay ``root`` (Nezha layout) into a fresh server as live telemetry; score what it answers.

    ``days``: only these days (all when empty). ``limit``: only the first ``limit`` faults,
    and the data up to the end of the last one's window (from the start of its day, so the
    server has the hours before it). ``lodo``: add the per-day figures as leave-one-day-out
    (the server's configuration is fixed, so every day is held out from any choice).
    ``on_request``: also rank each detection's incident by ``GET /api/v1/incidents/{id}/rca``
    once the replay is over, and report that rank beside the stored one. ``keep``: run the
    server in this directory (created; it must be empty) and leave its store there, to look
    into the incidents afterwards (``faultlens serve`` on it, or ``faultlens rca``).
    """
    from faultlens.datasets import NezhaDataset, SpanRecord
    from faultlens.datasets.otlp import OtlpConverter
    from faultlens.eval.detect import replay_as_live

    say = progress or (lambda _: None)
    wall = time.perf_counter()
    ds = NezhaDataset(root)
    all_days = ds.days()
    unknown = [d for d in days if d not in all_days]
    if unknown:
        raise ValueError(f"no such day in {root}: {', '.join(d.isoformat() for d in unknown)}")
    chosen = sorted(days) if days else all_days
    faults = [f for f in ds.faults() if f.day in chosen]
    if limit is not None:
        faults = faults[:limit]
    end_ns = None
    if limit is not None:
        end_ns = (faults[-1].inject_time_ns + LIVE_WINDOW.after_ns + MINUTE_NS) if faults else 0
    by_day = _ranges(chosen, end_ns)
    ranges = list(by_day.values())
    chosen = list(by_day)
    seen = _Replayed()

    def records() -> Iterator[Record]:
        stream = ds.records(None) if not days and end_ns is None else _chain(ds, ranges)
        for rec in stream:
            t = rec.time_ns
            seen.data_windows.add(t - t % run_window_ns)
            if isinstance(rec, SpanRecord):
                seen.span_windows.add(t - t % run_window_ns)
            yield rec

    hull = TimeRange(ranges[0].start_ns, ranges[-1].end_ns) if ranges else None
    run_window_ns = live_window_ns()

    def replay(sender: OtlpSender) -> ReplaySummary:
        say(f"replaying {root} ({', '.join(d.isoformat() for d in chosen)}) at full speed")
        return replay_as_live(records(), sender, OtlpConverter(pod_nodes=ds.pod_nodes(hull)))

    live = run_live(replay, faults, on_request=on_request, rca_wait_s=rca_wait_s, keep=keep, say=say)
    incidents, causes, requested, summary = live.incidents, live.causes, live.requested, live.summary
    wn, lateness = live.window_ns, live.lateness_ns

    report = score_live(
        faults,
        incidents,
        causes,
        seen.data_windows,
        window_ns=wn,
        lateness_ns=lateness,
        span_windows=seen.span_windows,
        on_request=requested,
    )
    sources = sorted({c.source for c in causes.values()})
    out: dict[str, Any] = {
        "dataset": str(root),
        "days": [d.isoformat() for d in chosen],
        "limit": limit,
        **{k: v for k, v in report.items() if k not in ("per_fault", "false_incident_titles")},
        "root_cause_source": sources[0] if len(sources) == 1 else sources,
        "server": live.server_section(),
        "replay": summary.as_dict(),
        "timing": live.timing(wall),
        "per_fault": report["per_fault"],
        "false_incident_titles": report["false_incident_titles"],
    }
    if lodo:
        out["lodo"] = {
            "note": "one fixed configuration (the server's defaults): nothing is chosen on other days, "
            "so each day's figures are already held out",
            "held_out": report["per_day"],
        }
    return out


def _chain(ds: NezhaDataset, ranges: Sequence[TimeRange]) -> Iterator[Record]:
    return itertools.chain.from_iterable(ds.records(r) for r in ranges)


# --- the human table -------------------------------------------------------------------------


def render_table(report: Mapping[str, Any]) -> str:
    """The report as a few lines of text (the JSON has everything)."""
    timing = report["timing"]
    lines = [
        f"eval live: {report['dataset']} ({', '.join(report['days'])}); root causes from "
        f"{report['root_cause_source']}; replay {timing['replay_s']} s, analysis drain "
        f"{timing['analysis_drain_s']} s, wall {timing['wall_s']} s",
        f"{'':24s} {'faults':>6s} {'detect':>6s} {'AC@1':>6s} {'AC@3':>6s} {'AC@5':>6s}",
        f"{'all':24s} {report['faults']:6d} {report['detected']:6d} {report['ac1']:6.3f} "
        f"{report['ac3']:6.3f} {report['ac5']:6.3f}",
    ]
    for name, group in (("", report["per_type"]), ("day ", report["per_day"])):
        for key, f in group.items():
            lines.append(
                f"  {name + key:22s} {f['count']:6d} {f['detected']:6d} {f['ac1']:6.3f} "
                f"{f['ac3']:6.3f} {f['ac5']:6.3f}"
                + (f"  false {f['false_incidents']}" if "false_incidents" in f else "")
            )
    rca = report["rca_latency_s"]
    lines += [
        f"detected within 2 min: {report['detected_within_2_min']}/{report['faults']}; mean delay "
        f"{report['mean_delay_s']} s, max {report['max_delay_s']} s",
        f"false incidents: {report['false_incidents']} of {report['incidents']} in {report['data_hours']} h "
        f"of data ({report['false_per_hour']} per hour); {report['false_incidents_in_span_windows']} in the "
        f"{report['span_hours']} h holding spans ({report['false_per_hour_with_spans']} per hour)",
        f"root causes available after: median {rca['median']} s, p95 {rca['p95']} s (n={rca['n']})",
        *(
            [
                f"ranked on request ({RCA_ROUTE} after the replay): AC@1 {asked['ac1']:.3f} "
                f"AC@3 {asked['ac3']:.3f} AC@5 {asked['ac5']:.3f}"
            ]
            if (asked := report.get("on_request"))
            else []
        ),
        "targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in report["targets_met"].items()),
    ]
    for p in report["per_fault"]:
        mark = "MISS" if not p["detected"] else (f"#{p['rank']}" if p["rank"] else "unranked")
        lines.append(
            f"  {mark:>8s} {p['inject_time']} {p['type']:<15s} {p['service']:<32s} "
            f"delay {p['delay_s']} s  {p['incident_id'] or ''}"
        )
    return "\n".join(lines)
