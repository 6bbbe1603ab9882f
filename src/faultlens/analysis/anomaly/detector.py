"""Online robust baselines per series, and the test that flags an observation.

Why median and MAD over a rolling history: latency and error series have heavy tails and
the occasional spike; a mean and standard deviation would be dragged by the very outliers
we want to see. The median of the last ``history`` windows ignores up to half of them
being odd, and flagged values are stored clipped to the edge of normal, so a fault does
not teach the baseline that it is normal (until ``accept_shift_after`` windows in a row,
when a lasting level shift is accepted). With ``seasonal``, each hour of the day also
keeps its own history of raw values (so a recurring peak becomes that hour's normal),
used once it has enough values.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from faultlens.analysis.anomaly.explain import explain
from faultlens.analysis.anomaly.types import (
    Anomaly,
    DetectorConfig,
    Direction,
    Observation,
    SeriesKey,
)

MAD_TO_SIGMA = 1.4826


@dataclass(slots=True)
class _Series:
    values: deque[float]
    hourly: dict[int, deque[float]] = field(default_factory=dict)
    streak: int = 0  # anomalous windows in a row
    streak_values: list[float] = field(default_factory=list)  # their raw values
    last_window_ns: int = -1
    seen_ns: int = -1  # the newest window ever observed (rewind leaves it): what forgetting reads


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a series is expected to be: median and robust spread, and how many values back it."""

    expected: float
    spread: float
    n: int


