"""One lab run with every fault type, checked against what faultlens stored.

A test topology (``fanout.yaml``, loaded as a user file) has a gateway that calls nine
leaves on every request, in parallel, so nine faults on nine leaves can run at the same
time and each shows on its own leaf; CPU contention runs alone after them (it takes one of
the machine's CPUs). Every fault is real and is told to the service over its control
endpoint or done from outside; the assertions read only the telemetry the services sent.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from faultlens.lab.faults import FaultLabel, FaultType, ScheduledFault, read_labels
from faultlens.lab.netns import NetworkFaults
from faultlens.lab.runner import LabOptions, LabRunner
from faultlens.lab.topology import load_topology
from faultlens.testing.inprocess import InProcessServer

from .conftest import HERE, SPAN_CLIENT, SPAN_SERVER, STATUS_ERROR, server_config, settle, stored

S = 1_000_000_000
BASELINE_S = 4.0
FAULT_S = 5.0

CONCURRENT = [
    ScheduledFault(at=0, duration=FAULT_S, service="l-exc", type=FaultType.EXCEPTION),
    ScheduledFault(at=0, duration=FAULT_S, service="l-wrong", type=FaultType.WRONG_RETURN),
    ScheduledFault(at=0, duration=FAULT_S, service="l-down", type=FaultType.DEPENDENCY_DOWN),
    ScheduledFault(at=0, duration=FAULT_S, service="l-db", type=FaultType.DB_LOCK),
    ScheduledFault(
        at=0, duration=FAULT_S, service="l-slow", type=FaultType.LATENCY, params={"delay_ms": 300}
    ),
    ScheduledFault(
        at=0, duration=FAULT_S, service="l-leak", type=FaultType.MEMORY_LEAK, params={"mb_per_s": 10}
    ),
    ScheduledFault(
        at=0, duration=FAULT_S, service="l-pool", type=FaultType.POOL_EXHAUSTION, params={"leak_p": 1}
    ),
    ScheduledFault(
        at=0,
        duration=FAULT_S,
        service="l-wire",
        type=FaultType.NETWORK_DELAY,
        params={"delay_ms": 300, "loss": 0.2},
    ),
    ScheduledFault(
        at=0, duration=FAULT_S, service="l-creep", type=FaultType.LATENCY_CREEP, params={"max_delay_ms": 600}
    ),
]
CPU = ScheduledFault(
    at=0, duration=FAULT_S, service="l-cpu", type=FaultType.CPU_CONTENTION, params={"burners": 8}
)


@dataclass
class Run:
    labels: dict[str, FaultLabel]  # by service
    asked_ns: dict[str, int]  # when the test asked for each fault
    t0: int
    data: dict[str, list[dict[str, Any]]]

    def spans(self, service: str, kind: int = SPAN_SERVER) -> list[dict[str, Any]]:
        return [s for s in self.data["spans"] if s["service_name"] == service and s["kind"] == kind]

    def baseline(self, rows: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
        # up to half a second before the fault: a request in flight when it starts may fail
        start = self.labels[service].start_ns - S // 2
        return [r for r in rows if self.t0 + 1 * S <= r["start_time_unix_nano"] < start]

    def during(self, rows: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
        label = self.labels[service]
        assert label.end_ns is not None
        return [r for r in rows if label.start_ns <= r["start_time_unix_nano"] < label.end_ns]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("lab-faults")
    srv = InProcessServer(server_config(root / "server"))
    lab = LabRunner(
        load_topology(HERE / "fanout.yaml"),
        root / "lab",
        LabOptions(
            endpoint=f"127.0.0.1:{srv.ports['otlp-grpc']}",
            export_interval_s=0.5,
            seed=7,
            network=NetworkFaults.INPROCESS,  # the in-process wrapper is what these tests check
        ),
    )
    asked: dict[str, int] = {}
    try:
        lab.start()
        t0 = time.time_ns()
        time.sleep(BASELINE_S)
        ids = {}
        for f in CONCURRENT:
            asked[f.service] = time.time_ns()
            ids[f.service] = lab.inject(f).id
        time.sleep(FAULT_S)
        for f in CONCURRENT:
            lab.clear(ids[f.service])
        time.sleep(3.0)  # the killed leaf is back: its spans must resume
        asked[CPU.service] = time.time_ns()
        cpu = lab.inject(CPU)
        time.sleep(FAULT_S)
        lab.clear(cpu.id)
        time.sleep(1.0)
    finally:
        lab.shutdown()
    try:
        settle(srv)
        labels = {lb.service: lb for lb in read_labels(root / "lab" / "labels.jsonl")}
        yield Run(labels, asked, t0, stored(srv))
    finally:
        srv.stop()


def _errors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status_code"] == STATUS_ERROR]


def _error_share(rows: list[dict[str, Any]]) -> float:
    """Errors among ``rows``; the baselines allow a few (a loaded machine times a call out)."""
    assert rows, "no spans"
    return len(_errors(rows)) / len(rows)


def _median_ms(rows: list[dict[str, Any]]) -> float:
    assert rows, "no spans"
    return float(statistics.median(r["duration_ns"] for r in rows)) / 1e6


def _self_ms(run: Run, rows: list[dict[str, Any]]) -> float:
    """Median of a span's own time: its duration less its children's."""
    children: dict[bytes, int] = {}
    for s in run.data["spans"]:
        if s["parent_span_id"]:
            children[s["parent_span_id"]] = children.get(s["parent_span_id"], 0) + s["duration_ns"]
    return float(statistics.median(r["duration_ns"] - children.get(r["span_id"], 0) for r in rows)) / 1e6


def test_labels_are_written_when_each_fault_starts_and_stops(run: Run) -> None:
    assert set(run.labels) == {f.service for f in [*CONCURRENT, CPU]}
    for service, label in run.labels.items():
        assert label.end_ns is not None and label.end_ns > label.start_ns
        assert 0 <= label.start_ns - run.asked_ns[service] < 1 * S, service
        assert label.instance == f"{service}-1"
    assert run.labels["l-leak"].onset.value == "gradual" and run.labels["l-exc"].onset.value == "abrupt"
    assert "SIGKILL" in run.labels["l-down"].mechanism


def test_spans_of_every_service_link_parent_and_child_across_processes(run: Run) -> None:
    by_id = {s["span_id"]: s for s in run.data["spans"]}
    services = {s["service_name"] for s in run.data["spans"]}
    assert services == {"gateway", *run.labels}
    for leaf in run.labels:
        linked = [
            s
            for s in run.baseline(run.spans(leaf), leaf)
            if (p := by_id.get(s["parent_span_id"])) is not None
            and p["service_name"] == "gateway"
            and p["kind"] == SPAN_CLIENT
            and p["trace_id"] == s["trace_id"]
        ]
        assert len(linked) >= 5, leaf
    assert _error_share(run.baseline(run.spans("gateway"), "l-exc")) < 0.1


def test_exception_raises_that_services_error_spans_from_its_label_start(run: Run) -> None:
    spans = run.spans("l-exc")
    assert _error_share(run.baseline(spans, "l-exc")) < 0.05
    assert _error_share(run.during(spans, "l-exc")) > 0.3  # rate 0.5
    during = _errors(run.during(spans, "l-exc"))
    label = run.labels["l-exc"]
    assert label.end_ns is not None
    first = min(s["start_time_unix_nano"] for s in _errors(spans))
    last = max(s["start_time_unix_nano"] for s in _errors(spans))
    assert label.start_ns - 1 * S <= first <= label.start_ns + 1 * S
    assert last <= label.end_ns + 1 * S
    assert during[0]["exception_type"] == "faultlens.lab.service.LabFaultError"


def test_wrong_return_raises_the_callers_error_logs(run: Run) -> None:
    errors = [
        r
        for r in run.data["logs"]
        if r["service_name"] == "gateway"
        and r["severity_number"] >= 17
        and "bad response from l-wrong" in r["body"]
    ]
    label = run.labels["l-wrong"]
    assert label.end_ns is not None
    assert len(errors) >= 5
    assert all(label.start_ns - 1 * S <= r["time_unix_nano"] <= label.end_ns + 1 * S for r in errors)
    # the callee itself answered 200: its own spans are fine
    assert _error_share(run.during(run.spans("l-wrong"), "l-wrong")) < 0.05


def test_dependency_down_fails_the_callers_client_spans_and_the_service_comes_back(run: Run) -> None:
    clients = [s for s in run.spans("gateway", SPAN_CLIENT) if s["peer_service"] == "l-down"]
    assert _error_share(run.baseline(clients, "l-down")) < 0.05
    assert _error_share(run.during(clients, "l-down")) > 0.9
    failed = _errors(run.during(clients, "l-down"))
    label = run.labels["l-down"]
    assert label.end_ns is not None
    assert min(s["start_time_unix_nano"] for s in failed) <= label.start_ns + 1 * S
    assert not run.during(run.spans("l-down"), "l-down")  # no server spans while it is down
    assert any(s["start_time_unix_nano"] > label.end_ns for s in run.spans("l-down"))


def test_db_lock_fails_the_services_requests_with_database_is_locked(run: Run) -> None:
    spans = run.spans("l-db")
    assert _error_share(run.baseline(spans, "l-db")) < 0.05
    locked = [
        s for s in _errors(run.during(spans, "l-db")) if "database is locked" in (s["status_message"] or "")
    ]
    assert len(locked) >= 3


def test_latency_and_latency_creep_raise_the_services_durations(run: Run) -> None:
    slow = run.spans("l-slow")
    assert _median_ms(run.baseline(slow, "l-slow")) < 100
    assert _median_ms(run.during(slow, "l-slow")) >= 300
    creep = sorted(run.during(run.spans("l-creep"), "l-creep"), key=lambda s: s["start_time_unix_nano"])
    third = len(creep) // 3
    early, late = _median_ms(creep[:third]), _median_ms(creep[-third:])
    assert late > early + 150, (early, late)  # gradual: it grows over the fault
    assert _median_ms(run.baseline(run.spans("l-creep"), "l-creep")) < early + 50


def test_network_delay_slows_the_callers_side_only_and_loss_times_calls_out(run: Run) -> None:
    own = run.spans("l-wire")
    assert _median_ms(run.during(own, "l-wire")) < 100  # the service's own spans do not see it
    calls = [
        s
        for s in run.spans("gateway", SPAN_CLIENT)
        if json.loads(s["attributes"] or "{}").get("peer.service") == "l-wire"
    ]
    assert _median_ms(run.baseline(calls, "l-wire")) < 100
    during = run.during(calls, "l-wire")
    assert _median_ms(during) >= 300  # the gateway waits on the wire
    assert _errors(during), "no call timed out under 20% loss"
    mechanism = run.labels["l-wire"].mechanism
    assert mechanism.startswith("in-process") and "tc netem not used: in-process" in mechanism


def test_memory_leak_raises_the_process_memory_metric(run: Run) -> None:
    points = [
        p
        for p in run.data["metrics"]
        if p["service_name"] == "l-leak" and p["metric_name"] == "process.memory.usage"
    ]
    label = run.labels["l-leak"]
    assert label.end_ns is not None
    before = [p["value"] or p["value_int"] for p in points if p["time_unix_nano"] < label.start_ns]
    during = [
        p["value"] or p["value_int"] for p in points if label.start_ns <= p["time_unix_nano"] <= label.end_ns
    ]
    assert before and during
    assert max(during) - max(before) > 25 * 1024 * 1024


def test_pool_exhaustion_fails_requests_once_the_pool_is_gone(run: Run) -> None:
    spans = run.during(run.spans("l-pool"), "l-pool")
    failed = [s for s in _errors(spans) if s["exception_type"] == "faultlens.lab.service.PoolExhausted"]
    assert failed
    label = run.labels["l-pool"]
    first = min(s["start_time_unix_nano"] for s in failed)
    assert first > label.start_ns + 1 * S  # gradual: the leaked slots run out first
    assert _error_share(run.baseline(run.spans("l-pool"), "l-pool")) < 0.05


def test_cpu_contention_raises_the_services_self_time(run: Run) -> None:
    spans = run.spans("l-cpu")
    quiet_from = run.labels["l-exc"].end_ns or 0  # the other faults ended before this one
    before = [
        s for s in spans if quiet_from + 1 * S <= s["start_time_unix_nano"] < run.labels["l-cpu"].start_ns
    ]
    before_ms = _self_ms(run, before)
    during = _self_ms(run, run.during(spans, "l-cpu"))
    assert during > 1.5 * before_ms, (before_ms, during)
