"""The span index against the dict it replaces: same answers, bounded the same way."""

from __future__ import annotations

import numpy as np

from faultlens.analysis.red.spanbuffer import Generations, KeyIndex

SLICE = 10


def test_answers_like_a_dict_written_in_batches() -> None:
    rng = np.random.default_rng(7)
    index = KeyIndex(SLICE, retention_ns=10**9, max_items=10**9)
    model: dict[int, int] = {}
    for step in range(300):
        # Keys from a small space, so that keys are written again (newest value wins),
        # within a batch as well as across batches and generations.
        keys = rng.integers(1, 5_000, size=int(rng.integers(1, 60)), dtype=np.uint64)
        values = rng.integers(0, 40, size=keys.size)
        index.add(step, keys, values)
        model.update(zip(keys.tolist(), values.tolist(), strict=True))
        if step % 37 == 0:
            probe = rng.integers(0, 6_000, size=500, dtype=np.uint64)
            expected = [model.get(k, -1) for k in probe.tolist()]
            assert index.lookup(probe).tolist() == expected
    probe = np.arange(0, 6_000, dtype=np.uint64)
    assert index.lookup(probe).tolist() == [model.get(k, -1) for k in probe.tolist()]


def test_a_generation_holds_few_runs() -> None:
    index = KeyIndex(slice_ns=10**9, retention_ns=10**12, max_items=10**9)
    for batch in range(1_000):
        keys = np.arange(batch * 100, (batch + 1) * 100, dtype=np.uint64)
        index.add(0, keys, np.full(100, batch % 7))
    ((_, gen),) = index._gens
    assert len(gen.runs) <= 12  # O(log n): a run per batch would be 1,000
    assert index.lookup(np.array([0, 99_999, 100_000], dtype=np.uint64)).tolist() == [0, 999 % 7, -1]


def test_old_generations_expire_by_age_and_by_size() -> None:
    index = KeyIndex(SLICE, retention_ns=3 * SLICE, max_items=250)
    for gen in range(6):
        index.add(gen * SLICE, np.arange(gen * 100, gen * 100 + 100, dtype=np.uint64), np.full(100, gen))
    # Watermark 5.5 slices: generations 0 and 1 end at or before the horizon (2.5 slices)...
    aged, evicted = index.expire(5 * SLICE + SLICE // 2)
    assert aged == 200
    # ...and of the 400 keys left, the oldest generations go until at most 250 remain.
    assert evicted == 200
    assert len(index) == 200
    assert index.lookup(np.array([399, 400, 599], dtype=np.uint64)).tolist() == [-1, 4, 5]


def test_data_time_that_stands_still_stays_within_the_size_bound() -> None:
    """Every batch at the same data time (a sender replaying fixed timestamps): the index
    and the dict generations still drop their oldest keys once over their bound."""
    index = KeyIndex(SLICE, retention_ns=3 * SLICE, max_items=1_000)
    gens: Generations[float] = Generations(SLICE, 3 * SLICE, max_items=1_000)
    evicted = 0
    for batch in range(100):
        keys = np.arange(batch * 100, (batch + 1) * 100, dtype=np.uint64)
        index.add(5 * SLICE, keys, np.full(100, batch % 7))
        gens.current(5 * SLICE).update(dict.fromkeys(keys.tolist(), 1.0))
        evicted += index.expire(5 * SLICE)[1]
        gens.expire(5 * SLICE)
        assert len(index) <= 1_250
        assert len(gens) <= 1_250
    assert evicted == 10_000 - len(index)
    # The newest keys are still there; the oldest are gone.
    assert index.lookup(np.array([9_999, 0], dtype=np.uint64)).tolist() == [99 % 7, -1]
    assert gens.get(9_999) == 1.0 and gens.get(0) is None
