"""RED windows per (service, operation, kind) and per call edge, from Arrow span tables.

The core is pure (rule 7): span tables and an optional data-time clock go in, closed
windows come out; nothing is read or written. The orchestrator persists what it gets.

Data flow of one :meth:`RedAggregator.consume` call::

    table ──> columns as numpy (codes for names, uint64 span keys, error mask)
          ├─> group by (window, service, operation, kind) ─> requests, errors, latency sketch
          ├─> span index: span key -> service           (generations of data time)
          ├─> parent lookup ─ found ─> edge (caller svc -> callee svc) if the services differ
          │                 └ missing ─> waiting children, resolved when the parent arrives
          ├─> child time: per row for parents in the batch, per parent key for the others
          └─> settle queue ─ after settle_ns ─> self time = duration - child time
    watermark (max span end seen, or advance(now)) ─> close windows ─> ClosedWindows

Windows are assigned by span *end* time: a span is only known once it ended, so data
time (the watermark) is the largest end time seen and lateness is only transport delay,
not the length of the longest span.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.red.bulk import BucketRows
from faultlens.analysis.red.errors import span_error_mask
from faultlens.analysis.red.spanbuffer import Generations, KeyIndex, ids_to_keys
from faultlens.analysis.red.types import ClosedWindows, EdgeWindow, RedConfig, RedCounters, RedWindow
from faultlens.analysis.sketch import QuantileSketch

UNKNOWN_SERVICE = "unknown_service"

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class _Window:
    """Everything one open window accumulates, as bulk rows (see :mod:`.bulk`)."""

    __slots__ = ("edges", "red", "self_time")

    def __init__(self, alpha: float) -> None:
        self.red = BucketRows(alpha)
        self.self_time = BucketRows(alpha)
        self.edges = BucketRows(alpha)


@dataclass(slots=True)
class _SettleChunk:
    """Spans waiting ``settle_ns`` for their children before self time is computed."""

    keys: npt.NDArray[np.uint64]
    widx: I64  # window index (end time // window length)
    rest: I64  # service, operation and kind packed (see _pack)
    duration: F64
    child: F64  # time of the children that came in the same batch
    end: I64
    min_end: int

    def select(self, sel: npt.NDArray[np.bool_]) -> _SettleChunk:
        end = self.end[sel]
        return _SettleChunk(
            self.keys[sel],
            self.widx[sel],
            self.rest[sel],
            self.duration[sel],
            self.child[sel],
            end,
            int(end.min()),
        )


_NAME_BITS = 22
_MAX_NAMES = (1 << _NAME_BITS) - 1
_REST_BITS = 2 * _NAME_BITS + 3
_REST_MASK = (1 << _REST_BITS) - 1
_OVERFLOW_NAME = "__faultlens_overflow__"


def _pack(a: I64, b: I64, kind: I64) -> I64:
    """Two name codes and a span kind in one int64, so grouping is one np.unique."""
    return ((a << (_NAME_BITS + 3)) | (b << 3) | (kind & 7)).astype(np.int64)


def _unpack(rest: int) -> tuple[int, int, int]:
    return rest >> (_NAME_BITS + 3), (rest >> 3) & _MAX_NAMES, rest & 7


def _by_window(widx: I64) -> list[tuple[int, npt.NDArray[np.intp] | slice]]:
    """Row selections per window; one window (the common case) costs no sort."""
    lo, hi = int(widx.min()), int(widx.max())
    if lo == hi:
        return [(lo, slice(None))]
    order = np.argsort(widx, kind="stable")
    sw = widx[order]
    starts = np.flatnonzero(np.r_[True, sw[1:] != sw[:-1]])
    ends = np.r_[starts[1:], sw.size]
    return [(int(sw[a]), order[a:b]) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


class RedAggregator:
    """Streaming RED metrics. Feed span tables in any order of arrival; collect closed windows.

    Not thread-safe: one owner feeds it. Every method returns the windows it closed, so the
    caller never has to poll.
    """

    def __init__(self, config: RedConfig | None = None) -> None:
        self.config = config or RedConfig()
        c = self.config
        self.counters = RedCounters()
        self._watermark = -(1 << 62)
        self._closed_before_idx = -(1 << 62)  # windows with index < this are closed
        self._names: dict[str, int] = {}
        self._name_list: list[str] = []
        self._open: dict[int, _Window] = {}
        slice_ns = max(c.parent_buffer_ns // 4, c.window_ns // 6, 1)
        self._index = KeyIndex(slice_ns, c.parent_buffer_ns, c.max_buffered_spans)
        self._waiting: Generations[list[tuple[int, float, bool, int]]] = Generations(
            slice_ns, c.parent_buffer_ns, c.max_buffered_spans
        )
        self._child_time: Generations[float] = Generations(slice_ns, c.parent_buffer_ns, c.max_buffered_spans)
        self._settle: deque[_SettleChunk] = deque()
        self._settling = 0  # spans in _settle

    # -- public ------------------------------------------------------------------------------

    @property
    def watermark_ns(self) -> int:
        """Data time: the largest span end seen, or a later time given to :meth:`advance`."""
        return self._watermark

    def intern(self, name: str) -> int:
        """A small int for a service or operation name (bounded: excess names share one code)."""
        code = self._names.get(name)
        if code is None:
            if len(self._name_list) >= _MAX_NAMES - 1:
                return self.intern(_OVERFLOW_NAME) if name != _OVERFLOW_NAME else len(self._name_list) - 1
            code = len(self._name_list)
            self._names[name] = code
            self._name_list.append(name)
        return code

    def consume(self, table: pa.Table) -> ClosedWindows:
        """Account one span table (SPAN_SCHEMA, or any table with its core columns).

        The table is only read. An empty table changes nothing. Not idempotent: a table
        consumed twice is counted twice.
        """
        n = table.num_rows
        if n == 0:
            return ClosedWindows()
        c = self.config
        self.counters.spans += n
        end = _int64(table.column("end_time_unix_nano"))
        duration = _int64(table.column("duration_ns")).astype(np.float64)
        svc = self._codes(table, "service_name", UNKNOWN_SERVICE)
        op = self._codes(table, "name", "")
        kind = np.zeros(n, dtype=np.int64)
        if "kind" in table.column_names and table.column("kind").null_count < n:
            col = table.column("kind")
            kind = _int64(pc.fill_null(col, _scalar(0, col.type)) if col.null_count else col)
        err = span_error_mask(table)
        keys = ids_to_keys(table.column("span_id"))
        parents = ids_to_keys(table.column("parent_span_id"))
        widx = end // c.window_ns

        self._watermark = max(self._watermark, int(end.max()))
        late = widx < self._closed_before_idx
        if late.any():
            self.counters.late_spans += int(late.sum())
        on_time = ~late
        rest = _pack(svc, op, kind)
        self._add_red(widx[on_time], rest[on_time], err[on_time], duration[on_time])

        edges, child = self._join_parents(keys, parents, svc, duration, err, widx)
        self._add_edges(*edges)
        if on_time.any():
            chunk = _SettleChunk(
                keys[on_time],
                widx[on_time],
                rest[on_time],
                duration[on_time],
                child[on_time],
                end[on_time],
                int(end[on_time].min()),
            )
            self._settle.append(chunk)
            self._settling += chunk.keys.size
        return self._step()

    @property
    def settling_spans(self) -> int:
        """Spans waiting for their children before their self time is computed."""
        return self._settling

    def advance(self, now_ns: int) -> ClosedWindows:
        """Move data time forward without data (the clock input), closing what is due."""
        if now_ns > self._watermark:
            self._watermark = now_ns
        return self._step()

    def flush(self) -> ClosedWindows:
        """Close every open window now (shutdown, end of a replay). Safe to call twice."""
        self._settle_ready(1 << 62)
        out = self._close_windows(1 << 62)
        self._expire(1 << 62)
        return out

    # -- ingest helpers ------------------------------------------------------------------------

    def _codes(self, table: pa.Table, column: str, default: str) -> I64:
        n = table.num_rows
        if column not in table.column_names:
            return np.full(n, self.intern(default), dtype=np.int64)
        col = table.column(column)
        if col.null_count:
            col = pc.fill_null(col, _scalar(default, col.type))
        enc = pc.dictionary_encode(col)
        chunks = enc.chunks if isinstance(enc, pa.ChunkedArray) else [enc]
        out: list[I64] = []
        for chunk in chunks:
            mapping = np.asarray([self.intern(s) for s in chunk.dictionary.to_pylist()], dtype=np.int64)
            idx = np.asarray(chunk.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
            out.append(mapping[idx] if mapping.size else idx)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _window(self, w: int) -> _Window:
        win = self._open.get(w)
        if win is None:
            win = self._open[w] = _Window(self.config.sketch_alpha)
        return win

    def _add_red(self, widx: I64, rest: I64, err: npt.NDArray[np.bool_], duration: F64) -> None:
        if widx.size == 0:
            return
        for w, sel in _by_window(widx):
            self._window(w).red.add(rest[sel], duration[sel], err[sel])

    def _join_parents(
        self,
        keys: npt.NDArray[np.uint64],
        parents: npt.NDArray[np.uint64],
        svc: I64,
        duration: F64,
        err: npt.NDArray[np.bool_],
        widx: I64,
    ) -> tuple[tuple[list[int], list[int], list[int], list[float], list[bool]], F64]:
        """Record the batch's spans, find each child's caller, wake children waiting for them.

        Returns the edges and, per row, the summed duration of its children in this batch
        (children in other batches are summed per parent key in ``_child_time``).
        """
        wm = self._watermark
        callers: list[int] = []
        callees: list[int] = []
        windows: list[int] = []
        durs: list[float] = []
        errs: list[bool] = []

        # Children that arrived earlier and waited for one of this batch's spans.
        if len(self._waiting):
            batch_svc = dict(zip(keys.tolist(), svc.tolist(), strict=True))
            for gen in self._waiting.generations():
                for k in gen.keys() & batch_svc.keys():
                    s = batch_svc[k]
                    for child_svc, d, e, w in gen.pop(k):
                        if child_svc != s:
                            callers.append(s)
                            callees.append(child_svc)
                            windows.append(w)
                            durs.append(d)
                            errs.append(e)

        has_parent = parents != 0
        child = np.zeros(keys.size, dtype=np.float64)
        if has_parent.any():
            # Parents inside this batch: a sorted join in numpy, no Python per span.
            order = np.argsort(keys)
            sorted_keys = keys[order]
            pos = np.minimum(np.searchsorted(sorted_keys, parents), keys.size - 1)
            in_batch = has_parent & (sorted_keys[pos] == parents)
            parent_row = order[pos]
            parent_svc = np.where(in_batch, svc[parent_row], -1)
            if in_batch.any():
                child = np.bincount(
                    parent_row[in_batch], weights=duration[in_batch], minlength=keys.size
                ).astype(np.float64)
            cross = in_batch & (parent_svc != svc)
            if cross.any():
                callers.extend(parent_svc[cross].tolist())
                callees.extend(svc[cross].tolist())
                windows.extend(widx[cross].tolist())
                durs.extend(duration[cross].tolist())
                errs.extend(err[cross].tolist())
            # Parents from earlier batches (looked up for all at once), or not seen yet (the
            # child then waits for its parent).
            rest = np.nonzero(has_parent & ~in_batch)[0]
            if rest.size:
                ps = self._index.lookup(parents[rest])
                found = ps >= 0
                cross = found & (ps != svc[rest])
                if cross.any():
                    hit = rest[cross]
                    callers.extend(ps[cross].tolist())
                    callees.extend(svc[hit].tolist())
                    windows.extend(widx[hit].tolist())
                    durs.extend(duration[hit].tolist())
                    errs.extend(err[hit].tolist())
                wait = rest[~found]
                if wait.size:
                    wait_cur = self._waiting.current(wm)
                    for p, s, d, e, w in zip(
                        parents[wait].tolist(),
                        svc[wait].tolist(),
                        duration[wait].tolist(),
                        err[wait].tolist(),
                        widx[wait].tolist(),
                        strict=True,
                    ):
                        kids = wait_cur.get(p)
                        if kids is None:
                            wait_cur[p] = [(s, d, e, w)]
                        else:
                            kids.append((s, d, e, w))
        self._index.add(wm, keys, svc)
        edges = (callers, callees, windows, durs, errs)
        if not has_parent.any():
            return edges, child
        sel = np.nonzero(has_parent & ~in_batch)[0]
        if not sel.size:
            return edges, child

        # Time spent in children whose parent is in another batch, summed per parent key.
        uniq, inv = np.unique(parents[sel], return_inverse=True)
        sums = np.bincount(inv, weights=duration[sel])
        ct = self._child_time.current(wm)
        parent_list = uniq.tolist()
        if ct:
            sums += np.fromiter(map(ct.get, parent_list, repeat(0.0)), dtype=np.float64, count=uniq.size)
        ct.update(zip(parent_list, sums.tolist(), strict=True))
        return edges, child

    def _add_edges(
        self, callers: list[int], callees: list[int], windows: list[int], durs: list[float], errs: list[bool]
    ) -> None:
        if not callers:
            return
        w = np.asarray(windows, dtype=np.int64)
        late = w < self._closed_before_idx
        if late.any():
            self.counters.late_edges += int(late.sum())
        keep = ~late
        if not keep.any():
            return
        rest = _pack(
            np.asarray(callers, dtype=np.int64)[keep],
            np.asarray(callees, dtype=np.int64)[keep],
            np.zeros(int(keep.sum()), dtype=np.int64),
        )
        d = np.asarray(durs, dtype=np.float64)[keep]
        e = np.asarray(errs, dtype=bool)[keep]
        wk = w[keep]
        for win, sel in _by_window(wk):
            self._window(win).edges.add(rest[sel], d[sel], e[sel])

    # -- time --------------------------------------------------------------------------------

    def _step(self) -> ClosedWindows:
        c = self.config
        self._settle_ready(self._watermark - c.settle_ns, stop_early=True)
        while self._settling > c.max_settling_spans and self._settle:
            chunk = self._settle.popleft()
            self._settling -= chunk.keys.size
            self.counters.settled_early += int(chunk.keys.size)
            self._add_self_time(chunk)
        out = self._close_windows(self._watermark - c.allowed_lateness_ns)
        self._expire(self._watermark)
        return out

    def _settle_ready(self, horizon_ns: int, *, stop_early: bool = False) -> None:
        """Compute self time of spans that ended at or before ``horizon_ns``."""
        kept: deque[_SettleChunk] = deque()
        while self._settle:
            chunk = self._settle.popleft()
            if chunk.min_end > horizon_ns:
                kept.append(chunk)
                if stop_early:
                    break
                continue
            ready = chunk.end <= horizon_ns
            if not ready.all():
                kept.append(chunk.select(~ready))
                chunk = chunk.select(ready)
            self._settling -= chunk.keys.size
            self._add_self_time(chunk)
        kept.extend(self._settle)
        self._settle = kept

    def _add_self_time(self, chunk: _SettleChunk) -> None:
        keys, widx, rest = chunk.keys, chunk.widx, chunk.rest
        if keys.size == 0:
            return
        child = chunk.child.copy()
        gens = [g for g in self._child_time.generations() if g]
        if gens:
            klist = keys.tolist()
            position = dict(zip(klist, range(len(klist)), strict=True))
            for gen in gens:
                common = gen.keys() & position.keys()
                if common:
                    idx = np.fromiter(map(position.__getitem__, common), dtype=np.int64, count=len(common))
                    child[idx] += np.fromiter(
                        map(gen.__getitem__, common), dtype=np.float64, count=len(common)
                    )
        self_time = np.maximum(chunk.duration - child, 0.0)
        if widx.size == 0:
            return
        for w, sel in _by_window(widx):
            win = self._open.get(w)
            if win is not None:  # else its window closed in between; the span was counted already
                win.self_time.add(rest[sel], self_time[sel])

    def _close_windows(self, horizon_ns: int) -> ClosedWindows:
        """Emit every window that ends at or before ``horizon_ns``."""
        wn = self.config.window_ns
        limit = horizon_ns // wn  # windows with index < limit end at or before the horizon
        if limit <= self._closed_before_idx:
            return ClosedWindows()
        if horizon_ns >= (1 << 61):
            limit = max(self._open, default=self._closed_before_idx - 1) + 1
        self._settle_ready(limit * wn)  # whatever ends inside closing windows settles now
        names = self._name_list
        red: list[RedWindow] = []
        edges: list[EdgeWindow] = []
        for w in sorted(x for x in self._open if x < limit):
            win = self._open.pop(w)
            self_stats = {k.key: k for k in win.self_time.finish()}
            for st in win.red.finish():
                s, o, kind = _unpack(st.key)
                own = self_stats.get(st.key)
                red.append(
                    RedWindow(
                        service=names[s],
                        operation=names[o],
                        span_kind=kind,
                        window_start_ns=w * wn,
                        window_ns=wn,
                        requests=st.count,
                        errors=st.errors,
                        duration_sum_ns=st.total,
                        latency=st.sketch,
                        self_time_sum_ns=own.total if own else 0.0,
                        self_time=own.sketch if own else QuantileSketch(self.config.sketch_alpha),
                    )
                )
            for st in win.edges.finish():
                a, b, _ = _unpack(st.key)
                edges.append(
                    EdgeWindow(
                        caller=names[a],
                        callee=names[b],
                        window_start_ns=w * wn,
                        window_ns=wn,
                        calls=st.count,
                        errors=st.errors,
                        duration_sum_ns=st.total,
                        latency=st.sketch,
                    )
                )
        self._closed_before_idx = max(self._closed_before_idx, limit)
        self.counters.windows_emitted += len(red)
        self.counters.edge_windows_emitted += len(edges)
        return ClosedWindows(tuple(red), tuple(edges))

    def _expire(self, watermark_ns: int) -> None:
        aged, evicted = self._waiting.expire(watermark_ns)
        for gen in (*aged, *evicted):
            self.counters.orphan_spans += sum(len(kids) for kids in gen.values())
        _, evicted_ids = self._index.expire(watermark_ns)
        self.counters.evicted_spans += evicted_ids
        self._child_time.expire(watermark_ns)


@functools.lru_cache(maxsize=64)
def _scalar(value: object, type_: pa.DataType) -> pa.Scalar:
    """A typed scalar, made once: pyarrow converts Python scalar arguments on every call, and
    each conversion tries to import ``dateutil`` (about 0.25 ms when it is not installed)."""
    return pa.scalar(value, type_)


def _int64(col: pa.ChunkedArray | pa.Array) -> I64:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
