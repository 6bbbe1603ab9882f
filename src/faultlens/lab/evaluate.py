"""``faultlens eval live --dataset lab DIR``: a recorded lab run scored as ``eval live`` scores.

::

    DIR/labels.jsonl ──> faults (as eval.live reads them: service, instance as pod, type, start)
    DIR/otlp.jsonl.gz ──replay_lab (as recorded, full speed)──> eval.live.run_live
    (the same server, read-back, scorer and table as ``eval live`` on Nezha)

Only the data set differs: a lab recording is a stream of OTLP requests as the services sent
them, and its faults are the labels. The server, its configuration, the API reads and the
scoring are those of :mod:`faultlens.eval.live`; nothing is handed to the server but the
telemetry. Windows holding data (for false incidents per hour) are counted from the requests'
receive times, which is within an export interval of their items' own times.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faultlens.datasets import OtlpSender, ReplaySummary
from faultlens.datasets.nezha.model import Fault
from faultlens.datasets.replay import ReplayOptions
from faultlens.eval.live import live_window_ns, run_live, score_live
from faultlens.eval.matching import NS_PER_S
from faultlens.lab.faults import read_labels
from faultlens.lab.recording import LABELS_FILE, ReadReport, read_manifest, read_recording
from faultlens.lab.replay import replay_lab
from faultlens.types import Signal

__all__ = ["evaluate_lab", "lab_faults"]


def lab_faults(directory: Path) -> list[Fault]:
    """The labelled faults of a recorded run, in start order, as ``eval live`` scores faults."""
    out = []
    for label in read_labels(directory / LABELS_FILE):
        day = dt.datetime.fromtimestamp(label.start_ns / NS_PER_S, tz=dt.UTC).date()
        out.append(Fault(day, label.start_ns, label.instance, label.service, label.type.value))
    return out


def evaluate_lab(
    directory: Path,
    *,
    on_request: bool = False,
    rca_wait_s: float = 900.0,
    keep: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay a recorded lab run into a fresh server; score what its API answers."""
    say = progress or (lambda _: None)
    wall = time.perf_counter()
    manifest = read_manifest(directory)
    faults = lab_faults(directory)
    wn = live_window_ns()
    data_windows: set[int] = set()
    span_windows: set[int] = set()
    for req in read_recording(directory):
        data_windows.add(req.time_ns - req.time_ns % wn)
        if req.signal is Signal.TRACES:
            span_windows.add(req.time_ns - req.time_ns % wn)
    report = ReadReport()

    def replay(sender: OtlpSender) -> ReplaySummary:
        say(f"replaying {directory} ({manifest.topology}, {len(faults)} faults) at full speed")
        return replay_lab(directory, sender, ReplayOptions(speed=None), report=report)

    live = run_live(replay, faults, on_request=on_request, rca_wait_s=rca_wait_s, keep=keep, say=say)
    scored = score_live(
        faults,
        live.incidents,
        live.causes,
        data_windows,
        window_ns=live.window_ns,
        lateness_ns=live.lateness_ns,
        span_windows=span_windows,
        on_request=live.requested,
    )
    sources = sorted({c.source for c in live.causes.values()})
    days = sorted({f.day.isoformat() for f in faults})
    return {
        "dataset": f"lab {directory} ({manifest.topology})",
        "days": days,
        "limit": None,
        **{k: v for k, v in scored.items() if k not in ("per_fault", "false_incident_titles")},
        "root_cause_source": sources[0] if len(sources) == 1 else sources,
        "server": live.server_section(),
        "recording": {
            "topology": manifest.topology,
            "requests": report.requests,
            "torn_tail": report.torn_tail,
        },
        "replay": live.summary.as_dict(),
        "timing": live.timing(wall),
        "per_fault": scored["per_fault"],
        "false_incident_titles": scored["false_incident_titles"],
    }
