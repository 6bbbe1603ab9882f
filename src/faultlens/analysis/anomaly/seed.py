"""Baselines seeded from the store's recent history, so a fresh detector is not blind.

Why: a detector that starts empty needs ``warmup`` windows of every series before it may
judge it, so a fault in the first minutes after a (re)start without saved state is lost to
warm-up, although the store holds the RED windows of the hours before. :func:`red_history`
reads the stored RED windows of every service over the last ``windows`` windows before
``end_ns`` and turns them into the observations the engine would have made (per operation
and per service; self time is not stored, so its series warm up live);
``AnalysisEngine.seed`` teaches them to the detector (learning only: nothing is flagged).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from faultlens.analysis.anomaly.series import red_observations
from faultlens.analysis.anomaly.types import Observation
from faultlens.analysis.red.types import RedWindow
from faultlens.analysis.sketch import QuantileSketch
from faultlens.store.analysis_base import RedQuery, RedRow
from faultlens.types import TimeRange


@runtime_checkable
class RedReader(Protocol):
    """What seeding reads: stored RED windows (``AnalysisReader.red_rows``)."""

    def red_rows(self, query: RedQuery) -> list[RedRow]: ...


def red_history(
    reader: RedReader, services: Iterable[str], end_ns: int, window_ns: int, windows: int
) -> list[Observation]:
    """Observations of the stored RED windows of ``services`` in the ``windows`` whole
    windows before ``end_ns``, in window order (the order the detector needs). Empty when the
    store holds none."""
    if windows <= 0:
        return []
    span = TimeRange(end_ns - end_ns % window_ns - windows * window_ns, end_ns - end_ns % window_ns)
    by_window: dict[int, list[RedWindow]] = {}
    for service in services:
        for w in _windows(reader.red_rows(RedQuery(service, span)), service, window_ns):
            by_window.setdefault(w.window_start_ns, []).append(w)
    out: list[Observation] = []
    for start in sorted(by_window):
        out += red_observations(by_window[start])
    return out


def _windows(rows: list[RedRow], service: str, window_ns: int) -> Iterator[RedWindow]:
    for r in rows:
        if r.window_ns != window_ns:
            continue  # another layout of time: its values are not comparable
        yield RedWindow(
            service=service,
            operation=r.operation,
            span_kind=r.span_kind,
            window_start_ns=r.window_start_ns,
            window_ns=r.window_ns,
            requests=r.requests,
            errors=r.errors,
            duration_sum_ns=r.duration_sum_ns,
            latency=r.latency,
            self_time_sum_ns=0.0,
            self_time=QuantileSketch(),
        )
