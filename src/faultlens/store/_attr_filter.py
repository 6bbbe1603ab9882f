"""Which time ranges of the spans may hold an attribute value: a bloom filter of the span and
resource attribute (key, value) pairs of each run of spans.

A search by attribute (``TraceQuery.attributes``) compares ``json_extract_string`` of each
span's JSON ``attributes`` (then ``resource_attributes``) with the value asked for. The JSON
evaluation is cheap; reading the ``attributes`` column (ZSTD, a few hundred bytes a span) out
of the file for every span of the range is not, and a value that nothing has is read for
the whole range. As Tempo and Jaeger keep a small summary per block, this module keeps,
beside the file and beside the trace id filter (``_trace_filter``), one bloom filter of the
pairs per *run* of spans, so that a search reads only the time ranges of the runs that may
hold every pair it asks for::

     spans, as they are written (or read back at the build)     runs
     ┌──────────────────────────────────────────┐     ┌────────────────────────────────┐
     │ part │ part │ part │ ... (<= PART_ROWS)  │ ──> │ bloom of pairs │ lo..hi │ rows │ x runs
     └──────────────────────────────────────────┘     └────────────────────────────────┘
     search(k1=v1, k2=v2): runs whose bloom may hold hash(k1, v1) and hash(k2, v2)
                ─> their [lo, hi] start-time ranges, merged
                ─> ... FROM spans WHERE <the search> AND start_time_unix_nano BETWEEN lo AND hi

A pair is DuckDB's ``hash(key, value)`` of a top-level key (``json_keys``) and its value as
``json_extract_string`` gives it (``'$.*'``): the very text the search compares, so a number,
a bool or a nested value is summarised as the search sees it (``1.50`` as ``1.5``, ``1e3``
as ``1000.0``), and the question's hash is the same function of the same two strings.

Exact, because the filter only ever says "no" when no span of the run has the pair:

- every pair of every span is added, before the transaction that inserts the span commits
  (a rolled-back write only leaves false positives); rows that the search could match but
  that are not JSON objects (an array answers the pointer ``/0``), and parts whose JSON
  DuckDB cannot read, make their run *unknown*: its bloom is all ones, it is always read;
- a run's bloom is sized for :data:`PAIRS_CAP` distinct pairs at :data:`BITS_PER_PAIR` bits
  each (a split block bloom as ``_trace_filter``'s: ~0.1% false runs per pair asked); a run
  closes when the next part would take it past the cap or past :data:`RUN_ROWS` spans, and a
  part that alone holds more than the cap gets an unknown run of its own. So high-cardinality
  attributes (request ids) make runs shorter, not blooms fuller;
- runs record the least and greatest span start time (``lo``, ``hi``) of their rows; a span
  that has the pair lies in a run that says "maybe", inside that run's range;
- the filter is not stored: as the trace id filter, nothing is kept until the first search by
  attribute, which starts a build from the table (in the store, on a thread of its own, in
  time chunks of :data:`BUILD_CHUNK_ROWS`, each read by one query). Writes that began
  before the build started are waited for (:meth:`AttrFilter.writing`); every write that
  starts after adds its pairs; a span committed before is in the snapshot of the chunk
  holding its start time (chunks partition the time axis), unless retention deleted it.
  Until the build ends, searches read everything, as without the filter;
- retention drops a run once every span it covers starts before the cutoff (the spans that
  remain in a straddling run only make it say "maybe" for pairs that went);
- memory is bounded (``max_bytes``): at the bound the two adjacent closed runs with the
  fewest rows are folded into one (blooms OR-ed, ranges joined). A folded run still holds
  every pair it held; past the cap its bloom says "maybe" more often (~3% of absent pairs
  at twice the cap, ~30% at four times), and past :data:`FOLDED_PAIRS_CAP` it is unknown.
  So old data is read more as memory runs out, never missed.

A search takes the ranges before it reads the spans: a span committed in between is missed
only as it would be by a search that ran just before its commit (searches read each of their
time ranges in a snapshot of its own anyway).

Cost: the pairs of a write are computed by DuckDB from the batch before its transaction
(``pairs_sql``: two JSON parses a span), a few microseconds a span, and only once a search by
attribute has started the filter; :data:`RUN_BYTES` a run, one run per 65,536 spans of few
distinct values or per ~8,000 spans when most spans carry ids of their own
(``docs/benchmarks.md`` has the figures).

The runs, their channels, folding, retention and the writes counted before a build are the
core this filter shares with the trace id filter (``_runs``); what is its own is the pairs,
runs cut by pairs and rows, unknown runs, the resumable build and the search's ranges.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar

import duckdb
import numpy as np
import pyarrow as pa

from faultlens.store._runs import BLOCK_WORDS, BUILD, I64_MIN, WRITES, BloomRuns, block_and_masks, mix64
from faultlens.types import TimeRange

__all__ = [
    "BITS_PER_PAIR",
    "PAIRS_CAP",
    "PART_ROWS",
    "RUN_BYTES",
    "RUN_ROWS",
    "AttrFilter",
    "Part",
    "build",
    "pairs_sql",
    "write_parts",
]

RUN_ROWS = 65_536  # spans per run at most (~6 of the file's row groups)
PAIRS_CAP = 32_768  # distinct pairs a run's bloom is sized for
BITS_PER_PAIR = 16
PART_ROWS = 8_192  # spans per part of a write: the finest a run can be cut
_WORDS = PAIRS_CAP * BITS_PER_PAIR // 64
_BLOCKS = _WORDS // BLOCK_WORDS
RUN_BYTES = _WORDS * 8  # 64 KiB
DEFAULT_MAX_BYTES = 16 * 2**20  # 256 runs: ~16M spans of few distinct pairs before folding
# A folded run holding more pairs than this is unknown: at 4 bits a pair its bloom says
# "maybe" to about a third of the pairs asked anyway.
FOLDED_PAIRS_CAP = 4 * PAIRS_CAP
_ALL = np.uint64(2**64 - 1)


def pairs_sql(source: str) -> str:
    """DuckDB SQL giving the distinct ``(part, h)`` of the rows of ``source`` (a table or a
    subquery with ``part``, ``a``: the span's attributes JSON, ``r``: its resource's): ``h`` is
    ``hash(key, json_extract_string(value))`` of every top-level pair, and NULL for a part
    holding a row whose JSON a pointer may read other than as an object's top-level key (an
    array answers ``/0``): that part is unknown. Only a row's first character is looked at for
    that (the decoder writes ``{...}``). Raises on JSON that DuckDB cannot read."""
    return f"""
        SELECT DISTINCT part, h FROM (
            SELECT part, hash(unnest(json_keys(a)), unnest(json_extract_string(a, '$.*'))) AS h
            FROM {source}
            UNION ALL
            SELECT part, hash(unnest(json_keys(r)), unnest(json_extract_string(r, '$.*'))) AS h
            FROM (SELECT DISTINCT part, r FROM {source})
            UNION ALL
            SELECT DISTINCT part, NULL FROM {source}
            WHERE (a IS NOT NULL AND NOT starts_with(a, '{{'))
               OR (r IS NOT NULL AND NOT starts_with(r, '{{'))
        )
    """


PAIR_HASH_SQL = "SELECT hash(?::VARCHAR, ?::VARCHAR)"  # the question's pair, as pairs_sql hashes it


@dataclass(frozen=True, slots=True)
class Part:
    """Consecutive spans added together: their start-time bounds, how many, their distinct pair
    hashes, and whether their pairs are unknown (then ``hashes`` is empty)."""

    lo: int
    hi: int
    rows: int
    hashes: np.ndarray
    unknown: bool = False


def _blocks_and_masks(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(over="ignore"):
        h1 = mix64(hashes.astype(np.uint64, copy=False))
    return block_and_masks(h1, _BLOCKS)


class AttrFilter(BloomRuns):
    """The runs of the spans table (see the module docstring). Thread-safe.

    Writes go through :meth:`writing` (``_runs``: its rows are a write's spans, added as
    :class:`Part` values); :func:`build` fills the filter between :meth:`claim_build` and
    :meth:`end_build`, and may be resumed."""

    _COLUMNS: ClassVar[tuple[str, ...]] = (*BloomRuns._COLUMNS, "_pairs", "_unknown")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        """``max_bytes``: the most the blooms may hold (at least two runs' worth)."""
        super().__init__(_WORDS, max_bytes)
        self._building = False  # a builder is at work
        self.resume_from = I64_MIN  # the start time the build reads on from
        self._pairs = np.zeros(0, dtype=np.int64)  # distinct pairs added (a bloom's estimate)
        self._unknown = np.zeros(0, dtype=bool)

    # --- the build's lifecycle -------------------------------------------------------------

    def claim_build(self) -> bool:
        """True for the one caller that should build now (not built, nobody building)."""
        with self._lock:
            if self.ready or self._building:
                return False
            self._building = True
            return True

    def end_build(self, done: bool) -> None:
        """The builder stops: ``done`` when every chunk was added (the filter is ready), else
        it left off at :attr:`resume_from` and the next claimant goes on from there."""
        with self._lock:
            self._open.pop(BUILD, None)
            self._building = False
            if done:
                self.ready = True
            self._idle.notify_all()

    def wait_ready(self, timeout_s: float) -> bool:
        with self._lock:
            return self._idle.wait_for(lambda: self.ready or not self._building, timeout_s) and self.ready

    # --- adding ----------------------------------------------------------------------------

    def _reset_run(self, r: int) -> None:
        self._pairs[r] = 0
        self._unknown[r] = False

    def _merge_runs(self, keep: int, gone: int) -> None:
        self._pairs[keep] += self._pairs[gone]
        self._unknown[keep] |= self._unknown[gone] | (self._pairs[keep] > FOLDED_PAIRS_CAP)
        if self._unknown[keep]:
            self._blooms[keep] = _ALL

    def _maybe(self, r: int, block: np.ndarray, masks: np.ndarray) -> np.ndarray:
        words = self._blooms[r][block[:, None] * BLOCK_WORDS + np.arange(BLOCK_WORDS)]
        out: np.ndarray = ((words & masks) == masks).all(axis=1)
        return out

    def add(self, parts: Sequence[Part], channel: str = WRITES) -> None:
        """Add parts on ``channel``; call inside :meth:`writing`, before the transaction that
        inserts their spans commits. Nothing is kept before a build has begun."""
        if not self._started:
            return
        with self._lock:
            for part in parts:
                if part.rows:
                    self._add(part, channel)

    def _add(self, part: Part, channel: str) -> None:
        unknown = part.unknown or len(part.hashes) > PAIRS_CAP
        r = self._open.get(channel)
        if r is not None and self._rows[r] + part.rows > RUN_ROWS:
            r = None
        if unknown:
            if r is None or not self._unknown[r]:
                r = self._new_run(channel)
                self._unknown[r] = True
                self._blooms[r] = _ALL
        else:
            block, masks = _blocks_and_masks(part.hashes)
            if r is not None and not self._unknown[r]:
                new = int((~self._maybe(r, block, masks)).sum())
                if self._pairs[r] + new > PAIRS_CAP:
                    r = None
            else:
                r, new = None, len(part.hashes)
            if r is None:
                r = self._new_run(channel)
                new = len(part.hashes)
            self._set_bits(r, block, masks)
            self._pairs[r] += new
        self._lo[r] = min(int(self._lo[r]), part.lo)
        self._hi[r] = max(int(self._hi[r]), part.hi)
        self._rows[r] += part.rows

    # --- looking up ------------------------------------------------------------------------

    def ranges(self, pair_hashes: Sequence[int], within: TimeRange | None = None) -> list[tuple[int, int]]:
        """Inclusive start-time ranges holding every span that may have all the pairs (their
        hashes, as :data:`PAIR_HASH_SQL` gives them), of those overlapping ``within``; merged
        and in time order. Empty when no span has them all."""
        block, masks = _blocks_and_masks(np.array([h & (2**64 - 1) for h in pair_hashes], dtype=np.uint64))
        with self._lock:
            n = self._n
            hit = self._maybe_runs(block, masks)
            hit &= self._rows[:n] > 0
            if within is not None:
                hit &= (self._lo[:n] < within.end_ns) & (self._hi[:n] >= within.start_ns)
            found = np.flatnonzero(hit)
            hits = sorted(zip(self._lo[found].tolist(), self._hi[found].tolist(), strict=True))
            other = ~hit & (self._rows[:n] > 0)
            miss_lo, miss_hi = self._lo[:n][other], self._hi[:n][other]
        merged: list[tuple[int, int]] = []
        for lo, hi in hits:
            # a wider range only reads more; across a gap that no run saying "no" reaches
            # into it reads no more rows (every span is in a run), and one range is cheaper
            if merged and (
                lo <= merged[-1][1] or not bool(np.any((miss_lo < lo) & (miss_hi > merged[-1][1])))
            ):
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return merged

    @property
    def unknown_runs(self) -> int:
        return int(self._unknown[: self._n].sum())


# --- the parts of a write, and of the table at the build ------------------------------------

# Spans the build reads per query (one read turn each), streamed through in batches whose
# JSON is held in Arrow meanwhile (~15 MB at ~450 bytes a span), outside DuckDB's limit.
BUILD_CHUNK_ROWS = 32_768
_BUILD_BATCH_ROWS = 32_768


def _parts(pairs: pa.Table, stats: list[tuple[int, int, int, int]], failed: bool) -> list[Part]:
    """Parts from ``pairs_sql``'s rows and ``(part, lo, hi, rows)`` per part, in part order."""
    part_of = pairs.column("part").to_numpy(zero_copy_only=False).astype(np.int64)
    h = pairs.column("h")
    odd = set(part_of[np.asarray(h.is_null().to_numpy(zero_copy_only=False), dtype=bool)].tolist())
    values = h.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
    order = np.argsort(part_of, kind="stable")
    part_of, values = part_of[order], values[order]
    out = []
    for part, lo, hi, rows in sorted(stats):
        if failed or part in odd:
            out.append(Part(lo, hi, rows, np.zeros(0, dtype=np.uint64), unknown=True))
            continue
        first, last = np.searchsorted(part_of, [part, part + 1])
        out.append(Part(lo, hi, rows, values[first:last]))
    return out


def write_parts(cur: duckdb.DuckDBPyConnection, spans: pa.Table) -> list[Part]:
    """The parts of a batch of spans about to be written (:data:`PART_ROWS` rows each, in the
    batch's order). JSON that DuckDB cannot read makes the batch's parts unknown: the write
    itself goes on as before."""
    n = spans.num_rows
    part = np.arange(n, dtype=np.int64) // PART_ROWS
    start = spans.column("start_time_unix_nano").to_numpy()
    cuts = np.arange(0, n, PART_ROWS)
    stats = list(
        zip(
            range(len(cuts)),
            np.minimum.reduceat(start, cuts).tolist(),
            np.maximum.reduceat(start, cuts).tolist(),
            np.diff(np.append(cuts, n)).tolist(),
            strict=True,
        )
    )
    src = pa.table({"part": part, "a": spans.column("attributes"), "r": spans.column("resource_attributes")})
    cur.register("_attr_src", src)
    try:
        pairs, failed = cur.sql(pairs_sql("_attr_src")).to_arrow_table(), False
    except duckdb.Error:
        pairs, failed = pa.table({"part": pa.array([], pa.int64()), "h": pa.array([], pa.uint64())}), True
    finally:
        cur.unregister("_attr_src")  # a failed read outside a transaction leaves the cursor usable
    return _parts(pairs, stats, failed)


def chunk_bounds(cur: duckdb.DuckDBPyConnection, after: int) -> list[int]:
    """Start times cutting the spans that start at or after ``after`` into chunks of about
    :data:`BUILD_CHUNK_ROWS` (approximate quantiles: any cut is exact, these only even out)."""
    row = cur.execute("SELECT count(*) FROM spans WHERE start_time_unix_nano >= ?", [after]).fetchone()
    chunks = -(-int(row[0]) // BUILD_CHUNK_ROWS) if row else 0
    if chunks <= 1:
        return []
    qs = ", ".join(f"{i / chunks:.6f}" for i in range(1, chunks))  # a constant: DuckDB wants one
    got = cur.execute(
        f"SELECT approx_quantile(start_time_unix_nano, [{qs}]) FROM spans WHERE start_time_unix_nano >= ?",
        [after],
    ).fetchone()
    return sorted({int(b) for b in (got[0] if got and got[0] else []) if b is not None and int(b) > after})


def chunk_parts(cur: duckdb.DuckDBPyConnection, t0: int, t1: int | None) -> list[Part]:
    """The parts of the stored spans starting in ``[t0, t1)`` (``t1`` None: no end), read by
    one query (one snapshot, one pass over the chunk's row groups) and cut as a write's are.
    The rows stream through in batches of :data:`_BUILD_BATCH_ROWS`, so a chunk that holds more
    than the quantiles promised (many spans at one time) costs no more memory."""
    where = f"start_time_unix_nano >= {int(t0)}"
    if t1 is not None:
        where += f" AND start_time_unix_nano < {int(t1)}"
    rows = cur.sql(
        f"SELECT start_time_unix_nano, attributes, resource_attributes FROM spans WHERE {where}"
    ).to_arrow_reader(_BUILD_BATCH_ROWS)
    parts: list[Part] = []
    hashing = cur.cursor()  # the reader holds ``cur``; the pairs are computed beside it
    try:
        for batch in rows:
            if batch.num_rows:
                parts += write_parts(hashing, pa.Table.from_batches([batch]))
    finally:
        hashing.close()
    return parts


def build(
    found: AttrFilter,
    read: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    stop: threading.Event,
) -> bool:
    """Add the stored spans to ``found`` chunk by chunk from :attr:`AttrFilter.resume_from`,
    each chunk in a read turn of its own; call after :meth:`AttrFilter.claim_build` said
    True. Returns whether it got to the end (``stop`` set, or an error, leaves it part done:
    the next claimant goes on)."""
    done = False
    try:
        found.begin_build()
        with read() as cur:
            cuts = chunk_bounds(cur, found.resume_from)
        edges: list[int | None] = [found.resume_from, *cuts, None]
        for t0, t1 in itertools.pairwise(edges):
            if stop.is_set():
                return False
            assert t0 is not None
            with read() as cur:
                found.add(chunk_parts(cur, t0, t1), BUILD)
            if t1 is not None:
                found.resume_from = t1
        done = True
        return True
    finally:
        found.end_build(done)
