"""Dataset-neutral telemetry records: what every dataset reader yields and replay converts.

Readers of external layouts (Nezha today, others later) turn their files into these small
frozen values, so that conversion to OTLP (:mod:`faultlens.datasets.otlp`) and replay
(:mod:`faultlens.datasets.replay`) never depend on one layout's column names. Times are
int64 Unix nanoseconds (UTC); ids are raw bytes, empty when absent.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span. The data sets we read carry no span kind and no status, so neither exists here."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes  # b"" for a root span
    name: str
    start_ns: int
    end_ns: int
    service: str
    pod: str

    @property
    def time_ns(self) -> int:
        """The time a replay orders and paces this record by."""
        return self.start_ns


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log line, with what could be parsed out of its text.

    ``severity_number`` follows the OTLP SeverityNumber scale (0 when the text has no level);
    ``logger`` is the logger as printed, e.g. ``u.c.UserController#48`` (class and line),
    which later stages use to tell log statements apart.
    """

    time_ns: int
    service: str
    pod: str
    node: str
    container: str
    trace_id: bytes
    span_id: bytes
    severity_text: str
    severity_number: int
    logger: str
    body: str
    stream: str = ""


@dataclass(frozen=True, slots=True)
class MetricRecord:
    """One row of resource metrics: several named values of one entity at one time.

    ``pod`` is empty when the row describes a whole service rather than one pod.
    ``values`` pairs each original column name with its value; naming and units are decided
    at conversion (:func:`faultlens.datasets.otlp.metric_identity`). ``peer`` is the other
    end when the row measures calls between two services (``service`` is the end that
    reported them: the caller for a client-side column, the callee for a server-side one).
    """

    time_ns: int
    service: str
    pod: str
    values: tuple[tuple[str, float], ...]
    peer: str = ""


Record = SpanRecord | LogRecord | MetricRecord
