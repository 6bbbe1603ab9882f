"""Bounded, time-limited memory of recent spans, for joins across batches.

Spans of one trace arrive in different batches (each service exports on its own, and an
OpenTelemetry SDK usually exports children before their parent). To find the caller of a
span we must remember recent span ids for a while. The memory is kept in generations: one
dict per slice of data time; whole generations are dropped when they fall out of the
retention or when the total size exceeds the bound, so expiry costs nothing per span.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

V = TypeVar("V")

_MASK64 = (1 << 64) - 1


def ids_to_keys(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.uint64]:
    """Span ids as uint64 keys; 0 for null. 8-byte ids are read as they are, others are hashed."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    if pa.types.is_fixed_size_binary(arr.type) and arr.type.byte_width == 8:
        fixed = arr
    else:
        try:
            fixed = pc.cast(arr, pa.binary(8))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            vals = [0 if b is None else (hash(b) & _MASK64) or 1 for b in arr.to_pylist()]
            return np.asarray(vals, dtype=np.uint64)
    data = fixed.buffers()[1]
    keys = np.frombuffer(data, dtype="<u8", count=n, offset=fixed.offset * 8).astype(np.uint64)
    if fixed.null_count:
        nulls = np.asarray(fixed.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        keys[nulls] = 0
    return keys


def _rollover(max_items: int) -> int:
    """Items after which a new generation starts even within one time slice.

    Without it, data whose time stands still (a sender replaying the same timestamps, a
    stuck clock) would all go into one generation, which the size bound never drops, and
    the buffer would grow without end. With it the buffer holds at most ~1.25x its bound.
    """
    return max(1, max_items // 4)


class Generations(Generic[V]):
    """A dict split by data-time slices of ``slice_ns``, bounded in age and in size.

    ``put`` writes into the generation of the given time; ``get`` looks from the newest
    generation back. ``expire`` drops generations entirely older than the retention and
    returns them, so the owner can count what left unanswered.
    """

    def __init__(self, slice_ns: int, retention_ns: int, max_items: int) -> None:
        self._slice_ns = max(1, slice_ns)
        self._retention_ns = retention_ns
        self._max_items = max_items
        self._gens: deque[tuple[int, dict[int, V]]] = deque()

    def current(self, t_ns: int) -> dict[int, V]:
        gid = t_ns // self._slice_ns
        if not self._gens or self._gens[-1][0] < gid or len(self._gens[-1][1]) >= self._rollover:
            self._gens.append((gid, {}))
        return self._gens[-1][1]

    @property
    def _rollover(self) -> int:
        return _rollover(self._max_items)

    def get(self, key: int) -> V | None:
        for _, gen in reversed(self._gens):
            hit = gen.get(key)
            if hit is not None:
                return hit
        return None

    def pop(self, key: int) -> V | None:
        for _, gen in reversed(self._gens):
            hit = gen.pop(key, None)
            if hit is not None:
                return hit
        return None

    def generations(self) -> Iterator[dict[int, V]]:
        for _, gen in reversed(self._gens):
            yield gen

    def expire(self, watermark_ns: int) -> tuple[list[dict[int, V]], list[dict[int, V]]]:
        """Drop old generations; returns (expired by age, evicted by size)."""
        aged: list[dict[int, V]] = []
        evicted: list[dict[int, V]] = []
        horizon = watermark_ns - self._retention_ns
        while self._gens and (self._gens[0][0] + 1) * self._slice_ns <= horizon:
            aged.append(self._gens.popleft()[1])
        while len(self._gens) > 1 and len(self) > self._max_items:
            evicted.append(self._gens.popleft()[1])
        return aged, evicted

    def __len__(self) -> int:
        return sum(len(gen) for _, gen in self._gens)


class _Runs:
    """One generation of :class:`KeyIndex`: sorted runs of (key, value), newest last.

    A batch becomes a run of its own, sorted; the newest run is merged into the one before
    while that one is at most twice its size, so a generation of n keys holds O(log n) runs
    and every key is re-sorted O(log n) times in all. Within a run a key appears once, with
    the value written last.
    """

    __slots__ = ("runs", "size")

    def __init__(self) -> None:
        self.runs: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.int32]]] = []
        self.size = 0  # keys written, duplicates across runs counted twice

    def add(self, keys: npt.NDArray[np.uint64], values: npt.NDArray[np.int32]) -> None:
        self.runs.append(_sorted_last_wins(keys, values))
        self.size += keys.size
        while len(self.runs) >= 2 and self.runs[-2][0].size <= 2 * self.runs[-1][0].size:
            newer = self.runs.pop()
            older = self.runs.pop()
            self.runs.append(
                _sorted_last_wins(np.concatenate((older[0], newer[0])), np.concatenate((older[1], newer[1])))
            )

    def find(
        self, keys: npt.NDArray[np.uint64], out: npt.NDArray[np.int64], todo: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.intp]:
        """Fill ``out[todo]`` for the keys found here (newest run first); the rest of ``todo``."""
        for run_keys, run_values in reversed(self.runs):
            if not todo.size:
                break
            wanted = keys[todo]
            pos = np.minimum(np.searchsorted(run_keys, wanted), run_keys.size - 1)
            hit = run_keys[pos] == wanted
            out[todo[hit]] = run_values[pos[hit]]
            todo = todo[~hit]
        return todo


