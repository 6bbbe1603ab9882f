"""Fault types, fault schedules and the labels a run writes: the lab's ground truth.

Every fault is real: a service's code path raises, sleeps, leaks or answers bad data because
its control endpoint was told so, or something outside it (a busy process on its CPU, a
process holding its database's write lock, a kill) gets in its way. No telemetry is faked;
the labels say what was done, when, and by which mechanism.

A schedule is YAML::

    faults:
      - {at: 2m, duration: 90s, service: orders, type: exception, params: {rate: 0.5}}
      - {at: 5m, duration: 3m, service: cart, type: memory_leak}

or ``builtin`` / ``builtin:3m``: after a warm-up of one period, one fault every period,
lasting half of it, types in round-robin order, each on the next service that can take it
(the entry service is never killed nor made to answer bad data: it has no caller to see it).

A label (one JSON line, written when a fault starts and again when it stops)::

    {"event": "start"|"end", "id": "f3", "start_ns": ..., "end_ns": null|..., "service": "cart",
     "instance": "cart-1", "type": "db_lock", "onset": "abrupt", "mechanism": "...",
     "parameters": {...}}
"""

from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faultlens.durations import Seconds, parse_duration_s

__all__ = [
    "FaultLabel",
    "FaultType",
    "LabelWriter",
    "Onset",
    "ScheduleError",
    "ScheduledFault",
    "builtin_schedule",
    "load_schedule",
    "read_labels",
]


class Onset(enum.StrEnum):
    ABRUPT = "abrupt"
    GRADUAL = "gradual"


class FaultType(enum.StrEnum):
    CPU_CONTENTION = "cpu_contention"
    LATENCY = "latency"
    EXCEPTION = "exception"
    WRONG_RETURN = "wrong_return"
    MEMORY_LEAK = "memory_leak"
    DEPENDENCY_DOWN = "dependency_down"
    DB_LOCK = "db_lock"
    LATENCY_CREEP = "latency_creep"
    POOL_EXHAUSTION = "pool_exhaustion"
    NETWORK_DELAY = "network_delay"

    @property
    def onset(self) -> Onset:
        gradual = {FaultType.MEMORY_LEAK, FaultType.LATENCY_CREEP, FaultType.POOL_EXHAUSTION}
        return Onset.GRADUAL if self in gradual else Onset.ABRUPT

    @property
    def in_process(self) -> bool:
        """Done by the service's own code, switched through its control endpoint."""
        return self not in (FaultType.CPU_CONTENTION, FaultType.DEPENDENCY_DOWN, FaultType.DB_LOCK)

    @property
    def mechanism(self) -> str:
        return _MECHANISMS[self]

    @property
    def defaults(self) -> dict[str, float]:
        return dict(_DEFAULTS[self])


_MECHANISMS = {
    FaultType.CPU_CONTENTION: "busy process pinned with the service to one CPU (sched_setaffinity)",
    FaultType.LATENCY: "in-process handler delay (asyncio.sleep before the work)",
    FaultType.EXCEPTION: "the request handler raises",
    FaultType.WRONG_RETURN: "the service answers 200 with items that are not a list; callers fail",
    FaultType.MEMORY_LEAK: "the process retains touched memory every second",
    FaultType.DEPENDENCY_DOWN: "process killed (SIGKILL), restarted when the fault ends",
    FaultType.DB_LOCK: "another process holds the SQLite file's exclusive lock",
    FaultType.LATENCY_CREEP: "in-process handler delay growing linearly over the fault",
    FaultType.POOL_EXHAUSTION: "requests leak their connection-pool slot until none is free",
    # The in-process way; when the runner uses tc netem instead, or says why it did not, the
    # label's mechanism says so (faultlens.lab.runner).
    FaultType.NETWORK_DELAY: "in-process, in front of the service's handler (ASGI), before its SERVER span "
    "starts: callers wait, the service's own spans do not show it; a share 'loss' of requests is held "
    "past the callers' timeout",
}
_DEFAULTS: dict[FaultType, dict[str, float]] = {
    FaultType.CPU_CONTENTION: {"burners": 4.0},
    FaultType.LATENCY: {"delay_ms": 200.0},
    FaultType.EXCEPTION: {"rate": 0.5},
    FaultType.WRONG_RETURN: {"rate": 0.5},
    FaultType.MEMORY_LEAK: {"mb_per_s": 4.0},
    FaultType.DEPENDENCY_DOWN: {},
    FaultType.DB_LOCK: {},
    FaultType.LATENCY_CREEP: {"max_delay_ms": 500.0},
    FaultType.POOL_EXHAUSTION: {"leak_p": 0.05},
    FaultType.NETWORK_DELAY: {"delay_ms": 300.0, "jitter_ms": 0.0, "loss": 0.0},
}


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message names the field."""


class ScheduledFault(BaseModel):
    """One fault of a schedule: ``at`` seconds after the lab started, for ``duration``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: Seconds
    duration: Seconds = Field(gt=0)
    service: str
    type: FaultType
    params: dict[str, float] = Field(default_factory=dict)

    @property
    def parameters(self) -> dict[str, float]:
        return {**self.type.defaults, **self.params}


