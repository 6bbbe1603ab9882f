"""``faultlens eval detect``: replay a labelled dataset through the real pipeline, score detection.

::

    NezhaDataset ──replay_as_live (max speed, OTLP/gRPC)──> InProcessServer (temp data dir, free
                                                            ports: receivers, store, analysis,
                                                            API; eval.live.replay_config)
    wait: store writer idle, analysis drained, open windows closed
    incidents (read from the analysis tables) x fault labels ──> report

Nothing here talks to the analysis cores directly: the data goes over the wire and through
admission, decode, the fan-out and the analysis consumer exactly as live telemetry would,
so the figures are those of the server as it runs. The replay sends items in the order and
the batches live SDKs would (:func:`replay_as_live`): a span once it has ended, and each
signal's batch when it is full or its oldest item is a second old in data time. (Read in
file order and sent in 1,000-item batches per signal, sparse logs waited in a half-full batch
while spans moved data time on, and arrived after their window had been judged.)

Per fault: whether an incident opened inside the fault window (the minute of injection and
the three after it: :data:`faultlens.eval.matching.DETECT_WINDOW`, matched by the scorer
``eval live`` shares), and the delay from injection to the data time at
which the incident was known (end of the window that opened it, plus the lateness the
analysis waits). Overall: detection rate, delays, and false incidents per hour of fault-free
data: incidents that opened in windows holding data outside every fault window and its
cooldown. Nothing is keyed to a service, pod or time of one data set.
"""

from __future__ import annotations

import heapq
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from faultlens.analysis.incidents import Incident
    from faultlens.datasets import Fault, OtlpSender, Record, ReplaySummary
    from faultlens.datasets.otlp import OtlpConverter
    from faultlens.eval.matching import IncidentRecord
    from faultlens.types import TimeRange

__all__ = ["evaluate", "register", "replay_as_live", "score"]

NS_PER_S = 1_000_000_000
MINUTE_NS = 60 * NS_PER_S
COOLDOWN_MINUTES = 3  # after a fault window effects may linger: neither fault nor fault-free
TARGET_DELAY_S = 180.0
TARGET_FALSE_PER_HOUR = 1.0


