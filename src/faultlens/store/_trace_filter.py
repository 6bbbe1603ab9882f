"""Where in a trace index a trace id may be: blocked bloom filters over runs of index rows.

A trace index (``trace_index``, ``log_trace_index``) gets one row per trace per flush, in
flush order, so its rows are ordered by time but not by trace id: finding an id without a
time means reading every row (~13 ns a row with one DuckDB thread, ~16 ms per million
traces stored), and DuckDB's ART index, which would avoid it, is held whole in memory and
filled the store's memory limit (see ``_schema.DROPPED_INDEXES``). This module keeps,
beside the file, a small filter that turns "which rows may hold this id" into "which time
ranges", which DuckDB's zonemaps on the index's time column then prune::

     index rows, in the order they were added     runs (RUN_KEYS rows each)
     ┌──────────────────────────────────────┐     ┌───────────────────────────┐
     │ flush 1 │ flush 2 │ ... │ flush n    │ ──> │ bloom │ lo..hi │ max_end  │ x runs
     └──────────────────────────────────────┘     └───────────────────────────┘
     lookup(id): runs whose bloom says "maybe" ─> their [lo, hi] ranges, merged
                 ─> SELECT ... WHERE trace_id = ? AND start BETWEEN lo AND hi

A run covers :data:`RUN_KEYS` consecutive index rows and records the least and greatest
start time (``lo``, ``hi``) and the greatest end time (``max_end``) among them; its bloom
filter says whether an id may be among them. An id that is there is always reported (no
false negatives); one that is not is reported for a run with probability ~0.1%
(:data:`BITS_PER_KEY` bits per key; a split block filter as Parquet's: a key picks one
block of eight 64-bit words and sets one bit in each, so a lookup reads one block per run;
one bit in one word per key gave ~0.4% on the 10M-span file of ``bench/store.py``). The
filter costs 2 bytes per index row (~0.25 a span), about 0.2% of what the spans take in
the file.

Correctness does not depend on the filter being exact, only on it never missing a row:

- ids are added *before* the transaction that inserts their rows commits, so a reader never
  sees a committed row that the filter lacks (a rolled-back write only leaves false
  positives);
- the filter is not stored: it is built from the index table on the first lookup
  (:meth:`TraceFilter.build`), so a store nobody looks traces up in holds none of it. Until
  then writes add nothing but are counted while their transaction runs
  (:meth:`TraceFilter.writing`); the build first waits for those to end, and every write
  that starts after it adds its rows, so each row is either in the scan's snapshot or
  added before its commit;
- rows are added on *channels*: writes fill one open run, the first build and retention's
  rebuilt rows fill runs of their own, so old rows never widen the time range of the run
  that live writes fill;
- retention drops a run once every row it covers is older than the cutoff; the rows that
  retention rebuilds (traces that straddle the cutoff) are added again on their own channel;
- the memory is bounded (``store.trace_filter_max_mib``): at the bound, the two adjacent
  closed runs holding the fewest keys are folded into one (their blooms OR-ed, their time
  ranges joined). A folded run still holds every id it held; it only answers "maybe" more
  often and covers more of the index, so lookups of old traces slow down gradually
  instead of memory growing with retention (2 bytes a row: ~9 MiB an hour at 10k spans/s).

Out-of-order data (a replay of old times beside live traffic) only widens some runs' time
ranges: lookups read more of the index, and stay exact.

The runs, their channels, folding, retention and the build's lifecycle are the core this filter
shares with the attribute filter (``_runs``); what is its own is how ids are hashed, the
``max_end`` column, runs of at most :data:`RUN_KEYS` rows, and the lookup.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.store._runs import BLOCK_WORDS, BUILD, I64_MIN, WRITES, BloomRuns, block_and_masks, mix64
from faultlens.types import TimeRange

__all__ = [
    "BITS_PER_KEY",
    "RUN_KEYS",
    "TraceFilter",
    "mix64",
    "release_shared",
    "release_trace_filter",
    "shared",
    "shared_filter_bytes",
    "trace_filter",
]

# Index rows per run. Smaller runs scan fewer index rows per hit (a run is ~1.6 DuckDB row
# groups of the index) and cost more bloom words per lookup; both are cheap at this size.
RUN_KEYS = 16_384
BITS_PER_KEY = 16
_WORDS = RUN_KEYS * BITS_PER_KEY // 64  # 64-bit words per run: 32 KiB
_BLOCKS = _WORDS // BLOCK_WORDS
# The default bound of one filter's blooms (``store.trace_filter_max_mib``): ~17M index rows,
# ~130M spans, before runs are folded.
DEFAULT_MAX_BYTES = 32 * 2**20  # as store.trace_filter_max_mib

REBUILD = "rebuild"  # the channel of the rows retention rebuilds (beside _runs' WRITES, BUILD)


def _halves(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Two uint64 per id: its 16 bytes as they are (the W3C trace id width), or a 16-byte
    digest of an id of any other width. Null ids have none (callers drop them)."""
    ids = ids.cast(pa.binary()) if ids.type != pa.binary() else ids
    n = len(ids)
    lengths = pc.binary_length(ids).to_numpy(zero_copy_only=False)
    if n and bool(np.all(lengths == 16)) and ids.null_count == 0:
        offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32, count=n + 1, offset=ids.offset * 4)
        data = np.frombuffer(ids.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        words = data.view(np.uint64).reshape(n, 2)
        return words[:, 0].copy(), words[:, 1].copy()
    raw = b"".join(
        v if len(v) == 16 else hashlib.blake2b(v, digest_size=16).digest() for v in ids.to_pylist()
    )
    words = np.frombuffer(raw, dtype=np.uint64).reshape(n, 2)
    return words[:, 0].copy(), words[:, 1].copy()


def _block_and_masks(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """For each id: the block of a run's bloom it lives in, and the bit it sets in each of
    the block's words (shape ``(n, BLOCK_WORDS)``)."""
    a, b = _halves(ids)
    with np.errstate(over="ignore"):
        h1 = mix64(a ^ mix64(b))
    return block_and_masks(h1, _BLOCKS)


class TraceFilter(BloomRuns):
    """The runs of one trace index table (see the module docstring). Thread-safe.

    Runs are rows of arrays (blooms, time bounds, key counts: a run's ``rows`` are its index
    rows, one key each), so that a lookup tests every run with a few vector operations however
    many runs there are. Writes go through :meth:`writing` (``_runs``); the first lookup builds
    the filter inside :meth:`building`."""

    _COLUMNS: ClassVar[tuple[str, ...]] = (*BloomRuns._COLUMNS, "_max_end")

    def __init__(
        self, table: str, start_column: str, end_column: str, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        """``max_bytes``: the most the blooms may hold (at least two runs' worth)."""
        super().__init__(_WORDS, max_bytes)
        self.table = table
        self.start_column = start_column
        self.end_column = end_column
        self._build_lock = threading.Lock()
        self._max_end = np.zeros(0, dtype=np.int64)  # greatest end time of a run's rows

    # --- adding --------------------------------------------------------------------------

    def _reset_run(self, r: int) -> None:
        self._max_end[r] = I64_MIN

    def _merge_runs(self, keep: int, gone: int) -> None:
        self._max_end[keep] = max(self._max_end[keep], self._max_end[gone])

    def add(self, rows: pa.Table, channel: str = WRITES) -> None:
        """Add index rows (``trace_id`` and the table's start and end time columns) on
        ``channel``; call inside :meth:`writing`, before the transaction commits. Nothing
        is kept before the first lookup starts building the filter."""
        if not self._started:
            return
        ids = rows.column("trace_id").combine_chunks()
        if ids.null_count:
            keep = pc.is_valid(ids)
            rows, ids = rows.filter(keep), ids.filter(keep)
        n = len(ids)
        if n == 0:
            return
        block, masks = _block_and_masks(ids)
        start = rows.column(self.start_column).to_numpy()
        end = rows.column(self.end_column).to_numpy()
        with self._lock:
            done = 0
            while done < n:
                r = self._open.get(channel)
                if r is None or self._rows[r] >= RUN_KEYS:
                    r = self._new_run(channel)
                take = min(n - done, RUN_KEYS - int(self._rows[r]))
                part = slice(done, done + take)
                self._set_bits(r, block[part], masks[part])
                self._lo[r] = min(self._lo[r], start[part].min())
                self._hi[r] = max(self._hi[r], start[part].max())
                self._max_end[r] = max(self._max_end[r], end[part].max())
                self._rows[r] += take
                done += take

    @contextmanager
    def building(self) -> Iterator[bool]:
        """Held while one caller builds the filter; yields whether it still needs building
        (another caller may have built it while this one waited)."""
        with self._build_lock:
            if self.ready:
                yield False
                return
            self.begin_build()
            yield True

    def build(self, batches: pa.RecordBatchReader) -> None:
        """Add every row of the table, read as ``batches`` (``trace_id``, start, end), and
        mark the filter ready; call inside :meth:`building` (which yielded True), and read
        the table after entering it. Writes add their rows meanwhile."""
        for batch in batches:
            self.add(pa.Table.from_batches([batch]), BUILD)
        self.close_channel(BUILD)
        self.ready = True

    # --- looking up ----------------------------------------------------------------------

    def ranges(self, trace_id: bytes, hint: TimeRange | None = None) -> list[tuple[int, int]]:
        """Inclusive start-time ranges of the index that hold every row of ``trace_id`` (of
        those overlapping ``hint``, if given), merged and in time order; empty when the id
        is certainly not in the table."""
        block, masks = _block_and_masks(pa.array([trace_id], pa.binary()))
        with self._lock:
            n = self._n
            hit = self._maybe_runs(block, masks)
            if hint is not None:
                hit &= (self._lo[:n] < hint.end_ns) & (self._max_end[:n] >= hint.start_ns)
            found = np.flatnonzero(hit)
            hits = sorted(zip(self._lo[found].tolist(), self._hi[found].tolist(), strict=True))
        merged: list[tuple[int, int]] = []
        for lo, hi in hits:
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return merged


# --- one filter per table per store file in this process ------------------------------------

_F = TypeVar("_F")
_filters: dict[tuple[str, str], tuple[Any, int]] = {}
_filters_lock = threading.Lock()


def shared(key: str, name: str, make: Callable[[], _F]) -> _F:
    """The filter ``name`` of the store file ``key`` (its resolved path), made by ``make`` for
    its first user and shared by every store that has the file open in this process (they
    share one DuckDB instance, and each one's writes must reach the filter the others read).
    Pair with :func:`release_shared`."""
    with _filters_lock:
        found, users = _filters.get((key, name), (None, 0))
        if found is None:
            found = make()
        _filters[(key, name)] = (found, users + 1)
        return cast(_F, found)


def shared_filter_bytes() -> dict[str, int]:
    """Memory each shared filter of this process holds (its arrays), by ``file:name``."""
    with _filters_lock:
        found = list(_filters.items())
    return {f"{key}:{name}": int(getattr(f, "nbytes", 0)) for (key, name), (f, _) in found}


def release_shared(key: str, name: str) -> None:
    """One user of the filter is done; the last one drops it (the next opener builds anew:
    another process may have written the file in between)."""
    with _filters_lock:
        found, users = _filters.get((key, name), (None, 0))
        if found is None:
            return
        if users <= 1:
            del _filters[(key, name)]
        else:
            _filters[(key, name)] = (found, users - 1)


def trace_filter(
    key: str, table: str, start_column: str, end_column: str, max_bytes: int = DEFAULT_MAX_BYTES
) -> TraceFilter:
    """The filter of ``table`` in the store file ``key`` (:func:`shared`). Pair with
    :func:`release_trace_filter`. The first opener's ``max_bytes`` holds."""
    return shared(key, table, lambda: TraceFilter(table, start_column, end_column, max_bytes))


def release_trace_filter(key: str, table: str) -> None:
    """:func:`release_shared` of a trace index's filter."""
    release_shared(key, table)
