"""The analyzer with the skeleton miner: folded templates in batches and counts, state and migration."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from faultlens.analysis.templates import (
    Drain,
    LogTemplateAnalyzer,
    MinerKind,
    TemplateAnalyzerConfig,
    TemplateCounterConfig,
    TemplateMerge,
)
from faultlens.decode.schema import LOG_SCHEMA

S = 1_000_000_000
W = 60 * S
COUNTER = TemplateCounterConfig(window_ns=W, warmup_windows=2, baseline_windows=4, min_baseline_windows=2)
USERS = ("ann", "bob", "cid", "dan")


def logs(rows: list[tuple[str, str, int]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"service_name": s, "body": body, "time_unix_nano": t} for s, body, t in rows], schema=LOG_SCHEMA
    )


def closed_sessions(window: int, users: tuple[str, ...]) -> list[tuple[str, str, int]]:
    return [("auth", f"session closed for user {u}", window * W + (i + 1) * S) for i, u in enumerate(users)]


def test_a_fold_reports_the_surviving_id_and_moves_the_counts() -> None:
    an = LogTemplateAnalyzer(TemplateAnalyzerConfig(counter=COUNTER))
    first = an.observe_logs(logs([r for w in range(5) for r in closed_sessions(w, USERS)]))
    ids = {m.template_id for m in first.matches if m is not None}
    assert len(ids) == 4 and first.merges == ()
    # a fifth user in one slot: the slot is a variable, the four templates fold into one
    fold = an.observe_logs(logs(closed_sessions(5, ("eve", "ann"))))
    kept = {m.template_id for m in fold.matches if m is not None}
    assert len(kept) == 1 and kept <= ids
    (survivor,) = kept
    assert {(m.old_id, m.new_id) for m in fold.merges} == {(i, survivor) for i in ids - kept}
    assert all(isinstance(m, TemplateMerge) and m.service == "auth" for m in fold.merges)
    assert {m.template for m in fold.matches if m is not None} == {"session closed for user <*>"}
    # the window of the fold closes: the folded ids are not MISSING, the survivor is not NEW
    after = an.observe_logs(logs(closed_sessions(6, ("fay",))))
    assert [w.counts for w in after.windows] == [((survivor, 2),)]
    assert after.changes == ()
    assert an.template("auth", survivor) == "session closed for user <*>"


def test_a_fold_inside_one_batch_rewrites_the_earlier_rows() -> None:
    an = LogTemplateAnalyzer(TemplateAnalyzerConfig(counter=COUNTER))
    result = an.observe_logs(logs(closed_sessions(0, (*USERS, "eve"))))
    assert len({m.template_id for m in result.matches if m is not None}) == 1
    assert len(result.merges) == 3


def _fill(an: LogTemplateAnalyzer) -> None:
    an.observe_logs(
        logs(
            [r for w in range(3) for r in closed_sessions(w, USERS)]
            + [("api", f"GET /v1/items/{i} answered 200 in {i * 3} ms", i * W) for i in range(3)]
        )
    )


def test_state_round_trip_with_the_skeleton_miner() -> None:
    config = TemplateAnalyzerConfig(counter=COUNTER)
    an = LogTemplateAnalyzer(config)
    _fill(an)
    state = json.loads(json.dumps(an.export_state()))
    assert state["miner"] == "skeleton"
    restored = LogTemplateAnalyzer.from_state(state, config)
    more = logs([*closed_sessions(3, ("eve", "ann")), ("api", "GET /v1/items/9 answered 500 in 2 ms", 3 * W)])
    assert an.observe_logs(more) == restored.observe_logs(more)
    assert an.export_state() == restored.export_state()


def _drain_v1_state(an: LogTemplateAnalyzer) -> dict[str, Any]:
    """A state as the analyzer saved it before it had more than one kind of miner."""
    state = an.export_state()
    return {
        "version": 1,
        "drains": state["miners"],
        "counter": state["counter"],
        "dropped_services_lines": 0,
    }


def test_a_drain_state_restores_as_drain_or_starts_the_skeleton_after_its_ids() -> None:
    drain_config = TemplateAnalyzerConfig(miner=MinerKind.DRAIN, counter=COUNTER)
    old = LogTemplateAnalyzer(drain_config)
    _fill(old)
    tree = old.miner_for("auth")
    assert isinstance(tree, Drain)
    top = max(c.cluster_id for c in tree.clusters)
    v1 = json.loads(json.dumps(_drain_v1_state(old)))
    more = logs([("auth", "session opened for user ann", 3 * W + S)])
    # the same config: the trees come back as they were
    as_drain = LogTemplateAnalyzer.from_state(v1, drain_config)
    assert as_drain.observe_logs(more) == old.observe_logs(more)
    # the skeleton miner: a fresh start, ids above every id the tree gave, and no old windows
    skel = LogTemplateAnalyzer.from_state(v1, TemplateAnalyzerConfig(counter=COUNTER))
    (m,) = skel.observe_logs(more).matches
    assert m is not None and m.template_id > top
    again = LogTemplateAnalyzer.from_state(json.loads(json.dumps(skel.export_state())), skel.config)
    (m2,) = again.observe_logs(logs([("auth", "user dan logged out", 4 * W)])).matches
    assert m2 is not None and m2.template_id > m.template_id


def test_a_skeleton_state_under_a_drain_config_starts_drain_after_its_ids() -> None:
    skel = LogTemplateAnalyzer(TemplateAnalyzerConfig(counter=COUNTER))
    _fill(skel)
    state = json.loads(json.dumps(skel.export_state()))
    drain_config = TemplateAnalyzerConfig(miner=MinerKind.DRAIN, counter=COUNTER)
    back = LogTemplateAnalyzer.from_state(state, drain_config)
    (m,) = back.observe_logs(logs([("auth", "session opened for user ann", 3 * W)])).matches
    assert m is not None and m.template_id >= state["miners"]["auth"]["next_id"]
