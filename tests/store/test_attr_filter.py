"""A search by attribute reads only the time ranges where the attribute filter says its pairs
may be, and answers exactly as the search that reads everything.

The filter (``store/_attr_filter.py``) must never hide a span that has the pair, whatever
the data (numbers, bools, nested values, keys with ``.``/``/``/``~``, JSON that is no object)
and whatever happened to the file: many runs, a reopen, retention, writes while it is built.
Each check compares the store's answer with the same store's answer with the filter left out
(``_attribute_ranges`` answering "cannot tell", which is the path before the filter).
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faultlens.errors import StoreError
from faultlens.store import _attr_filter
from faultlens.store._attr_filter import PAIRS_CAP, AttrFilter, Part
from faultlens.store.base import AttributeCondition, TraceQuery, TraceSummary
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.store.testing import span_row, spans_batch
from faultlens.types import TimeRange

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
SERVICES = ("front", "cart", "pay")
KEYS = ("http.route", "a/b", "t~x", "n", "f", "flag", "nested", "list", "none", "id", "é")


def random_value(rng: random.Random, key: str) -> Any:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randrange(-3, 1000)
    if kind == 1:
        return rng.choice([1.5, 0.1, 1e21, -0.0, 2.0, 100.25])
    if kind == 2:
        return rng.random() < 0.5
    if kind == 3:
        return {"x": rng.randrange(3), "y": [1, "z"]}
    if kind == 4:
        return [rng.randrange(3), None]
    if kind == 5:
        return None
    if kind == 6:
        return f"{key}-{rng.getrandbits(32):08x}"  # a value of its own
    return rng.choice(["GET", "é ü", 'quo"te', "", "1.5", "true", "200"])


def random_span(rng: random.Random, i: int, start: int) -> dict[str, Any]:
    attrs = {k: random_value(rng, k) for k in rng.sample(KEYS, rng.randrange(0, 6))}
    resource = {"service.name": rng.choice(SERVICES), "host.name": f"node-{rng.randrange(3)}"}
    if rng.random() < 0.2:
        resource[rng.choice(KEYS)] = random_value(rng, "r")
    return span_row(
        trace=rng.randrange(1, 400),
        span=i + 1,
        start=start,
        duration=rng.randrange(1, 10**7),
        service_name=resource["service.name"],
        name=rng.choice(("GET /", "POST /pay", "query")),
        status_code=rng.choice((0, 0, 2)),
        attributes=attrs,
        resource_attributes=resource,
    )


def texts(value: Any) -> list[str]:
    """Spellings a person might type for a stored value: some match, some do not."""
    if isinstance(value, str):
        return [value, value + "x"]
    if isinstance(value, bool):
        return ["true" if value else "false", "True"]
    if isinstance(value, float):
        return [repr(value), str(value), f"{value:.2f}"]
    if isinstance(value, int):
        return [str(value), f"{value}.0"]
    return [json.dumps(value, separators=(",", ":")), json.dumps(value)]


def unfiltered(store: DuckDBStore, query: TraceQuery) -> list[TraceSummary]:
    """The answer of the search that reads everything (the path before the filter)."""
    ranges = store._attribute_ranges
    store._attribute_ranges = lambda q: None  # type: ignore[method-assign,assignment]
    try:
        return store.find_traces(query)
    finally:
        store._attribute_ranges = ranges  # type: ignore[method-assign]


def ready(store: DuckDBStore) -> DuckDBStore:
    """The store with its attribute filter built (a first search starts the build)."""
    store.find_traces(TraceQuery(attributes=(AttributeCondition("k", "v"),), limit=1))
    assert store._attr_filter.wait_ready(30)
    return store


def questions(rng: random.Random, rows: list[dict[str, Any]], n: int) -> list[TraceQuery]:
    out = []
    for _ in range(n):
        row = rng.choice(rows)
        pool = [*json.loads(row["attributes"]).items(), *json.loads(row["resource_attributes"]).items()]
        conds = []
        for _ in range(rng.choice((1, 1, 2))):
            if pool and rng.random() < 0.8:
                key, value = rng.choice(pool)
                conds.append(AttributeCondition(key, rng.choice(texts(value))))
            else:
                conds.append(AttributeCondition(rng.choice(KEYS), "nothing-has-this"))
        out.append(
            TraceQuery(
                service=rng.choice((None, *SERVICES)),
                status_error=rng.random() < 0.2,
                attributes=tuple(conds),
                time_range=rng.choice((None, TimeRange(0, 30 * MINUTE), TimeRange(20 * MINUTE, 90 * MINUTE))),
                limit=rng.choice((1, 5, 20)),
            )
        )
    return out


@pytest.fixture
def small_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of a few hundred spans, so that a test's data spans many runs and build chunks."""
    monkeypatch.setattr(_attr_filter, "PART_ROWS", 64)
    monkeypatch.setattr(_attr_filter, "RUN_ROWS", 256)
    monkeypatch.setattr(_attr_filter, "BUILD_CHUNK_ROWS", 300)
    monkeypatch.setattr(_attr_filter, "_BUILD_BATCH_ROWS", 128)  # a chunk streams in batches


