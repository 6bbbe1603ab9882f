"""Template counts per (service, window) and NEW / MISSING changes on synthetic streams."""

from __future__ import annotations

import json

import pyarrow as pa

from faultlens.analysis.templates import (
    ChangeKind,
    LogTemplateAnalyzer,
    TemplateAnalyzerConfig,
    TemplateCounter,
    TemplateCounterConfig,
    TemplateObservation,
)
from faultlens.decode.schema import LOG_SCHEMA
from faultlens.types import TimeRange

S = 1_000_000_000
W = 60 * S
CFG = TemplateCounterConfig(window_ns=W, warmup_windows=3, baseline_windows=5, min_baseline_windows=3)


def obs(t: int, tid: int, service: str = "svc") -> TemplateObservation:
    return TemplateObservation(service, tid, f"template {tid}", t)


def test_windows_close_on_data_time() -> None:
    c = TemplateCounter(CFG)
    windows, _ = c.observe([obs(1 * S, 1), obs(2 * S, 1), obs(30 * S, 2)])
    assert windows == []
    windows, _ = c.observe([obs(W + 1, 1)])
    assert [(w.window, w.counts) for w in windows] == [(TimeRange(0, W), ((1, 2), (2, 1)))]


def test_new_template_only_after_warmup() -> None:
    c = TemplateCounter(CFG)
    changes = []
    for i in range(6):
        changes += c.observe([obs(i * W + S, 1), obs(i * W + S, 1 + i)])[1]
    # Templates 2 and 3 appeared during warm-up (windows 0..2); 4, 5 and 6 after it.
    new = [(ch.template_id, ch.window.start_ns) for ch in changes if ch.kind is ChangeKind.NEW]
    assert new == [(4, 3 * W), (5, 4 * W)]  # window 5 (template 6) is not closed yet
    assert c.flush()[1][0].template_id == 6


def test_expected_template_goes_missing_once_and_can_come_back() -> None:
    c = TemplateCounter(CFG)
    changes = []
    for i in range(6):
        changes += c.observe([obs(i * W + S, 1), obs(i * W + S, 2)])[1]
    for i in range(6, 9):  # template 2 stops
        changes += c.observe([obs(i * W + S, 1)])[1]
    missing = [ch for ch in changes if ch.kind is ChangeKind.MISSING]
    assert [(m.template_id, m.window.start_ns) for m in missing] == [(2, 6 * W)]
    assert missing[0].baseline_presence == 1.0 and missing[0].expected == 1.0 and missing[0].observed == 0
    assert "absent" in missing[0].explanation
    # It comes back long enough to be expected again, then vanishes again: flagged again.
    changes = []
    for i in range(9, 15):
        changes += c.observe([obs(i * W + S, 1), obs(i * W + S, 2)])[1]
    for i in range(15, 18):
        changes += c.observe([obs(i * W + S, 1)])[1]
    assert [(ch.template_id, ch.window.start_ns) for ch in changes if ch.kind is ChangeKind.MISSING] == [
        (2, 15 * W)
    ]


def test_late_data_is_counted_as_dropped() -> None:
    c = TemplateCounter(CFG)
    c.observe([obs(S, 1), obs(2 * W + S, 1)])
    c.observe([obs(S, 1)])
    assert c.late_dropped == 1


def test_counter_state_round_trip() -> None:
    a = TemplateCounter(CFG)
    b = TemplateCounter(CFG)
    first = [obs(i * W + S, 1 + (i % 2)) for i in range(7)]
    rest = [obs(i * W + S, 1) for i in range(7, 12)]
    a.observe(first)
    b.observe(first)
    b = TemplateCounter.from_state(json.loads(json.dumps(b.export_state())), CFG)
    assert a.observe(rest) == b.observe(rest)


def logs(rows: list[tuple[str, str, int]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"service_name": s, "body": body, "time_unix_nano": t} for s, body, t in rows], schema=LOG_SCHEMA
    )


def test_analyzer_mines_per_service_and_survives_restart() -> None:
    config = TemplateAnalyzerConfig(counter=CFG)
    an = LogTemplateAnalyzer(config)
    rows = []
    for i in range(6):
        rows += [
            ("cart", f"added item {i} to cart {i * 7}", i * W + S),
            ("pay", f"charged card {i}", i * W + 2 * S),
        ]
    result = an.observe_logs(logs(rows))
    assert result.matches[0] is not None and result.matches[0].template == "added item <NUM> to cart <NUM>"
    assert {m.service for m in result.matches if m} == {"cart", "pay"}
    assert len(result.windows) == 10  # 5 closed windows x 2 services
    restored = LogTemplateAnalyzer.from_state(json.loads(json.dumps(an.export_state())), config)
    later = logs([("cart", "payment service unreachable, retrying", 6 * W + S), ("cart", "x", 7 * W + S)])
    r1, r2 = an.observe_logs(later), restored.observe_logs(later)
    assert r1 == r2
    # cart: the new line is NEW, and its usual template is absent from that window.
    assert [ch.kind for ch in r1.changes if ch.service == "cart"] == [ChangeKind.NEW, ChangeKind.MISSING]
    assert [ch.kind for ch in r1.changes if ch.service == "pay"] == [ChangeKind.MISSING]


def test_analyzer_skips_empty_bodies_and_uses_first_line() -> None:
    an = LogTemplateAnalyzer()
    r = an.observe_logs(logs([("a", "", 1), ("a", "boom 1\n\tat x.y(Z.java:1)", 2)]))
    assert r.matches[0] is None and r.matches[1] is not None and r.matches[1].template == "boom <NUM>"
