"""``faultlens eval live --dataset lab DIR``: a recorded lab run scored as ``eval live`` scores.

::

    DIR/labels.jsonl ──> faults (as eval.live reads them: service, instance as pod, type, start)
    DIR/otlp.jsonl.gz ──replay_lab (as recorded, full speed)──> InProcessServer (replay_config)
    then the same read-back, scorer and table as ``eval live`` on Nezha (faultlens.eval.live)

Only the data set differs: a lab recording is a stream of OTLP requests as the services sent
them, and its faults are the labels. The server, its configuration, the API reads and the
scoring are those of :mod:`faultlens.eval.live`; nothing is handed to the server but the
telemetry. Windows holding data (for false incidents per hour) are counted from the requests'
receive times, which is within an export interval of their items' own times.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from faultlens.datasets.nezha.model import Fault
from faultlens.datasets.replay import ReplayOptions
from faultlens.datasets.sender import make_sender
from faultlens.eval.live import (
    CAPACITY_OVERRIDES,
    RCA_ROUTE,
    RootCauses,
    _rca_metrics,
    _rca_route,
    _read_back,
    _Watcher,
    replay_config,
    score_live,
)
from faultlens.eval.matching import LIVE_WINDOW, NS_PER_S, match_faults
from faultlens.lab.faults import read_labels
from faultlens.lab.recording import LABELS_FILE, ReadReport, read_manifest, read_recording
from faultlens.lab.replay import replay_lab
from faultlens.types import Signal, Transport

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
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay a recorded lab run into a fresh server; score what its API answers."""
    from faultlens.testing.inprocess import InProcessServer

    say = progress or (lambda _: None)
    wall = time.perf_counter()
    manifest = read_manifest(directory)
    faults = lab_faults(directory)
    with tempfile.TemporaryDirectory(prefix="faultlens-eval-lab-") as tmp:
        config = replay_config(Path(tmp))
        wn = int(config.analysis.window * NS_PER_S)
        lateness = int(config.analysis.lateness * NS_PER_S)
        data_windows: set[int] = set()
        span_windows: set[int] = set()
        for req in read_recording(directory):
            data_windows.add(req.time_ns - req.time_ns % wn)
            if req.signal is Signal.TRACES:
                span_windows.add(req.time_ns - req.time_ns % wn)
        server = InProcessServer(config, shutdown_timeout_s=120)
        base = f"http://127.0.0.1:{server.ports['api']}"
        api = httpx.Client(base_url=base, timeout=300)
        watcher = _Watcher(base)
        try:
            analysis = server.server.analysis
            assert analysis is not None
            sender = make_sender(
                f"http://127.0.0.1:{server.ports['otlp-grpc']}", Transport.GRPC, timeout_s=60
            )
            say(f"replaying {directory} ({manifest.topology}, {len(faults)} faults) at full speed")
            watcher.start()
            cpu0 = time.process_time()
            report = ReadReport()
            try:
                summary = replay_lab(directory, sender, ReplayOptions(speed=None), report=report)
            finally:
                sender.close()
            say(f"replayed {summary.items} items in {summary.elapsed_s:.0f} s; waiting for the analysis")
            drain_t0 = time.perf_counter()
            if not analysis.drain(1800, close_windows=True):
                raise RuntimeError("the analysis did not drain within 30 minutes")
            drain_s = time.perf_counter() - drain_t0
            ranking = server.server.root_causes
            if ranking is not None and not ranking.drain(rca_wait_s):
                say(f"the root-cause worker was still busy after {rca_wait_s:.0f} s; reading what it stored")
            incidents, causes, info = _read_back(api, rca_wait_s, say)
            watcher.stop()
            causes = {i: replace(c, latency_s=watcher.latency_s(i)) for i, c in causes.items()}
            server_rca = _rca_metrics(api)
            cpu_s = time.process_time() - cpu0
            requested: dict[str, RootCauses] | None = None
            if on_request or not info["incidents_carry_root_causes"]:
                first = {m.first.id for m in match_faults(faults, incidents, LIVE_WINDOW) if m.first}
                requested = _rca_route(api, sorted(first))
                if not info["incidents_carry_root_causes"]:
                    say(f"incidents carry no root_causes: asked {RCA_ROUTE} for the incidents that matched")
                    causes, requested = requested, None
        finally:
            watcher.stop()
            api.close()
            server.stop()

    scored = score_live(
        faults,
        incidents,
        causes,
        data_windows,
        window_ns=wn,
        lateness_ns=lateness,
        span_windows=span_windows,
        on_request=requested,
    )
    sources = sorted({c.source for c in causes.values()})
    days = sorted({f.day.isoformat() for f in faults})
    return {
        "dataset": f"lab {directory} ({manifest.topology})",
        "days": days,
        "limit": None,
        **{k: v for k, v in scored.items() if k not in ("per_fault", "false_incident_titles")},
        "root_cause_source": sources[0] if len(sources) == 1 else sources,
        "server": {
            "capacity_overrides": CAPACITY_OVERRIDES,
            "analysis_window_s": wn / NS_PER_S,
            **info,
            "api_poll_errors": watcher.errors,
            "rca_from_metrics": server_rca,
        },
        "recording": {
            "topology": manifest.topology,
            "requests": report.requests,
            "torn_tail": report.torn_tail,
        },
        "replay": summary.as_dict(),
        "timing": {
            "replay_s": round(summary.elapsed_s, 1),
            "analysis_drain_s": round(drain_s, 1),
            "process_cpu_s": round(cpu_s, 1),
            "wall_s": round(time.perf_counter() - wall, 1),
        },
        "per_fault": scored["per_fault"],
        "false_incident_titles": scored["false_incident_titles"],
    }
