"""Network faults through network namespaces: the plumbing, netem, the fallback and the cleanup.

The namespace tests need root and iproute2; they make real namespaces, veths and a bridge,
run real services in them, and read what faultlens stored. The netem test runs only where
the kernel has netem (it says why it skips elsewhere); the fallback test runs where it has
not, or without root, and checks that the label says the fault was done in-process and why.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

from faultlens.lab.faults import FaultType, ScheduledFault, read_labels
from faultlens.lab.netns import (
    STEM,
    NetemSupport,
    NetnsError,
    NetworkFaults,
    netem_args,
    plan_network,
    probe_netem,
    remove_leftovers,
)
from faultlens.lab.runner import LabOptions, LabRunner
from faultlens.lab.topology import load_topology
from faultlens.testing.inprocess import InProcessServer

from .conftest import (
    HERE,
    ROOT,
    SPAN_CLIENT,
    SPAN_SERVER,
    cli_command,
    lab_names_with,
    settle,
    stop_with_ctrl_c,
    stored,
    wait_line,
)

needs_root = pytest.mark.skipif(not ROOT, reason="network namespaces need root and iproute2 (ip, tc)")
TOPOLOGY = HERE / "netns.yaml"
MISSING = NetemSupport(False, "the kernel has no tc netem (sch_netem)")
PRESENT = NetemSupport(True, "tc netem works in a network namespace")


def _netns_of(pid: int | None) -> str:
    assert pid is not None
    done = subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _options(
    server: InProcessServer, network: NetworkFaults, targets: tuple[str, ...], **kw: Any
) -> LabOptions:
    return LabOptions(
        endpoint=f"127.0.0.1:{server.ports['otlp-grpc']}",
        export_interval_s=0.5,
        seed=3,
        network=network,
        network_targets=targets,
        **kw,
    )


def _linked(data: dict[str, list[dict[str, Any]]], caller: str, callee: str) -> int:
    """Spans of ``callee`` whose parent is a CLIENT span of ``caller`` in the same trace."""
    by_id = {s["span_id"]: s for s in data["spans"]}
    return sum(
        1
        for s in data["spans"]
        if s["service_name"] == callee
        and s["kind"] == SPAN_SERVER
        and (p := by_id.get(s["parent_span_id"])) is not None
        and p["service_name"] == caller
        and p["kind"] == SPAN_CLIENT
        and p["trace_id"] == s["trace_id"]
    )


def _calls_ms(data: dict[str, list[dict[str, Any]]], caller: str, callee: str, start: int, end: int) -> float:
    rows = [
        s["duration_ns"]
        for s in data["spans"]
        if s["service_name"] == caller
        and s["kind"] == SPAN_CLIENT
        and json.loads(s["attributes"] or "{}").get("peer.service") == callee
        and start <= s["start_time_unix_nano"] < end
    ]
    assert rows, f"no calls from {caller} to {callee}"
    return float(statistics.median(rows)) / 1e6


# --- the plan ---------------------------------------------------------------------------------


def test_the_plan_follows_the_mode_root_and_the_kernel() -> None:
    def root() -> bool:
        return True

    def user() -> bool:
        return False

    def missing() -> NetemSupport:
        return MISSING

    def present() -> NetemSupport:
        return PRESENT

    asked = plan_network(NetworkFaults.INPROCESS, targets=3, is_root=root, probe=present)
    assert not asked.namespaces and not asked.netem and "inprocess" in asked.reason
    nobody = plan_network(NetworkFaults.AUTO, targets=0, is_root=root, probe=present)
    assert not nobody.namespaces and "no service" in nobody.reason
    as_user = plan_network(NetworkFaults.AUTO, targets=3, is_root=user, probe=present)
    assert not as_user.namespaces and as_user.reason.startswith("not root")
    with pytest.raises(NetnsError, match="asked for \\(netns\\) but not root"):
        plan_network(NetworkFaults.NETNS, targets=3, is_root=user, probe=present)
    if ROOT:  # past the root check, the plan needs the ip and tc commands
        auto = plan_network(NetworkFaults.AUTO, targets=3, is_root=root, probe=missing)
        assert (auto.namespaces, auto.netem, auto.reason) == (False, False, MISSING.reason)
        forced = plan_network(NetworkFaults.NETNS, targets=3, is_root=root, probe=missing)
        assert (forced.namespaces, forced.netem, forced.reason) == (True, False, MISSING.reason)
        for mode in (NetworkFaults.AUTO, NetworkFaults.NETNS):
            full = plan_network(mode, targets=3, is_root=root, probe=present)
            assert (full.namespaces, full.netem) == (True, True)


def test_netem_arguments_name_delay_jitter_and_loss_in_tc_units() -> None:
    assert netem_args(300, 0, 0) == ["netem", "delay", "300ms"]
    assert netem_args(120.5, 20, 0.25) == ["netem", "delay", "120.5ms", "20ms", "loss", "25%"]


# --- real namespaces --------------------------------------------------------------------------


@pytest.fixture
def netem() -> NetemSupport:
    if not ROOT:
        pytest.skip("network namespaces need root and iproute2 (ip, tc)")
    support = probe_netem()
    if not support.available:
        pytest.skip(support.reason)
    return support


def test_netem_delays_the_callers_of_a_service_in_its_namespace(
    netem: NetemSupport, tmp_path: Path, server: InProcessServer
) -> None:
    lab = LabRunner(
        load_topology(TOPOLOGY), tmp_path / "lab", _options(server, NetworkFaults.AUTO, ("leaf",))
    )
    prefix = ""
    try:
        lab.start()
        assert lab.network is not None and lab.network.netem and lab.netns_prefix is not None
        prefix = lab.netns_prefix
        time.sleep(3.0)
        label = lab.inject(
            ScheduledFault(
                at=0, duration=3, service="leaf", type=FaultType.NETWORK_DELAY, params={"delay_ms": 200}
            )
        )
        time.sleep(3.0)
        end = lab.clear(label.id)
        time.sleep(1.0)
    finally:
        lab.shutdown()
    assert prefix and not lab_names_with(prefix)
    assert label.mechanism.startswith("tc netem") and "netem delay 200ms" in label.mechanism
    assert end.end_ns is not None
    settle(server)
    data = stored(server)
    assert _calls_ms(data, "gateway", "leaf", 0, label.start_ns) < 100
    assert _calls_ms(data, "gateway", "leaf", label.start_ns, end.end_ns) >= 200
    own = [
        s["duration_ns"]
        for s in data["spans"]
        if s["service_name"] == "leaf"
        and s["kind"] == SPAN_SERVER
        and label.start_ns <= s["start_time_unix_nano"]
    ]
    assert own and statistics.median(own) / 1e6 < 100  # the delay is on the wire, not in the service


def test_auto_does_network_delay_in_process_when_netem_cannot_be_used_and_the_label_says_why(
    tmp_path: Path, server: InProcessServer
) -> None:
    if ROOT and probe_netem().available:
        pytest.skip("the kernel has tc netem: auto uses it (test_netem_delays_the_callers_...)")
    lab = LabRunner(
        load_topology(TOPOLOGY), tmp_path / "lab", _options(server, NetworkFaults.AUTO, ("leaf",), load=False)
    )
    try:
        lab.start()
        lab.clear(
            lab.inject(ScheduledFault(at=0, duration=1, service="leaf", type=FaultType.NETWORK_DELAY)).id
        )
    finally:
        lab.shutdown()
    assert lab.network is not None and lab.netns_prefix is None  # no namespace was made
    reason = lab.network.reason
    assert "'tc qdisc add dev lo root netem' said: " in reason if ROOT else reason.startswith("not root")
    (label,) = read_labels(tmp_path / "lab" / "labels.jsonl")
    assert label.mechanism.startswith("in-process, in front of the service's handler")
    assert label.mechanism.endswith(f"; tc netem not used: {reason}")


@needs_root
def test_services_in_namespaces_serve_load_link_their_spans_and_ctrl_c_removes_every_namespace(
    tmp_path: Path, server: InProcessServer
) -> None:
    """The whole way through ``faultlens lab run --network-faults netns`` as a user runs it:
    gateway, inner and leaf in namespaces, store on the host, so calls cross from the host
    into a namespace (the load), between namespaces, and from a namespace to the host."""
    isolated = ["gateway", "inner", "leaf"]
    schedule = tmp_path / "faults.yaml"
    schedule.write_text(
        "faults:\n"
        + "".join(
            f"  - {{at: 0s, duration: 10m, service: {s}, type: network_delay, params: {{delay_ms: 20}}}}\n"
            for s in isolated
        )
    )
    args = ["lab", "run", "--topology", str(TOPOLOGY), "--duration", "10m", "--faults", str(schedule)]
    args += ["--network-faults", "netns", "--endpoint", f"127.0.0.1:{server.ports['otlp-grpc']}"]
    args += ["--labels", str(tmp_path / "labels.jsonl"), "--workdir", str(tmp_path / "w")]
    proc = subprocess.Popen(cli_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid_prefix = f"{STEM}{proc.pid:06x}"  # every name the runner gives starts so
    try:
        found = re.search(r"namespaces (flab[0-9a-f]{7})-\*", wait_line(proc, "namespaces flab"))
        assert found is not None and found[1].startswith(pid_prefix)
        prefix = found[1]
        wait_line(proc, "fault f3 start: network_delay on leaf")
        made = lab_names_with(prefix)
        assert [n for n in made if "-" in n] == [f"{prefix}-{s}" for s in isolated], made
        assert len(made) == 3 + 3 + 1, made  # namespaces, the host ends of their veths, the bridge
        services = {
            p.cmdline()[-1]: p.pid
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "faultlens.lab.service" in p.cmdline()
        }
        where = {json.loads(cfg)["spec"]["name"]: _netns_of(pid) for cfg, pid in services.items()}
        assert where == {**{s: f"{prefix}-{s}" for s in isolated}, "store": ""}
        children = psutil.Process(proc.pid).children(recursive=True)
        time.sleep(2.0)
        code, out = stop_with_ctrl_c(proc)
        assert code == 130, out
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not lab_names_with(pid_prefix)
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [p.pid for p in alive]
    (load,) = [json.loads(x[6:].replace("'", '"')) for x in out.splitlines() if x.startswith("load: ")]
    assert load["ok"] >= 10 and load["ok"] >= 0.9 * load["sent"], out
    pairs = [("gateway", "inner"), ("inner", "store"), ("gateway", "leaf")]
    deadline = time.monotonic() + 20.0  # a loaded machine may write the last batches late
    while True:
        settle(server)
        data = stored(server)
        linked = {pair: _linked(data, *pair) for pair in pairs}
        if min(linked.values()) >= 5 or time.monotonic() > deadline:
            break
    kinds = Counter((s["service_name"], s["kind"]) for s in data["spans"])
    assert min(linked.values()) >= 5, (linked, kinds, out)
    labels = read_labels(tmp_path / "labels.jsonl")
    assert [lb.service for lb in labels] == isolated and all(lb.end_ns for lb in labels)
    netem = probe_netem()
    for lb in labels:
        if netem.available:
            assert lb.mechanism.startswith("tc netem") and f"{prefix}-{lb.service}" in lb.mechanism
        else:  # namespaces were asked for; the fault fell back, and says why
            assert lb.mechanism.startswith("in-process")
            assert lb.mechanism.endswith(f"tc netem not used: {netem.reason}")


@needs_root
def test_leftovers_of_a_killed_run_are_removed_and_a_live_runs_are_kept() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead, live = f"{STEM}{gone.pid:06x}0", f"{STEM}{os.getpid():06x}f"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    try:
        ip("netns", "add", f"{dead}-svc")
        ip("link", "add", f"{dead}br", "type", "bridge")
        ip("link", "add", f"{dead}h0", "type", "veth", "peer", "name", f"{dead}n0", "netns", f"{dead}-svc")
        ip("netns", "add", f"{live}-svc")
        ip("link", "add", f"{live}br", "type", "bridge")
        removed = remove_leftovers()
        assert {f"{dead}-svc", f"{dead}br", f"{dead}h0"} <= set(removed)
        assert not lab_names_with(dead)
        assert lab_names_with(live) == [f"{live}-svc", f"{live}br"]
    finally:
        for name in (f"{dead}br", f"{dead}h0", f"{live}br"):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        for name in (f"{dead}-svc", f"{live}-svc"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
