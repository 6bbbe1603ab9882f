"""Log template mining over decoded log batches: one Drain per service, and the counter.

:class:`LogTemplateAnalyzer` is the entry point an orchestrator feeds with log tables
(schema :data:`faultlens.decode.schema.LOG_SCHEMA`). It is pure: a table in, the matched
templates, closed window counts and :class:`~.counter.TemplateChange` values out; its whole
state goes out and comes back as plain data (:meth:`export_state` / :meth:`from_state`).

Each service gets its own Drain tree, because services log in their own formats and a
template belongs to one service; template ids are unique per service. The number of
services is bounded (``max_services``); lines of services past the bound are counted in
``dropped_services_lines`` rather than mined.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from faultlens.analysis.templates.counter import (
    TemplateChange,
    TemplateCounter,
    TemplateCounterConfig,
    TemplateObservation,
    WindowCounts,
)
from faultlens.analysis.templates.drain import Drain, DrainConfig, Match

UNKNOWN_SERVICE = "unknown_service"
_STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class TemplateAnalyzerConfig:
    drain: DrainConfig = field(default_factory=DrainConfig)
    counter: TemplateCounterConfig = field(default_factory=TemplateCounterConfig)
    max_services: int = 1_000
    max_body_chars: int = 2_000  # longer bodies are cut before mining (stack traces, dumps)


@dataclass(frozen=True, slots=True)
class TemplateResult:
    """What one batch of logs did: per-row matches, closed windows and changes."""

    matches: tuple[TemplateObservation | None, ...]  # one per row; None when not mined
    windows: tuple[WindowCounts, ...]
    changes: tuple[TemplateChange, ...]


class LogTemplateAnalyzer:
    """Mines templates from log bodies as they arrive and counts them per service and window."""

    def __init__(self, config: TemplateAnalyzerConfig | None = None) -> None:
        self.config = config or TemplateAnalyzerConfig()
        self._drains: dict[str, Drain] = {}
        self.counter = TemplateCounter(self.config.counter)
        self.dropped_services_lines = 0

    def drain_for(self, service: str) -> Drain | None:
        """The Drain tree of ``service``, creating it if the bound allows (None otherwise)."""
        drain = self._drains.get(service)
        if drain is None and len(self._drains) < self.config.max_services:
            drain = self._drains[service] = Drain(self.config.drain)
        return drain

    def add_line(self, service: str, body: str) -> Match | None:
        drain = self.drain_for(service)
        if drain is None:
            self.dropped_services_lines += 1
            return None
        return drain.add(body[: self.config.max_body_chars])

    def observe_logs(self, logs: pa.Table) -> TemplateResult:
        """Mine every row's body (first line only), count it, and close due windows.

        Rows without a body are not mined (their match is None). An empty table closes nothing.
        Each service's lines go to its Drain in row order, all at once (:meth:`Drain.add_many`).
        """
        services = logs.column("service_name").to_pylist()
        bodies = logs.column("body").to_pylist()
        times = logs.column("time_unix_nano").to_pylist()
        rows: dict[str, list[int]] = {}  # service -> its rows with a body, in order of first appearance
        for i, (service, body) in enumerate(zip(services, bodies, strict=True)):
            if body:
                svc = service or UNKNOWN_SERVICE
                got = rows.get(svc)
                if got is None:
                    rows[svc] = [i]
                else:
                    got.append(i)
        matches: list[TemplateObservation | None] = [None] * len(bodies)
        limit = self.config.max_body_chars
        for svc, idx in rows.items():
            drain = self.drain_for(svc)
            if drain is None:
                self.dropped_services_lines += len(idx)
                continue
            found = drain.add_many([bodies[i].split("\n", 1)[0][:limit] for i in idx])
            for i, m in zip(idx, found, strict=True):
                matches[i] = TemplateObservation(svc, m.cluster_id, m.template, int(times[i]))
        windows, changes = self.counter.observe(m for m in matches if m is not None)
        return TemplateResult(tuple(matches), tuple(windows), tuple(changes))

    def observe(self, observations: Iterable[TemplateObservation]) -> TemplateResult:
        """Count already-mined observations (for callers that mine elsewhere)."""
        obs = list(observations)
        windows, changes = self.counter.observe(obs)
        return TemplateResult(tuple(obs), tuple(windows), tuple(changes))

    def flush(self) -> tuple[list[WindowCounts], list[TemplateChange]]:
        return self.counter.flush()

    def template(self, service: str, template_id: int) -> str | None:
        drain = self._drains.get(service)
        cluster = None if drain is None else drain.cluster(template_id)
        return None if cluster is None else cluster.template

    def export_state(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "drains": {name: d.export_state() for name, d in self._drains.items()},
            "counter": self.counter.export_state(),
            "dropped_services_lines": self.dropped_services_lines,
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: TemplateAnalyzerConfig | None = None
    ) -> LogTemplateAnalyzer:
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported template analyzer state version: {state.get('version')!r}")
        analyzer = cls(config)
        analyzer._drains = {
            name: Drain.from_state(d, analyzer.config.drain) for name, d in state["drains"].items()
        }
        analyzer.counter = TemplateCounter.from_state(state["counter"], analyzer.config.counter)
        analyzer.dropped_services_lines = int(state.get("dropped_services_lines", 0))
        return analyzer
