"""Backoff schedule and the circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import random

import pytest

from faultlens.export.breaker import BreakerState, CircuitBreaker
from faultlens.export.config import BreakerConfig, RetryConfig
from faultlens.export.retry import Backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_to_the_cap_within_jitter() -> None:
    cfg = RetryConfig(initial_interval=1, max_interval=4, multiplier=2, randomization_factor=0.5)
    b = Backoff(cfg, random.Random(1))
    delays = [b.next_delay() for _ in range(6)]
    for delay, base in zip(delays, [1, 2, 4, 4, 4, 4], strict=True):
        assert base * 0.5 <= delay <= base * 1.5


def test_backoff_without_jitter_is_exact_and_server_hint_wins() -> None:
    b = Backoff(RetryConfig(initial_interval=0.5, multiplier=3, randomization_factor=0, max_interval=10))
    assert [b.next_delay(), b.next_delay(), b.next_delay(hint_s=7.0), b.next_delay()] == [0.5, 1.5, 7.0, 10.0]


def test_max_elapsed_time_bounds_the_sequence() -> None:
    b = Backoff(RetryConfig(max_elapsed_time=10))
    assert not b.exhausted(spent_s=5, delay_s=4)
    assert b.exhausted(spent_s=5, delay_s=6)
    assert not Backoff(RetryConfig(max_elapsed_time=0)).exhausted(1e9, 1e9)


def _breaker(**kw: object) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    cfg = BreakerConfig.model_validate({"failure_threshold": 3, "open_duration": 10, **kw})
    return CircuitBreaker(cfg, clock), clock


def test_opens_after_threshold_consecutive_failures() -> None:
    br, _ = _breaker()
    for _ in range(2):
        p = br.try_acquire()
        assert p is not None
        br.record_failure(p)
    p = br.try_acquire()
    assert p is not None
    br.record_success(p)  # resets the count
    for _ in range(3):
        p = br.try_acquire()
        assert p is not None
        br.record_failure(p)
    assert br.state is BreakerState.OPEN
    assert br.try_acquire() is None


def test_half_open_limits_probes_and_closes_on_success() -> None:
    br, clock = _breaker(half_open_probes=2, success_threshold=2)
    for _ in range(3):
        br.record_failure(br.try_acquire())  # type: ignore[arg-type]
    clock.now += 9.9
    assert br.try_acquire() is None
    assert br.wait_hint() == pytest.approx(0.1)
    clock.now += 0.1
    p1, p2 = br.try_acquire(), br.try_acquire()
    assert p1 is not None and p2 is not None and p1.probe
    assert br.state is BreakerState.HALF_OPEN
    assert br.try_acquire() is None  # both probe slots taken
    br.record_success(p1)
    assert br.state is BreakerState.HALF_OPEN
    br.record_success(p2)
    assert br.state is BreakerState.CLOSED


def test_half_open_failure_reopens_and_unused_permit_is_returned() -> None:
    br, clock = _breaker()
    for _ in range(3):
        br.record_failure(br.try_acquire())  # type: ignore[arg-type]
    clock.now += 10
    p = br.try_acquire()
    assert p is not None
    br.release(p)
    p = br.try_acquire()
    assert p is not None  # the released slot is free again
    br.record_failure(p)
    assert br.state is BreakerState.OPEN
    assert br.wait_hint() == pytest.approx(10)


def test_stale_results_do_not_move_the_breaker() -> None:
    br, _ = _breaker(failure_threshold=1)
    early = br.try_acquire()
    trip = br.try_acquire()
    assert early is not None and trip is not None
    br.record_failure(trip)
    assert br.state is BreakerState.OPEN
    br.record_success(early)  # started before it opened: ignored
    assert br.state is BreakerState.OPEN


def test_disabled_breaker_always_permits() -> None:
    br, _ = _breaker(enabled=False)
    for _ in range(10):
        p = br.try_acquire()
        assert p is not None
        br.record_failure(p)
    assert br.state is BreakerState.CLOSED
