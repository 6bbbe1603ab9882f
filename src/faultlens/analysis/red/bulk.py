"""Many sketches at once: rows of (key, bucket) statistics, reduced with numpy.

Why: a batch of 1,000 spans can touch hundreds of (service, operation) keys; building or
updating one sketch object per key per batch costs microseconds of Python each and
dominated the RED stage. Instead every window keeps plain arrays of rows
``(key, bucket, count, errors, sum, min, max)``; a span is one row, rows with the same
``(key, bucket)`` reduce by addition (min/max by min/max), so the table can be compacted
at any time and sketches are only built once, when the window closes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from faultlens.analysis.sketch import QuantileSketch

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_BUCKET_BITS = 13
_BUCKET_OFFSET = 1 << (_BUCKET_BITS - 1)  # bucket codes 1.. hold log buckets, 0 is the zero bucket
KEY_BITS = 62 - _BUCKET_BITS


@dataclass(frozen=True, slots=True)
class KeyStats:
    """Reduced figures of one key: what a closed window reports."""

    key: int
    count: int
    errors: int
    total: float
    sketch: QuantileSketch


class BucketRows:
    """Rows of per-(key, bucket) figures; append batches, compact now and then, finish once."""

    __slots__ = ("_alpha", "_compact_at", "_compacted", "_gamma_ln", "_min_value", "_parts", "_rows")

    def __init__(self, alpha: float, *, min_value: float = 1e-9, compact_at: int = 65_536) -> None:
        self._alpha = alpha
        self._min_value = min_value
        self._gamma_ln = float(np.log((1 + alpha) / (1 - alpha)))
        self._compact_at = compact_at
        self._parts: list[tuple[I64, I64, I64, F64, F64, F64]] = []
        self._rows = 0
        self._compacted = True  # _parts is one part, sorted by code, one row per code (or none)

    def add(self, keys: I64, values: F64, errors: npt.NDArray[np.bool_] | None = None) -> None:
        """One row per value. ``keys`` must be below ``2**KEY_BITS``."""
        if keys.size == 0:
            return
        b = np.zeros(values.size, dtype=np.int64)
        pos = values > self._min_value
        if pos.any():
            idx = np.ceil(np.log(values[pos]) / self._gamma_ln).astype(np.int64)
            b[pos] = np.clip(idx + _BUCKET_OFFSET, 1, (1 << _BUCKET_BITS) - 1)
        code = (keys.astype(np.int64) << _BUCKET_BITS) | b
        err = errors.astype(np.int64) if errors is not None else np.zeros(keys.size, dtype=np.int64)
        self._parts.append((code, np.ones(keys.size, dtype=np.int64), err, values, values, values))
        self._rows += keys.size
        self._compacted = False
        if self._rows >= self._compact_at and len(self._parts) > 1:
            self._compact()
            if self._rows >= self._compact_at // 2:  # many distinct rows: compact less often
                self._compact_at *= 2

    def __len__(self) -> int:
        return self._rows

    def _compact(self) -> tuple[I64, I64, I64, F64, F64, F64]:
        # A single part that came from add() is raw rows (unsorted, repeated codes): it is
        # reduced too, else finish() would report a key once per run of rows.
        if self._compacted:
            return self._parts[0]
        code = np.concatenate([p[0] for p in self._parts])
        order = np.argsort(code, kind="stable")
        code = code[order]
        starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
        reduced = (
            code[starts],
            np.add.reduceat(np.concatenate([p[1] for p in self._parts])[order], starts),
            np.add.reduceat(np.concatenate([p[2] for p in self._parts])[order], starts),
            np.add.reduceat(np.concatenate([p[3] for p in self._parts])[order], starts),
            np.minimum.reduceat(np.concatenate([p[4] for p in self._parts])[order], starts),
            np.maximum.reduceat(np.concatenate([p[5] for p in self._parts])[order], starts),
        )
        self._parts = [reduced]
        self._rows = int(reduced[0].size)
        self._compacted = True
        return reduced

    def finish(self) -> list[KeyStats]:
        """Figures and a sketch per key, in key order. The rows stay as they were.

        Every key's dense bucket range is laid out in one array at once (each sketch holds
        its own slice of it), so a key costs a few object creations, not a sketch build.
        """
        if not self._parts:
            return []
        code, count, err, total, lo, hi = self._compact()
        keys = code >> _BUCKET_BITS
        buckets = (code & ((1 << _BUCKET_BITS) - 1)) - _BUCKET_OFFSET
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        n_keys = starts.size
        per_key = np.diff(np.r_[starts, keys.size])
        k_count = np.add.reduceat(count, starts).tolist()
        k_err = np.add.reduceat(err, starts).tolist()
        k_total = np.add.reduceat(total, starts).tolist()
        k_lo = np.minimum.reduceat(lo, starts).tolist()
        k_hi = np.maximum.reduceat(hi, starts).tolist()
        is_zero = buckets == -_BUCKET_OFFSET
        k_zero = np.add.reduceat(np.where(is_zero, count, 0), starts).tolist()
        # Rows are sorted by (key, bucket): a key's log buckets are its rows after the zero one.
        row_key = np.repeat(np.arange(n_keys), per_key)
        big = np.iinfo(np.int64).max
        b_lo = np.minimum.reduceat(np.where(is_zero, big, buckets), starts)
        b_hi = np.maximum.reduceat(np.where(is_zero, -big, buckets), starts)
        has = b_lo != big
        width = np.where(has, b_hi - b_lo + 1, 0)
        offsets = np.r_[0, np.cumsum(width)[:-1]]
        dense = np.zeros(int(width.sum()), dtype=np.int64)
        logb = ~is_zero
        dense[(offsets[row_key] + buckets - b_lo[row_key])[logb]] = count[logb]
        out: list[KeyStats] = []
        key_list = keys[starts].tolist()
        for i, (off, w, b0) in enumerate(zip(offsets.tolist(), width.tolist(), b_lo.tolist(), strict=True)):
            sketch = QuantileSketch.from_dense(
                self._alpha,
                b0 if w else 0,
                dense[off : off + w],
                zero_count=k_zero[i],
                total=k_total[i],
                minimum=k_lo[i],
                maximum=k_hi[i],
                min_value=self._min_value,
            )
            out.append(KeyStats(key_list[i], int(k_count[i]), int(k_err[i]), float(k_total[i]), sketch))
        return out
