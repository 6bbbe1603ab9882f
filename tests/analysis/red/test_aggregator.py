"""RED windows: counts, errors, latency, edges across batches, self time, closing and lateness."""

from __future__ import annotations

import pytest
from red_spans import MS, S, Sp, table

from faultlens.analysis.red import RedAggregator, RedConfig, span_error_mask

T0 = 1_700_000_040  # a multiple of 60 s


def cfg(**kw: int) -> RedConfig:
    base = {"allowed_lateness_ns": 5 * S, "settle_ns": 2 * S, "parent_buffer_ns": 60 * S}
    base.update(kw)
    return RedConfig(**base)


def test_error_rule_uses_status_http_5xx_and_grpc() -> None:
    t = table(
        [
            Sp(1, None, "a", "x", T0, status=2),
            Sp(2, None, "a", "x", T0, http=503),
            Sp(3, None, "a", "x", T0, http=404),
            Sp(4, None, "a", "x", T0, grpc=14),
            Sp(5, None, "a", "x", T0, grpc=0),
            Sp(6, None, "a", "x", T0),
        ]
    )
    assert span_error_mask(t).tolist() == [True, True, False, True, False, False]


def test_window_counts_latency_and_closing_by_data_time() -> None:
    agg = RedAggregator(cfg())
    spans = [
        Sp(i, None, "front", "GET /", T0 + 1 + i * 0.1, dur_ms=10 + i, status=2 if i < 3 else 0)
        for i in range(100)
    ]
    assert not agg.consume(table(spans))  # window [T0, T0+60) still open
    assert not agg.consume(table([Sp(1000, None, "front", "GET /", T0 + 64)]))  # inside lateness
    out = agg.consume(table([Sp(1001, None, "front", "GET /", T0 + 66)]))
    assert len(out.red) == 1
    w = out.red[0]
    assert (w.service, w.operation, w.window_start_ns, w.window_ns) == ("front", "GET /", T0 * S, 60 * S)
    assert w.requests == 100 and w.errors == 3
    assert w.error_rate == pytest.approx(0.03)
    assert w.p50_ns == pytest.approx(59.5 * MS, rel=0.03)
    assert w.p99_ns == pytest.approx(108 * MS, rel=0.02)
    assert w.mean_ns == pytest.approx(59.5 * MS)


def test_late_spans_are_counted_not_lost_silently() -> None:
    agg = RedAggregator(cfg())
    agg.consume(table([Sp(1, None, "a", "op", T0 + 10)]))
    out = agg.consume(table([Sp(2, None, "a", "op", T0 + 130)]))
    assert [w.requests for w in out.red] == [1]
    agg.consume(table([Sp(3, None, "a", "op", T0 + 20)]))
    assert agg.counters.late_spans == 1
    assert sum(w.requests for w in agg.flush().red) == 1


def test_edges_found_without_span_kinds_across_batches_in_both_orders() -> None:
    agg = RedAggregator(cfg())
    # Child first (as an SDK exports), parent in a later batch.
    agg.consume(table([Sp(11, 10, "orders", "GET /order", T0 + 5, dur_ms=80)]))
    agg.consume(table([Sp(10, None, "front", "GET /", T0 + 6, dur_ms=100)]))
    # Parent first, child later.
    agg.consume(table([Sp(20, None, "front", "GET /", T0 + 7, dur_ms=50)]))
    agg.consume(table([Sp(21, 20, "orders", "GET /order", T0 + 6.5, dur_ms=40, http=500)]))
    # Same-service child: no edge.
    agg.consume(table([Sp(22, 20, "front", "render", T0 + 6.6, dur_ms=5)]))
    out = agg.flush()
    assert len(out.edges) == 1
    e = out.edges[0]
    assert (e.caller, e.callee, e.calls, e.errors) == ("front", "orders", 2, 1)
    assert e.latency.quantile(1.0) == pytest.approx(80 * MS, rel=0.01)


def test_self_time_subtracts_children_arriving_before_or_after_parent() -> None:
    agg = RedAggregator(cfg())
    agg.consume(table([Sp(2, 1, "b", "child", T0 + 10, dur_ms=30)]))
    agg.consume(table([Sp(1, None, "a", "root", T0 + 10.5, dur_ms=100)]))
    agg.consume(table([Sp(3, 1, "c", "child2", T0 + 10.2, dur_ms=20)]))  # after the parent, within settle
    out = agg.flush()
    root = next(w for w in out.red if w.operation == "root")
    assert root.self_time_sum_ns == pytest.approx(50 * MS)
    leaf = next(w for w in out.red if w.operation == "child")
    assert leaf.self_time_sum_ns == pytest.approx(30 * MS)


