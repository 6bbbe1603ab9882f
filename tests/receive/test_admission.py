"""Admission control: memory soft limit with sampled RSS, in-flight bytes, gauges."""

from __future__ import annotations

import pytest

from faultlens.config.model import AdmissionConfig
from faultlens.errors import Overloaded
from faultlens.receive.admission import Admission
from faultlens.selfmetrics import SelfMetrics

MIB = 1024 * 1024


class FakeProcess:
    def __init__(self, rss: int) -> None:
        self.rss = rss
        self.reads = 0
        self.now = 0.0

    def read_rss(self) -> int:
        self.reads += 1
        return self.rss

    def clock(self) -> float:
        return self.now


def make(rss: int = 10 * MIB, **config: object) -> tuple[Admission, FakeProcess, SelfMetrics]:
    process = FakeProcess(rss)
    metrics = SelfMetrics()
    admission = Admission(
        AdmissionConfig.model_validate(config), metrics, rss=process.read_rss, clock=process.clock
    )
    return admission, process, metrics


def gauge(metrics: SelfMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def test_under_the_soft_limit_is_admitted() -> None:
    admission, _, metrics = make(rss=100 * MIB, memory_soft_limit_mib=200)
    with admission.admit(10):
        assert admission.inflight_bytes == 10
    assert gauge(metrics, "faultlens_admission_memory_soft_limit_bytes") == 200 * MIB
    assert gauge(metrics, "faultlens_process_rss_bytes") == 100 * MIB


def test_over_the_soft_limit_is_overloaded_with_the_configured_retry_after() -> None:
    admission, _, _ = make(rss=300 * MIB, memory_soft_limit_mib=200, retry_after="5s")
    with pytest.raises(Overloaded) as info:
        admission.admit(10)
    assert info.value.retry_after_s == 5.0
    assert "memory soft limit" in str(info.value)
    assert admission.inflight_bytes == 0


def test_rss_is_sampled_at_most_every_100_ms() -> None:
    admission, process, _ = make(rss=100 * MIB, memory_soft_limit_mib=200)
    for _ in range(50):
        admission.check_memory()
    assert process.reads == 1
    process.rss = 300 * MIB
    process.now = 0.05
    admission.check_memory()  # still the cached sample
    process.now = 0.1
    with pytest.raises(Overloaded):
        admission.check_memory()
    assert process.reads == 2


def test_no_soft_limit_never_reads_rss() -> None:
    admission, process, metrics = make(rss=10**12, memory_soft_limit_mib=None)
    admission.admit(1).release()
    assert process.reads == 0
    assert gauge(metrics, "faultlens_admission_memory_soft_limit_bytes") == 0


def test_inflight_bytes_over_the_limit_are_overloaded_and_given_back() -> None:
    admission, _, metrics = make(max_inflight_bytes=100, retry_after=2)
    first = admission.admit(60)
    assert gauge(metrics, "faultlens_admission_inflight_bytes") == 60
    second = admission.admit(30)
    with pytest.raises(Overloaded) as info:
        admission.admit(20)
    assert info.value.retry_after_s == 2.0
    with pytest.raises(Overloaded):
        second.grow(20)
    assert second.held == 30  # a refused growth keeps what was held
    first.release()
    second.grow(20)
    second.release()
    assert admission.inflight_bytes == 0
    assert gauge(metrics, "faultlens_admission_inflight_bytes") == 0


def test_one_request_larger_than_the_limit_is_let_through_alone() -> None:
    admission, _, _ = make(max_inflight_bytes=100)
    with admission.admit(50) as ticket:
        ticket.grow(500)  # nobody else is in flight: refusing would make it fail for ever
    other = admission.admit(10)
    with pytest.raises(Overloaded):
        admission.admit(500)
    other.release()


def test_release_is_idempotent_and_a_released_ticket_cannot_grow() -> None:
    admission, _, _ = make()
    ticket = admission.admit(10)
    ticket.release()
    ticket.release()
    assert admission.inflight_bytes == 0
    with pytest.raises(RuntimeError):
        ticket.grow(1)
