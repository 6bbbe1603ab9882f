"""Graceful degradation: when the queue passes its high-water mark, keep what explains faults.

Above ``high_water_mark`` (fraction of the item or byte capacity, whichever is fuller) every
new trace or logs request is filtered before it is queued:

- a span is kept if its trace has an error span (status ERROR) or an error log, in this
  request or in one seen recently (a bounded memory of error trace ids), so error traces
  stay whole even when their spans arrive in several requests;
- a log record is kept if its severity is ERROR or worse, or its trace is such a trace;
- of everything else, ``sample_ratio`` is kept, chosen by trace id so that a sampled trace is
  kept whole (records without a trace id are sampled at random);
- metrics pass untouched: dropping points from aggregates would make them lie, and they are
  small. The overflow policy still bounds them.

Filtering works on the serialized request (parse, filter, serialize): only requests that are
actually degraded pay for it, and the exporter stays a byte forwarder otherwise. Every span
or record left out is returned so the caller counts it (reason ``degraded_sampled``).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.export.config import DegradationConfig
from faultlens.export.queue.base import Batch
from faultlens.types import Signal

STATUS_CODE_ERROR = 2
SEVERITY_NUMBER_ERROR = 17
_TWO64 = 1 << 64


class Degrader:
    """Filters requests while degraded. Not thread-safe: the spool thread owns it."""

    def __init__(self, config: DegradationConfig, rng: random.Random | None = None) -> None:
        self._config = config
        self._threshold = int(config.sample_ratio * _TWO64)
        self._errors: OrderedDict[bytes, None] = OrderedDict()
        self._rng = rng or random.Random()

    def active(self, fill_ratio: float) -> bool:
        return self._config.enabled and fill_ratio >= self._config.high_water_mark

    def _remember(self, trace_id: bytes) -> None:
        if not trace_id or self._config.remembered_error_traces == 0:
            return
        self._errors[trace_id] = None
        self._errors.move_to_end(trace_id)
        while len(self._errors) > self._config.remembered_error_traces:
            self._errors.popitem(last=False)

    def _sampled(self, trace_id: bytes) -> bool:
        if len(trace_id) == 16:
            return int.from_bytes(trace_id[8:], "big") < self._threshold
        return self._rng.random() < self._config.sample_ratio

    def _keep(self, trace_id: bytes, errors: set[bytes]) -> bool:
        return trace_id in errors or trace_id in self._errors or self._sampled(trace_id)

    def filter(self, batch: Batch) -> tuple[Batch | None, int]:
        """``(what to queue or None, items left out)``."""
        if batch.signal is Signal.TRACES:
            return self._filter_traces(batch)
        if batch.signal is Signal.LOGS:
            return self._filter_logs(batch)
        return batch, 0

    def _filter_traces(self, batch: Batch) -> tuple[Batch | None, int]:
        req: Any = ExportTraceServiceRequest.FromString(batch.body)
        errors = {
            s.trace_id
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
            if s.status.code == STATUS_CODE_ERROR
        }
        for t in errors:
            self._remember(t)
        kept = dropped = 0
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                keep = [s for s in ss.spans if self._keep(s.trace_id, errors)]
                if len(keep) != len(ss.spans):
                    dropped += len(ss.spans) - len(keep)
                    del ss.spans[:]
                    ss.spans.extend(keep)
                kept += len(keep)
        return self._rebuild(batch, req, kept, dropped, "resource_spans", "scope_spans", "spans")

    def _filter_logs(self, batch: Batch) -> tuple[Batch | None, int]:
        req: Any = ExportLogsServiceRequest.FromString(batch.body)
        errors = {
            r.trace_id
            for rl in req.resource_logs
            for sl in rl.scope_logs
            for r in sl.log_records
            if r.severity_number >= SEVERITY_NUMBER_ERROR and r.trace_id
        }
        for t in errors:
            self._remember(t)
        kept = dropped = 0
        for rl in req.resource_logs:
            for sl in rl.scope_logs:
                keep = [
                    r
                    for r in sl.log_records
                    if r.severity_number >= SEVERITY_NUMBER_ERROR or self._keep(r.trace_id, errors)
                ]
                if len(keep) != len(sl.log_records):
                    dropped += len(sl.log_records) - len(keep)
                    del sl.log_records[:]
                    sl.log_records.extend(keep)
                kept += len(keep)
        return self._rebuild(batch, req, kept, dropped, "resource_logs", "scope_logs", "log_records")

    @staticmethod
    def _rebuild(
        batch: Batch, req: Any, kept: int, dropped: int, outer: str, middle: str, inner: str
    ) -> tuple[Batch | None, int]:
        if dropped == 0:
            return batch, 0
        if kept == 0:
            return None, dropped
        for res in getattr(req, outer):
            scopes = [s for s in getattr(res, middle) if len(getattr(s, inner))]
            if len(scopes) != len(getattr(res, middle)):
                del getattr(res, middle)[:]
                getattr(res, middle).extend(scopes)
        resources = [r for r in getattr(req, outer) if len(getattr(r, middle))]
        del getattr(req, outer)[:]
        getattr(req, outer).extend(resources)
        # Items are counted by the batch (the decoder's accepted count), so scale by what left.
        items = max(batch.items - dropped, 0) if batch.items >= kept + dropped else kept
        return Batch(batch.signal, req.SerializeToString(), items, batch.enqueued_ns), dropped
