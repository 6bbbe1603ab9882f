"""``faultlens eval live --dataset lab DIR`` end to end on a short run recorded at test time.

The run is far shorter than the analysis needs to open an incident (its windows are a
minute), so this checks the plumbing: the labels become the scored faults, every recorded
item is replayed into the server, and the report has the shape of ``eval live``'s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from faultlens.lab.faults import FaultType, ScheduledFault
from faultlens.lab.recording import LABELS_FILE, Manifest, read_manifest
from faultlens.lab.relay import RecordingRelay
from faultlens.lab.runner import LabOptions, LabRunner
from faultlens.lab.topology import load_topology
from faultlens.types import Transport


def test_eval_live_scores_a_recorded_lab_run(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    relay = RecordingRelay(rec, None)
    relay.start()
    manifest = Manifest(topology="star", start_ns=time.time_ns())
    lab = LabRunner(
        load_topology("star"),
        tmp_path / "work",
        LabOptions(endpoint=relay.url, protocol=Transport.HTTP, rate=8, export_interval_s=0.5),
        labels=rec / LABELS_FILE,
    )
    try:
        lab.start()
        time.sleep(1.0)
        label = lab.inject(ScheduledFault(at=0, duration=3, service="catalog", type=FaultType.EXCEPTION))
        time.sleep(3.0)
        lab.clear(label.id)
    finally:
        lab.shutdown()
        relay.shutdown()
    manifest.end_ns = time.time_ns()
    manifest.requests = {s.value: n for s, n in relay.writer.requests.items()}
    manifest.items = {s.value: n for s, n in relay.writer.items.items()}
    manifest.write(rec)

    done = subprocess.run(
        [sys.executable, "-m", "faultlens.cli", "eval", "live", str(rec), "--dataset", "lab", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["faults"] == 1
    (fault,) = report["per_fault"]
    assert (fault["service"], fault["pod"], fault["type"]) == ("catalog", "catalog-1", "exception")
    assert fault["inject_time_ns"] == label.start_ns
    items = read_manifest(rec).items
    assert report["replay"]["signals"]["traces"]["accepted"] == items["traces"] > 0
    assert report["replay"]["signals"]["logs"]["accepted"] == items["logs"]
    assert report["recording"] == {
        "topology": "star",
        "requests": sum(manifest.requests.values()),
        "torn_tail": False,
    }
