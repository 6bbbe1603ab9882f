"""``faultlens lab run`` as a user runs it: a real CLI process, stopped with a real SIGINT,
and a recorded run replayed into a server with ``faultlens replay lab``."""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import time
from pathlib import Path

import psutil

from faultlens.lab.faults import FaultType, read_labels
from faultlens.lab.netns import STEM
from faultlens.lab.recording import RECORD_FILE, ReadReport, read_manifest, read_recording
from faultlens.testing.inprocess import InProcessServer

from .conftest import ROOT, cli_command, lab_names_with, settle, stop_with_ctrl_c, wait_line


def test_ctrl_c_stops_the_lab_and_leaves_no_child_process(tmp_path: Path) -> None:
    schedule = tmp_path / "faults.yaml"
    schedule.write_text("faults:\n  - {at: 0s, duration: 10m, service: users, type: db_lock}\n")
    proc = subprocess.Popen(
        cli_command(
            "lab",
            "run",
            "--topology",
            "star",
            "--duration",
            "10m",
            "--faults",
            str(schedule),
            "--record",
            str(tmp_path / "rec"),
            "--workdir",
            str(tmp_path / "work"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_line(proc, "fault f1 start: db_lock on users")
        children = psutil.Process(proc.pid).children(recursive=True)
        # eight services, the load generator and the lock holder, each in a group of its own
        assert len(children) >= 10, [c.cmdline()[-2:] for c in children]
        code, out = stop_with_ctrl_c(proc)
        assert code == 130, out
    finally:
        if proc.poll() is None:
            proc.kill()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [p.pid for p in alive]
    (label,) = read_labels(tmp_path / "rec" / "labels.jsonl")
    assert label.type is FaultType.DB_LOCK and label.end_ns is not None
    assert read_manifest(tmp_path / "rec").end_ns is not None


def test_a_killed_lab_leaves_no_child_process_for_long(tmp_path: Path) -> None:
    """kill -9 of the CLI gives it no chance to stop anything: every child watches its parent."""
    proc = subprocess.Popen(
        cli_command(
            "lab",
            "run",
            "--topology",
            "ring",
            "--duration",
            "10m",
            "--faults",
            "none",
            "--record",
            str(tmp_path),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_line(proc, "running for")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 7  # six services and the load generator
    finally:
        proc.kill()
        proc.wait(10)
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, [(p.pid, p.cmdline()[2:3]) for p in alive]


def test_a_recorded_run_replays_the_same_spans_into_a_server(tmp_path: Path, server: InProcessServer) -> None:
    rec = tmp_path / "rec"
    done = subprocess.run(
        cli_command(
            "lab",
            "run",
            "--topology",
            "ring",
            "--duration",
            "4s",
            "--faults",
            "none",
            "--record",
            str(rec),
            "--rate",
            "8",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lab CPU" in done.stdout
    manifest = read_manifest(rec)
    spans = manifest.items["traces"]
    assert spans > 50 and manifest.end_ns is not None and manifest.topology == "ring"

    replay = subprocess.run(
        cli_command(
            "replay", "lab", str(rec), "--endpoint", f"127.0.0.1:{server.ports['otlp-grpc']}", "--json"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    summary = json.loads(replay.stdout)["replay"]
    assert summary["signals"]["traces"]["accepted"] == spans
    stats = settle(server)
    assert stats["spans"] == spans
    assert stats["logs"] == manifest.items["logs"]
    assert stats["metric_points"] == manifest.items["metrics"]


def test_a_torn_recording_reads_up_to_its_last_whole_request(tmp_path: Path) -> None:
    from faultlens.lab.recording import RecordWriter
    from faultlens.types import Signal

    writer = RecordWriter(tmp_path)
    for i in range(20):
        writer.append(1_000 + i, Signal.LOGS, b"\x0a\x00" * 50, 0)
    writer.close()
    data = (tmp_path / RECORD_FILE).read_bytes()
    (tmp_path / RECORD_FILE).write_bytes(data[: len(data) // 2])  # a kill in the middle of a write
    report = ReadReport()
    got = list(read_recording(tmp_path, report))
    assert 0 < len(got) < 20 and report.torn_tail
    assert [r.time_ns for r in got] == list(range(1_000, 1_000 + len(got)))
    with gzip.open(tmp_path / RECORD_FILE) as f:  # what is there is a gzip stream that inflates
        assert f.read(10)


def test_a_bad_topology_is_refused_with_the_field_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nentry: a\nservices:\n  - {name: a, calls: [{to: nowhere}]}\n  - {name: b}\n")
    done = subprocess.run(
        cli_command("lab", "run", "--topology", str(bad), "--duration", "5s"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "services[0].calls[0].to: 'nowhere' is not one of the services" in done.stderr
    unknown = subprocess.run(
        cli_command("lab", "run", "--topology", "nosuch"), capture_output=True, text=True, timeout=60
    )
    assert unknown.returncode == 2 and "not a built-in topology" in unknown.stderr


def test_a_service_that_cannot_start_stops_the_lab_with_an_error_and_no_child_left(tmp_path: Path) -> None:
    """As root, users and orders also run in network namespaces: the error removes them too."""
    work = tmp_path / "work"
    (work / "users.sqlite").mkdir(parents=True)  # a directory where the service's database goes
    schedule = tmp_path / "faults.yaml"
    schedule.write_text(
        "faults:\n"
        "  - {at: 0s, duration: 1m, service: users, type: network_delay}\n"
        "  - {at: 0s, duration: 1m, service: orders, type: network_delay}\n"
    )
    args = ["lab", "run", "--topology", "star", "--duration", "1m", "--faults", str(schedule)]
    args += ["--workdir", str(work), "--record", str(tmp_path)]
    args += ["--network-faults", "netns" if ROOT else "auto"]
    proc = subprocess.Popen(cli_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid_prefix = f"{STEM}{proc.pid:06x}"
    seen: list[psutil.Process] = []
    made: set[str] = set()
    try:
        while proc.poll() is None:  # every process and namespace the lab made, while it runs
            with contextlib.suppress(psutil.Error):
                seen += [c for c in psutil.Process(proc.pid).children(recursive=True) if c not in seen]
            if ROOT:
                made.update(lab_names_with(pid_prefix))
            time.sleep(0.05)
        out = proc.stdout.read() if proc.stdout else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "error: service users exited at start" in out
    assert len(seen) >= 7
    _, alive = psutil.wait_procs(seen, timeout=10)
    assert not alive, [p.pid for p in alive]
    if ROOT:
        assert {n for n in made if n.endswith(("-users", "-orders"))} and any(n.endswith("br") for n in made)
        assert not lab_names_with(pid_prefix)
