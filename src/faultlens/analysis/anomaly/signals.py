"""What a metric series measures, told from its name and unit alone.

Detection (:mod:`.agreement`) and root-cause ranking (:mod:`faultlens.rca.resources`) both
need to know whether a gauge is a *utilisation* (a share of a capacity, so that a rise has
a natural scale) or a *latency* the entity itself serves (a symptom its callers feel). Both
are recognised by the words of the name and the unit, the way OpenTelemetry's semantic
conventions spell them (``container.cpu.utilization`` in ``1``, ``http.server.request.duration``
in ``s``) and the way converted data sets do (``pod.server.latency.p90`` in ``s``), never by
which system sent them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.anomaly.types import SeriesKey, SeriesKind

__all__ = [
    "PEER_ATTRIBUTE",
    "TIME_UNITS",
    "ErrorRatio",
    "Utilisation",
    "UtilisationOf",
    "error_ratio",
    "outgoing",
    "peer_column",
    "resource_key",
    "serving_latency",
    "utilisation",
]

PEER_ATTRIBUTE = "peer.service"
_PEER = r'"peer\.service":\s*"(?P<peer>(?:[^"\\]|\\.)*)"'

_ENTITIES = ("container.", "pod.", "k8s.pod.", "k8s.container.", "process.")
TIME_UNITS = frozenset({"s", "ms", "us", "µs", "ns", "min"})
_LATENCY_WORDS = frozenset({"latency", "duration", "time", "rt"})
_OUTGOING_WORDS = frozenset({"client", "outgoing", "downstream"})


class UtilisationOf(enum.StrEnum):
    CPU = "cpu"
    MEMORY = "memory"


@dataclass(frozen=True, slots=True)
class Utilisation:
    """A utilisation gauge: of what, and its capacity in the gauge's own unit (100 for ``%``)."""

    of: UtilisationOf
    capacity: float


def utilisation(name: str, unit: str | None) -> Utilisation | None:
    """The utilisation a gauge measures, when it is a CPU or memory share of a container,
    pod or process (unit ``%`` or ``1``; the name says utilisation, usage or rate)."""
    if not name.startswith(_ENTITIES):
        return None
    unit = (unit or "").strip()
    words = name.split(".")
    if unit not in ("%", "1") or not ({"utilization", "utilisation", "rate", "usage"} & set(words)):
        return None
    capacity = 100.0 if unit == "%" else 1.0
    if "cpu" in words:
        return Utilisation(UtilisationOf.CPU, capacity)
    if "memory" in words:
        return Utilisation(UtilisationOf.MEMORY, capacity)
    return None


_SUCCESS_WORDS = frozenset({"success", "successful", "succeeded"})
_FAILURE_WORDS = frozenset({"error", "errors", "failure", "failures", "failed"})
_RATIO_WORDS = frozenset({"rate", "ratio", "share", "fraction"})


@dataclass(frozen=True, slots=True)
class ErrorRatio:
    """A gauge of the share of requests that failed, or that succeeded: its capacity in the
    gauge's own unit (100 for ``%``) and which of the two it counts."""

    capacity: float
    counts_successes: bool

    def failed_share(self, value: float) -> float:
        """The share (0..1) of requests that failed, from one value of the gauge."""
        failed = self.capacity - value if self.counts_successes else value
        return min(1.0, max(0.0, failed / self.capacity))


def error_ratio(name: str, unit: str | None) -> ErrorRatio | None:
    """The error ratio a gauge measures: unit ``%`` or ``1``, and a name that says a rate or
    ratio of successes (``service.success.rate``, ``grpc_success_ratio``) or of errors or
    failures (``http.server.error.rate``). A gauge like that is a service level indicator:
    what the service's callers feel, so detection treats its rise in failures as errors."""
    unit = (unit or "").strip()
    if unit not in ("%", "1"):
        return None
    words = set(name.lower().replace("_", ".").split("."))
    if not words & _RATIO_WORDS:
        return None
    capacity = 100.0 if unit == "%" else 1.0
    if words & _SUCCESS_WORDS:
        return ErrorRatio(capacity, counts_successes=True)
    if words & _FAILURE_WORDS:
        return ErrorRatio(capacity, counts_successes=False)
    return None


def outgoing(name: str) -> bool:
    """Whether a gauge measures the calls its entity makes (the client side of a call)."""
    return bool(set(name.lower().replace("_", ".").split(".")) & _OUTGOING_WORDS)


def serving_latency(name: str, unit: str | None) -> bool:
    """Whether a gauge is a latency of the requests its entity serves (not of the calls it
    makes: ``client`` in the name is the caller's side, which a slow callee moves)."""
    words = set(name.lower().replace("_", ".").split("."))
    return (unit or "").strip() in TIME_UNITS and bool(words & _LATENCY_WORDS) and not words & _OUTGOING_WORDS


def resource_key(service: str, name: str, resource: str, peer: str = "") -> SeriesKey:
    """The series key of a gauge. A gauge about calls between its service and a ``peer``
    (the ``peer.service`` attribute) is a series of that call edge, caller -> callee, whichever
    end reported it (the name says which side: :func:`outgoing`): so its changes point at the
    callee (:attr:`SeriesKey.focus_service`) and one edge's client and server sides pair up."""
    if not peer:
        return SeriesKey(SeriesKind.RESOURCE, service, name, resource=resource)
    caller, callee = (service, peer) if outgoing(name) else (peer, service)
    return SeriesKey(SeriesKind.RESOURCE, caller, name, peer=callee, resource=resource)


def peer_column(points: pa.Table) -> pa.ChunkedArray:
    """The ``peer.service`` attribute of each metric point ("" when absent)."""
    attrs = pc.fill_null(points.column("attributes"), "")
    return pc.fill_null(pc.struct_field(pc.extract_regex(attrs, _PEER), "peer"), "")
