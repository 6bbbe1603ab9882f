"""Rank root-cause candidates of a window against a baseline: the entry point of ``rca``.

How the evidence is combined, and why this way:

- Every finding (:mod:`.spans`, :mod:`.resources`) carries an ``effect`` on one scale: the
  share of requests (or of capacity) that changed beyond the baseline, at its lower
  confidence bound. A service's score is its strongest finding's effect. Taking the
  maximum rather than a weighted sum means no weights to fit: one clear piece of
  evidence (every request of an operation now skips a log statement; a pod pinned at
  100 % CPU) is enough, and many weak ones do not add up to a strong one.
- Span findings count only spans that *originate* a change (no changed span below them
  in the trace), so callers that react to a failing callee are not blamed for it.
- A caller's log-pattern finding whose requests parted from their usual call path right
  after one callee is that callee's (:mod:`.anchors`, ``changed_answer``); call-edge latency
  gauges add ``slow_calls_into`` findings (:func:`.resources.edge_findings`), and a service's
  own success or error ratio gauge ``failed_requests`` (:func:`.resources.error_ratio_findings`).
- Service names equal but for letter case (``Billing`` beside ``billing``: a scrape job's
  label beside the SDK's ``service.name``) are one service, named as the spans name it.
- Ties are broken by the next strongest findings, then by name (deterministic).

Pure: tables and a config in, a :class:`~.model.RcaResult` out; no I/O, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.templates.drain import Drain
from faultlens.graph.build import build_service_graph
from faultlens.graph.frame import span_frame
from faultlens.graph.propagation import propagation_chains
from faultlens.rca.anchors import hand_over
from faultlens.rca.model import Candidate, Finding, LogChange, LogEvidence, Observations, RcaConfig, RcaResult
from faultlens.rca.resources import edge_findings, error_ratio_findings, resource_findings
from faultlens.rca.signatures import TEMPLATE_PREFIX, log_keys, span_signatures, usual_signatures
from faultlens.rca.spans import span_evidence

__all__ = ["rank_root_causes"]


def rank_root_causes(
    current: Observations, baseline: Observations, config: RcaConfig | None = None
) -> RcaResult:
    """Candidates for the root cause of what changed in ``current`` compared with ``baseline``."""
    cfg = config or RcaConfig()
    frame = span_frame(current.spans)
    base = span_frame(baseline.spans)
    drains: dict[str, Drain] = {}
    base_keys = log_keys(baseline.logs, drains)
    keys = log_keys(current.logs, drains)
    base_sigs = span_signatures(baseline.spans, baseline.logs, base_keys)
    sigs = span_signatures(current.spans, current.logs, keys)
    usual = usual_signatures(base, base_sigs)

    spans = span_evidence(frame, sigs, base, base_sigs, usual, cfg)
    texts = _LogTexts(drains, (current.logs, keys), (baseline.logs, base_keys))
    described = [texts.describe(f) for f in spans.findings]  # before: the caller's lines name them
    findings = [
        *hand_over(described, (frame, sigs), (base, base_sigs), usual),
        *resource_findings(current.metrics, baseline.metrics, cfg),
        *edge_findings(current.metrics, baseline.metrics, cfg),
        *error_ratio_findings(current.metrics, baseline.metrics),
    ]

    named = _one_name_per_service(current, baseline)
    by_service: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        name = named(f.service)
        by_service[name].append(f if name == f.service else replace(f, service=name))
    ranked: list[tuple[tuple[float, ...], str, list[Finding]]] = []
    for service, fs in by_service.items():
        fs.sort(key=lambda f: (-f.effect, f.reason.value, f.operation, f.pod))
        ranked.append((tuple(-f.effect for f in fs[:3]), service, fs))
    ranked.sort(key=lambda r: (r[0], r[1]))
    candidates = []
    for i, (_, service, fs) in enumerate(ranked[: cfg.max_candidates]):
        top = fs[0]
        candidates.append(
            Candidate(
                rank=i + 1,
                service=service,
                score=top.effect,
                reason=top.reason,
                operation=top.operation,
                pod=top.pod,
                findings=tuple(fs[: cfg.max_findings]),
            )
        )
    graph = build_service_graph(current.spans, frame=frame)
    chains = propagation_chains(graph, build_service_graph(baseline.spans, frame=base))
    return RcaResult(tuple(candidates), chains, graph, int(spans.originated.sum()))


def _one_name_per_service(*sides: Observations) -> Callable[[str], str]:
    """A service name -> the name of that service most of the telemetry uses.

    Names equal but for letter case are taken for one service (a scrape job's ``Billing``
    beside the SDK's ``billing``), named as the spans name it; with no spans under any of
    them, as the logs do; else as the most metric points do. A tie leaves each name as it is.
    """
    counts: list[dict[str, int]] = [defaultdict(int), defaultdict(int), defaultdict(int)]
    for side in sides:
        for i, t in enumerate((side.spans, side.logs, side.metrics)):
            if t.num_rows and "service_name" in t.column_names:
                for row in pc.value_counts(t.column("service_name")).to_pylist():
                    if row["values"]:
                        counts[i][row["values"]] += row["counts"]
    folded: dict[str, set[str]] = defaultdict(set)
    for by_name in counts:
        for n in by_name:
            folded[n.casefold()].add(n)
    chosen: dict[str, str] = {}
    for names in folded.values():
        if len(names) < 2:
            continue
        for by_name in counts:
            ranked = sorted(((by_name.get(n, 0), n) for n in names), reverse=True)
            if ranked[0][0] > 0:
                if ranked[0][0] > ranked[1][0]:
                    chosen.update((n, ranked[0][1]) for n in names)
                break
    return lambda name: chosen.get(name, name)


_SAMPLE_CHARS = 300


class _LogTexts:
    """The template text and one sample line of the log statements findings name.

    A statement known by its code location gets its template from the lines that carry
    that location (mined on their own, so ``<*>`` marks what varies between them); one
    known by its Drain template (``template:<id>``) gets that template's text. The sample
    is the first such line of the window, or of the baseline for a statement gone missing.
    """

    def __init__(self, drains: dict[str, Drain], *sides: tuple[pa.Table, list[str]]) -> None:
        self._drains = drains
        self._sides = sides
        self._cache: dict[tuple[str, str, LogChange], LogEvidence] = {}

    def describe(self, f: Finding) -> Finding:
        if not f.logs:
            return f
        logs = tuple(self._one(f.service, e) for e in f.logs)
        words = "; ".join(
            f'{e.change.value} "{e.template}"' + (f' (e.g. "{e.sample}")' if e.sample != e.template else "")
            for e in logs
            if e.template
        )
        return replace(f, logs=logs, evidence=f"{f.evidence}: {words}" if words else f.evidence)

    def _one(self, service: str, e: LogEvidence) -> LogEvidence:
        key = (service, e.key, e.change)
        if key not in self._cache:
            sides = self._sides if e.change is LogChange.NEW else tuple(reversed(self._sides))
            lines = self._lines(service, e.key, sides)
            template = ""
            if e.key.startswith(TEMPLATE_PREFIX) and e.key[len(TEMPLATE_PREFIX) :].isdigit():
                drain = self._drains.get(service)
                cluster = drain.cluster(int(e.key[len(TEMPLATE_PREFIX) :])) if drain else None
                template = cluster.template if cluster is not None else ""
            elif lines:
                local = Drain()
                local.add_many(lines)
                found = local.match(lines[0])
                template = found.template if found is not None else lines[0]
            sample = lines[0] if lines else ""
            self._cache[key] = LogEvidence(e.key, e.change, template[:_SAMPLE_CHARS], sample[:_SAMPLE_CHARS])
        return self._cache[key]

    @staticmethod
    def _lines(service: str, key: str, sides: tuple[tuple[pa.Table, list[str]], ...]) -> list[str]:
        """Up to 20 first lines (of the first side that has any) logged by ``service`` under ``key``."""
        for logs, keys in sides:
            if logs.num_rows == 0:
                continue
            services = logs.column("service_name")
            rows = [i for i, k in enumerate(keys) if k == key]
            picked = [i for i in rows if services[i].as_py() == service][:20]
            if picked:
                bodies = logs.column("body").take(pa.array(picked)).to_pylist()
                return [(b or "").split("\n", 1)[0] for b in bodies]
        return []