def replay_as_live(
    records: Iterable[Record],
    sender: OtlpSender,
    converter: OtlpConverter,
    *,
    batch_size: int = 1000,
    max_delay_ns: int = NS_PER_S,
) -> ReplaySummary:
    """Send ``records`` (about in time order) as fast as ``sender`` takes them, ordered and
    batched as live telemetry arrives.

    A span is sent once data time (the time of the records read so far) reaches its end: an
    SDK exports a span when it ends, while a dataset lists spans by start. A signal's batch
    goes out when it holds ``batch_size`` items or its oldest item is ``max_delay_ns`` older
    than the newest record sent (an SDK batch processor's schedule delay), so a quiet signal
    is not held back behind a busy one. Stops after five requests in a row fail.
    """
    from faultlens.datasets.otlp import item_count
    from faultlens.datasets.records import LogRecord, MetricRecord, SpanRecord
    from faultlens.datasets.replay import ReplaySummary
    from faultlens.types import Signal

    summary = ReplaySummary()
    started = time.perf_counter()
    heap: list[tuple[int, int, Record]] = []  # (time it is sent at, sequence, record)
    pending: dict[Signal, list[Record]] = {s: [] for s in Signal}
    counts: dict[Signal, int] = dict.fromkeys(Signal, 0)
    oldest: dict[Signal, int] = {}
    failures = 0

    def flush(signal: Signal) -> None:
        nonlocal failures
        batch, pending[signal] = pending[signal], []
        items, counts[signal] = counts[signal], 0
        oldest.pop(signal, None)
        if signal is Signal.TRACES:
            request: Any = converter.traces([r for r in batch if isinstance(r, SpanRecord)])
        elif signal is Signal.LOGS:
            request = converter.logs([r for r in batch if isinstance(r, LogRecord)])
        else:
            request = converter.metrics([r for r in batch if isinstance(r, MetricRecord)])
        result = sender.send(signal, request, items)
        summary.record(signal, result)
        failures = 0 if result.delivered else failures + 1
        if failures >= 5:
            summary.aborted = f"{failures} requests in a row not delivered: {result.error}"

    def send(upto: int) -> None:
        while heap and heap[0][0] <= upto and not summary.aborted:
            t, _, rec = heapq.heappop(heap)
            signal = (
                Signal.TRACES
                if isinstance(rec, SpanRecord)
                else (Signal.LOGS if isinstance(rec, LogRecord) else Signal.METRICS)
            )
            for other, first in list(oldest.items()):
                if t - first > max_delay_ns:
                    flush(other)
            pending[signal].append(rec)
            counts[signal] += item_count(rec)
            oldest.setdefault(signal, t)
            if counts[signal] >= batch_size:
                flush(signal)

    for seq, rec in enumerate(records):
        t = rec.time_ns
        summary.first_time_ns = t if summary.first_time_ns is None else min(summary.first_time_ns, t)
        end = rec.end_ns if isinstance(rec, SpanRecord) else t
        summary.last_time_ns = end if summary.last_time_ns is None else max(summary.last_time_ns, end)
        heapq.heappush(heap, (end, seq, rec))
        send(t)
        if summary.aborted:
            break
    send(1 << 62)
    for signal in Signal:
        if pending[signal] and not summary.aborted:
            flush(signal)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def evaluate(
    root: Path,
    *,
    window_s: int = 60,
    time_range: TimeRange | None = None,
    data_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay ``root`` (Nezha layout) through a fresh server and score its incidents.

    With ``time_range`` only the records and faults (by injection time) inside it: quicker,
    but the baselines then start from nothing at its start, as a freshly started server's do.
    """
    from faultlens.datasets import NezhaDataset, SpanRecord, make_sender
    from faultlens.datasets.otlp import OtlpConverter
    from faultlens.eval.live import replay_config
    from faultlens.store.analysis_base import AnomalyQuery, IncidentQuery
    from faultlens.testing.inprocess import InProcessServer
    from faultlens.types import Transport

    say = progress or (lambda _: None)
    wall = time.perf_counter()
    ds = NezhaDataset(root)
    faults = [f for f in ds.faults() if time_range is None or time_range.contains(f.inject_time_ns)]
    wn = window_s * NS_PER_S
    data_windows: set[int] = set()
    span_windows: set[int] = set()

    def records() -> Iterator[Record]:
        for rec in ds.records(time_range):
            t = rec.time_ns
            data_windows.add(t - t % wn)
            if isinstance(rec, SpanRecord):
                span_windows.add(t - t % wn)
            yield rec

    with tempfile.TemporaryDirectory(prefix="faultlens-eval-") as tmp:
        running = InProcessServer(
            replay_config(data_dir or Path(tmp), analysis={"window": window_s}), shutdown_timeout_s=120
        )
        try:
            analysis = running.server.analysis
            store = running.server.analysis_store
            assert analysis is not None and store is not None
            sender = make_sender(
                f"http://127.0.0.1:{running.ports['otlp-grpc']}", Transport.GRPC, timeout_s=60
            )
            say(f"replaying {root} at max speed")
            cpu0 = time.process_time()
            summary = replay_as_live(records(), sender, OtlpConverter(pod_nodes=ds.pod_nodes(time_range)))
            sender.close()
            say(f"replayed {summary.items} items in {summary.elapsed_s:.0f} s; waiting for the analysis")
            if not analysis.drain(1800, close_windows=True):
                raise RuntimeError("the analysis did not drain within 30 minutes")
            cpu_s = time.process_time() - cpu0
            incidents = store.incidents(IncidentQuery(limit=1_000_000))
            anomalies = len(store.anomalies(AnomalyQuery(limit=10_000_000)))
            dropped = running.server.metrics.dropped_items
            late = {
                "logs_and_points_after_their_window_was_judged": analysis.engine.late_items,
                "spans_after_their_red_window_closed": analysis.engine.red.counters.late_spans,
            }
        finally:
            running.stop()

    report = score(faults, incidents, data_windows, window_s=window_s, span_windows=span_windows)
    return {
        "dataset": str(root),
        "window_s": window_s,
        "time_range": None if time_range is None else [time_range.start_ns, time_range.end_ns],
        **report,
        "anomalies": anomalies,
        "replay": summary.as_dict(),
        "analysis_dropped_items": _dropped(dropped),
        "analysis_late_items": late,
        "process_cpu_s": round(cpu_s, 1),
        "wall_s": round(time.perf_counter() - wall, 1),
    }


def score(
    faults: Sequence[Fault],
    incidents: Iterable[Incident | IncidentRecord],
    data_windows: Iterable[int],
    *,
    window_s: int = 60,
    span_windows: Iterable[int] = (),
) -> dict[str, Any]:
    """Per fault and overall figures of ``incidents`` against the labels (pure; see the module doc).

    ``data_windows`` are the starts of every window holding any data; ``span_windows`` those
    holding spans (the windows where an incident can open at all: resource gauges alone never
    open one), for the false rate on fault-free time with traces. Which incident answers which
    fault is :func:`faultlens.eval.matching.match_faults` with :data:`DETECT_WINDOW`.
    """
    from faultlens.eval.matching import DETECT_WINDOW, IncidentRecord, match_faults

    wn = window_s * NS_PER_S
    records = [i if isinstance(i, IncidentRecord) else IncidentRecord.of(i) for i in incidents]
    data = set(data_windows)
    lateness_ns = 10 * NS_PER_S
    fault_zone: set[int] = set()
    in_window: set[str] = set()  # incidents opened inside some fault window
    per_fault: list[dict[str, Any]] = []
    for m in match_faults(faults, records, DETECT_WINDOW):
        f, lo, hi = m.fault, m.window.start_ns, m.window.end_ns
        fault_zone |= set(range(lo - lo % wn, hi + COOLDOWN_MINUTES * MINUTE_NS, wn))
        in_window |= {i.id for i in m.opened}
        first = m.first
        delay = m.delay_s(wn, lateness_ns)
        per_fault.append(
            {
                "inject_time": f.inject_time.isoformat(),
                "fault_type": f.fault_type,
                "service": f.service,
                "pod": f.pod,
                "detected": first is not None,
                "delay_s": None if delay is None else round(delay, 1),
                "within_target": delay is not None and delay <= TARGET_DELAY_S,
                "incident": None if first is None else first.id,
                "joined_earlier_incident": m.joined[0] if m.joined and first is None else None,
                "incident_services": [] if first is None else list(first.services),
                "root_service_in_incident": bool(first and f.service in first.services),
                "incidents_opened_in_window": len(m.opened),
                "root_service_in_any_incident_of_window": any(f.service in i.services for i in m.opened),
                "title": None if first is None else first.title,
            }
        )
    free = {w for w in data if w - w % wn not in fault_zone}
    free_spans = {w for w in span_windows if w - w % wn not in fault_zone}
    false_opened = [i for i in records if (i.opened_ns - i.opened_ns % wn) in free]
    hours = len(free) * wn / (3600 * NS_PER_S)
    span_hours = len(free_spans) * wn / (3600 * NS_PER_S)
    false_with_spans = [i for i in false_opened if (i.opened_ns - i.opened_ns % wn) in free_spans]
    delays = [p["delay_s"] for p in per_fault if p["delay_s"] is not None]
    detected = sum(1 for p in per_fault if p["detected"])
    by_type: dict[str, dict[str, int]] = {}
    for p in per_fault:
        t = by_type.setdefault(p["fault_type"], {"faults": 0, "detected": 0, "within_target": 0})
        t["faults"] += 1
        t["detected"] += int(p["detected"])
        t["within_target"] += int(p["within_target"])
    per_hour = None if hours == 0 else round(len(false_opened) / hours, 3)
    span_per_hour = None if span_hours == 0 else round(len(false_with_spans) / span_hours, 3)
    within = sum(1 for p in per_fault if p["within_target"])
    return {
        "faults": len(per_fault),
        "detected": detected,
        "detected_within_3_min": within,
        "detection_rate": round(detected / len(per_fault), 3) if per_fault else None,
        "missed_but_joined_an_earlier_open_incident": sum(
            1 for p in per_fault if p["joined_earlier_incident"] is not None
        ),
        "mean_delay_s": round(sum(delays) / len(delays), 1) if delays else None,
        "max_delay_s": max(delays) if delays else None,
        "false_incidents": len(false_opened),
        "fault_free_hours": round(hours, 3),
        "false_incidents_per_hour": per_hour,
        "fault_free_hours_with_spans": round(span_hours, 3),
        "false_incidents_with_spans": len(false_with_spans),
        "false_incidents_per_hour_with_spans": span_per_hour,
        "targets_met": {
            "every_fault_within_3_min": bool(per_fault) and within == len(per_fault),
            "at_most_1_false_incident_per_hour": per_hour is not None and per_hour <= TARGET_FALSE_PER_HOUR,
            # The same on the fault-free windows that hold spans (where an incident can open).
            "at_most_1_false_incident_per_hour_with_spans": (
                span_per_hour is not None and span_per_hour <= TARGET_FALSE_PER_HOUR
            ),
        },
        "by_fault_type": by_type,
        "incidents_opened": len(records),
        "incidents_opened_in_fault_windows": len(in_window),
        "incidents_per_fault": round(len(in_window) / len(per_fault), 2) if per_fault else None,
        "root_service_in_opening_incident": sum(1 for p in per_fault if p["root_service_in_incident"]),
        "root_service_in_any_incident_of_window": sum(
            1 for p in per_fault if p["root_service_in_any_incident_of_window"]
        ),
        "mean_services_per_incident": (
            round(sum(len(i.services) for i in records) / len(records), 2) if records else None
        ),
        "per_fault": per_fault,
        "false_incident_titles": [i.title for i in false_opened[:20]],
    }


def _dropped(counter: Any) -> int:
    total = 0
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("consumer") == "analysis":
                total += int(sample.value)
    return total


def _table(report: dict[str, Any]) -> str:
    lines = [
        f"faults detected: {report['detected']}/{report['faults']} "
        f"({report['detected_within_3_min']} within 3 min), mean delay {report['mean_delay_s']} s, "
        f"max {report['max_delay_s']} s",
        f"false incidents: {report['false_incidents']} in {report['fault_free_hours']} h of fault-free data "
        f"({report['false_incidents_per_hour']} per hour); {report['false_incidents_with_spans']} in the "
        f"{report['fault_free_hours_with_spans']} h of them holding spans "
        f"({report['false_incidents_per_hour_with_spans']} per hour)",
        f"incidents: {report['incidents_opened']} ({report['incidents_per_fault']} per fault); the faulty "
        f"service is in the opening incident for {report['root_service_in_opening_incident']}, in some "
        f"incident of its window for {report['root_service_in_any_incident_of_window']}",
    ]
    for p in report["per_fault"]:
        mark = "ok  " if p["within_target"] else ("late" if p["detected"] else "MISS")
        lines.append(f"  {mark} {p['inject_time']} {p['fault_type']:<15} {p['service']:<35} {p['delay_s']}")
    return "\n".join(lines)


def detect_command(
    directory: Annotated[Path, typer.Argument(help="A directory in the dataset's layout.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Layout of DIR (only 'nezha' today).")] = "nezha",
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    window: Annotated[int, typer.Option("--window", help="Analysis window in seconds (60 or 10).")] = 60,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Only data and faults from this time (UTC); baselines start here."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Only data and faults before this time (UTC).")
    ] = None,
) -> None:
    """Replay DIR through a real faultlens and report fault detection and false incidents."""
    if dataset != "nezha":
        typer.echo(f"error: unknown dataset layout {dataset!r} (known: nezha)", err=True)
        raise typer.Exit(2)
    if window not in (10, 60):
        typer.echo("error: --window must be 60 or 10", err=True)
        raise typer.Exit(2)
    from faultlens.timeparse import parse_time
    from faultlens.types import TimeRange

    time_range = None
    if start is not None or end is not None:
        try:
            lo = parse_time(start) if start is not None else 0
            hi = parse_time(end) if end is not None else 1 << 62
        except ValueError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        if hi <= lo:
            typer.echo("error: --to must be after --from", err=True)
            raise typer.Exit(2)
        time_range = TimeRange(lo, hi)
    report = evaluate(
        directory, window_s=window, time_range=time_range, progress=lambda s: typer.echo(s, err=True)
    )
    typer.echo(json.dumps(report, indent=2, default=str) if as_json else _table(report))


def register(app: typer.Typer) -> None:
    """Add ``eval detect`` to ``app``, inside its ``eval`` group when one is registered."""
    for group in app.registered_groups:
        if group.name == "eval" and group.typer_instance is not None:
            group.typer_instance.command("detect")(detect_command)
            return
    eval_app = typer.Typer(
        help="Evaluate detection and root-cause analysis on labelled data.", no_args_is_help=True
    )
    eval_app.command("detect")(detect_command)
    app.add_typer(eval_app, name="eval")