def write_random(
    store: DuckDBStore, rng: random.Random, batches: int, per_batch: int
) -> list[dict[str, Any]]:
    """Batches in time order (each a minute long), a few of them going back in time."""
    rows: list[dict[str, Any]] = []
    for b in range(batches):
        base = (b if rng.random() > 0.1 else rng.randrange(0, b + 1)) * MINUTE
        batch = [random_span(rng, len(rows) + i, base + rng.randrange(MINUTE)) for i in range(per_batch)]
        store.write([spans_batch(batch)])
        rows += batch
    return rows


def check_same(store: DuckDBStore, rows: list[dict[str, Any]], rng: random.Random, n: int) -> int:
    """Asks ``n`` random questions both ways; returns how many found something."""
    found = 0
    for query in questions(rng, rows, n):
        got = store.find_traces(query)
        assert got == unfiltered(store, query), query
        found += bool(got)
    return found


def test_every_answer_is_the_unfiltered_one_on_random_data_over_many_runs(
    tmp_path: Path, small_runs: None
) -> None:
    rng = random.Random(11)
    store = ready(DuckDBStore(tmp_path / "x.duckdb"))
    rows = write_random(store, rng, batches=30, per_batch=120)
    f = store._attr_filter
    assert f.runs >= 14  # many runs, cut by rows and by parts
    found = check_same(store, rows, rng, 120)
    assert 15 < found < 120  # hits and misses both asked
    # a value nothing has: no run may hold it, so nothing is read
    miss = TraceQuery(attributes=(AttributeCondition("n", "nothing-has-this"),))
    assert store._attribute_ranges(miss) == [] and store.find_traces(miss) == []
    # a value of one span: only the runs that may hold it are read
    key, own = next(
        (k, v)
        for r in rows
        for k, v in json.loads(r["attributes"]).items()
        if isinstance(v, str) and v.startswith(f"{k}-")
    )
    one = TraceQuery(attributes=(AttributeCondition(key, own),))
    assert 1 <= len(store._attribute_ranges(one) or []) < f.runs // 4
    store.close()


def test_values_are_matched_as_the_search_spells_them(tmp_path: Path) -> None:
    store = ready(DuckDBStore(tmp_path / "x.duckdb"))
    attrs = {
        "n": 1.50,
        "e": 1e3,
        "b": True,
        "i": 200,
        "o": {"k": [1, 2]},
        "s": "é",
        "z": None,
        "a.b/c~d": "x",
    }
    store.write([spans_batch([span_row(trace=1, start=5 * SECOND, attributes=attrs)])])
    cases = {
        ("n", "1.5"): True,
        ("n", "1.50"): False,
        ("e", "1000.0"): True,
        ("e", "1e3"): False,
        ("b", "true"): True,
        ("b", "True"): False,
        ("i", "200"): True,
        ("o", '{"k":[1,2]}'): True,
        ("s", "é"): True,
        ("z", "null"): False,
        ("a.b/c~d", "x"): True,
    }
    for (key, value), hit in cases.items():
        query = TraceQuery(attributes=(AttributeCondition(key, value),))
        assert bool(store.find_traces(query)) is hit, (key, value)
        assert store.find_traces(query) == unfiltered(store, query)
    store.close()


