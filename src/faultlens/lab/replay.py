"""Replay a recorded lab run: the recorded OTLP requests, sent again in their order.

Pacing and options are those of every replay (:class:`~faultlens.datasets.replay.ReplayOptions`):
a request received at ``t`` is due at ``start + (t - t0) / speed`` (``speed=None``: as fast
as the endpoint answers); ``shift_to_now`` moves every timestamp inside the requests (span
start, end and event times, log times, metric point times) by one offset so that the first
request lands at now. Requests are sent as they were recorded, one recorded request per
request sent, through the one OTLP client of :mod:`faultlens.datasets.sender`, and counted in
the same :class:`~faultlens.datasets.replay.ReplaySummary`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from faultlens.datasets.replay import ProgressCallback, ReplayOptions, ReplaySummary
from faultlens.datasets.sender import OtlpSender, SendResult
from faultlens.lab.recording import ReadReport, count_items, parse_request, read_recording
from faultlens.types import Signal

__all__ = ["replay_lab", "shift_times"]


def replay_lab(
    directory: Path,
    sender: OtlpSender,
    options: ReplayOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_ns: Callable[[], int] = time.time_ns,
    report: ReadReport | None = None,
) -> ReplaySummary:
    opts = options or ReplayOptions()
    summary = ReplaySummary()
    started = clock()
    t0: int | None = None
    failures = 0
    for rec in read_recording(directory, report):
        if t0 is None:
            t0 = rec.time_ns
            summary.first_time_ns = t0
            summary.time_offset_ns = wall_ns() - t0 if opts.shift_to_now else 0
        summary.last_time_ns = rec.time_ns
        if opts.speed is not None:
            wait = started + (rec.time_ns - t0) / 1e9 / opts.speed - clock()
            if wait > 0:
                sleep(wait)
        try:
            msg = parse_request(rec.signal, rec.body)
        except DecodeError as e:
            summary.record(rec.signal, SendResult(0, False, error=f"recorded body does not parse: {e}"))
            continue
        if summary.time_offset_ns:
            shift_times(rec.signal, msg, summary.time_offset_ns)
        result = sender.send(rec.signal, msg, count_items(rec.signal, msg))
        summary.record(rec.signal, result)
        failures = 0 if result.delivered else failures + 1
        if failures >= opts.max_consecutive_failures:
            summary.aborted = f"{failures} requests in a row not delivered: {result.error}"
            break
        if on_progress is not None:
            on_progress(rec.time_ns, summary)
    summary.elapsed_s = clock() - started
    return summary


def _shift(obj: Any, offset: int, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value:
            setattr(obj, name, value + offset)


def shift_times(signal: Signal, msg: Any, offset_ns: int) -> None:
    """Move every timestamp of an export request by ``offset_ns`` (zero timestamps stay zero)."""
    if signal is Signal.TRACES:
        for rs in msg.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    _shift(span, offset_ns, "start_time_unix_nano", "end_time_unix_nano")
                    for event in span.events:
                        _shift(event, offset_ns, "time_unix_nano")
    elif signal is Signal.LOGS:
        for rl in msg.resource_logs:
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    _shift(record, offset_ns, "time_unix_nano", "observed_time_unix_nano")
    else:
        for rm in msg.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if not kind:
                        continue
                    for point in getattr(metric, kind).data_points:
                        _shift(point, offset_ns, "time_unix_nano", "start_time_unix_nano")
                        for exemplar in getattr(point, "exemplars", ()):
                            _shift(exemplar, offset_ns, "time_unix_nano")
