"""Readers for external telemetry data layouts, and their replay as OTLP.

Entry points:

- :class:`NezhaDataset` reads a directory in the Nezha layout into typed records
  (:class:`SpanRecord`, :class:`LogRecord`, :class:`MetricRecord`) and labels
  (:class:`Fault`, :class:`NormalPeriod`), counting what it cannot use in a
  :class:`ReadReport`.
- :class:`OtlpConverter` turns records into OTLP export requests.
- :class:`Replayer` sends them, paced and batched, through an :class:`OtlpSender`
  (:func:`make_sender` builds the gRPC or HTTP one).

Readers depend on nothing downstream of them: a replay talks to faultlens (or any OTLP
endpoint) over the wire, exactly as a real service would.
"""

from faultlens.datasets.logline import ParsedLine, parse_line
from faultlens.datasets.nezha import Fault, NezhaDataset, NormalPeriod, service_of_pod
from faultlens.datasets.otlp import MetricIdentity, OtlpConverter, metric_identity
from faultlens.datasets.records import LogRecord, MetricRecord, Record, SpanRecord
from faultlens.datasets.replay import Replayer, ReplayOptions, ReplaySummary, SignalCounts
from faultlens.datasets.report import ReadReport
from faultlens.datasets.sender import (
    GrpcSender,
    HttpSender,
    OtlpSender,
    RetryPolicy,
    SendResult,
    make_sender,
)

__all__ = [
    "Fault",
    "GrpcSender",
    "HttpSender",
    "LogRecord",
    "MetricIdentity",
    "MetricRecord",
    "NezhaDataset",
    "NormalPeriod",
    "OtlpConverter",
    "OtlpSender",
    "ParsedLine",
    "ReadReport",
    "Record",
    "ReplayOptions",
    "ReplaySummary",
    "Replayer",
    "RetryPolicy",
    "SendResult",
    "SignalCounts",
    "SpanRecord",
    "make_sender",
    "metric_identity",
    "parse_line",
    "service_of_pod",
]
