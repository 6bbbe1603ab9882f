"""Log template mining over decoded log batches: one miner per service, and the counter.

:class:`LogTemplateAnalyzer` is the entry point an orchestrator feeds with log tables
(schema :data:`faultlens.decode.schema.LOG_SCHEMA`). It is pure: a table in, the matched
templates, closed window counts and :class:`~.counter.TemplateChange` values out; its whole
state goes out and comes back as plain data (:meth:`export_state` / :meth:`from_state`).

Each service gets its own miner (:class:`~.skeleton.SkeletonMiner` unless the config asks
for :class:`~.drain.Drain`), because services log in their own formats and a template belongs
to one service; template ids are unique per service. The number of services is bounded
(``max_services``); lines of services past the bound are counted in
``dropped_services_lines`` rather than mined.

When the miner folds clusters into one (a slot turned out to be variable), the rows of the
batch are reported with the surviving id, the counter moves the folded ids' counts to it, and
:attr:`TemplateResult.merges` says which ids went, so that stored rows can follow.

State saved with Drain trees (version 1) is restored as it was when the config still asks for
Drain. State saved with another kind of miner than the config's cannot be carried over: each
service's miner starts afresh with ids above every id the old one gave (a stored id never
names two templates), and the counter starts afresh too (its windows count the old ids).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from faultlens.analysis.templates.base import Match, TemplateMiner
from faultlens.analysis.templates.counter import (
    TemplateChange,
    TemplateCounter,
    TemplateCounterConfig,
    TemplateObservation,
    WindowCounts,
)
from faultlens.analysis.templates.drain import Drain, DrainConfig
from faultlens.analysis.templates.skeleton import SkeletonConfig, SkeletonMiner

UNKNOWN_SERVICE = "unknown_service"
_STATE_VERSION = 2


class MinerKind(enum.StrEnum):
    """Which miner each service gets: the skeleton miner (default) or Drain (for comparison)."""

    SKELETON = "skeleton"
    DRAIN = "drain"


@dataclass(frozen=True, slots=True)
class TemplateAnalyzerConfig:
    miner: MinerKind = MinerKind.SKELETON
    skeleton: SkeletonConfig = field(default_factory=SkeletonConfig)
    drain: DrainConfig = field(default_factory=DrainConfig)
    counter: TemplateCounterConfig = field(default_factory=TemplateCounterConfig)
    max_services: int = 1_000
    max_body_chars: int = 2_000  # longer bodies are cut before mining (stack traces, dumps)


@dataclass(frozen=True, slots=True)
class TemplateMerge:
    """Template ``old_id`` of ``service`` was folded into ``new_id`` and is gone."""

    service: str
    old_id: int
    new_id: int


@dataclass(frozen=True, slots=True)
class TemplateResult:
    """What one batch of logs did: per-row matches, closed windows, changes and folded ids."""

    matches: tuple[TemplateObservation | None, ...]  # one per row; None when not mined
    windows: tuple[WindowCounts, ...]
    changes: tuple[TemplateChange, ...]
    merges: tuple[TemplateMerge, ...] = ()


class LogTemplateAnalyzer:
    """Mines templates from log bodies as they arrive and counts them per service and window."""

    def __init__(self, config: TemplateAnalyzerConfig | None = None) -> None:
        self.config = config or TemplateAnalyzerConfig()
        self._miners: dict[str, TemplateMiner] = {}
        self._first_ids: dict[str, int] = {}  # service -> first id of a fresh miner (after a migration)
        self.counter = TemplateCounter(self.config.counter)
        self.dropped_services_lines = 0

    def _new_miner(self, service: str) -> TemplateMiner:
        first = self._first_ids.get(service)
        if self.config.miner is MinerKind.DRAIN:
            if first is None:
                return Drain(self.config.drain)
            return Drain.from_state({"version": 1, "next_id": first, "clusters": []}, self.config.drain)
        miner = SkeletonMiner(self.config.skeleton)
        if first is not None:
            miner.skip_ids(first)
        return miner

    def miner_for(self, service: str) -> TemplateMiner | None:
        """The miner of ``service``, creating it if the bound allows (None otherwise)."""
        miner = self._miners.get(service)
        if miner is None and len(self._miners) < self.config.max_services:
            miner = self._miners[service] = self._new_miner(service)
        return miner

    def add_line(self, service: str, body: str) -> Match | None:
        miner = self.miner_for(service)
        if miner is None:
            self.dropped_services_lines += 1
            return None
        return miner.add(body[: self.config.max_body_chars])

    def observe_logs(self, logs: pa.Table) -> TemplateResult:
        """Mine every row's body (first line only), count it, and close due windows.

        Rows without a body are not mined (their match is None). An empty table closes nothing.
        Each service's lines go to its miner in row order, all at once (``add_many``). A row
        whose template was folded into another later in the batch is reported with the
        surviving id and template.
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
        merges: list[TemplateMerge] = []
        limit = self.config.max_body_chars
        for svc, idx in rows.items():
            miner = self.miner_for(svc)
            if miner is None:
                self.dropped_services_lines += len(idx)
                continue
            found = miner.add_many([bodies[i].split("\n", 1)[0][:limit] for i in idx])
            folded = {old: m.cluster_id for m in found for old in m.merged}
            if folded:
                for old in folded:
                    new = _resolve(folded, old)
                    merges.append(TemplateMerge(svc, old, new))
                    self.counter.merge(svc, old, new)
            for i, m in zip(idx, found, strict=True):
                tid, text = m.cluster_id, m.template
                if folded:
                    tid = _resolve(folded, tid)
                    cluster = miner.cluster(tid)
                    text = text if cluster is None else cluster.template
                matches[i] = TemplateObservation(svc, tid, text, int(times[i]))
        windows, changes = self.counter.observe(m for m in matches if m is not None)
        return TemplateResult(tuple(matches), tuple(windows), tuple(changes), tuple(merges))

    def observe(self, observations: Iterable[TemplateObservation]) -> TemplateResult:
        """Count already-mined observations (for callers that mine elsewhere)."""
        obs = list(observations)
        windows, changes = self.counter.observe(obs)
        return TemplateResult(tuple(obs), tuple(windows), tuple(changes))

    def flush(self) -> tuple[list[WindowCounts], list[TemplateChange]]:
        return self.counter.flush()

    def template(self, service: str, template_id: int) -> str | None:
        miner = self._miners.get(service)
        cluster = None if miner is None else miner.cluster(template_id)
        return None if cluster is None else cluster.template

    def export_state(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "miner": str(self.config.miner),
            "miners": {name: m.export_state() for name, m in self._miners.items()},
            "first_ids": dict(self._first_ids),
            "counter": self.counter.export_state(),
            "dropped_services_lines": self.dropped_services_lines,
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: TemplateAnalyzerConfig | None = None
    ) -> LogTemplateAnalyzer:
        """Rebuild from :meth:`export_state` output (or a version 1 state of Drain trees).

        Raises ``ValueError`` on an unknown version. A state saved with another kind of miner
        is migrated as the module docstring says.
        """
        version = state.get("version")
        if version == 1:  # one Drain tree per service
            state = {**state, "version": 2, "miner": str(MinerKind.DRAIN), "miners": state["drains"]}
        elif version != _STATE_VERSION:
            raise ValueError(f"unsupported template analyzer state version: {version!r}")
        analyzer = cls(config)
        cfg = analyzer.config
        analyzer.dropped_services_lines = int(state.get("dropped_services_lines", 0))
        analyzer._first_ids = {str(k): int(v) for k, v in state.get("first_ids", {}).items()}
        if state.get("miner") != str(cfg.miner):
            for name, saved in state["miners"].items():  # start afresh, ids after the old ones
                old_next = int(saved.get("next_id", 1))
                analyzer._first_ids[name] = max(old_next, analyzer._first_ids.get(name, 1))
            return analyzer
        miners: dict[str, TemplateMiner] = {}
        for name, saved in state["miners"].items():
            if cfg.miner is MinerKind.DRAIN:
                miners[name] = Drain.from_state(saved, cfg.drain)
            else:
                miners[name] = SkeletonMiner.from_state(saved, cfg.skeleton)
        analyzer._miners = miners
        analyzer.counter = TemplateCounter.from_state(state["counter"], cfg.counter)
        return analyzer


def _resolve(folded: dict[int, int], cluster_id: int) -> int:
    """Follow ``old -> new`` folds to the id that survives."""
    seen = 0
    while cluster_id in folded and seen <= len(folded):
        cluster_id = folded[cluster_id]
        seen += 1
    return cluster_id
