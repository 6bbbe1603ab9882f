"""Error groups: a pure state machine that folds :class:`ErrorEvent` values into groups.

Feed events with :meth:`ErrorGrouper.add`; each event is fingerprinted
(:mod:`.fingerprint`) and classified (:mod:`.taxonomy`, memoised), and its group's counts,
first/last seen, services, operations, peers and sample trace ids are updated. Reads return
:class:`ErrorGroup` snapshots (frozen), never the live state. The whole state goes out and
comes back as plain, JSON-ready data (:meth:`export_state` / :meth:`from_state`), so an
orchestrator can persist it in the store and resume after a restart.

Memory is bounded: at most ``max_groups`` groups (the least recently seen is evicted and
counted in ``evicted_groups``), ``max_buckets`` time buckets per group (oldest dropped),
``max_samples`` trace ids and ``max_members`` services/operations/peers per group.
Time comes from the events, never from a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from faultlens.analysis.errors.fingerprint import Fingerprint, fingerprints
from faultlens.analysis.errors.model import (
    Category,
    Classification,
    ClassificationSource,
    ErrorEvent,
    ErrorType,
)
from faultlens.analysis.errors.taxonomy import Classifier

_STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class GrouperConfig:
    bucket_ns: int = 60 * 1_000_000_000
    max_buckets: int = 1_440  # a day of minutes
    max_samples: int = 5
    max_members: int = 20
    max_groups: int = 10_000

    def __post_init__(self) -> None:
        if self.bucket_ns <= 0:
            raise ValueError("bucket_ns must be > 0")
        if min(self.max_buckets, self.max_samples, self.max_members, self.max_groups) < 1:
            raise ValueError("max_buckets, max_samples, max_members and max_groups must be >= 1")


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """A snapshot of one group. ``buckets`` are ``(bucket start ns, count)``, oldest first."""

    group_id: str
    service: str
    exception_type: str
    message_template: str
    top_frame: str
    category: Category
    type: ErrorType
    classification_source: ClassificationSource
    confidence: float
    rule: str
    first_seen_ns: int
    last_seen_ns: int
    count: int
    buckets: tuple[tuple[int, int], ...]
    services: tuple[str, ...]
    operations: tuple[str, ...]
    peers: tuple[str, ...]
    sample_trace_ids: tuple[bytes, ...]
    sample_message: str


@dataclass(slots=True)
class _Group:
    fp: Fingerprint
    cls: Classification
    first: int
    last: int
    count: int = 0
    buckets: dict[int, int] = field(default_factory=dict)
    services: list[str] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)
    samples: list[bytes] = field(default_factory=list)
    sample_message: str = ""


def _add_member(members: list[str], value: str | None, limit: int) -> None:
    if value and value not in members and len(members) < limit:
        members.append(value)


class ErrorGrouper:
    """Groups errors by fingerprint. Not thread-safe; one instance per analysis stream."""

    def __init__(self, config: GrouperConfig | None = None, classifier: Classifier | None = None) -> None:
        self.config = config or GrouperConfig()
        self.classifier = classifier or Classifier()
        self._groups: dict[str, _Group] = {}
        self.evicted_groups = 0

    def add(self, events: Iterable[ErrorEvent]) -> list[ErrorGroup]:
        """Fold ``events`` in; return snapshots of the groups they touched (in first-touch order)."""
        touched: dict[str, None] = {}
        cfg = self.config
        batch = events if isinstance(events, list | tuple) else list(events)
        for ev, fp in zip(batch, fingerprints(batch), strict=True):
            g = self._groups.get(fp.group_id)
            if g is None:
                g = _Group(
                    fp, self.classifier.classify(ev), ev.time_ns, ev.time_ns, sample_message=ev.message
                )
                self._groups[fp.group_id] = g
                if len(self._groups) > cfg.max_groups:
                    self._evict(keep=fp.group_id)
            g.count += 1
            g.first = min(g.first, ev.time_ns)
            g.last = max(g.last, ev.time_ns)
            start = ev.time_ns - ev.time_ns % cfg.bucket_ns
            g.buckets[start] = g.buckets.get(start, 0) + 1
            if len(g.buckets) > cfg.max_buckets:
                del g.buckets[min(g.buckets)]
            _add_member(g.services, ev.service, cfg.max_members)
            _add_member(g.operations, ev.operation, cfg.max_members)
            _add_member(g.peers, ev.peer, cfg.max_members)
            if ev.trace_id and ev.trace_id not in g.samples and len(g.samples) < cfg.max_samples:
                g.samples.append(ev.trace_id)
            touched[fp.group_id] = None
        return [self._snapshot(self._groups[gid]) for gid in touched if gid in self._groups]

    def group(self, group_id: str) -> ErrorGroup | None:
        g = self._groups.get(group_id)
        return None if g is None else self._snapshot(g)

    def groups(self) -> list[ErrorGroup]:
        """All groups, most recently seen first."""
        return [self._snapshot(g) for g in sorted(self._groups.values(), key=lambda g: -g.last)]

    def __len__(self) -> int:
        return len(self._groups)

    def _evict(self, keep: str) -> None:
        victim = min((g for gid, g in self._groups.items() if gid != keep), key=lambda g: g.last)
        del self._groups[victim.fp.group_id]
        self.evicted_groups += 1

    @staticmethod
    def _snapshot(g: _Group) -> ErrorGroup:
        return ErrorGroup(
            group_id=g.fp.group_id,
            service=g.fp.service,
            exception_type=g.fp.exception_type,
            message_template=g.fp.message_template,
            top_frame=g.fp.top_frame,
            category=g.cls.category,
            type=g.cls.type,
            classification_source=g.cls.source,
            confidence=g.cls.confidence,
            rule=g.cls.rule,
            first_seen_ns=g.first,
            last_seen_ns=g.last,
            count=g.count,
            buckets=tuple(sorted(g.buckets.items())),
            services=tuple(g.services),
            operations=tuple(g.operations),
            peers=tuple(g.peers),
            sample_trace_ids=tuple(g.samples),
            sample_message=g.sample_message,
        )

    # -- persistence ----------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Plain, JSON-ready state: ids as hex, times as ints, enums as their values."""
        return {
            "version": _STATE_VERSION,
            "evicted_groups": self.evicted_groups,
            "groups": [
                {
                    "group_id": g.fp.group_id,
                    "service": g.fp.service,
                    "exception_type": g.fp.exception_type,
                    "message_template": g.fp.message_template,
                    "top_frame": g.fp.top_frame,
                    "category": g.cls.category.value,
                    "type": g.cls.type.value,
                    "source": g.cls.source.value,
                    "confidence": g.cls.confidence,
                    "rule": g.cls.rule,
                    "first_seen_ns": g.first,
                    "last_seen_ns": g.last,
                    "count": g.count,
                    "buckets": [[s, c] for s, c in sorted(g.buckets.items())],
                    "services": list(g.services),
                    "operations": list(g.operations),
                    "peers": list(g.peers),
                    "sample_trace_ids": [t.hex() for t in g.samples],
                    "sample_message": g.sample_message,
                }
                for g in self._groups.values()
            ],
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        config: GrouperConfig | None = None,
        classifier: Classifier | None = None,
    ) -> ErrorGrouper:
        """Rebuild from :meth:`export_state` output. Raises ``ValueError`` on another version."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported error grouper state version: {state.get('version')!r}")
        grouper = cls(config, classifier)
        grouper.evicted_groups = int(state.get("evicted_groups", 0))
        for d in state["groups"]:
            fp = Fingerprint(
                d["service"], d["exception_type"], d["message_template"], d["top_frame"], d["group_id"]
            )
            c = Classification(
                Category(d["category"]),
                ErrorType(d["type"]),
                ClassificationSource(d["source"]),
                float(d["confidence"]),
                d["rule"],
            )
            grouper._groups[fp.group_id] = _Group(
                fp=fp,
                cls=c,
                first=int(d["first_seen_ns"]),
                last=int(d["last_seen_ns"]),
                count=int(d["count"]),
                buckets={int(s): int(n) for s, n in d["buckets"]},
                services=list(d["services"]),
                operations=list(d["operations"]),
                peers=list(d["peers"]),
                samples=[bytes.fromhex(t) for t in d["sample_trace_ids"]],
                sample_message=d["sample_message"],
            )
        return grouper
