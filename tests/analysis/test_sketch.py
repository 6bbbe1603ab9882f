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