def test_orphans_whose_parent_never_arrives_are_counted() -> None:
    agg = RedAggregator(cfg())
    agg.consume(table([Sp(5, 99, "b", "x", T0 + 1)]))
    agg.advance((T0 + 400) * S)
    assert agg.counters.orphan_spans == 1


def test_ten_second_windows_and_several_keys() -> None:
    agg = RedAggregator(cfg(window_ns=10 * S, allowed_lateness_ns=2 * S, settle_ns=1 * S))
    spans = [Sp(i, None, "a" if i % 2 else "b", "op", T0 + i) for i in range(30)]
    out = agg.consume(table(spans))
    starts = sorted({(w.service, w.window_start_ns) for w in out.red})
    assert starts[:2] == [("a", T0 * S), ("a", (T0 + 10) * S)]
    assert sum(w.requests for w in out.red + agg.flush().red) == 30


def test_empty_table_and_flush_twice_are_harmless() -> None:
    agg = RedAggregator(cfg())
    assert not agg.consume(table([]))
    agg.consume(table([Sp(1, None, "a", "op", T0 + 1)]))
    assert len(agg.flush().red) == 1
    assert not agg.flush()


def test_config_rejects_settle_longer_than_lateness() -> None:
    with pytest.raises(ValueError, match="settle_ns"):
        RedConfig(allowed_lateness_ns=1 * S, settle_ns=2 * S)


def test_a_window_fed_by_one_batch_reports_each_key_once() -> None:
    """One batch, keys interleaved: each (service, operation, kind) is one window with all its
    spans, latency and self time (raw rows of a single batch are reduced like merged ones)."""
    spans = [Sp(i, None, "ab"[i % 2], "op", T0 + 1 + i / 10, dur_ms=10 + i) for i in range(1, 21)]
    spans += [Sp(100 + i, i, "c", "call", T0 + 1 + i / 10, dur_ms=5) for i in range(2, 21, 2)]  # a -> c
    agg = RedAggregator(cfg())
    assert not agg.consume(table(spans))  # nothing closes yet: all in one batch of one window
    out = agg.flush()
    keys = [(w.service, w.operation, w.span_kind) for w in out.red]
    assert sorted(keys) == sorted(set(keys)) == [("a", "op", 0), ("b", "op", 0), ("c", "call", 0)]
    by = {w.service: w for w in out.red}
    assert by["a"].requests == by["b"].requests == 10 and by["c"].requests == 10
    for w in out.red:
        assert w.latency.count == w.requests and w.self_time.count == w.requests
    assert by["a"].self_time_sum_ns == pytest.approx(by["a"].duration_sum_ns - 10 * 5 * MS)
    assert [(e.caller, e.callee, e.calls) for e in out.edges] == [("a", "c", 10)]


def test_spans_whose_data_time_stands_still_settle_within_the_bound() -> None:
    """A sender replaying the same timestamps: data time never passes the spans' settle
    time, so without the bound every span would wait to settle for ever."""
    agg = RedAggregator(cfg(max_settling_spans=250))
    for batch in range(20):
        base = (batch + 1) * 1000  # span id 0 would read as no id
        agg.consume(
            table(
                [Sp(base, None, "a", "op", T0 + 10, dur_ms=50)]
                + [Sp(base + i, base, "b", "call", T0 + 10, dur_ms=20) for i in range(1, 50)]
            )
        )
        assert agg.settling_spans <= 250 + 50
    assert agg.counters.settled_early >= 20 * 50 - 300
    by = {w.service: w for w in agg.flush().red}
    # Every span is counted once, and settling early kept the children of the same batch:
    # the parents' self time is their duration less their children's (floored at zero).
    assert by["a"].requests == 20 and by["b"].requests == 20 * 49
    assert by["a"].self_time.count == 20 and by["b"].self_time.count == 20 * 49
    assert by["a"].self_time_sum_ns == 0.0
    assert by["b"].self_time_sum_ns == pytest.approx(20 * 49 * 20 * MS)
