"""rank_root_causes finds a known culprit, with the right reason, for each kind of fault."""

from __future__ import annotations

import pytest

from faultlens.rca import BaselineModel, Observations, RcaConfig, Reason, rank_root_causes

from .synth import MIN, PODS, Knobs, baseline, concat, observations, window

BASE = baseline()


def _top(k: Knobs):
    result = rank_root_causes(window(k), BASE, RcaConfig())
    assert result.candidates, "no candidate at all"
    return result


def test_no_change_gives_no_strong_candidate() -> None:
    result = rank_root_causes(window(Knobs()), BASE)
    assert all(c.score < 0.2 for c in result.candidates)


def test_missing_log_statement_is_blamed_on_the_service_not_its_reacting_caller() -> None:
    result = _top(Knobs(b_locations=("B#1",), front_error_log=True))
    top = result.candidates[0]
    assert (top.service, top.reason, top.operation) == ("b", Reason.LOG_PATTERN, "/api/b")
    assert "missing B#2" in top.evidence[0]


def test_new_log_statement_is_found() -> None:
    top = _top(Knobs(b_locations=("B#1", "B#2", "B#7"))).candidates[0]
    assert (top.service, top.reason) == ("b", Reason.LOG_PATTERN)
    assert "new B#7" in top.evidence[0]


def test_slow_execution_is_blamed_on_the_slow_pod_not_its_callers() -> None:
    top = _top(Knobs(c_extra_ns=60_000_000)).candidates[0]
    assert (top.service, top.reason, top.pod) == ("c", Reason.SLOW_EXECUTION, PODS["c"])


def test_time_added_on_calls_into_a_service_blames_the_callee() -> None:
    top = _top(Knobs(ab_gap_ns=200_000_000)).candidates[0]
    assert (top.service, top.reason, top.pod) == ("b", Reason.SLOW_CALLS_INTO, PODS["b"])


def test_cpu_saturation_names_the_pod_and_the_figures() -> None:
    top = _top(Knobs(cpu_c=95.0)).candidates[0]
    assert (top.service, top.reason, top.pod) == ("c", Reason.CPU_SATURATION, PODS["c"])
    assert "96% vs baseline" in top.evidence[0] and "robust z" in top.evidence[0]


def test_error_origin_is_the_deepest_failing_span() -> None:
    top = _top(Knobs(b_status_error=True)).candidates[0]
    assert (top.service, top.reason, top.operation) == ("b", Reason.ERROR_ORIGIN, "/api/b")


@pytest.mark.parametrize("knobs", [Knobs(b_locations=("B#1",)), Knobs(c_extra_ns=60_000_000)])
def test_ranking_is_deterministic(knobs: Knobs) -> None:
    a = rank_root_causes(window(knobs), BASE)
    b = rank_root_causes(window(knobs), BASE)
    assert a.candidates == b.candidates


def test_empty_window_and_baseline_give_no_candidates() -> None:
    empty = window(Knobs())
    empty = type(empty)(empty.spans.slice(0, 0), empty.logs.slice(0, 0), empty.metrics.slice(0, 0))
    assert rank_root_causes(empty, empty).candidates == ()


def _drifting_baseline() -> Observations:
    """Ten baseline minutes; b's requests take one branch (B#3 logged or not) per minute."""
    minutes = []
    for m in range(10):
        locs = ("B#1", "B#2", "B#3") if m % 2 else ("B#1", "B#2")
        minutes.append(observations(30, m * MIN, Knobs(b_locations=locs), first_trace=1 + 30 * m, minutes=1))
    return concat(*minutes)


def test_return_to_a_pattern_usual_in_some_baseline_minutes_is_not_blamed() -> None:
    base = _drifting_baseline()
    k = Knobs(b_locations=("B#1", "B#2", "B#3"), c_extra_ns=60_000_000)
    result = rank_root_causes(window(k), base, RcaConfig())
    assert result.candidates[0].service == "c"
    assert all(c.score < 0.1 for c in result.candidates if c.service == "b")
    # the pooled share alone (half of the baseline without B#3) would blame b strongly
    pooled = rank_root_causes(window(k), base, RcaConfig(baseline_model=BaselineModel.POOLED))
    assert max(c.score for c in pooled.candidates if c.service == "b") > 0.3


