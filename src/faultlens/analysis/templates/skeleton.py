"""The skeleton miner: online log templates where words are constant until shown otherwise.

Pure and single-threaded: lines in, :class:`~.base.Match` out; no I/O, no clock; state goes
out and comes back as plain data (:meth:`SkeletonMiner.export_state` /
:meth:`SkeletonMiner.from_state`).

Why not Drain's similarity: on logs with labelled templates (loghub-2k, 16 systems) two lines
that differ in one plain word are nearly always two events (``VM Paused`` / ``VM Resumed``,
``... HTTPS`` / ``... SOCKS5``), which a similarity threshold merges, while values (numbers,
ids, addresses, paths, host names) are recognisable from their shape. So a line's template is
its key (:func:`~.tokens.line_key`): the words as they are, the values as ``<*>``. Two things
make a word slot variable, the way user names or service names are:

- **Enough distinct words in one slot.** When ``word_values`` keys that differ only in one
  slot, all in words, have been seen, the slot is a variable: their clusters fold into one
  (the largest keeps its id; :attr:`~.base.Match.merged` names the others) and later lines
  with any word there join it.
- **A value seen in the slot.** A line whose key differs from an existing key only where that
  key has ``<*>`` joins it (``entry for <*> expired now`` takes ``entry for alpha expired
  now``), and a new key with ``<*>`` takes in the clusters that differ from it only there.

Either way the key left has at least ``min_constants`` constant elements, so short lines
(``running`` / ``normal``, ``boot (command <*>)`` / ``wait (command <*>)``) never fold.

What a line costs: its key (each distinct token is judged once, and each distinct line is
keyed once while it stays in the bounded line cache) and one dict lookup; a new key also
looks up one key per word slot. State is bounded: at most ``max_clusters`` clusters and
``max_keys`` keys (the smallest cluster goes first), and at most ``max_slots`` slots of
evidence for word slots (past it the evidence restarts; it is rebuilt from the keys when the
state is restored).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faultlens.analysis.templates.base import Match
from faultlens.analysis.templates.tokens import ALL_RULES, VALUE, KeyRules, line_key

_STATE_VERSION = 1
KIND = "skeleton"

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SkeletonConfig:
    """Tuning of :class:`SkeletonMiner`; one setting for every system (docs/analysis.md)."""

    word_values: int = 5  # distinct words in one slot (the rest equal) that make it variable
    min_constants: int = 3  # constant elements a folded or joined key keeps at least
    max_clusters: int = 10_000
    max_keys: int = 40_000
    max_slots: int = 50_000  # slots holding evidence of words; past it the evidence restarts
    line_cache: int = 20_000  # distinct lines whose key is remembered (speed only; 0: off)
    rules: KeyRules = ALL_RULES  # all of them; fewer only to measure what each brings

    def __post_init__(self) -> None:
        if self.word_values < 2:
            raise ValueError("word_values must be at least 2")
        if self.min_constants < 0:
            raise ValueError("min_constants must be >= 0")
        if self.max_clusters < 1 or self.max_keys < self.max_clusters or self.max_slots < 1:
            raise ValueError("need max_clusters >= 1, max_keys >= max_clusters and max_slots >= 1")
        if self.line_cache < 0:
            raise ValueError("line_cache must be >= 0")


@dataclass(slots=True)
class SkeletonCluster:
    """One template: its elements, how many lines it holds, and the keys that lead to it."""

    cluster_id: int
    tokens: list[str]
    size: int = 0
    keys: list[Key] = field(default_factory=list)
    template: str = ""
    last_shown: tuple[str, ...] = ()  # the shown elements of the last line fitted (speed only)
    repeat: Match | None = None  # what a line that changes nothing gets (speed only)

    def __post_init__(self) -> None:
        if not self.template:
            self.template = " ".join(self.tokens)

    def join(self, key: Key, shown: tuple[str, ...]) -> Match:
        """A line with one of this cluster's keys joins it."""
        self.size += 1
        if self.fit(key, shown):
            return Match(self.cluster_id, self.template, False, True)
        m = self.repeat  # a line that changes nothing: one shared Match
        if m is None or m.template is not self.template:
            m = self.repeat = Match(self.cluster_id, self.template, False, False)
        return m

    def fit(self, key: Key, shown: tuple[str, ...]) -> bool:
        """Generalise the template where ``shown`` differs from it; True when it changed."""
        if shown == self.last_shown:
            return False
        self.last_shown = shown
        changed = False
        tokens = self.tokens
        for i, text in enumerate(shown):
            old = tokens[i]
            if old != text and old != VALUE:
                general = key[i] if VALUE in key[i] else VALUE
                if old != general:
                    tokens[i] = general
                    changed = True
        if changed:
            self.template = " ".join(tokens)
        return changed