class AnomalyDetector:
    """Judges observations against per-series baselines, then learns from them.

    Pure: observations in, anomalies out; state exported and imported as plain data.
    Observations of one series must come in window order; a repeated or older window of
    a series is ignored (so replaying a window twice changes nothing). Series not observed
    for ``forget_after_s`` are forgotten, and at most ``max_series`` are kept.
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._series: dict[SeriesKey, _Series] = {}
        self._newest_ns = -1  # the newest window observed, over all series
        self._next_sweep_ns = -1

    def __len__(self) -> int:
        return len(self._series)

    def baseline(self, key: SeriesKey, window_start_ns: int | None = None) -> Baseline | None:
        """The baseline a value of ``key`` would be judged against now; None while warming up."""
        s = self._series.get(key)
        if s is None:
            return None
        return self._baseline(key, s, window_start_ns)

    def observe(self, observations: Iterable[Observation]) -> list[Anomaly]:
        """Judge each observation, then add it to its history. Returns the anomalies found."""
        out: list[Anomaly] = []
        c = self.config
        for ob in observations:
            if not math.isfinite(ob.value):
                continue
            s = self._series.get(ob.key)
            if s is None:
                s = self._series[ob.key] = _Series(deque(maxlen=c.history))
                if len(self._series) > c.max_series:
                    self._forget_least_recent(keep=ob.key)
            if ob.window_start_ns <= s.last_window_ns:
                continue
            s.last_window_ns = ob.window_start_ns
            if ob.window_start_ns > s.seen_ns:
                s.seen_ns = ob.window_start_ns
                if ob.window_start_ns > self._newest_ns:
                    self._newest_ns = ob.window_start_ns
            if ob.volume < c.min_volume.get(ob.key.kind, 0.0):
                continue  # too quiet to judge, and too noisy to learn from
            base = self._baseline(ob.key, s, ob.window_start_ns)
            learn: float | None = ob.value
            if base is not None:
                anomaly = self._judge(ob, base)
                if anomaly is not None:
                    out.append(anomaly)
                    s.streak += 1
                    s.streak_values.append(ob.value)
                    if s.streak >= c.accept_shift_after:  # a lasting level shift: the new normal
                        s.values.clear()
                        s.values.extend(s.streak_values[:-1])
                        s.streak, s.streak_values = 0, []
                    elif base.n < c.warmup:  # a short history keeps to values judged normal
                        learn = None
                    else:
                        edge = base.expected + math.copysign(
                            c.threshold * base.spread, ob.value - base.expected
                        )
                        learn = float(edge)
                else:
                    s.streak, s.streak_values = 0, []
            if learn is not None:
                s.values.append(learn)
            if c.seasonal:  # the hour's own history learns raw values: recurring peaks are its point
                hour = _hour(ob.window_start_ns)
                s.hourly.setdefault(hour, deque(maxlen=c.history)).append(ob.value)
        if self._newest_ns >= self._next_sweep_ns:
            self._forget_stale()
        return out

    def _forget_stale(self) -> None:
        """Forget the series not observed within ``forget_after_s`` of the newest window.

        Runs when data time passes the next sweep, a tenth of ``forget_after_s`` after the
        last one, so its walk over every series is rare.
        """
        forget_ns = int(self.config.forget_after_s * 1e9)
        cutoff = self._newest_ns - forget_ns
        stale = [k for k, s in self._series.items() if s.seen_ns < cutoff]
        for k in stale:
            del self._series[k]
        self._next_sweep_ns = self._newest_ns + max(forget_ns // 10, 1)

    def _forget_least_recent(self, keep: SeriesKey) -> None:
        """Past ``max_series``: forget the least recently observed tenth (never ``keep``)."""
        drop = len(self._series) - int(self.config.max_series * 0.9)
        order = sorted(self._series.items(), key=lambda item: item[1].seen_ns)
        for k, _ in order:
            if drop <= 0:
                break
            if k != keep:
                del self._series[k]
                drop -= 1

    def rewind(self) -> None:
        """Accept the next window of every series even if it is older than the last one seen.

        For training on a separate (e.g. fault-free) period before replaying a timeline:
        the histories stay, only the window-order guard is reset.
        """
        for s in self._series.values():
            s.last_window_ns = -1
            s.streak, s.streak_values = 0, []

    def _baseline(self, key: SeriesKey, s: _Series, window_start_ns: int | None) -> Baseline | None:
        c = self.config
        values: deque[float] = s.values
        if c.seasonal and window_start_ns is not None:
            hourly = s.hourly.get(_hour(window_start_ns))
            if hourly is not None and len(hourly) >= c.seasonal_warmup:
                values = hourly
        if len(values) < c.warmup_by_kind.get(key.kind, c.warmup):
            return None
        med = _median(sorted(values))
        mad = _median(sorted([abs(v - med) for v in values])) * MAD_TO_SIGMA
        floor = max(c.relative_floor * abs(med), c.abs_floor.get(key.kind, 0.0))
        if key.kind in c.count_kinds:  # counts of events vary by at least their square root
            floor = max(floor, math.sqrt(max(med, 0.0)))
        return Baseline(med, max(mad, floor), len(values))

    def _judge(self, ob: Observation, base: Baseline) -> Anomaly | None:
        c = self.config
        diff = ob.value - base.expected
        direction = Direction.UP if diff > 0 else Direction.DOWN
        if diff == 0 or direction not in c.directions.get(ob.key.kind, (Direction.UP, Direction.DOWN)):
            return None
        score = abs(diff) / base.spread
        if score < c.threshold:
            return None
        scale = max(abs(base.expected), c.abs_floor.get(ob.key.kind, 0.0))
        # Symmetric in ratio: +100% up corresponds to -50% down (a drop cannot pass -100%).
        needed = c.min_relative_change
        if direction is Direction.DOWN:
            needed = needed / (1.0 + needed)
        if scale > 0 and abs(diff) / scale < needed:
            return None
        return Anomaly(
            key=ob.key,
            window_start_ns=ob.window_start_ns,
            window_ns=ob.window_ns,
            observed=ob.value,
            expected=base.expected,
            score=round(score, 3),
            direction=direction,
            explanation=explain(ob.key, ob.value, base.expected),
            volume=ob.volume,
        )

    # -- state ---------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Plain data (JSON-safe) that :meth:`import_state` restores exactly."""
        return {
            "version": 1,
            "series": [
                {
                    "key": k.as_list(),
                    "values": list(s.values),
                    "hourly": {str(h): list(v) for h, v in s.hourly.items()},
                    "streak": s.streak,
                    "streak_values": list(s.streak_values),
                    "last_window_ns": s.last_window_ns,
                    "seen_ns": s.seen_ns,
                }
                for k, s in self._series.items()
            ],
        }

    def import_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise ValueError("unknown anomaly detector state version")
        n = self.config.history
        self._series = {}
        for item in state["series"]:
            last = int(item["last_window_ns"])
            self._series[SeriesKey.from_list(item["key"])] = _Series(
                deque(item["values"], maxlen=n),
                {int(h): deque(v, maxlen=n) for h, v in item["hourly"].items()},
                int(item["streak"]),
                list(item.get("streak_values", [])),
                last,
                int(item.get("seen_ns", last)),  # states written before forgetting existed
            )
        self._newest_ns = max((s.seen_ns for s in self._series.values()), default=-1)
        self._next_sweep_ns = -1


def _median(ordered: list[float]) -> float:
    """Median of an ascending list (histories are short: sorting in Python beats numpy's call cost)."""
    n = len(ordered)
    mid = n // 2
    return float(ordered[mid]) if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _hour(t_ns: int) -> int:
    return dt.datetime.fromtimestamp(t_ns / 1e9, tz=dt.UTC).hour
