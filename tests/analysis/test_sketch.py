"""The sketch keeps its relative-accuracy promise, merges exactly and round-trips."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlens.analysis.sketch import QuantileSketch


def _true_quantile(values: np.ndarray, q: float) -> float:
    s = np.sort(values)
    return float(s[math.floor(q * (len(s) - 1))])


@pytest.mark.parametrize("dist", ["lognormal", "pareto", "uniform"])
def test_quantiles_within_relative_accuracy(dist: str) -> None:
    rng = np.random.default_rng(7)
    values = {
        "lognormal": rng.lognormal(mean=15, sigma=1.5, size=50_000),
        "pareto": (rng.pareto(1.5, size=50_000) + 1) * 1e6,
        "uniform": rng.uniform(1e3, 1e9, size=50_000),
    }[dist]
    sk = QuantileSketch(alpha=0.01)
    sk.add_many(values)
    assert sk.count == len(values)
    for q in (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        expected = _true_quantile(values, q)
        assert abs(sk.quantile(q) - expected) <= 0.01 * expected * (1 + 1e-9), q
    assert sk.sum == pytest.approx(values.sum())


def test_accepts_arrow_arrays_with_nulls_and_zeros() -> None:
    sk = QuantileSketch()
    sk.add_many(pa.chunked_array([[0, 10, None], [1000]], type=pa.int64()))
    assert sk.count == 3
    assert sk.quantile(0.0) == 0.0
    assert sk.quantile(1.0) == pytest.approx(1000, rel=0.01)


def test_empty_sketch_answers_nan() -> None:
    sk = QuantileSketch()
    assert sk.count == 0
    assert math.isnan(sk.quantile(0.5))
    assert math.isnan(sk.mean())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-3, max_value=1e12), max_size=60),
    st.lists(st.floats(min_value=1e-3, max_value=1e12), max_size=60),
    st.lists(st.floats(min_value=1e-3, max_value=1e12), max_size=60),
)
def test_merge_is_associative_commutative_and_exact(a: list[float], b: list[float], c: list[float]) -> None:
    def sk(vals: list[float]) -> QuantileSketch:
        s = QuantileSketch()
        s.add_many(np.asarray(vals, dtype=float))
        return s

    left = sk(a)
    left.merge(sk(b))
    left.merge(sk(c))
    bc = sk(b)
    bc.merge(sk(c))
    right = sk(a)
    right.merge(bc)
    swapped = sk(c)
    swapped.merge(sk(a))
    swapped.merge(sk(b))
    whole = sk(a + b + c)
    assert left == right == swapped == whole


def test_collapsing_keeps_high_quantiles_accurate() -> None:
    values = np.geomspace(1e-3, 1e12, 100_000)
    sk = QuantileSketch(alpha=0.01, max_buckets=300)
    sk.add_many(values)
    assert sk.count == len(values)
    for q in (0.9, 0.99):
        expected = _true_quantile(values, q)
        assert abs(sk.quantile(q) - expected) <= 0.01 * expected * (1 + 1e-9)


def test_bytes_and_dict_round_trip() -> None:
    sk = QuantileSketch(alpha=0.02)
    sk.add_many(np.array([0.0, 5.0, 50.0, 5e6]))
    assert QuantileSketch.from_bytes(sk.to_bytes()) == sk
    back = QuantileSketch.from_dict(sk.to_dict())
    assert back == sk
    assert back.quantile(0.99) == sk.quantile(0.99)
    assert QuantileSketch.from_dict(QuantileSketch().to_dict()).count == 0
    with pytest.raises(ValueError):
        QuantileSketch.from_bytes(b"nope")


def test_weighted_add_and_merge_rejects_other_alpha() -> None:
    sk = QuantileSketch()
    sk.add_many(np.array([10.0, 20.0]), np.array([3, 1]))
    assert sk.count == 4
    assert sk.quantile(0.5) == pytest.approx(10, rel=0.01)
    with pytest.raises(ValueError):
        sk.merge(QuantileSketch(alpha=0.05))


def _counts_of(sk: QuantileSketch) -> tuple[int, list[int]]:
    counts, offset = sk._trimmed()
    return offset, counts.tolist()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-3, max_value=1e12), max_size=80),
    st.lists(st.floats(min_value=1e-3, max_value=1e12), max_size=80),
    st.integers(min_value=2, max_value=400),
)
def test_merge_in_place_and_folding_give_the_buckets_of_the_union(
    a: list[float], b: list[float], max_buckets: int
) -> None:
    """Merging adds the other's range in place when it fits, and folds it when the lowest
    buckets collapse: either way the buckets are those of one sketch fed both lists."""
    left = QuantileSketch(max_buckets=max_buckets)
    left.add_many(np.asarray(a, dtype=float))
    right = QuantileSketch(max_buckets=max_buckets)
    right.add_many(np.asarray(b, dtype=float))
    whole = QuantileSketch(max_buckets=max_buckets)
    whole.add_many(np.asarray(a, dtype=float))
    whole.add_many(np.asarray(b, dtype=float))
    left.quantile(0.5)  # a cached cumulative count must not survive the merge
    left.merge(right)
    assert _counts_of(left) == _counts_of(whole)
    assert left.count == whole.count == len(a) + len(b)
    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        assert left.quantile(q) == pytest.approx(whole.quantile(q), nan_ok=True)


def test_quantiles_follow_values_added_after_a_query() -> None:
    sk = QuantileSketch()
    sk.add_many(np.array([10.0, 10.0, 10.0]))
    assert sk.quantile(1.0) == pytest.approx(10)
    sk.add(1e6)
    assert sk.count == 4 and sk.quantile(1.0) == pytest.approx(1e6, rel=0.01)
    sk.add_many(np.full(10, 5e5))
    assert sk.quantile(0.5) == pytest.approx(5e5, rel=0.01)


def test_from_dense_equals_from_buckets() -> None:
    rng = np.random.default_rng(3)
    idx = np.unique(rng.integers(900, 1400, size=60))
    counts = rng.integers(1, 9, size=idx.size)
    kw = {"zero_count": 2, "total": 123.0, "minimum": 0.0, "maximum": 9e5}
    ref = QuantileSketch.from_buckets(0.01, idx, counts, **kw)
    dense = np.zeros(int(idx.max() - idx.min() + 1), dtype=np.int64)
    dense[idx - idx.min()] = counts
    got = QuantileSketch.from_dense(0.01, int(idx.min()), dense, **kw)
    assert got == ref and got.to_bytes() == ref.to_bytes()
    assert got.quantiles((0.1, 0.5, 0.99)) == ref.quantiles((0.1, 0.5, 0.99))
    wide = np.ones(3000, dtype=np.int64)  # wider than max_buckets: collapsed like from_buckets
    assert QuantileSketch.from_dense(0.01, 5, wide) == QuantileSketch.from_buckets(
        0.01, np.arange(5, 3005), wide
    )
    assert QuantileSketch.from_dense(0.01, 7, np.zeros(0, dtype=np.int64)) == QuantileSketch(0.01)