def _slot_keys(key: Key, min_constants: int) -> list[tuple[int, Key]]:
    """``(i, key with slot i made <*>)`` for each non-value slot, if enough constants remain."""
    constants = sum(1 for e in key if e != VALUE)
    if constants - 1 < min_constants:
        return []
    return [(i, (*key[:i], VALUE, *key[i + 1 :])) for i, e in enumerate(key) if e != VALUE]


def _in_slot(key: Key, slot: Key) -> bool:
    """Whether ``key`` is ``slot`` with a non-value in exactly one of the slot's ``<*>``."""
    if len(key) != len(slot):
        return False
    differ = 0
    for a, b in zip(key, slot, strict=True):
        if a != b:
            if b != VALUE or a == VALUE:
                return False
            differ += 1
    return differ == 1


class SkeletonMiner:
    """Skeleton template mining for one stream of lines. Not thread-safe; one per service."""

    def __init__(self, config: SkeletonConfig | None = None) -> None:
        self.config = config or SkeletonConfig()
        self._clusters: dict[int, SkeletonCluster] = {}
        self._by_key: dict[Key, SkeletonCluster] = {}
        # hash of a key with one slot made <*> -> the words seen in that slot -> the key that had
        # each (by hash, so that a slot costs the same whatever the length of its key; a key is
        # checked against the slot before it counts, so a collision changes nothing)
        self._words: dict[int, dict[str, Key]] = {}
        self._next_id = 1
        self._lines: dict[str, tuple[Key, tuple[str, ...]]] = {}
        # a key that joined another key's cluster (a word in a variable slot) -> that key; a
        # bounded cache, not state: without it the key finds the same cluster again
        self._aliases: dict[Key, Key] = {}

    # -- public ---------------------------------------------------------------------------

    def key(self, line: str) -> tuple[Key, tuple[str, ...]]:
        """The key of ``line`` and its shown elements (remembered for repeated lines)."""
        got = self._lines.get(line)
        if got is None:
            got = line_key(line, self.config.rules)
            limit = self.config.line_cache
            if limit:
                if len(self._lines) >= limit:
                    self._lines.clear()
                self._lines[line] = got
        return got

    def add(self, line: str) -> Match:
        """Place ``line`` in a cluster, creating, joining or folding clusters as needed."""
        key, shown = self.key(line)
        return self._place(key, shown)

    def add_many(self, lines: Sequence[str]) -> list[Match]:
        """``[self.add(line) for line in lines]``."""
        out: list[Match] = []
        by_key = self._by_key
        cache = self._lines
        for line in lines:
            key, shown = cache.get(line) or self.key(line)
            c = by_key.get(key)
            out.append(self._place(key, shown) if c is None else c.join(key, shown))
        return out

    def match(self, line: str) -> SkeletonCluster | None:
        """The cluster ``line`` would join, without changing anything (None if it would be new)."""
        key, _ = line_key(line, self.config.rules)
        c = self._by_key.get(key) or self._by_key.get(self._aliases.get(key, ()))
        if c is None:
            for _, slot in _slot_keys(key, self.config.min_constants):
                c = self._by_key.get(slot)
                if c is not None:
                    break
        return c

    def skip_ids(self, first: int) -> None:
        """New clusters get ids from ``first`` on (ids a previous miner gave stay unused)."""
        self._next_id = max(self._next_id, first)

    def cluster(self, cluster_id: int) -> SkeletonCluster | None:
        return self._clusters.get(cluster_id)

    @property
    def clusters(self) -> list[SkeletonCluster]:
        return list(self._clusters.values())

    def export_state(self) -> dict[str, Any]:
        """Plain, JSON-ready state: enough to rebuild the same miner with :meth:`from_state`."""
        return {
            "kind": KIND,
            "version": _STATE_VERSION,
            "next_id": self._next_id,
            "clusters": [
                {
                    "id": c.cluster_id,
                    "tokens": list(c.tokens),
                    "size": c.size,
                    "keys": [list(k) for k in c.keys],
                }
                for c in self._clusters.values()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: SkeletonConfig | None = None) -> SkeletonMiner:
        """Rebuild from :meth:`export_state` output. Raises ``ValueError`` on another kind or version."""
        if state.get("kind") != KIND or state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"unsupported skeleton state: kind {state.get('kind')!r} version {state.get('version')!r}"
            )
        miner = cls(config)
        for item in state["clusters"]:
            keys = [tuple(str(e) for e in k) for k in item["keys"]]
            c = SkeletonCluster(int(item["id"]), [str(t) for t in item["tokens"]], int(item["size"]), keys)
            miner._clusters[c.cluster_id] = c
            for k in keys:
                miner._by_key[k] = c
        for k in miner._by_key:
            miner._note_words(k)
        miner._next_id = max(int(state["next_id"]), max(miner._clusters, default=0) + 1)
        return miner

    # -- new keys -------------------------------------------------------------------------

    def _place(self, key: Key, shown: tuple[str, ...]) -> Match:
        c = self._by_key.get(key)
        if c is None:
            slot = self._aliases.get(key)
            c = None if slot is None else self._by_key.get(slot)
            if c is None:
                return self._new_key(key, shown)
        return c.join(key, shown)

    def _alias(self, key: Key, slot: Key) -> None:
        if len(self._aliases) >= self.config.max_keys:
            self._aliases.clear()
        self._aliases[key] = slot

    def _new_key(self, key: Key, shown: tuple[str, ...]) -> Match:
        slots = _slot_keys(key, self.config.min_constants)
        for _, slot in slots:  # a value was seen where this key has a word: join that
            target = self._by_key.get(slot)
            if target is not None:
                self._alias(key, slot)
                return self._attach(target, key, shown, merged=())
        # words seen where this key has a value: their clusters join this key's
        if VALUE in key and sum(1 for e in key if e != VALUE) >= self.config.min_constants:
            words = self._words.pop(hash(key), None)
            if words:
                found = self._clusters_of(k for k in words.values() if _in_slot(k, key))
                if found:
                    return self._fold(found, key, key, shown)
        for i, slot in slots:  # enough distinct words in one slot: it is a variable
            words = self._words.get(hash(slot))
            if words is None:
                continue
            seen = [k for k in words.values() if _in_slot(k, slot)]
            if len(seen) + (key[i] not in words) >= self.config.word_values:
                found = self._clusters_of(seen)
                if found:
                    del self._words[hash(slot)]
                    self._alias(key, slot)
                    return self._fold(found, slot, key, shown)
        c = SkeletonCluster(self._next_id, list(shown), 1, [key], last_shown=shown)
        self._next_id += 1
        self._clusters[c.cluster_id] = c
        self._by_key[key] = c
        self._note_words(key, slots)
        self._bound(keep=c)
        return Match(c.cluster_id, c.template, True, True)

    def _clusters_of(self, keys: Any) -> list[SkeletonCluster]:
        seen: dict[int, SkeletonCluster] = {}
        for k in keys:
            c = self._by_key.get(k)
            if c is not None:
                seen[c.cluster_id] = c
        return list(seen.values())

    def _fold(self, found: list[SkeletonCluster], owned: Key, key: Key, shown: tuple[str, ...]) -> Match:
        """Fold ``found`` into the largest of them, give it the key ``owned``, and add the line."""
        target = max(found, key=lambda c: (c.size, -c.cluster_id))
        merged: list[int] = []
        for c in found:
            if c is target:
                continue
            target.size += c.size
            for k in c.keys:
                self._by_key[k] = target
            target.keys.extend(c.keys)
            target.fit(k, tuple(c.tokens))
            del self._clusters[c.cluster_id]
            merged.append(c.cluster_id)
        if owned not in self._by_key:
            self._by_key[owned] = target
            target.keys.append(owned)
            self._note_words(owned)
        return self._attach(target, key, shown, merged=tuple(merged))

    def _attach(
        self, target: SkeletonCluster, key: Key, shown: tuple[str, ...], merged: tuple[int, ...]
    ) -> Match:
        """The line of ``key`` joins ``target`` (after folding ``merged`` into it)."""
        target.size += 1
        changed = target.fit(key, shown)  # the slot where it differs becomes <*>
        self._bound(keep=target)
        return Match(target.cluster_id, target.template, False, changed or bool(merged), merged)

    def _note_words(self, key: Key, slots: list[tuple[int, Key]] | None = None) -> None:
        """Remember this key's word in each of its slots, as evidence that the slot is variable."""
        words = self._words
        for i, slot in _slot_keys(key, self.config.min_constants) if slots is None else slots:
            if slot not in self._by_key:
                words.setdefault(hash(slot), {})[key[i]] = key
        if len(words) > self.config.max_slots:
            words.clear()  # bounded: the evidence restarts (clusters and keys stay)

    # -- bounds ---------------------------------------------------------------------------

    def _bound(self, keep: SkeletonCluster) -> None:
        """Past a bound, evict the smallest clusters: 1/32 of the bound at once, so that a
        stream of new templates at the bound does not scan every cluster for each of them."""
        cfg = self.config
        while len(self._clusters) > cfg.max_clusters or len(self._by_key) > cfg.max_keys:
            batch = max(1, cfg.max_clusters // 32)
            others = (c for c in self._clusters.values() if c is not keep)
            victims = heapq.nsmallest(batch, others, key=lambda c: c.size)
            if not victims:
                return
            for victim in victims:
                self._evict(victim)

    def _evict(self, victim: SkeletonCluster) -> None:
        del self._clusters[victim.cluster_id]
        for k in victim.keys:
            if self._by_key.get(k) is victim:
                del self._by_key[k]
            for i, slot in _slot_keys(k, self.config.min_constants):
                words = self._words.get(hash(slot))
                if words is not None and words.get(k[i]) == k:
                    del words[k[i]]
                    if not words:
                        del self._words[hash(slot)]
