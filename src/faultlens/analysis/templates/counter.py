"""Counts of log templates per (service, window), and the templates that appear or vanish.

Pure state machine: observations in (service, template id, template text, data timestamp),
closed windows and :class:`TemplateChange` values out. Time comes only from the data: a
window ``[start, start + window)`` closes once a timestamp at or past
``start + window + lateness`` has been seen (for any service), so replaying old data
gives the same answer as live data, and no wall clock is read.

When a service's window closes:

- **NEW**: a template seen for the first time in this window, after the service's warm-up
  (its first ``warmup_windows`` windows teach what is normal and flag nothing).
- **MISSING**: a template present in at least ``missing_min_presence`` of the last
  ``baseline_windows`` closed windows of its service (and with at least
  ``min_baseline_windows`` of history) that is absent from this one. It is flagged once, on
  the transition; it can be flagged again after it has come back.

Memory is bounded: per service only the last ``baseline_windows`` windows of counts are kept,
and observations older than the last closed window are counted as late and dropped.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from faultlens.types import TimeRange

_SECOND_NS = 1_000_000_000
_STATE_VERSION = 1


class ChangeKind(enum.StrEnum):
    NEW = "new"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class TemplateCounterConfig:
    window_ns: int = 60 * _SECOND_NS
    lateness_ns: int = 0
    warmup_windows: int = 5
    baseline_windows: int = 10
    min_baseline_windows: int = 5
    missing_min_presence: float = 0.8

    def __post_init__(self) -> None:
        if self.window_ns <= 0 or self.lateness_ns < 0:
            raise ValueError("window_ns must be > 0 and lateness_ns >= 0")
        if self.baseline_windows < 1 or not 1 <= self.min_baseline_windows <= self.baseline_windows:
            raise ValueError("need 1 <= min_baseline_windows <= baseline_windows")
        if not 0.0 < self.missing_min_presence <= 1.0:
            raise ValueError("missing_min_presence must be in (0, 1]")
        if self.warmup_windows < 0:
            raise ValueError("warmup_windows must be >= 0")


@dataclass(frozen=True, slots=True)
class TemplateObservation:
    """One log line placed in a template."""

    service: str
    template_id: int
    template: str
    time_ns: int


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """The template counts of one closed (service, window)."""

    service: str
    window: TimeRange
    counts: tuple[tuple[int, int], ...]  # (template id, count), by template id

    @property
    def total(self) -> int:
        return sum(c for _, c in self.counts)


@dataclass(frozen=True, slots=True)
class TemplateChange:
    """A template that appeared (NEW) or went missing (MISSING) in a closed window.

    ``observed`` is its count in the window; ``expected`` its mean count per window over
    the baseline; ``baseline_presence`` the fraction of baseline windows that held it.
    """

    kind: ChangeKind
    service: str
    template_id: int
    template: str
    window: TimeRange
    observed: int
    expected: float
    baseline_presence: float

    @property
    def explanation(self) -> str:
        if self.kind is ChangeKind.NEW:
            return f"{self.service}: new log template seen {self.observed}x: {self.template}"
        return (
            f"{self.service}: expected log template absent (seen in {self.baseline_presence:.0%} of "
            f"baseline windows, ~{self.expected:.1f} per window): {self.template}"
        )


# Template ids remembered per service (to tell a NEW template from one seen before). The
# miners keep at most 10,000 templates per service and number new ones upwards, so ids past
# this many are those of templates they evicted: the oldest that no recent window holds
# are forgotten. And a service that sent no log for FORGET_SILENT_WINDOWS windows (a day of
# 60 s windows) is forgotten with its ids; if it comes back it warms up again (no NEW flags
# for ``warmup_windows``).
MAX_TEMPLATE_IDS = 20_000
FORGET_SILENT_WINDOWS = 1440


@dataclass(slots=True)
class _ServiceState:
    first_window: int
    last_window: int = 0  # the latest window it sent a log in
    closed_windows: int = 0
    history: deque[dict[int, int]] = field(default_factory=deque)
    open: dict[int, dict[int, int]] = field(default_factory=dict)  # window start -> counts
    missing: set[int] = field(default_factory=set)  # template ids flagged missing, not back yet


class TemplateCounter:
    """Counts templates per service and window and reports NEW and MISSING templates."""

    def __init__(self, config: TemplateCounterConfig | None = None) -> None:
        self.config = config or TemplateCounterConfig()
        self._services: dict[str, _ServiceState] = {}
        self._seen: dict[str, set[int]] = {}
        self._texts: dict[str, dict[int, str]] = {}  # service -> template id -> text
        self._closed_until: int | None = None  # every window starting before this is closed
        self._max_time: int | None = None
        self.late_dropped = 0

    def observe(
        self, observations: Iterable[TemplateObservation]
    ) -> tuple[list[WindowCounts], list[TemplateChange]]:
        """Count observations, close every window the data has passed, return what closed."""
        w = self.config.window_ns
        for ob in observations:
            start = ob.time_ns - ob.time_ns % w
            if self._closed_until is not None and start < self._closed_until:
                self.late_dropped += 1
                continue
            svc = self._services.get(ob.service)
            if svc is None:
                svc = self._services[ob.service] = _ServiceState(first_window=start)
            svc.last_window = max(svc.last_window, start)
            counts = svc.open.setdefault(start, {})
            counts[ob.template_id] = counts.get(ob.template_id, 0) + 1
            self._texts.setdefault(ob.service, {})[ob.template_id] = ob.template
            if self._max_time is None or ob.time_ns > self._max_time:
                self._max_time = ob.time_ns
        return self._close_due()

    def merge(self, service: str, old_id: int, new_id: int) -> None:
        """Template ``old_id`` was folded into ``new_id``: its counts so far are ``new_id``'s.

        Open and remembered windows add its counts to ``new_id``'s, so it is neither MISSING
        from the next window nor ``new_id`` NEW when the old one had been seen.
        """
        svc = self._services.get(service)
        if svc is not None:
            for counts in (*svc.open.values(), *svc.history):
                n = counts.pop(old_id, 0)
                if n:
                    counts[new_id] = counts.get(new_id, 0) + n
            if old_id in svc.missing:
                svc.missing.discard(old_id)
        seen = self._seen.get(service)
        if seen is not None and old_id in seen:
            seen.discard(old_id)
            seen.add(new_id)
        self._texts.get(service, {}).pop(old_id, None)

    def flush(self) -> tuple[list[WindowCounts], list[TemplateChange]]:
        """Close every open window (at shutdown, or at the end of a replay)."""
        if self._max_time is None:
            return [], []
        self._max_time += self.config.window_ns + self.config.lateness_ns
        return self._close_due()

    def sizes(self) -> dict[str, int]:
        """What the counter remembers now: services, template ids and texts (all bounded)."""
        return {
            "services": len(self._services),
            "template_ids": sum(len(ids) for ids in self._seen.values()),
            "texts": sum(len(t) for t in self._texts.values()),
        }

    # -- closing --------------------------------------------------------------------------

    def _close_due(self) -> tuple[list[WindowCounts], list[TemplateChange]]:
        if self._max_time is None:
            return [], []
        w = self.config.window_ns
        watermark = self._max_time - self.config.lateness_ns
        closed_until = (watermark // w) * w  # every window that ends at or before the watermark
        if self._closed_until is not None and closed_until <= self._closed_until:
            return [], []
        windows: list[WindowCounts] = []
        changes: list[TemplateChange] = []
        for name in sorted(self._services):
            svc = self._services[name]
            starts = self._starts_to_close(svc, closed_until)
            for start in starts:
                counts = svc.open.pop(start, {})
                windows.append(WindowCounts(name, TimeRange(start, start + w), tuple(sorted(counts.items()))))
                changes.extend(self._close_window(name, svc, start, counts))
        self._closed_until = closed_until
        self._forget_silent(closed_until)
        return windows, changes

    def _starts_to_close(self, svc: _ServiceState, closed_until: int) -> list[int]:
        """Windows of this service to close now: its open ones, plus the empty ones between.

        Empty windows are only materialised for the last ``baseline_windows`` (a long silence
        erases the baseline anyway), which keeps the work bounded on time jumps.
        """
        w = self.config.window_ns
        begin = self._closed_until if self._closed_until is not None else svc.first_window
        begin = max(begin, svc.first_window, closed_until - self.config.baseline_windows * w)
        starts = set(range(begin, closed_until, w))
        starts.update(s for s in svc.open if s < closed_until)
        return sorted(starts)

    def _close_window(
        self, name: str, svc: _ServiceState, start: int, counts: dict[int, int]
    ) -> list[TemplateChange]:
        cfg = self.config
        window = TimeRange(start, start + cfg.window_ns)
        seen = self._seen.setdefault(name, set())
        texts = self._texts.get(name, {})
        history = svc.history
        n_hist = len(history)
        changes: list[TemplateChange] = []
        warmed_up = svc.closed_windows >= cfg.warmup_windows
        for tid, count in sorted(counts.items()):
            if tid not in seen:
                seen.add(tid)
                if warmed_up:
                    changes.append(
                        TemplateChange(
                            ChangeKind.NEW,
                            name,
                            tid,
                            texts.get(tid, ""),
                            window,
                            count,
                            0.0,
                            0.0,
                        )
                    )
            svc.missing.discard(tid)
        if n_hist >= cfg.min_baseline_windows:
            present: dict[int, int] = {}
            totals: dict[int, int] = {}
            for past in history:
                for tid, c in past.items():
                    present[tid] = present.get(tid, 0) + 1
                    totals[tid] = totals.get(tid, 0) + c
            for tid in sorted(present):
                presence = present[tid] / n_hist
                if presence >= cfg.missing_min_presence and tid not in counts and tid not in svc.missing:
                    svc.missing.add(tid)
                    changes.append(
                        TemplateChange(
                            ChangeKind.MISSING,
                            name,
                            tid,
                            texts.get(tid, ""),
                            window,
                            0,
                            totals[tid] / n_hist,
                            presence,
                        )
                    )
        history.append(counts)
        while len(history) > cfg.baseline_windows:
            history.popleft()
        svc.closed_windows += 1
        if len(seen) > MAX_TEMPLATE_IDS:
            self._forget_old_ids(svc, seen, texts)
        return changes

    @staticmethod
    def _forget_old_ids(svc: _ServiceState, seen: set[int], texts: dict[int, str]) -> None:
        """Forget the oldest ids (miners number templates in order) no recent window holds,
        down to 7/8 of :data:`MAX_TEMPLATE_IDS` (so that this runs rarely)."""
        recent = set(svc.missing).union(*svc.history, *svc.open.values())
        old = sorted(seen - recent)
        for tid in old[: len(seen) - MAX_TEMPLATE_IDS * 7 // 8]:
            seen.discard(tid)
            texts.pop(tid, None)

    def _forget_silent(self, closed_until: int) -> None:
        """Forget the services silent for :data:`FORGET_SILENT_WINDOWS` windows."""
        cutoff = closed_until - FORGET_SILENT_WINDOWS * self.config.window_ns
        silent = [name for name, svc in self._services.items() if not svc.open and svc.last_window < cutoff]
        for name in silent:
            del self._services[name]
            self._seen.pop(name, None)
            self._texts.pop(name, None)

    # -- persistence ----------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Plain, JSON-ready state (dict keys are strings)."""
        return {
            "version": _STATE_VERSION,
            "closed_until": self._closed_until,
            "max_time": self._max_time,
            "late_dropped": self.late_dropped,
            "services": {
                name: {
                    "first_window": s.first_window,
                    "last_window": s.last_window,
                    "closed_windows": s.closed_windows,
                    "history": [{str(k): v for k, v in h.items()} for h in s.history],
                    "open": {str(st): {str(k): v for k, v in c.items()} for st, c in s.open.items()},
                    "missing": sorted(s.missing),
                    "seen": sorted(self._seen.get(name, ())),
                    "texts": {str(tid): txt for tid, txt in self._texts.get(name, {}).items()},
                }
                for name, s in self._services.items()
            },
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: TemplateCounterConfig | None = None
    ) -> TemplateCounter:
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported template counter state version: {state.get('version')!r}")
        tc = cls(config)
        tc._closed_until = state["closed_until"]
        tc._max_time = state["max_time"]
        tc.late_dropped = int(state.get("late_dropped", 0))
        for name, s in state["services"].items():
            svc = _ServiceState(
                first_window=int(s["first_window"]),
                # saved before it was kept: counted from the restore
                last_window=int(s.get("last_window", tc._closed_until or s["first_window"])),
                closed_windows=int(s["closed_windows"]),
            )
            svc.history = deque({int(k): int(v) for k, v in h.items()} for h in s["history"])
            svc.open = {int(st): {int(k): int(v) for k, v in c.items()} for st, c in s["open"].items()}
            svc.missing = {int(t) for t in s["missing"]}
            tc._services[name] = svc
            tc._seen[name] = {int(t) for t in s["seen"]}
            tc._texts[name] = {int(tid): str(txt) for tid, txt in s["texts"].items()}
        return tc
