"""What decoding produces, and the contract every decoder keeps.

A request is decoded exactly once into one Arrow table of its signal's schema
(:mod:`faultlens.decode.schema`). Invalid items (spans, log records, data points) are left
out one by one and counted in ``rejected`` with the first reason in ``error_message``: the
OTLP partial-success contract. A request that cannot be parsed at all raises
:class:`faultlens.errors.InvalidRequest` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.types import Signal

SCHEMAS: dict[Signal, pa.Schema] = {
    Signal.TRACES: SPAN_SCHEMA,
    Signal.METRICS: METRIC_SCHEMA,
    Signal.LOGS: LOG_SCHEMA,
}


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """One decoded request. ``table`` holds only accepted items; consumers must not mutate it.

    Arrow tables are immutable, so the same batch is handed to every consumer (store,
    exporters, analysis) without copying. ``raw`` keeps the original serialized protobuf
    request so exporters can forward it without encoding again; it may be ``None`` when the
    batch did not come from the wire. ``intake_seq`` is the request's sequence number in the
    intake log (``faultlens.receive.intake``) once it is durable there; the store records it
    with the rows, so that a replay of the log writes each request once.
    """

    signal: Signal
    table: pa.Table
    rejected: int = 0
    error_message: str = ""
    raw: bytes | None = None
    intake_seq: int | None = None

    @property
    def accepted(self) -> int:
        return int(self.table.num_rows)

    @staticmethod
    def empty(signal: Signal) -> DecodedBatch:
        return DecodedBatch(signal, SCHEMAS[signal].empty_table())
