"""A mergeable quantile sketch with a relative-accuracy guarantee (DDSketch-style).

Why this shape: latency windows must be merged later (10 s windows into minutes, nodes
into a cluster view), and averaging percentiles is wrong. A DDSketch keeps counts in
logarithmic buckets ``(gamma^(i-1), gamma^i]`` with ``gamma = (1+alpha)/(1-alpha)``; any
quantile it returns is within a factor ``1 ± alpha`` of a true sample value of that rank,
and two sketches with the same ``alpha`` merge exactly by adding bucket counts (so merge is
associative and commutative). See Masson, Rim and Lee, "DDSketch", VLDB 2019.

The counts live in one dense numpy array with an index offset, which makes vectorised
insertion (``np.bincount`` over bucket indices) cheap. Values at or below
``min_value`` (zero durations) go to a separate zero bucket. When the dense range would
exceed ``max_buckets`` the lowest buckets are collapsed into one, as in DDSketch: the
high quantiles, which matter for latency, keep their guarantee.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["QuantileSketch"]

_HEADER = struct.Struct(
    "<4sBdddqqddq"
)  # magic, version, alpha, min_value, sum, count, zero, min, max, offset
_MAGIC = b"FLDD"
_VERSION = 1


class QuantileSketch:
    """Counts of positive values in log buckets of relative width ``alpha``.

    Not thread-safe; a sketch handed to another owner (e.g. inside a closed window) must not
    be changed by the giver any more.
    """

    __slots__ = (
        "_counts",
        "_cum",
        "_gamma_ln",
        "_max",
        "_min",
        "_offset",
        "_sum",
        "_zero",
        "alpha",
        "max_buckets",
        "min_value",
    )

    def __init__(self, alpha: float = 0.01, *, min_value: float = 1e-9, max_buckets: int = 2048) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if max_buckets < 2:
            raise ValueError("max_buckets must be at least 2")
        self.alpha = float(alpha)
        self.min_value = float(min_value)
        self.max_buckets = int(max_buckets)
        self._gamma_ln = math.log((1.0 + alpha) / (1.0 - alpha))
        self._counts: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._cum: npt.NDArray[np.int64] | None = None  # cumsum of _counts, kept until they change
        self._offset = 0  # bucket index of _counts[0]
        self._zero = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    # -- insertion -------------------------------------------------------------------------

    def bucket_indices(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Bucket index of each value (values must be above ``min_value``)."""
        return np.ceil(np.log(values) / self._gamma_ln).astype(np.int64)

    def add(self, value: float, count: int = 1) -> None:
        """Add one value ``count`` times."""
        if count <= 0:
            return
        self.add_many(np.full(1, value, dtype=np.float64), np.full(1, count, dtype=np.int64))

    def add_many(self, values: Any, weights: npt.NDArray[np.int64] | None = None) -> None:
        """Add an array of values (numpy, Arrow or a sequence). NaNs are ignored."""
        arr = _as_float_array(values)
        if weights is not None:
            w = np.asarray(weights, dtype=np.int64)
            keep = ~np.isnan(arr)
            arr, w = arr[keep], w[keep]
        else:
            arr = arr[~np.isnan(arr)]
            w = None
        if arr.size == 0:
            return
        total = int(w.sum()) if w is not None else int(arr.size)
        self._sum += float(np.dot(arr, w) if w is not None else arr.sum())
        self._min = min(self._min, float(arr.min()))
        self._max = max(self._max, float(arr.max()))
        small = arr <= self.min_value
        n_small = int(w[small].sum()) if w is not None else int(small.sum())
        self._zero += n_small
        if n_small == total:
            return
        pos = arr[~small]
        pw = w[~small] if w is not None else None
        self._add_indices(self.bucket_indices(pos), pw)

    def _add_indices(self, idx: npt.NDArray[np.int64], weights: npt.NDArray[np.int64] | None) -> None:
        self._cum = None
        lo, hi = int(idx.min()), int(idx.max())
        self._ensure_range(lo, hi)
        rel = idx - self._offset
        if rel.min() < 0:  # lowest buckets were collapsed: fold into the first bucket
            rel = np.maximum(rel, 0)
        add = np.bincount(rel, weights=weights, minlength=self._counts.size)
        self._counts += add.astype(np.int64)

    def _ensure_range(self, lo: int, hi: int) -> None:
        self._cum = None
        if self._counts.size == 0:
            new_lo, new_hi = lo, hi
        else:
            new_lo = min(lo, self._offset)
            new_hi = max(hi, self._offset + self._counts.size - 1)
        if new_hi - new_lo + 1 > self.max_buckets:
            new_lo = new_hi - self.max_buckets + 1  # collapse the lowest buckets
        if self._counts.size and new_lo == self._offset and new_hi == self._offset + self._counts.size - 1:
            return
        grown = np.zeros(new_hi - new_lo + 1, dtype=np.int64)
        if self._counts.size:
            old_idx = np.arange(self._counts.size) + self._offset - new_lo
            folded = old_idx < 0
            if folded.any():
                grown[0] += int(self._counts[folded].sum())
            keep = ~folded
            grown[old_idx[keep]] += self._counts[keep]
        self._counts = grown
        self._offset = new_lo

    # -- combination -------------------------------------------------------------------------

    def merge(self, other: QuantileSketch) -> None:
        """Add every value of ``other`` into this sketch (exact for equal ``alpha``)."""
        if not math.isclose(other.alpha, self.alpha):
            raise ValueError(f"cannot merge sketches of alpha {self.alpha} and {other.alpha}")
        self._zero += other._zero
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        if other._counts.size == 0:
            return
        nz = np.flatnonzero(other._counts)
        if nz.size == 0:
            return
        first, last = int(nz[0]), int(nz[-1])
        lo, hi = first + other._offset, last + other._offset
        self._ensure_range(lo, hi)
        if lo >= self._offset:  # no bucket to fold: add the other's range in place
            self._counts[lo - self._offset : hi - self._offset + 1] += other._counts[first : last + 1]
        else:
            self._add_indices(nz.astype(np.int64) + other._offset, other._counts[nz])

    @classmethod
    def from_buckets(
        cls,
        alpha: float,
        indices: npt.NDArray[np.int64],
        counts: npt.NDArray[np.int64],
        *,
        zero_count: int = 0,
        total: float = 0.0,
        minimum: float = math.inf,
        maximum: float = -math.inf,
        min_value: float = 1e-9,
    ) -> QuantileSketch:
        """A sketch from bucket indices and counts already computed in bulk (see ``bucket_indices``)."""
        out = cls(alpha, min_value=min_value)
        out._zero = int(zero_count)
        out._sum = float(total)
        out._min, out._max = float(minimum), float(maximum)
        if indices.size:
            out._add_indices(np.asarray(indices, dtype=np.int64), np.asarray(counts, dtype=np.int64))
        return out

    @classmethod
    def from_dense(
        cls,
        alpha: float,
        offset: int,
        counts: npt.NDArray[np.int64],
        *,
        zero_count: int = 0,
        total: float = 0.0,
        minimum: float = math.inf,
        maximum: float = -math.inf,
        min_value: float = 1e-9,
        max_buckets: int = 2048,
    ) -> QuantileSketch:
        """A sketch whose bucket ``offset + i`` holds ``counts[i]`` (taken as it is, not copied).

        Same as :meth:`from_buckets` with every index of the range, without its work; a range
        wider than ``max_buckets`` goes through :meth:`from_buckets` (which collapses it).
        """
        if counts.size > max_buckets:
            idx = np.flatnonzero(counts)
            return cls.from_buckets(
                alpha,
                idx.astype(np.int64) + offset,
                counts[idx],
                zero_count=zero_count,
                total=total,
                minimum=minimum,
                maximum=maximum,
                min_value=min_value,
            )
        out = cls.__new__(cls)
        out.alpha = float(alpha)
        out.min_value = float(min_value)
        out.max_buckets = int(max_buckets)
        out._gamma_ln = math.log((1.0 + alpha) / (1.0 - alpha))
        out._counts = counts if counts.size else np.zeros(0, dtype=np.int64)
        out._cum = None
        out._offset = int(offset) if counts.size else 0
        out._zero = int(zero_count)
        out._sum = float(total)
        out._min, out._max = float(minimum), float(maximum)
        return out

    def copy(self) -> QuantileSketch:
        out = QuantileSketch(self.alpha, min_value=self.min_value, max_buckets=self.max_buckets)
        out._counts = self._counts.copy()
        out._offset, out._zero, out._sum = self._offset, self._zero, self._sum
        out._min, out._max = self._min, self._max
        return out

    # -- queries -----------------------------------------------------------------------------

    def _cumulative(self) -> npt.NDArray[np.int64]:
        cum = self._cum
        if cum is None:
            cum = self._cum = np.cumsum(self._counts)
        return cum

    @property
    def count(self) -> int:
        cum = self._cumulative()
        return self._zero + (int(cum[-1]) if cum.size else 0)

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def min(self) -> float:
        return self._min if self.count else math.nan

    @property
    def max(self) -> float:
        return self._max if self.count else math.nan

    def mean(self) -> float:
        n = self.count
        return self._sum / n if n else math.nan

    def quantile(self, q: float) -> float:
        """The value of rank ``q`` (0..1), within relative error ``alpha``; NaN when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        n = self.count
        if n == 0:
            return math.nan
        rank = q * (n - 1)
        if rank < self._zero:
            return 0.0
        cum = self._cumulative()
        pos = int(np.searchsorted(cum, rank - self._zero, side="right"))
        pos = min(pos, self._counts.size - 1)
        i = pos + self._offset
        value = 2.0 * math.exp(i * self._gamma_ln) / (1.0 + math.exp(self._gamma_ln))
        # Clamp to what was actually seen: exact at the extremes, never outside them.
        return min(max(value, self._min), self._max)

    def quantiles(self, qs: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(self.quantile(q) for q in qs)

    # -- serialisation -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A compact binary form (header + non-zero bucket range as little-endian int64)."""
        counts, offset = self._trimmed()
        header = _HEADER.pack(
            _MAGIC,
            _VERSION,
            self.alpha,
            self.min_value,
            self._sum,
            self.max_buckets,
            self._zero,
            self._min,
            self._max,
            offset,
        )
        return header + counts.astype("<i8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        if len(data) < _HEADER.size:
            raise ValueError("sketch bytes too short")
        magic, version, alpha, min_value, total, max_buckets, zero, lo, hi, offset = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise ValueError("not a faultlens sketch (bad magic or version)")
        out = cls(alpha, min_value=min_value, max_buckets=int(max_buckets))
        out._counts = np.frombuffer(data, dtype="<i8", offset=_HEADER.size).astype(np.int64)
        out._cum = None
        out._offset, out._zero, out._sum, out._min, out._max = int(offset), int(zero), total, lo, hi
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-safe apart from infinities of an empty sketch, stored as None)."""
        counts, offset = self._trimmed()
        return {
            "alpha": self.alpha,
            "min_value": self.min_value,
            "max_buckets": self.max_buckets,
            "offset": offset,
            "counts": counts.tolist(),
            "zero": self._zero,
            "sum": self._sum,
            "min": None if math.isinf(self._min) else self._min,
            "max": None if math.isinf(self._max) else self._max,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantileSketch:
        out = cls(
            float(data["alpha"]), min_value=float(data["min_value"]), max_buckets=int(data["max_buckets"])
        )
        out._counts = np.asarray(data["counts"], dtype=np.int64)
        out._cum = None
        out._offset = int(data["offset"])
        out._zero = int(data["zero"])
        out._sum = float(data["sum"])
        out._min = math.inf if data["min"] is None else float(data["min"])
        out._max = -math.inf if data["max"] is None else float(data["max"])
        return out

    def _trimmed(self) -> tuple[npt.NDArray[np.int64], int]:
        nz = np.nonzero(self._counts)[0]
        if nz.size == 0:
            return np.zeros(0, dtype=np.int64), 0
        return self._counts[nz[0] : nz[-1] + 1], self._offset + int(nz[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        a, ao = self._trimmed()
        b, bo = other._trimmed()
        return (
            self.alpha == other.alpha
            and self._zero == other._zero
            and ao == bo
            and np.array_equal(a, b)
            and math.isclose(self._sum, other._sum, rel_tol=1e-9, abs_tol=1e-9)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"QuantileSketch(alpha={self.alpha}, count={self.count}, p50={self.quantile(0.5)})"


def _as_float_array(values: Any) -> npt.NDArray[np.float64]:
    """Numpy float64 view of numpy, Arrow (chunked or not) or Python input; nulls become NaN."""
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        if hasattr(values, "combine_chunks"):
            values = values.combine_chunks()
        values = values.to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64).ravel()
