"""Evaluate root-cause ranking on a labelled Nezha-layout directory, against baselines.

``python -m faultlens.eval.rca DIR [--json] [--lodo]`` (``faultlens eval rca`` once registered):
for each labelled fault, build its window and baseline (:mod:`faultlens.eval.cases`), run
our ranking and every baseline on the same tables, and report AC@1/3/5 and Avg@5 at
service level (ties against the method, :mod:`faultlens.eval.metrics`), per fault type
and per day, with the time each method took per incident (data loading excluded).

``--via-pipeline`` takes the rows from the real pipeline instead of reading the directory:
an in-process :class:`~faultlens.server.FaultlensServer` (temp data dir, free ports, the
analysis off) is sent the minutes the cases need (:func:`faultlens.eval.cases.needed_ranges`)
over OTLP/gRPC at full speed, the evaluation waits until the store holds every accepted
item, and each case's tables are read back with :func:`faultlens.store.window.read_window`
(:class:`faultlens.eval.cases.StoreSource`). Windows, baselines, methods and metrics are
the same in both modes.

``--lodo`` adds a leave-one-day-out check of our two main knobs: for each day, the
setting that scores best on the other days is chosen, and its score on the held-out day
reported.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faultlens.datasets.nezha import Fault, NezhaDataset
from faultlens.eval.baselines import baro, largest_latency_increase, microrank, tracerca
from faultlens.eval.cases import Case, CaseBuilder, StoreSource, WindowPolicy, needed_ranges
from faultlens.eval.metrics import accuracy_at, average_at, pessimistic_rank
from faultlens.rca.model import Observations, RcaConfig, RcaResult
from faultlens.rca.rank import rank_root_causes
from faultlens.types import Signal, TimeRange

if TYPE_CHECKING:
    from faultlens.datasets.records import Record
    from faultlens.server import FaultlensServer

__all__ = ["CaseResult", "EvalReport", "evaluate", "main", "ours_scores", "summarise"]

Method = Callable[[Observations, Observations], Mapping[str, float]]
OURS = "faultlens"


def ours_scores(result: RcaResult) -> dict[str, float]:
    """Our candidates as scores that order exactly as our ranking (ties stay ties)."""
    out: dict[str, float] = {}
    for c in result.candidates:
        effects = [f.effect for f in c.findings[:3]] + [0.0, 0.0, 0.0]
        out[c.service] = effects[0] + 1e-3 * effects[1] + 1e-6 * effects[2]
    return out


@dataclass(frozen=True, slots=True)
class MethodResult:
    rank: int | None
    seconds: float
    top: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    day: str
    inject_time: str
    service: str
    pod: str
    fault_type: str
    methods: dict[str, MethodResult]
    ours_reason: str = ""
    ours_operation: str = ""
    ours_pod: str = ""
    ours_evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EvalReport:
    cases: tuple[CaseResult, ...]
    summary: dict[str, Any]
    lodo: dict[str, Any] = field(default_factory=dict)
    data_path: dict[str, Any] = field(default_factory=dict)


def _run_case(case: Case, cfg: RcaConfig, baselines: Mapping[str, Method]) -> CaseResult:
    methods: dict[str, MethodResult] = {}
    t0 = time.perf_counter()
    result = rank_root_causes(case.current, case.baseline, cfg)
    dt = time.perf_counter() - t0
    scores = ours_scores(result)
    truth = case.fault.service
    methods[OURS] = MethodResult(pessimistic_rank(truth, scores), dt, result.services()[:5])
    for name, method in baselines.items():
        t0 = time.perf_counter()
        s = method(case.current, case.baseline)
        dt = time.perf_counter() - t0
        top = tuple(k for k, _ in sorted(s.items(), key=lambda kv: -kv[1])[:5])
        methods[name] = MethodResult(pessimistic_rank(truth, s), dt, top)
    best = result.candidates[0] if result.candidates else None
    return CaseResult(
        day=case.fault.day.isoformat(),
        inject_time=case.fault.inject_time.isoformat(),
        service=truth,
        pod=case.fault.pod,
        fault_type=case.fault.fault_type,
        methods=methods,
        ours_reason=best.reason.value if best else "",
        ours_operation=best.operation if best else "",
        ours_pod=best.pod if best else "",
        ours_evidence=best.evidence[:3] if best else (),
    )


def _figures(ranks: Sequence[int | None]) -> dict[str, float]:
    return {
        "n": len(ranks),
        "AC@1": round(accuracy_at(ranks, 1), 3),
        "AC@3": round(accuracy_at(ranks, 3), 3),
        "AC@5": round(accuracy_at(ranks, 5), 3),
        "Avg@5": round(average_at(ranks, 5), 3),
    }


def summarise(cases: Sequence[CaseResult]) -> dict[str, Any]:
    """Per method: overall, per fault type and per day figures, and time per incident."""
    names = sorted({m for c in cases for m in c.methods}, key=lambda m: (m != OURS, m))
    out: dict[str, Any] = {}
    for m in names:
        ranks = [c.methods[m].rank for c in cases if m in c.methods]
        secs = [c.methods[m].seconds for c in cases if m in c.methods]
        by_type: dict[str, list[int | None]] = defaultdict(list)
        by_day: dict[str, list[int | None]] = defaultdict(list)
        for c in cases:
            by_type[c.fault_type].append(c.methods[m].rank)
            by_day[c.day].append(c.methods[m].rank)
        out[m] = {
            "overall": _figures(ranks),
            "by_fault_type": {t: _figures(r) for t, r in sorted(by_type.items())},
            "by_day": {d: _figures(r) for d, r in sorted(by_day.items())},
            "seconds_per_incident": {
                "mean": round(sum(secs) / max(len(secs), 1), 3),
                "max": round(max(secs, default=0.0), 3),
            },
        }
    return out


DEFAULT_BASELINES: dict[str, Method] = {
    "baro": baro,
    "tracerca": tracerca,
    "microrank": microrank,
    "largest_latency_increase": largest_latency_increase,
}

# The leave-one-day-out grid: our two main knobs, a few principled values each.
LODO_GRID: tuple[dict[str, float], ...] = tuple(
    {"confidence_z": z, "explain_ratio": r} for z in (2.0, 2.5, 3.0) for r in (0.5, 1.0)
)


def _lodo(cases: Sequence[Case], cfg: RcaConfig) -> dict[str, Any]:
    days = sorted({c.fault.day.isoformat() for c in cases})
    if len(days) < 2:
        return {}
    per_setting: list[tuple[dict[str, float], dict[str, list[int | None]]]] = []
    for setting in LODO_GRID:
        c2 = replace(cfg, **setting)  # type: ignore[arg-type]
        ranks: dict[str, list[int | None]] = defaultdict(list)
        for case in cases:
            result = rank_root_causes(case.current, case.baseline, c2)
            ranks[case.fault.day.isoformat()].append(
                pessimistic_rank(case.fault.service, ours_scores(result))
            )
        per_setting.append((setting, ranks))
    out: dict[str, Any] = {"grid": list(LODO_GRID), "held_out": {}}
    for held in days:

        def train_score(
            item: tuple[dict[str, float], dict[str, list[int | None]]], held: str = held
        ) -> tuple[float, float]:
            train = [r for d, rs in item[1].items() if d != held for r in rs]
            return (accuracy_at(train, 1), accuracy_at(train, 3))

        best = max(per_setting, key=train_score)
        train = [r for d, rs in best[1].items() if d != held for r in rs]
        out["held_out"][held] = {
            "chosen_on_other_days": best[0],
            "train": _figures(train),
            "test": _figures(best[1][held]),
        }
    return out


def evaluate(
    root: Path,
    *,
    policy: WindowPolicy | None = None,
    config: RcaConfig | None = None,
    baselines: Mapping[str, Method] | None = None,
    cache_dir: Path | None = None,
    limit: int | None = None,
    lodo: bool = False,
    via_pipeline: bool = False,
    progress: Callable[[str], None] | None = None,
) -> EvalReport:
    """Run every method on every labelled fault under ``root`` (the first ``limit`` if given).

    With ``via_pipeline`` the rows come through a real server (see the module docstring).
    """
    dataset = NezhaDataset(root)
    faults = dataset.faults()[:limit] if limit is not None else dataset.faults()
    if not via_pipeline:
        builder = CaseBuilder(dataset, policy, cache_dir)
        return _evaluate(builder, faults, config, baselines, lodo, progress, {"source": "direct read"})
    say = progress or (lambda _: None)
    with (
        tempfile.TemporaryDirectory(prefix="faultlens-eval-rca-") as tmp,
        _server(Path(tmp)) as (server, port),
    ):
        assert server.store is not None
        data_path = _replay_needed(dataset, faults, policy or WindowPolicy(), server, port, say)
        builder = CaseBuilder(dataset, policy, source=StoreSource(server.store))
        return _evaluate(builder, faults, config, baselines, lodo, progress, data_path)


def _evaluate(
    builder: CaseBuilder,
    faults: Sequence[Fault],
    config: RcaConfig | None,
    baselines: Mapping[str, Method] | None,
    lodo: bool,
    progress: Callable[[str], None] | None,
    data_path: dict[str, Any],
) -> EvalReport:
    cfg = config or RcaConfig()
    methods = DEFAULT_BASELINES if baselines is None else baselines
    results: list[CaseResult] = []
    kept: list[Case] = []
    for case in builder.cases(faults):
        results.append(_run_case(case, cfg, methods))
        if lodo:
            kept.append(case)
        if progress is not None:
            r = results[-1]
            progress(f"{r.inject_time} {r.service} {r.fault_type}: rank {r.methods[OURS].rank}")
    return EvalReport(tuple(results), summarise(results), _lodo(kept, cfg) if lodo else {}, data_path)


PIPELINE_PATH = "OTLP/gRPC -> receivers -> decode -> store"
# Far beyond the age of any labelled data (2e9 s is ~63 years), so retention keeps it all.
_RETENTION_S = 2e9


@contextmanager
def _server(data_dir: Path) -> Iterator[tuple[FaultlensServer, int]]:
    """A FaultlensServer on its own event-loop thread: free ports, no API, no analysis."""
    from faultlens.config.model import Config
    from faultlens.server import FaultlensServer

    config = Config.model_validate(
        {
            "store": {
                "data_dir": str(data_dir),
                "retention": _RETENTION_S,
                "retention_check_interval": 86400,
            },
            "receivers": {"grpc": {"port": 0}, "http": {"port": 0}},
            "api": {"enabled": False},
            "admission": {"memory_soft_limit_mib": None},
            "analysis": {"enabled": False},
            "log_level": "warning",
        }
    )
    server = FaultlensServer(config, shutdown_timeout_s=120)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="eval-rca-server", daemon=True)
    thread.start()
    try:
        listeners = asyncio.run_coroutine_threadsafe(server.start(), loop).result(60)
        yield server, next(ln.port for ln in listeners if ln.name == "otlp-grpc")
    finally:
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(300)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _records(
    dataset: NezhaDataset, trace: Sequence[TimeRange], metric: Sequence[TimeRange]
) -> Iterator[Record]:
    """Spans and logs of ``trace``, metric rows of ``metric``, merged in (about) time order.

    The ranges are sorted and disjoint, so chaining them keeps each stream in order and
    sends no row twice.
    """
    spans = itertools.chain.from_iterable(dataset.spans(r) for r in trace)
    logs = itertools.chain.from_iterable(dataset.logs(r) for r in trace)
    metrics = itertools.chain.from_iterable(dataset.metrics(r) for r in metric)
    return heapq.merge(spans, logs, metrics, key=lambda r: r.time_ns)


def _replay_needed(
    dataset: NezhaDataset,
    faults: Sequence[Fault],
    policy: WindowPolicy,
    server: FaultlensServer,
    port: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Send the ranges the cases read to ``server`` and wait until its store holds them all."""
    from faultlens.datasets import ReplayOptions, make_sender
    from faultlens.datasets.otlp import OtlpConverter
    from faultlens.datasets.replay import Replayer
    from faultlens.types import Transport

    assert server.store is not None
    trace, metric = needed_ranges(dataset, faults, policy)
    minutes = sum(r.duration_ns for r in trace) / 60e9, sum(r.duration_ns for r in metric) / 60e9
    say(f"replaying {minutes[0]:.0f} min of spans/logs and {minutes[1]:.0f} min of metrics over OTLP/gRPC")
    sender = make_sender(f"http://127.0.0.1:{port}", Transport.GRPC, timeout_s=60)
    everything = trace + metric
    hull = (
        TimeRange(min(r.start_ns for r in everything), max(r.end_ns for r in everything))
        if everything
        else None
    )
    replayer = Replayer(sender, OtlpConverter(pod_nodes=dataset.pod_nodes(hull)), ReplayOptions(speed=None))
    try:
        summary = replayer.run(_records(dataset, trace, metric))
    finally:
        sender.close()
    if summary.aborted:
        raise RuntimeError(f"the replay was aborted: {summary.aborted}")
    accepted = {s: summary.counts[s].accepted for s in Signal}
    t0 = time.perf_counter()
    while True:
        st = server.store.stats()
        stored = {Signal.TRACES: st.spans, Signal.LOGS: st.logs, Signal.METRICS: st.metric_points}
        if all(stored[s] >= accepted[s] for s in Signal):
            break
        if time.perf_counter() - t0 > 600:
            raise RuntimeError(f"the store holds {stored} of the accepted {accepted} after 10 minutes")
        time.sleep(0.2)
    waited = time.perf_counter() - t0
    say(f"replayed {summary.items} items in {summary.elapsed_s:.0f} s; stored after {waited:.1f} s more")
    return {
        "source": PIPELINE_PATH,
        "trace_minutes": round(minutes[0], 1),
        "metric_minutes": round(minutes[1], 1),
        "stored": {s.value: stored[s] for s in Signal},
        "replay": summary.as_dict(),
        "store_wait_s": round(waited, 1),
    }


