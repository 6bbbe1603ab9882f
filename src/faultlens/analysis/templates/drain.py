"""Drain: online log template mining with a fixed-depth prefix tree (He et al., ICWS 2017).

Not the analyzer's default any more (:mod:`.skeleton` groups loghub-2k better, see
docs/analysis.md); kept as the reference it is measured against, and for callers that hold
one.

Pure and single-threaded: lines in, ``(cluster, change)`` out; no I/O, no clock. State is
exported to and rebuilt from plain data (:meth:`Drain.export_state` /
:meth:`Drain.from_state`), so an orchestrator can persist it in the store.

How a line is placed::

    line ──mask──> tokens ──> root ─> [token count] ─> [1st token] ─> ... ─> leaf: clusters
                                                       (depth - 2 levels)

1. Variables are masked first (:mod:`.masking`), then the line is split on whitespace.
2. The tree is walked by token count, then by the first ``depth - 2`` tokens; a token with
   a digit, or a placeholder, goes down the ``<*>`` branch, and so does any token once a
   node has ``max_children`` children (bounded fan-out, bounded memory).
3. In the leaf, the cluster whose template shares the largest fraction of positions with
   the line wins if that fraction is at least ``sim_threshold``; the template then turns
   every position where they differ into ``<*>``. Otherwise the line starts a new cluster.

Cluster ids are small ints, stable for the life of the state (they survive export/import).

Repeated lines are cheap: after masking, many lines are the same text (``user <NUM> logged
in``). Each masked text remembers its leaf, the leaf's version and the cluster it joined;
while that leaf is unchanged (no cluster added, removed or generalised there since), the
same text joins the same cluster without changing it, so the walk and the comparison are
skipped and the result is the one they would give. :meth:`Drain.add_many` also masks a
whole batch of lines in one pass per rule (:func:`~.masking.mask_many`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faultlens.analysis.templates.base import Match
from faultlens.analysis.templates.masking import TEMPLATE_MASKS, MaskRule, mask, mask_many, mask_tokens

WILDCARD = "<*>"
_STATE_VERSION = 1
_VARIABLE = re.compile(r"\d|<[A-Z*]+>")


def _is_variable(token: str) -> bool:
    """A token that holds a digit or a placeholder is likely a variable: it must not pick a branch."""
    return _VARIABLE.search(token) is not None


@dataclass(frozen=True, slots=True)
class DrainConfig:
    """Tuning of :class:`Drain`. The defaults were chosen on loghub-2k (see docs/errors.md)."""

    depth: int = 4
    sim_threshold: float = 0.5
    max_children: int = 100
    max_clusters: int = 10_000
    # Split tokens on these characters too (besides whitespace), keeping them as tokens.
    extra_delimiters: str = ""
    masks: tuple[MaskRule, ...] = TEMPLATE_MASKS
    # Masked lines that remember their cluster (speed only; 0 turns it off).
    line_cache: int = 20_000

    def __post_init__(self) -> None:
        if self.depth < 3:
            raise ValueError("depth must be at least 3 (root, length and one token level)")
        if not 0.0 < self.sim_threshold <= 1.0:
            raise ValueError("sim_threshold must be in (0, 1]")
        if self.max_children < 2 or self.max_clusters < 1:
            raise ValueError("max_children must be >= 2 and max_clusters >= 1")


@dataclass(slots=True)
class LogCluster:
    """One template: its tokens, how many lines it holds, and its path in the tree."""

    cluster_id: int
    tokens: list[str]
    size: int = 0
    path: tuple[str, ...] = ()

    @property
    def template(self) -> str:
        return " ".join(self.tokens)


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    clusters: list[LogCluster] = field(default_factory=list)
    version: int = 0  # bumped when a cluster of this leaf is added, removed or generalised


class Drain:
    """The Drain prefix tree and its clusters. Not thread-safe; one instance per stream."""

    def __init__(self, config: DrainConfig | None = None) -> None:
        self.config = config or DrainConfig()
        self._root = _Node()
        self._clusters: dict[int, LogCluster] = {}
        self._next_id = 1
        split = "".join(re.escape(c) for c in self.config.extra_delimiters)
        self._splitter = re.compile(f"([{split}])") if split else None
        # masked line -> (leaf, leaf version, cluster, the Match a repeat of the line gets)
        self._recent: dict[str, tuple[_Node, int, LogCluster, Match]] = {}

    # -- public ---------------------------------------------------------------------------

    def tokenize(self, line: str) -> list[str]:
        """Mask variables, then split on whitespace (and the extra delimiters, if any)."""
        return self._split(mask(line.strip(), self.config.masks))

    def _split(self, masked: str) -> list[str]:
        if self._splitter is not None:
            masked = self._splitter.sub(r" \1 ", masked)
        return masked.split()

    def add(self, line: str) -> Match:
        """Place ``line`` in a cluster (creating one if none is similar enough)."""
        return self._add_masked(mask(line.strip(), self.config.masks))

    def add_many(self, lines: Sequence[str]) -> list[Match]:
        """``[self.add(line) for line in lines]``, in order, masking all the lines at once.

        With masks that stay inside tokens (the default), each distinct token is masked
        once (:func:`~.masking.mask_tokens`); else each distinct line is.
        """
        masks = self.config.masks
        if all(r.in_token for r in masks):
            direct = self._splitter is None  # the masked tokens are the tokens
            return [
                self._add_masked(" ".join(tokens), tokens if direct else None)
                for tokens in mask_tokens(lines, masks)
            ]
        stripped = [line.strip() for line in lines]
        distinct = list(dict.fromkeys(stripped))  # each distinct line is masked once
        masked_of = dict(zip(distinct, mask_many(distinct, masks), strict=True))
        return [self._add_masked(masked_of[line]) for line in stripped]

    def _add_masked(self, masked: str, tokens: list[str] | None = None) -> Match:
        """Place a masked line (``tokens``: its tokens, when the caller has them)."""
        hit = self._recent.get(masked)
        if hit is not None and hit[0].version == hit[1]:
            hit[2].size += 1
            return hit[3]
        if tokens is None:
            tokens = self._split(masked)
        leaf, path = self._leaf_for(tokens, create=True)
        assert leaf is not None
        cluster = self._best_match(leaf.clusters, tokens)
        if cluster is None:
            cluster = LogCluster(self._next_id, tokens, 1, path)
            self._next_id += 1
            leaf.clusters.append(cluster)
            leaf.version += 1
            self._clusters[cluster.cluster_id] = cluster
            if len(self._clusters) > self.config.max_clusters:
                self._evict_smallest(keep=cluster.cluster_id)
            match = Match(cluster.cluster_id, cluster.template, True, True)
        else:
            cluster.size += 1
            changed = False
            for i, (old, new) in enumerate(zip(cluster.tokens, tokens, strict=True)):
                if old != new and old != WILDCARD:
                    cluster.tokens[i] = WILDCARD
                    changed = True
            if changed:
                leaf.version += 1
            match = Match(cluster.cluster_id, cluster.template, False, changed)
        self._remember(masked, leaf, cluster, match)
        return match

    def _remember(self, masked: str, leaf: _Node, cluster: LogCluster, match: Match) -> None:
        """The same masked line joins ``cluster`` again, unchanged, while ``leaf`` stays as it is now.

        (It joined, or founded, the cluster, so every position where they differ is already
        a wildcard: its similarity to the cluster is as it was and the cluster's wildcard
        count only grew, so no other cluster of the unchanged leaf can beat it.)
        """
        limit = self.config.line_cache
        if limit <= 0:
            return
        if len(self._recent) >= limit:
            self._recent.clear()
        repeat = (
            match
            if not (match.created or match.template_changed)
            else Match(match.cluster_id, match.template, False, False)
        )
        self._recent[masked] = (leaf, leaf.version, cluster, repeat)

    def match(self, line: str) -> LogCluster | None:
        """The cluster ``line`` would join, without changing anything (None if it would be new)."""
        tokens = self.tokenize(line)
        leaf, _ = self._leaf_for(tokens, create=False)
        return None if leaf is None else self._best_match(leaf.clusters, tokens)

    def cluster(self, cluster_id: int) -> LogCluster | None:
        return self._clusters.get(cluster_id)

    @property
    def clusters(self) -> list[LogCluster]:
        return list(self._clusters.values())

    def export_state(self) -> dict[str, Any]:
        """Plain, JSON-ready state: enough to rebuild the same tree with :meth:`from_state`."""
        return {
            "version": _STATE_VERSION,
            "next_id": self._next_id,
            "clusters": [
                {"id": c.cluster_id, "tokens": list(c.tokens), "size": c.size, "path": list(c.path)}
                for c in self._clusters.values()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: DrainConfig | None = None) -> Drain:
        """Rebuild from :meth:`export_state` output. Raises ``ValueError`` on another version."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported drain state version: {state.get('version')!r}")
        drain = cls(config)
        for item in state["clusters"]:
            path = tuple(str(p) for p in item["path"])
            c = LogCluster(int(item["id"]), [str(t) for t in item["tokens"]], int(item["size"]), path)
            node = drain._root
            for key in path:
                node = node.children.setdefault(key, _Node())
            node.clusters.append(c)
            drain._clusters[c.cluster_id] = c
        drain._next_id = max(int(state["next_id"]), max(drain._clusters, default=0) + 1)
        return drain

    # -- the tree -------------------------------------------------------------------------

    def _leaf_for(self, tokens: Sequence[str], *, create: bool) -> tuple[_Node | None, tuple[str, ...]]:
        node = self._root
        key = str(len(tokens))
        path = [key]
        child = node.children.get(key)
        if child is None:
            if not create:
                return None, ()
            child = node.children[key] = _Node()
        node = child
        for token in tokens[: self.config.depth - 2]:
            key = WILDCARD if _is_variable(token) else token
            child = node.children.get(key)
            if child is None and key != WILDCARD:
                if create and len(node.children) < self.config.max_children - 1:
                    child = node.children[key] = _Node()
                else:
                    key = WILDCARD
                    child = node.children.get(key)
            if child is None:
                if not create:
                    return None, ()
                child = node.children[key] = _Node()
            path.append(key)
            node = child
        return node, tuple(path)

    def _best_match(self, clusters: Sequence[LogCluster], tokens: Sequence[str]) -> LogCluster | None:
        best: LogCluster | None = None
        best_sim = -1.0
        best_params = -1
        n = len(tokens)
        if n == 0:
            return clusters[0] if clusters else None
        for c in clusters:
            same = 0
            params = 0
            for t1, t2 in zip(c.tokens, tokens, strict=True):
                if t1 == WILDCARD:
                    params += 1
                elif t1 == t2:
                    same += 1
            sim = same / n
            if sim > best_sim or (sim == best_sim and params > best_params):
                best, best_sim, best_params = c, sim, params
        return best if best is not None and best_sim >= self.config.sim_threshold else None

    def _evict_smallest(self, keep: int) -> None:
        victim = min((c for c in self._clusters.values() if c.cluster_id != keep), key=lambda c: c.size)
        node = self._root
        for key in victim.path:
            node = node.children[key]
        node.clusters.remove(victim)
        node.version += 1
        del self._clusters[victim.cluster_id]
