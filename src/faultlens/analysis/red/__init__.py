"""RED metrics (requests, errors, duration) per service operation and per call edge.

Entry point: :class:`RedAggregator`. Feed it span tables of
:data:`faultlens.decode.schema.SPAN_SCHEMA`; it returns :class:`ClosedWindows` holding
:class:`RedWindow` and :class:`EdgeWindow` values as data time passes each window's end
plus the allowed lateness. The error rule is :func:`span_error_mask`.
"""

from faultlens.analysis.red.aggregator import UNKNOWN_SERVICE, RedAggregator
from faultlens.analysis.red.errors import span_error_mask
from faultlens.analysis.red.types import (
    PERCENTILES,
    ClosedWindows,
    EdgeWindow,
    RedConfig,
    RedCounters,
    RedWindow,
)

__all__ = [
    "PERCENTILES",
    "UNKNOWN_SERVICE",
    "ClosedWindows",
    "EdgeWindow",
    "RedAggregator",
    "RedConfig",
    "RedCounters",
    "RedWindow",
    "span_error_mask",
]
