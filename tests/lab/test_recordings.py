"""The lab runs recorded once and committed (``tests/lab/recordings``), read back as a user would.

How they were made, and what they hold, is in ``tests/lab/recordings/README.md``. The
runs recorded at test time elsewhere in this folder are seconds long; the star run is long
enough (8 minutes, faults after 4) for the analysis to warm up and open incidents, so
``faultlens eval live`` on it scores what the server found on real lab telemetry; the
3-minute ring run is replayed into a server.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from faultlens.lab.recording import read_manifest
from faultlens.testing.inprocess import InProcessServer

from .conftest import cli_command, settle

RECORDINGS = Path(__file__).parent / "recordings"
STAR = RECORDINGS / "star-8m"
RING = RECORDINGS / "ring-3m"


def test_the_recordings_are_whole_and_small() -> None:
    total = 0
    for rec, minutes in ((STAR, 8), (RING, 3)):
        manifest = read_manifest(rec)
        assert manifest.end_ns is not None
        assert manifest.end_ns - manifest.start_ns >= (minutes - 0.5) * 60 * 10**9
        labels = [json.loads(line) for line in (rec / "labels.jsonl").read_text().splitlines()]
        assert [label["event"] for label in labels] == ["start", "end", "start", "end"]
        assert all(manifest.start_ns < label["start_ns"] < manifest.end_ns for label in labels)
        total += sum(f.stat().st_size for f in rec.iterdir())
    assert total < 4 * 2**20  # a few MB of fixtures at most
    assert all(f.stat().st_size < 2 * 2**20 for rec in (STAR, RING) for f in rec.iterdir())


def test_a_committed_recording_replays_every_item_into_a_server(server: InProcessServer) -> None:
    manifest = read_manifest(RING)
    replay = subprocess.run(
        cli_command(
            "replay",
            "lab",
            str(RING),
            "--endpoint",
            f"127.0.0.1:{server.ports['otlp-grpc']}",
            "--shift-to-now",
            "--json",
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    stats = settle(server)
    assert stats["spans"] == manifest.items["traces"]
    assert stats["logs"] == manifest.items["logs"]
    assert stats["metric_points"] == manifest.items["metrics"]


def test_eval_live_on_a_committed_star_run_finds_both_faults_and_names_their_services() -> None:
    """The star run: catalog slowed by 200 ms at 4 min, search raising at 6 min, 90 s each.

    What the server made of it when it was committed: one incident, opened 26 s into the
    exception fault (the latency fault, 4 minutes after the start, opened none of its own),
    ranking catalog's slow execution first and search's failures second; so both faults
    fall in its window and both services are in its top 3. The assertions hold that much,
    not the exact scores.
    """
    done = subprocess.run(
        cli_command("eval", "live", str(STAR), "--dataset", "lab", "--json"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["faults"] == 2 and report["detected"] == 2
    assert report["false_incidents"] == 0
    by_type = {f["type"]: f for f in report["per_fault"]}
    assert by_type["latency"]["service"] == "catalog" and by_type["exception"]["service"] == "search"
    for fault in report["per_fault"]:
        assert fault["rank"] is not None and fault["rank"] <= 3, fault
    assert report["ac3"] == 1.0