def test_a_pattern_that_never_drifts_is_still_a_change() -> None:
    base = _drifting_baseline()
    top = rank_root_causes(window(Knobs(b_locations=("B#1",))), base, RcaConfig()).candidates[0]
    assert (top.service, top.reason) == ("b", Reason.LOG_PATTERN)
    assert "missing B#2" in top.evidence[0]


def test_small_but_unanimous_slow_calls_outrank_a_weaker_larger_change() -> None:
    base = baseline(Knobs(d_every=10))
    # 11 calls into d, every one delayed by 1 s; half of b's 110 requests log a new statement
    k = Knobs(d_every=10, cd_gap_ns=1_000_000_000, b_new_every=2)
    result = rank_root_causes(window(k, n=110), base, RcaConfig())
    top = result.candidates[0]
    assert (top.service, top.reason, top.pod) == ("d", Reason.SLOW_CALLS_INTO, PODS["d"])
    assert "11 of 11" in top.evidence[0]
    b = next(c for c in result.candidates if c.service == "b")
    assert b.reason is Reason.LOG_PATTERN and "new B#7" in b.evidence[0]


def test_a_caller_that_parts_from_its_usual_path_after_a_call_hands_the_blame_to_that_callee() -> None:
    top = _top(Knobs(a_skips_c_every=2)).candidates[0]
    assert (top.service, top.reason) == ("b", Reason.CHANGED_ANSWER)
    assert top.evidence[0].startswith("b: callers took another path right after its answer: a: /api/a")
    assert "new A#9" in top.evidence[0]


def test_a_path_the_baseline_takes_too_stays_with_the_caller() -> None:
    base = concat(BASE, observations(300, 10 * MIN, Knobs(a_skips_c_every=5), first_trace=50_000, minutes=10))
    result = rank_root_causes(window(Knobs(a_skips_c_every=2)), base, RcaConfig())
    top = result.candidates[0]
    assert (top.service, top.reason) == ("a", Reason.LOG_PATTERN)


def _ranked(k: Knobs):
    base = baseline(Knobs(span_kinds=True))
    return rank_root_causes(window(k), base, RcaConfig()).candidates


def test_a_callee_that_sends_no_spans_is_named_by_its_callers_failed_client_spans() -> None:
    """c killed: a's CLIENT spans into it fail with no child; peer.service names c."""
    top = _ranked(Knobs(span_kinds=True, c_down=True))[0]
    assert (top.service, top.reason) == ("c", Reason.FAILED_CALLS_INTO)
    assert "were calls into it that failed while its own span did not" in top.evidence[0]
    assert top.pod == "" and " on " not in top.evidence[0]  # c's pod is unknown: not the caller's


def test_an_answer_the_caller_rejects_is_the_callee_s() -> None:
    """c's spans are fine, but a's CLIENT spans into c fail: the caller rejected c's answer."""
    ranked = _ranked(Knobs(span_kinds=True, c_answer_rejected=True))
    top = ranked[0]
    assert (top.service, top.reason, top.pod) == ("c", Reason.FAILED_CALLS_INTO, PODS["c"])
    assert all(c.service != "a" or c.score < top.score for c in ranked)


def test_a_callee_whose_own_span_fails_stays_its_error_origin() -> None:
    top = _ranked(Knobs(span_kinds=True, b_status_error=True))[0]
    assert (top.service, top.reason, top.operation) == ("b", Reason.ERROR_ORIGIN, "/api/b")


def test_without_span_kinds_failed_calls_are_the_caller_s_as_before() -> None:
    """Spans that do not say CLIENT (kind 0, as in the Nezha data) never form the family:
    a's failed call into a silent c is a's own error origin."""
    ranked = rank_root_causes(window(Knobs(c_down=True)), BASE, RcaConfig()).candidates
    assert ranked[0].service == "a" and ranked[0].reason is Reason.ERROR_ORIGIN
    assert all(c.reason is not Reason.FAILED_CALLS_INTO for c in ranked)
