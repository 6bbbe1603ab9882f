"""Replay dataset records as OTLP, paced by their own timestamps.

::

    records (time order) ──> per-signal batches (≤ batch_size items) ──> converter ──> sender
           │                         ▲ flushed when full, before any wait, and at the end
           └── pacing: record at data time t is due at  start + (t - t0) / speed

With ``speed=None`` nothing waits (as fast as the receiver answers). Waits shorter than
``tick_s`` are not taken, so that records close in time travel together in one request
instead of one request each; a record is thus sent at most ``tick_s`` early.

``shift_to_now`` adds one offset to every timestamp so that the first record is at the
wall-clock time replay starts; intervals between records are unchanged.

The replayer is synchronous and owns no threads; the clock, the sleep and the wall time are
injected so tests run without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from google.protobuf.message import Message

from faultlens.datasets.otlp import OtlpConverter, item_count
from faultlens.datasets.records import LogRecord, MetricRecord, Record, SpanRecord
from faultlens.datasets.sender import OtlpSender, SendResult
from faultlens.types import Signal


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    speed: float | None = None  # N times real time; None = as fast as possible
    shift_to_now: bool = False
    batch_size: int = 1000  # items (spans, log records, data points) per request, about
    tick_s: float = 0.25
    max_consecutive_failures: int = 5  # requests in a row not delivered before giving up

    def __post_init__(self) -> None:
        if self.speed is not None and self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")


@dataclass(slots=True)
class SignalCounts:
    """Per signal: items handed to the sender, accepted, rejected by the server, not delivered."""

    items: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did. ``errors`` keeps the first distinct error messages (bounded)."""

    counts: dict[Signal, SignalCounts] = field(default_factory=lambda: {s: SignalCounts() for s in Signal})
    first_time_ns: int | None = None
    last_time_ns: int | None = None
    time_offset_ns: int = 0
    elapsed_s: float = 0.0
    aborted: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def items(self) -> int:
        return sum(c.items for c in self.counts.values())

    def record(self, signal: Signal, result: SendResult) -> None:
        c = self.counts[signal]
        c.requests += 1
        c.items += result.items
        c.retries += result.attempts - 1
        if result.delivered:
            c.accepted += result.accepted
            c.rejected += result.rejected
        else:
            c.failed += result.items
        if result.error and result.error not in self.errors and len(self.errors) < 10:
            self.errors.append(result.error)

    def as_dict(self) -> dict[str, object]:
        return {
            "signals": {
                s.value: {
                    "items": c.items,
                    "accepted": c.accepted,
                    "rejected": c.rejected,
                    "failed": c.failed,
                    "requests": c.requests,
                    "retries": c.retries,
                }
                for s, c in self.counts.items()
            },
            "first_time_ns": self.first_time_ns,
            "last_time_ns": self.last_time_ns,
            "time_offset_ns": self.time_offset_ns,
            "elapsed_s": round(self.elapsed_s, 3),
            "items_per_s": round(self.items / self.elapsed_s) if self.elapsed_s > 0 else None,
            "aborted": self.aborted,
            "errors": list(self.errors),
        }


ProgressCallback = Callable[[int, ReplaySummary], None]


class Replayer:
    """Sends records through a converter and a sender, pacing and batching them."""

    def __init__(
        self,
        sender: OtlpSender,
        converter: OtlpConverter,
        options: ReplayOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_ns: Callable[[], int] = time.time_ns,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.sender = sender
        self.converter = converter
        self.options = options or ReplayOptions()
        self._clock = clock
        self._sleep = sleep
        self._wall_ns = wall_ns
        self._on_progress = on_progress
        self._pending: dict[Signal, list[Record]] = {s: [] for s in Signal}
        self._pending_items: dict[Signal, int] = dict.fromkeys(Signal, 0)
        self._failures_in_row = 0

    def run(self, records: Iterable[Record]) -> ReplaySummary:
        """Replay every record; returns the summary (also when aborted after repeated failures)."""
        summary = ReplaySummary()
        opts = self.options
        started = self._clock()
        t0: int | None = None
        for rec in records:
            t = rec.time_ns
            if t0 is None:
                t0 = t
                if opts.shift_to_now:
                    self.converter.time_offset_ns = self._wall_ns() - t0
                summary.first_time_ns = t0
                summary.time_offset_ns = self.converter.time_offset_ns
            summary.last_time_ns = t if summary.last_time_ns is None else max(summary.last_time_ns, t)
            if opts.speed is not None:
                wait = started + (t - t0) / 1e9 / opts.speed - self._clock()
                if wait > opts.tick_s:
                    self._flush_all(summary)
                    wait = started + (t - t0) / 1e9 / opts.speed - self._clock()
                    if wait > 0:
                        self._sleep(wait)
            signal = _signal_of(rec)
            self._pending[signal].append(rec)
            self._pending_items[signal] += item_count(rec)
            if self._pending_items[signal] >= opts.batch_size:
                self._flush(signal, summary)
            if summary.aborted:
                break
            if self._on_progress is not None:
                self._on_progress(t, summary)
        if not summary.aborted:
            self._flush_all(summary)
        summary.elapsed_s = self._clock() - started
        return summary

    def _flush_all(self, summary: ReplaySummary) -> None:
        for signal in Signal:
            if self._pending[signal] and not summary.aborted:
                self._flush(signal, summary)

    def _flush(self, signal: Signal, summary: ReplaySummary) -> None:
        batch = self._pending[signal]
        items = self._pending_items[signal]
        self._pending[signal] = []
        self._pending_items[signal] = 0
        result = self.sender.send(signal, self._convert(signal, batch), items)
        summary.record(signal, result)
        self._failures_in_row = 0 if result.delivered else self._failures_in_row + 1
        if self._failures_in_row >= self.options.max_consecutive_failures:
            summary.aborted = f"{self._failures_in_row} requests in a row not delivered: {result.error}"

    def _convert(self, signal: Signal, batch: list[Record]) -> Message:
        if signal == Signal.TRACES:
            return self.converter.traces([r for r in batch if isinstance(r, SpanRecord)])
        if signal == Signal.LOGS:
            return self.converter.logs([r for r in batch if isinstance(r, LogRecord)])
        return self.converter.metrics([r for r in batch if isinstance(r, MetricRecord)])


def _signal_of(rec: Record) -> Signal:
    if isinstance(rec, SpanRecord):
        return Signal.TRACES
    if isinstance(rec, LogRecord):
        return Signal.LOGS
    return Signal.METRICS
