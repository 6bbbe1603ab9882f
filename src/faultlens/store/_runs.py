"""Runs of bloom filters with a build lifecycle: the core that the trace id filter
(``_trace_filter``) and the attribute filter (``_attr_filter``) share.

Both keep, beside the store file, one row of arrays per *run* of what they summarise (trace
index rows, spans), so that a question tests every run with a few vector operations::

     per run:  bloom (words) │ lo │ hi │ rows │ the filter's own columns
               ──────────────┼────┼────┼──────┼─────────────────────────
     run 0     ...           │    │    │      │
     run n-1   ...           │    │    │      │      (arrays grow by doubling)

What is the same in both lives here, once:

- the bloom: a split block filter as Parquet's: a key's 64-bit hash picks one block of
  :data:`BLOCK_WORDS` 64-bit words and sets one bit in each (:func:`block_and_masks`), so a
  question reads one block per run;
- ``lo``, ``hi``: the least and greatest start time of a run's rows; ``rows``: how many;
- channels: rows are added to the open run of their channel (writes, the build, ...), so rows
  of one origin never widen the time range of another's run;
- the bound: at :attr:`BloomRuns.max_runs` the two adjacent (in time) closed runs with the
  fewest rows between them are folded into one (blooms OR-ed, ranges joined), so a folded run
  still holds every key it held;
- retention: a run goes once all its rows start before the cutoff;
- the build lifecycle: nothing is kept until a build begins (:meth:`BloomRuns.begin_build`);
  until then writes are only counted while their transaction runs (:meth:`BloomRuns.writing`),
  and the build first waits for those to end, so every row is either in what the build reads
  or added by its write before the commit.

What a run holds beyond that, how keys reach it and how runs answer is each filter's own.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import numpy as np

__all__ = [
    "BLOCK_WORDS",
    "BUILD",
    "I64_MAX",
    "I64_MIN",
    "WRITES",
    "BloomRuns",
    "block_and_masks",
    "mix64",
]

BLOCK_WORDS = 8  # 64-bit words per block; a key sets one bit in each
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)

WRITES = "writes"  # the channel of live writes
BUILD = "build"  # the channel of the build's rows


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def block_and_masks(h1: np.ndarray, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """For each key's 64-bit hash ``h1`` (uint64): the block of a run's bloom of ``blocks``
    blocks it lives in, and the bit it sets in each of the block's words (shape
    ``(n, BLOCK_WORDS)``)."""
    with np.errstate(over="ignore"):
        h2 = mix64(h1 ^ np.uint64(0x9E3779B97F4A7C15))
    block = (h1 % np.uint64(blocks)).astype(np.int64)
    shifts = (h2[:, None] >> (np.arange(BLOCK_WORDS, dtype=np.uint64) * np.uint64(6))) & np.uint64(63)
    return block, np.uint64(1) << shifts


class BloomRuns:
    """The runs of one filter (see the module docstring). Thread-safe: every method here takes
    ``_lock``, and a subclass holds it while it touches the arrays.

    A subclass lists its own per-run arrays in ``_COLUMNS`` (after the core's), creates them
    in ``__init__`` (empty, after calling this one's), and says how a new run starts and how
    two runs fold in :meth:`_reset_run` and :meth:`_merge_runs`."""

    _COLUMNS: ClassVar[tuple[str, ...]] = ("_blooms", "_lo", "_hi", "_rows")

    def __init__(self, words: int, max_bytes: int) -> None:
        """``words``: 64-bit words of a run's bloom; ``max_bytes``: the most the blooms may
        hold (at least two runs' worth)."""
        self.max_runs = max(2, max_bytes // (words * 8))
        self.folds = 0  # runs folded into others to stay within max_bytes
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._started = False  # a build has begun: writes add their rows from now on
        self._unrecorded = 0  # writes in their transaction that began before that
        self._blooms = np.zeros((0, words), dtype=np.uint64)
        self._lo = np.zeros(0, dtype=np.int64)  # least start time of a run's rows
        self._hi = np.zeros(0, dtype=np.int64)  # greatest start time
        self._rows = np.zeros(0, dtype=np.int64)  # rows (keys added) of a run
        self._n = 0  # runs in use
        self._open: dict[str, int] = {}  # channel -> its open run
        self.ready = False

    @property
    def started(self) -> bool:
        """Writes must add their rows (a build has begun)."""
        return self._started

    @property
    def runs(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Memory the filter holds (its arrays, grown by doubling)."""
        return int(sum(getattr(self, name).nbytes for name in self._COLUMNS))

    # --- the build's lifecycle -------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around a transaction that adds rows: before a build begins, the build waits for
        the transaction to end rather than have it add its rows."""
        with self._lock:
            counted = not self._started
            if counted:
                self._unrecorded += 1
        try:
            yield
        finally:
            if counted:
                with self._lock:
                    self._unrecorded -= 1
                    self._idle.notify_all()

    def begin_build(self) -> None:
        """From now on writes add their rows; returns once the writes that began before have
        ended (their rows are then in whatever the build reads)."""
        with self._lock:
            self._started = True
            self._idle.wait_for(lambda: self._unrecorded == 0)

    # --- runs ------------------------------------------------------------------------------

    def _new_run(self, channel: str) -> int:
        """A new empty run, open on ``channel``; folds first at the bound. Call holding
        ``_lock``."""
        if self._n >= self.max_runs:
            self._fold()
        if self._n == len(self._lo):
            grow = max(1, min(max(4, self._n), self.max_runs - self._n))
            for name in self._COLUMNS:
                arr = getattr(self, name)
                setattr(self, name, np.concatenate([arr, np.zeros((grow, *arr.shape[1:]), dtype=arr.dtype)]))
        r = self._n
        self._blooms[r] = 0  # a row freed by a fold may still hold the bits of the run it held
        self._lo[r], self._hi[r] = I64_MAX, I64_MIN
        self._rows[r] = 0
        self._reset_run(r)
        self._n += 1
        self._open[channel] = r
        return r

    def _reset_run(self, r: int) -> None:
        """Start the subclass's columns of the new run ``r``."""

    def _set_bits(self, r: int, block: np.ndarray, masks: np.ndarray) -> None:
        """Add keys (:func:`block_and_masks` of their hashes) to the bloom of run ``r``."""
        words = block[:, None] * BLOCK_WORDS + np.arange(BLOCK_WORDS)
        np.bitwise_or.at(self._blooms[r], words.ravel(), masks.ravel())

    def _maybe_runs(self, block: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Which runs' blooms may hold every one of the keys; call holding ``_lock``."""
        n = self._n
        hit = np.ones(n, dtype=bool)
        for b, m in zip(block.tolist(), masks, strict=True):
            first = b * BLOCK_WORDS
            hit &= ((self._blooms[:n, first : first + BLOCK_WORDS] & m) == m).all(axis=1)
        return hit

    def _fold(self) -> None:
        """Fold the two adjacent (in time) closed runs with the fewest rows between them into
        one, freeing a row; nothing when fewer than two runs are closed."""
        n = self._n
        open_runs = set(self._open.values())
        closed = sorted((r for r in range(n) if r not in open_runs), key=lambda r: (self._lo[r], r))
        if len(closed) < 2:
            return
        keep, gone = min(itertools.pairwise(closed), key=lambda p: int(self._rows[p[0]] + self._rows[p[1]]))
        self._blooms[keep] |= self._blooms[gone]
        self._lo[keep] = min(self._lo[keep], self._lo[gone])
        self._hi[keep] = max(self._hi[keep], self._hi[gone])
        self._rows[keep] += self._rows[gone]
        self._merge_runs(keep, gone)
        last = n - 1  # the last row moves into the freed one
        if gone != last:
            for name in self._COLUMNS:
                arr = getattr(self, name)
                arr[gone] = arr[last]
            self._open = {c: (gone if r == last else r) for c, r in self._open.items()}
        self._n = last
        self.folds += 1

    def _merge_runs(self, keep: int, gone: int) -> None:
        """Fold the subclass's columns of run ``gone`` into run ``keep`` (the core's are)."""

    def close_channel(self, channel: str) -> None:
        """The next rows added on ``channel`` start a run of their own."""
        with self._lock:
            self._open.pop(channel, None)

    # --- forgetting ------------------------------------------------------------------------

    def drop_before(self, cutoff: int) -> int:
        """Forget the runs whose rows all start before ``cutoff`` (retention deleted them);
        returns how many went."""
        with self._lock:
            n = self._n
            keep = self._hi[:n] >= cutoff
            dropped = int(n - keep.sum())
            if not dropped:
                return 0
            new_index = np.cumsum(keep) - 1
            self._open = {c: int(new_index[r]) for c, r in self._open.items() if keep[r]}
            for name in self._COLUMNS:
                setattr(self, name, getattr(self, name)[:n][keep])
            self._n = len(self._lo)
        return dropped