class _ScheduleFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    faults: tuple[ScheduledFault, ...] = ()


def load_schedule(path: Path, services: list[str], *, with_db: list[str]) -> list[ScheduledFault]:
    """A YAML schedule, checked against the topology's services."""
    try:
        data: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ScheduleError(f"{path}: {e}") from None
    try:
        faults = _ScheduleFile.model_validate(data if data is not None else {}).faults
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ScheduleError(f"{path}: {loc}: {first['msg']}") from None
    for i, f in enumerate(faults):
        if f.service not in services:
            raise ScheduleError(f"{path}: faults.{i}.service: {f.service!r} is not a service of the topology")
        if f.type is FaultType.DB_LOCK and f.service not in with_db:
            raise ScheduleError(f"{path}: faults.{i}.service: {f.service!r} has no database to lock")
        unknown = set(f.params) - set(f.type.defaults)
        if unknown:
            raise ScheduleError(f"{path}: faults.{i}.params: {sorted(unknown)} unknown for {f.type.value}")
    return sorted(faults, key=lambda f: f.at)


def builtin_schedule(
    spec: str, services: list[str], *, with_db: list[str], with_callers: list[str], duration_s: float
) -> list[ScheduledFault]:
    """``builtin`` or ``builtin:PERIOD``: one fault per period, round-robin types and services."""
    _, _, period_text = spec.partition(":")
    period = parse_duration_s(period_text) if period_text else 180.0
    if period < 10:
        raise ScheduleError(f"{spec}: the period must be at least 10 s")
    out: list[ScheduledFault] = []
    counters: dict[str, int] = {}
    types = list(FaultType)
    at = period
    i = 0
    while at + period / 2 <= duration_s:
        kind = types[i % len(types)]
        i += 1
        if kind is FaultType.DB_LOCK:
            pool = with_db
        elif kind in (FaultType.DEPENDENCY_DOWN, FaultType.WRONG_RETURN, FaultType.NETWORK_DELAY):
            pool = with_callers
        else:
            pool = services
        if not pool:
            continue
        n = counters.get(kind.value, 0)
        counters[kind.value] = n + 1
        service = pool[(n + i) % len(pool)]
        out.append(ScheduledFault(at=at, duration=period / 2, service=service, type=kind))
        at += period
    return out


@dataclass(frozen=True, slots=True)
class FaultLabel:
    """What was broken, where and when (``end_ns`` None: the run ended before it was stopped)."""

    id: str
    start_ns: int
    end_ns: int | None
    service: str
    instance: str
    type: FaultType
    onset: Onset
    mechanism: str
    parameters: dict[str, float] = field(default_factory=dict)

    def as_dict(self, event: str) -> dict[str, Any]:
        return {
            "event": event,
            "id": self.id,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "service": self.service,
            "instance": self.instance,
            "type": self.type.value,
            "onset": self.onset.value,
            "mechanism": self.mechanism,
            "parameters": self.parameters,
        }


class LabelWriter:
    """Appends labels as JSON lines, flushed at each line, so a crash keeps what started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def started(self, label: FaultLabel) -> None:
        self._write(label.as_dict("start"))

    def ended(self, label: FaultLabel) -> None:
        self._write(label.as_dict("end"))

    def _write(self, row: dict[str, Any]) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._file.write(json.dumps(row, sort_keys=True) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_labels(path: Path) -> list[FaultLabel]:
    """The faults of a labels file in start order; an end line completes its start line."""
    by_id: dict[str, FaultLabel] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            label = FaultLabel(
                id=str(row["id"]),
                start_ns=int(row["start_ns"]),
                end_ns=None if row.get("end_ns") is None else int(row["end_ns"]),
                service=str(row["service"]),
                instance=str(row["instance"]),
                type=FaultType(row["type"]),
                onset=Onset(row["onset"]),
                mechanism=str(row["mechanism"]),
                parameters={str(k): float(v) for k, v in dict(row.get("parameters") or {}).items()},
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a label: {e}") from None
        if row.get("event") == "end" or label.id not in by_id:
            by_id[label.id] = label
    return sorted(by_id.values(), key=lambda lb: lb.start_ns)