def _table(report: EvalReport) -> str:
    lines = []
    path = report.data_path
    if path.get("source") == PIPELINE_PATH:
        counts = path["stored"]
        lines.append(
            f"data went through {PIPELINE_PATH}: {counts['traces']} spans, {counts['logs']} log records, "
            f"{counts['metrics']} data points stored, read back with store.window.read_window "
            f"(replay {path['replay']['elapsed_s']:.0f} s, store wait {path['store_wait_s']} s)"
        )
    lines.append("method                      AC@1   AC@3   AC@5  Avg@5  s/incident")
    for m, s in report.summary.items():
        o = s["overall"]
        lines.append(
            f"{m:26s} {o['AC@1']:6.3f} {o['AC@3']:6.3f} {o['AC@5']:6.3f} {o['Avg@5']:6.3f}"
            f"  {s['seconds_per_incident']['mean']:.3f}"
        )
    ours = report.summary.get(OURS, {})
    for t, f in ours.get("by_fault_type", {}).items():
        lines.append(f"  {OURS} {t:22s} n={f['n']:3d} AC@1 {f['AC@1']:.3f} AC@3 {f['AC@3']:.3f}")
    for d, f in ours.get("by_day", {}).items():
        lines.append(f"  {OURS} {d:22s} n={f['n']:3d} AC@1 {f['AC@1']:.3f} AC@3 {f['AC@3']:.3f}")
    for held, v in report.lodo.get("held_out", {}).items():
        lines.append(f"  LODO held out {held}: chose {v['chosen_on_other_days']} -> test {v['test']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m faultlens.eval.rca", description=__doc__.split("\n")[0])
    p.add_argument("dir", type=Path, help="a directory in the Nezha layout")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--cache-dir", type=Path, default=None, help="cache parsed days as Parquet here")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N faults")
    p.add_argument("--lodo", action="store_true", help="add the leave-one-day-out check")
    p.add_argument(
        "--via-pipeline",
        action="store_true",
        help="replay the needed minutes through an in-process server and read the cases from its store",
    )
    args = p.parse_args(argv)
    report = evaluate(
        args.dir,
        cache_dir=args.cache_dir,
        limit=args.limit,
        lodo=args.lodo,
        via_pipeline=args.via_pipeline,
        progress=None if args.json else lambda s: print(s, file=sys.stderr),
    )
    if args.json:
        print(json.dumps(asdict(report), indent=2, default=str))
    else:
        print(_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