def _sorted_last_wins(
    keys: npt.NDArray[np.uint64], values: npt.NDArray[np.int32]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int32]]:
    order = np.argsort(keys, kind="stable")
    k, v = keys[order], values[order]
    if k.size > 1:
        last = np.empty(k.size, dtype=bool)
        last[:-1] = k[1:] != k[:-1]
        last[-1] = True
        if not last.all():
            k, v = k[last], v[last]
    return k, v


class KeyIndex:
    """Span key -> small non-negative int (a service code), kept like :class:`Generations`.

    Every span passes through this index, so at 10k spans/s and two minutes of retention it
    holds over a million keys: as a dict of Python ints that is ~90 bytes per key, here 12
    (a uint64 key and an int32 value in sorted numpy runs). Written and read a batch at a
    time; a key written again takes its newest value, as in a dict.
    """

    def __init__(self, slice_ns: int, retention_ns: int, max_items: int) -> None:
        self._slice_ns = max(1, slice_ns)
        self._retention_ns = retention_ns
        self._max_items = max_items
        self._gens: deque[tuple[int, _Runs]] = deque()

    def add(self, t_ns: int, keys: npt.NDArray[np.uint64], values: npt.NDArray[np.integer]) -> None:
        """Write ``keys[i] -> values[i]`` into the generation of data time ``t_ns``."""
        if not keys.size:
            return
        gid = t_ns // self._slice_ns
        if not self._gens or self._gens[-1][0] < gid or self._gens[-1][1].size >= _rollover(self._max_items):
            self._gens.append((gid, _Runs()))
        self._gens[-1][1].add(keys.astype(np.uint64, copy=False), values.astype(np.int32))

    def lookup(self, keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """The value of every key, newest generation first; -1 where a key is absent."""
        out = np.full(keys.size, -1, dtype=np.int64)
        todo = np.arange(keys.size)
        for _, gen in reversed(self._gens):
            todo = gen.find(keys, out, todo)
            if not todo.size:
                break
        return out

    def expire(self, watermark_ns: int) -> tuple[int, int]:
        """Drop old generations; returns (keys expired by age, keys evicted by size)."""
        aged = evicted = 0
        horizon = watermark_ns - self._retention_ns
        while self._gens and (self._gens[0][0] + 1) * self._slice_ns <= horizon:
            aged += self._gens.popleft()[1].size
        total = len(self)
        while len(self._gens) > 1 and total > self._max_items:
            dropped = self._gens.popleft()[1].size
            evicted += dropped
            total -= dropped
        return aged, evicted

    def __len__(self) -> int:
        return sum(gen.size for _, gen in self._gens)
