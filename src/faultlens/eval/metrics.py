"""Ranking metrics of root-cause localisation: AC@k and Avg@k, ties counted against the method.

A method returns scores per service (higher = more suspect). The rank of the true service
is *pessimistic*: every other service with a score at least as high is ranked before it,
so a method cannot gain from ties. A true service the method does not rank at all has no
rank and counts as a miss at every k.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["accuracy_at", "average_at", "pessimistic_rank"]


def pessimistic_rank(truth: str, scores: Mapping[str, float]) -> int | None:
    """1-based rank of ``truth`` with ties against it; None when ``truth`` has no score."""
    if truth not in scores:
        return None
    mine = scores[truth]
    return 1 + sum(1 for s, v in scores.items() if s != truth and v >= mine)


def accuracy_at(ranks: Sequence[int | None], k: int) -> float:
    """AC@k: the share of cases whose true service is within the top ``k``."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def average_at(ranks: Sequence[int | None], k: int) -> float:
    """Avg@k: the mean of AC@1 .. AC@k."""
    return sum(accuracy_at(ranks, i) for i in range(1, k + 1)) / k
