"""What every template miner gives: the :class:`Match` of a line and the :class:`TemplateMiner` edge.

Two miners implement it: :class:`~.skeleton.SkeletonMiner` (the default: words are constants,
values are masked, a word slot turns variable once it has shown enough distinct words) and
:class:`~.drain.Drain` (the Drain prefix tree, kept for comparison and for callers that hold
one). :class:`~.miner.LogTemplateAnalyzer` runs one per service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Match:
    """The result of adding one line: its cluster's id and template, and what changed.

    ``merged``: ids of clusters this line's arrival folded into ``cluster_id`` (a slot that
    turned out to be variable joins the clusters that differed only there). Those ids are
    gone from the miner from then on; a caller that counts by id moves their counts over.
    """

    cluster_id: int
    template: str
    created: bool
    template_changed: bool
    merged: tuple[int, ...] = ()


class TemplateCluster(Protocol):
    """One mined template as callers read it."""

    @property
    def cluster_id(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def template(self) -> str: ...


class TemplateMiner(Protocol):
    """Online template mining for one stream of lines (one service).

    Contract: lines are placed one at a time in arrival order (:meth:`add_many` is the same as
    calling :meth:`add` on each, in order); an empty sequence changes nothing. Cluster ids are
    ints, never reused within one state, and survive :meth:`export_state` and the miner's
    ``from_state``. State is bounded by the miner's config. Not thread-safe.
    """

    def add(self, line: str) -> Match: ...

    def add_many(self, lines: Sequence[str]) -> list[Match]: ...

    def cluster(self, cluster_id: int) -> TemplateCluster | None: ...

    def export_state(self) -> dict[str, Any]: ...
