"""Values shared by every pipeline stage.

They live here, not in any one stage, so that ``decode`` and ``store`` can both speak of a
signal or a time range without importing each other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Signal(enum.StrEnum):
    """The three OTLP signals; the value is the path segment used by OTLP/HTTP (``/v1/<value>``)."""

    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"

    @property
    def item_name(self) -> str:
        """What one item of this signal is called in counters and partial-success messages."""
        return {"traces": "spans", "metrics": "data points", "logs": "log records"}[self.value]


class Transport(enum.StrEnum):
    GRPC = "grpc"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open interval ``[start_ns, end_ns)`` of Unix nanoseconds (UTC)."""

    start_ns: int
    end_ns: int

    def __post_init__(self) -> None:
        if self.end_ns < self.start_ns:
            raise ValueError(f"time range ends before it starts: {self.start_ns} > {self.end_ns}")

    def contains(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns < self.end_ns

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns
