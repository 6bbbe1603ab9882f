"""AC@k and Avg@k, with ties counted against the method."""

from __future__ import annotations

import pytest

from faultlens.eval.metrics import accuracy_at, average_at, pessimistic_rank


def test_rank_counts_ties_against_the_method() -> None:
    assert pessimistic_rank("b", {"a": 0.9, "b": 0.5, "c": 0.5, "d": 0.1}) == 3
    assert pessimistic_rank("a", {"a": 0.9, "b": 0.5}) == 1
    assert pessimistic_rank("x", {"a": 1.0, "b": 1.0, "x": 1.0}) == 3


def test_unranked_truth_has_no_rank_and_misses_at_every_k() -> None:
    assert pessimistic_rank("z", {"a": 1.0}) is None
    assert accuracy_at([None, 1], 5) == 0.5


def test_accuracy_and_average() -> None:
    ranks = [1, 2, 3, None, 6]
    assert accuracy_at(ranks, 1) == pytest.approx(0.2)
    assert accuracy_at(ranks, 3) == pytest.approx(0.6)
    assert accuracy_at(ranks, 5) == pytest.approx(0.6)
    assert average_at(ranks, 5) == pytest.approx((0.2 + 0.4 + 0.6 + 0.6 + 0.6) / 5)
    assert accuracy_at([], 1) == 0.0