def test_json_that_is_no_object_makes_its_run_unknown_and_is_still_found(tmp_path: Path) -> None:
    store = ready(DuckDBStore(tmp_path / "x.duckdb"))
    store.write([spans_batch([span_row(trace=1, start=5 * SECOND, attributes='["x", 2]')])])
    store.write([spans_batch([span_row(trace=2, start=9 * SECOND, attributes={"k": "v"})])])
    assert store._attr_filter.unknown_runs == 1
    query = TraceQuery(attributes=(AttributeCondition("0", "x"),))  # the pointer /0 reads an array
    assert (
        [t.trace_id[-1] for t in store.find_traces(query)]
        == [1]
        == [t.trace_id[-1] for t in unfiltered(store, query)]
    )
    store.close()


def test_json_duckdb_cannot_read_is_refused_as_before(tmp_path: Path) -> None:
    store = ready(DuckDBStore(tmp_path / "x.duckdb"))
    store.write([spans_batch([span_row(trace=1, start=5 * SECOND, attributes="{bad")])])  # written, unknown
    assert store._attr_filter.unknown_runs == 1
    query = TraceQuery(attributes=(AttributeCondition("k", "v"),))
    for search in (store.find_traces, lambda q: unfiltered(store, q)):
        with pytest.raises(StoreError, match="JSON"):
            search(query)
    store.close()


def test_a_reopened_store_builds_the_filter_from_the_file(tmp_path: Path, small_runs: None) -> None:
    rng = random.Random(5)
    path = tmp_path / "x.duckdb"
    first = DuckDBStore(path)
    rows = write_random(first, rng, batches=12, per_batch=100)  # no search yet: nothing kept
    assert first._attr_filter.runs == 0 and not first._attr_filter.started
    first.close()
    second = ready(DuckDBStore(path))
    assert second._attr_filter.runs >= 5  # the build's chunks, cut into parts
    rows += write_random(second, rng, batches=4, per_batch=100)
    assert check_same(second, rows, rng, 100) > 10
    second.close()


def test_retention_forgets_expired_runs_and_answers_stay_exact(tmp_path: Path, small_runs: None) -> None:
    rng = random.Random(3)
    store = ready(DuckDBStore(tmp_path / "x.duckdb"))
    rows = write_random(store, rng, batches=20, per_batch=100)
    before = store._attr_filter.runs
    cutoff = 10 * MINUTE
    store.enforce_retention(cutoff, 0)
    assert store._attr_filter.runs < before
    kept = [r for r in rows if r["start_time_unix_nano"] >= cutoff]
    assert check_same(store, kept, rng, 100) > 10
    store.close()


def test_writes_while_the_filter_is_built_are_found(tmp_path: Path, small_runs: None) -> None:
    rng = random.Random(9)
    store = DuckDBStore(tmp_path / "x.duckdb")
    rows = write_random(store, rng, batches=20, per_batch=100)
    stop = threading.Event()
    written: list[dict[str, Any]] = []

    def writer() -> None:
        wrng = random.Random(10)
        i = 0
        while not stop.is_set() and i < 60:
            batch = [random_span(wrng, 10**6 + i * 50 + j, (i % 30) * MINUTE + j) for j in range(50)]
            store.write([spans_batch(batch)])
            written.extend(batch)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        ready(store)
    finally:
        stop.set()
        thread.join()
    assert written  # some writes ran beside the build
    assert check_same(store, rows + written, rng, 100) > 10
    store.close()


def test_a_second_store_on_the_file_shares_the_filter(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    writer, reader = DuckDBStore(path), ready(DuckDBStore(path))
    writer.write([spans_batch([span_row(trace=1, start=5 * SECOND, attributes={"k": "v"})])])
    assert len(reader.find_traces(TraceQuery(attributes=(AttributeCondition("k", "v"),)))) == 1
    writer.close()
    reader.close()


def test_a_run_is_cut_at_the_pair_cap_and_a_part_over_it_is_unknown() -> None:
    f = AttrFilter()
    f.begin_build()
    f.end_build(True)
    rng = np.random.default_rng(1)
    many = rng.integers(0, 2**63, size=PAIRS_CAP // 2 + 10, dtype=np.int64).astype(np.uint64)
    f.add([Part(0, 10, 100, many)])
    f.add([Part(20, 30, 100, many + np.uint64(1))])  # the run would hold more than the cap
    assert f.runs == 2
    assert f.ranges([int(many[0])]) == [(0, 10)]
    assert f.ranges([int(many[0]) + 1]) == [(20, 30)]
    f.add([Part(40, 50, 10, np.zeros(PAIRS_CAP + 1, dtype=np.uint64))])  # alone over the cap
    assert f.unknown_runs == 1
    assert f.ranges([12345]) == [(40, 50)]  # an unknown run is always read
    absent = rng.integers(0, 2**63, size=3_000, dtype=np.int64)
    false_runs = sum(len(f.ranges([int(h)])) - 1 for h in absent)
    assert false_runs / (2 * len(absent)) < 0.005  # ~0.1% by design


def test_the_memory_bound_folds_runs_without_losing_a_pair() -> None:
    f = AttrFilter(max_bytes=3 * _attr_filter.RUN_BYTES)
    f.begin_build()
    f.end_build(True)
    for i in range(6):
        f.add([Part(i * 100, i * 100 + 50, 10, np.array([i], dtype=np.uint64))])
        f.close_channel("writes")
    assert f.runs <= 3 and f.folds >= 3
    for i in range(6):
        assert any(lo <= i * 100 <= hi for lo, hi in f.ranges([i]))


def test_before_a_search_by_attribute_writes_add_nothing_and_the_build_waits_for_them() -> None:
    f = AttrFilter()
    f.add([Part(0, 1, 1, np.array([7], dtype=np.uint64))])  # not started: the table has it
    assert f.runs == 0
    in_write, finish, started = threading.Event(), threading.Event(), threading.Event()

    def write() -> None:
        with f.writing():
            in_write.set()
            finish.wait(5)

    def begin() -> None:
        f.begin_build()
        started.set()

    w = threading.Thread(target=write)
    w.start()
    assert in_write.wait(5)
    b = threading.Thread(target=begin)
    b.start()
    assert not started.wait(0.3)  # a write that began before: waited for
    finish.set()
    assert started.wait(5)
    w.join()
    b.join()
    with f.writing():
        f.add([Part(0, 1, 1, np.array([7], dtype=np.uint64))])
    assert f.ranges([7]) == [(0, 1)]


def test_a_store_closed_while_its_filter_is_built_stops_the_build_and_another_goes_on(
    tmp_path: Path, small_runs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_attr_filter, "BUILD_CHUNK_ROWS", 40)
    monkeypatch.setattr("faultlens.store.duckdb_store.ATTR_BUILD_WAIT_S", 0.0)
    rng = random.Random(4)
    path = tmp_path / "x.duckdb"
    first = DuckDBStore(path)
    rows = write_random(first, rng, batches=8, per_batch=100)
    first.close()
    writer, searcher = DuckDBStore(path), DuckDBStore(path)
    query = TraceQuery(attributes=(AttributeCondition("n", "nothing-has-this"),))
    assert writer.find_traces(query) == []  # starts the build on writer's thread, reads everything
    writer.close()  # stops it after the chunk it is reading
    assert writer._attr_builder is not None and not writer._attr_builder.is_alive()
    shared = searcher._attr_filter
    if not shared.ready:  # the next search goes on from where the build stopped
        searcher.find_traces(query)
        assert shared.wait_ready(30)
    assert check_same(searcher, rows, rng, 60) > 5
    searcher.close()


def test_a_key_written_twice_is_matched_as_the_search_reads_it(tmp_path: Path) -> None:
    store = ready(DuckDBStore(tmp_path / "x.duckdb"))
    store.write([spans_batch([span_row(trace=1, start=5 * SECOND, attributes='{"d":"one","d":"two"}')])])
    answers = {}
    for value in ("one", "two", "three"):
        query = TraceQuery(attributes=(AttributeCondition("d", value),))
        answers[value] = len(store.find_traces(query))
        assert store.find_traces(query) == unfiltered(store, query)
    assert answers["three"] == 0 and answers["one"] + answers["two"] == 1  # one of the two
    store.close()
