"""Span-level evidence: which requests changed, and which of them started the change.

Four families of tests look at every span of the window against the baseline:

==================  ======================================  ===================================
reason              group of spans                          a span is *affected* when
==================  ======================================  ===================================
LOG_PATTERN         operation x log signature               its signature is that one
SLOW_EXECUTION      operation x pod                         exclusive time > baseline quantile
SLOW_CALLS_INTO     callee service x callee pod             edge time > baseline quantile
FAILED_CALLS_INTO   callee service x callee pod             the CLIENT span failed, the callee's
                    (CLIENT spans whose callee is known)    own span did not (or it sent none)
ERROR_ORIGIN        operation x pod                         the span failed (status, HTTP, gRPC),
                                                            unless FAILED_CALLS_INTO took it
==================  ======================================  ===================================

(see :mod:`faultlens.rca.signatures` for log signatures, :func:`call_spans` for edge time,
:func:`client_calls` for the callee of a CLIENT span.)

A group *changed* when the lower confidence bound of its affected share exceeds the
baseline's share. The affected spans of changed groups are *flagged*. A flagged span with
no flagged span below it in its trace *originates* the change
(:func:`faultlens.graph.error_origins`); the others only passed it on. Each group's
evidence is then its share of *originating* affected spans, at the lower confidence bound,
minus the baseline share: a caller that only reacts to a failing callee has flagged spans
but few origins, so it scores little, whatever the signal.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from faultlens.graph.frame import F64, I64, KIND_CLIENT, B, SpanFrame
from faultlens.graph.propagation import strongest_descendant
from faultlens.rca.model import BaselineModel, Finding, LogChange, LogEvidence, RcaConfig, Reason
from faultlens.rca.stats import count_surprise

__all__ = ["SpanEvidence", "call_spans", "client_calls", "span_evidence", "wilson_lower"]


def wilson_lower(k: npt.NDArray[np.float64] | float, n: npt.NDArray[np.float64] | float, z: float) -> F64:
    """One-sided Wilson lower confidence bound of a binomial share ``k / n`` (0 when n == 0)."""
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.maximum(np.asarray(n, dtype=np.float64), 1e-12)
    p = k_arr / n_arr
    z2 = z * z
    centre = p + z2 / (2 * n_arr)
    spread = z * np.sqrt(np.maximum(p * (1 - p) / n_arr + z2 / (4 * n_arr * n_arr), 0.0))
    out = (centre - spread) / (1 + z2 / n_arr)
    return np.where(np.asarray(n, dtype=np.float64) > 0, np.maximum(out, 0.0), 0.0)


def call_spans(frame: SpanFrame) -> tuple[B, I64, I64]:
    """(is call span, callee row, edge time) per span.

    A call span is the caller's side of a call: exactly one child, in another service (as
    client spans are; no span kinds needed). Its edge time is its duration minus the
    callee's span: network, queueing before the callee's handler, client overhead.
    """
    cross = frame.cross_service()
    child_of = np.full(frame.n, -1, dtype=np.int64)
    rows = np.nonzero(cross)[0]
    child_of[frame.parent[rows]] = rows
    is_call = (frame.child_count == 1) & (child_of >= 0)
    edge_time = np.where(is_call, frame.duration - frame.duration[np.maximum(child_of, 0)], 0)
    return is_call, child_of, np.maximum(edge_time, 0).astype(np.int64)


def client_calls(frame: SpanFrame, svc_key: I64, svc_index: dict[str, int]) -> tuple[B, I64, I64, B]:
    """(tested, callee key, callee pod or -1, failed) per span, for CLIENT spans.

    A CLIENT span's callee is the service of its one child in another service (a call
    span), or, when it has no child, the instrumented service its ``peer.service`` names
    (one of ``svc_index``): a callee killed, unreachable or answering before its own span
    starts leaves its callers' CLIENT spans without a child. Its call *failed on the
    callee's side* when the CLIENT span failed and the callee's own span did not (or there
    is none): no answer, or an answer the caller rejected. A callee whose own span failed
    is ERROR_ORIGIN's (its span is below the caller's).
    """
    is_call, child_of, _ = call_spans(frame)
    child = np.maximum(child_of, 0)
    peer_key = np.asarray([svc_index.get(p, -1) if p else -1 for p in frame.peers], dtype=np.int64)
    named = peer_key[frame.peer] if frame.n else np.zeros(0, dtype=np.int64)
    client = frame.kind == KIND_CLIENT
    childless = frame.child_count == 0
    tested = client & (is_call | (childless & (named >= 0)))
    callee = np.where(is_call, svc_key[frame.service[child]], named)
    pod = np.where(is_call, frame.pod[child].astype(np.int64), -1)
    failed = tested & frame.error & ~(is_call & frame.error[child])
    return tested, np.where(tested, callee, -1), pod, failed


@dataclass(frozen=True, slots=True)
class _Family:
    """One family of tests: every tested window span has a group and an affected flag."""

    reason: Reason
    group: I64  # per window span: group id, -1 when not tested
    affected: B  # per window span
    base_share: F64  # per group: the baseline's affected share
    labels: list[tuple[str, str, str]]  # per group: (service, operation, pod)
    details: list[str]  # per group: what "affected" means, for the evidence text
    # Requests a group's share is taken over. By default the group's own spans; for log
    # signatures every span of the operation (``population`` per span, ``group_population``
    # per group name the operation).
    population: I64 | None = None
    group_population: I64 | None = None
    # Log signatures only: per group, the (new, missing) statement keys against the usual.
    changes: list[tuple[tuple[str, ...], tuple[str, ...]]] | None = None

    def sizes(self, mask: B) -> F64:
        """Per group, how many spans under ``mask`` its share is taken over."""
        m = len(self.labels)
        if self.population is None or self.group_population is None:
            sel = mask & (self.group >= 0)
            return np.bincount(self.group[sel], minlength=m).astype(np.float64)
        sel = mask & (self.population >= 0)
        counts = np.bincount(self.population[sel], minlength=int(self.group_population.max(initial=-1)) + 1)
        return counts[self.group_population].astype(np.float64) if m else np.zeros(0)


@dataclass(frozen=True, slots=True)
class SpanEvidence:
    flagged: B
    originated: B
    findings: tuple[Finding, ...]


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms"


NS_PER_MIN = 60_000_000_000
_SAMPLE_TRACES = 5  # trace ids kept per finding, for a person to open


def baseline_share(
    k_total: float,
    n_total: float,
    per_minute: list[tuple[int, int]],
    model: BaselineModel = BaselineModel.POOLED,
    z: float = 2.0,
) -> float:
    """The affected share the baseline allows a window (see :class:`BaselineModel`).

    ``per_minute`` holds (affected, total) of each baseline minute. Pooled: the share over
    all baseline spans (smoothed by half a span). Envelope: at least the highest minute's
    share at its lower confidence bound. Spread: the pooled share plus ``z`` times the
    spread of the minutes' shares around it beyond what their sampling explains.
    """
    pooled = (k_total + 0.5) / (n_total + 1)
    if model is BaselineModel.POOLED or len(per_minute) == 0:
        return pooled
    k = np.asarray([p[0] for p in per_minute], dtype=np.float64)
    n = np.asarray([p[1] for p in per_minute], dtype=np.float64)
    if model is BaselineModel.ENVELOPE:
        return max(pooled, float(wilson_lower(k, n, z).max()))
    return min(pooled + z * minute_spread(k, n, pooled), 1.0)


def minute_spread(k: F64, n: F64, share: float) -> float:
    """Standard deviation of the true per-minute share around ``share``, beyond sampling.

    Method of moments (as in random-effects meta-analysis): the mean squared deviation of
    the minutes' shares from ``share``, minus the binomial variance each minute's share
    would have if every minute had the same true share; 0 with fewer than two minutes.
    Why: which branch a request takes depends on its data, and workloads drift minute by
    minute, so a pattern whose share swings between normal minutes is normal at any share
    within its swing; one that never swings is judged on its sampling noise alone.
    """
    keep = n > 0
    k, n = k[keep], n[keep]
    if k.size < 2:
        return 0.0
    dev = float(np.sum((k / n - share) ** 2)) / (k.size - 1)
    noise = float(np.mean(share * (1.0 - share) / n))
    return float(np.sqrt(max(dev - noise, 0.0)))


def _baseline_model(cfg: RcaConfig) -> tuple[BaselineModel, float]:
    return cfg.baseline_model, cfg.confidence_z


def _minute_counts(
    keys: list[object], hit: list[bool], minutes: list[int]
) -> dict[object, list[tuple[int, int]]]:
    """Per key, (affected, total) per minute."""
    acc: dict[tuple[object, int], list[int]] = {}
    for key, h, m in zip(keys, hit, minutes, strict=True):
        a = acc.setdefault((key, m), [0, 0])
        a[0] += int(h)
        a[1] += 1
    out: dict[object, list[tuple[int, int]]] = {}
    for (key, _), (k, n) in acc.items():
        out.setdefault(key, []).append((k, n))
    return out


def _encode(keys: list[tuple[object, ...]]) -> tuple[I64, list[tuple[object, ...]]]:
    index: dict[tuple[object, ...], int] = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys))
    return codes, list(index)


def _log_family(
    frame: SpanFrame,
    sigs: list[str],
    base: SpanFrame,
    base_sigs: list[str],
    usual: dict[tuple[str, str], str],
    model: tuple[BaselineModel, float],
) -> _Family:
    ops = frame.operations
    keys: list[tuple[object, ...]] = [
        (ops[o], s) for o, s in zip(frame.operation.tolist(), sigs, strict=True)
    ]
    group, labels = _encode(keys)
    b_ops = [base.operations[o] for o in base.operation.tolist()]
    b_pairs = Counter(zip(b_ops, base_sigs, strict=True))
    b_tot = Counter(b_ops)
    b_min = (base.start // NS_PER_MIN).tolist()
    # per (op, sig): per-minute (spans with sig, spans of op)
    op_min = Counter(zip(b_ops, b_min, strict=True))
    sig_min = Counter(zip(b_ops, base_sigs, b_min, strict=True))
    minutes_of: dict[tuple[str, str], list[int]] = {}
    for op_m, m in op_min:
        minutes_of.setdefault(op_m, []).append(m)
    share = np.zeros(len(labels))
    tested = np.ones(len(labels), dtype=bool)
    out_labels: list[tuple[str, str, str]] = []
    details: list[str] = []
    changes: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for g, (op_obj, sig_obj) in enumerate(labels):
        assert isinstance(op_obj, tuple) and isinstance(sig_obj, str)
        op: tuple[str, str] = (str(op_obj[0]), str(op_obj[1]))
        sig = sig_obj
        bt = b_tot.get(op, 0)
        tested[g] = bt > 0
        per_minute = [(sig_min.get((op, sig, m), 0), op_min[(op, m)]) for m in minutes_of.get(op, [])]
        share[g] = baseline_share(b_pairs.get((op, sig), 0), bt, per_minute, *model)
        have = set(sig.split("|")) if sig else set()
        norm = usual.get(op, "")
        norm_set = set(norm.split("|")) if norm else set()
        parts = []
        if have - norm_set:
            parts.append("new " + ", ".join(sorted(have - norm_set)))
        if norm_set - have:
            parts.append("missing " + ", ".join(sorted(norm_set - have)))
        details.append("log " + ("; ".join(parts) if parts else f"pattern [{sig or 'no logs'}]"))
        changes.append((tuple(sorted(have - norm_set)), tuple(sorted(norm_set - have))))
        out_labels.append((op[0], op[1], ""))
    group = np.where(tested[group], group, -1)
    op_code = {op: i for i, op in enumerate(frame.operations)}
    group_pop = np.asarray([op_code[lb[0]] for lb in labels if isinstance(lb[0], tuple)], dtype=np.int64)
    population = np.where(group >= 0, frame.operation.astype(np.int64), -1)
    return _Family(
        Reason.LOG_PATTERN,
        group,
        np.ones(frame.n, dtype=bool),
        share,
        out_labels,
        details,
        population,
        group_pop,
        changes,
    )


def _threshold_family(
    reason: Reason,
    frame: SpanFrame,
    base: SpanFrame,
    values: I64,
    b_values: I64,
    rows: B,
    b_rows: B,
    key_of: tuple[I64, I64],  # (baseline key per window span, per baseline span) in a shared space
    pod_of: I64,
    names: list[str],
    what: str,
    cfg: RcaConfig,
) -> _Family:
    """Groups (key, pod) whose spans exceed the key's baseline quantile by ``min_excess_ns``."""
    key, b_key = key_of
    group = np.full(frame.n, -1, dtype=np.int64)
    affected = np.zeros(frame.n, dtype=bool)
    labels: list[tuple[str, str, str]] = []
    shares: list[float] = []
    details: list[str] = []
    thresholds: dict[int, tuple[float, float, float]] = {}
    b_minute = base.start // NS_PER_MIN
    for k in np.unique(b_key[b_rows]).tolist():
        sel = b_rows & (b_key == k)
        b = b_values[sel].astype(np.float64)
        if b.size < cfg.min_baseline_spans:
            continue
        thr = float(np.quantile(b, cfg.slow_quantile)) + cfg.min_excess_ns
        mins = b_minute[sel]
        per_minute = [
            (int(np.count_nonzero(b[mins == m] > thr)), int(np.count_nonzero(mins == m)))
            for m in np.unique(mins)
        ]
        share = baseline_share(
            float(np.count_nonzero(b > thr)), float(b.size), per_minute, *_baseline_model(cfg)
        )
        thresholds[k] = (thr, share, float(np.median(b)))
    pairs: dict[tuple[int, int], int] = {}
    for i in np.nonzero(rows)[0].tolist():
        k = int(key[i])
        t = thresholds.get(k)
        if t is None:
            continue
        gk = (k, int(pod_of[i]))
        g = pairs.get(gk)
        if g is None:
            g = pairs[gk] = len(labels)
            service, operation = names[k].split("\x1f", 1)
            labels.append((service, operation, frame.pods[gk[1]]))
            shares.append(t[1])
            details.append(f"{what} above {_ms(t[0])} (baseline median {_ms(t[2])})")
        group[i] = g
        affected[i] = values[i] > t[0]
    return _Family(reason, group, affected, np.asarray(shares, dtype=np.float64), labels, details)


def _failed_calls_family(
    frame: SpanFrame,
    base: SpanFrame,
    calls: tuple[B, I64, I64, B],
    b_calls: tuple[B, I64, I64, B],
    svc_names: list[str],
    model: tuple[BaselineModel, float],
) -> _Family | None:
    """FAILED_CALLS_INTO: per (callee service, callee pod), the CLIENT spans into it that
    failed on its side (:func:`client_calls`), against the baseline's share into that service."""
    tested, callee, pod, failed = calls
    if not failed.any():
        return None
    b_tested, b_callee, _, b_failed = b_calls
    rows = np.nonzero(b_tested)[0]
    b_keys = b_callee[rows].tolist()
    per_min = _minute_counts(list(b_keys), b_failed[rows].tolist(), (base.start[rows] // NS_PER_MIN).tolist())
    b_err = Counter(b_callee[b_failed].tolist())
    b_tot = Counter(b_keys)
    where = np.nonzero(tested)[0]
    codes, labels = _encode([(int(callee[i]), int(pod[i])) for i in where.tolist()])
    group = np.full(frame.n, -1, dtype=np.int64)
    group[where] = codes
    shares = np.zeros(len(labels))
    out: list[tuple[str, str, str]] = []
    for g, (c, p) in enumerate(labels):
        assert isinstance(c, int) and isinstance(p, int)
        shares[g] = baseline_share(b_err.get(c, 0), b_tot.get(c, 0), per_min.get(c, []), *model)
        out.append((svc_names[c], "", frame.pods[p] if p >= 0 else ""))
    what = "were calls into it that failed while its own span did not (no answer, or one the caller rejected)"
    return _Family(Reason.FAILED_CALLS_INTO, group, failed.copy(), shares, out, [what] * len(labels))


def _error_family(
    frame: SpanFrame, base: SpanFrame, model: tuple[BaselineModel, float], taken: B, b_taken: B
) -> _Family | None:
    """ERROR_ORIGIN: failed spans per (operation, pod), but for those FAILED_CALLS_INTO took
    (``taken``, ``b_taken``): a caller whose calls into a dead callee fail did not fail itself."""
    errors, b_errors = frame.error & ~taken, base.error & ~b_taken
    if not errors.any():
        return None
    b_ops = [base.operations[o] for o in base.operation.tolist()]
    per_min = _minute_counts(list(b_ops), b_errors.tolist(), (base.start // NS_PER_MIN).tolist())
    b_err = Counter(base.operations[o] for o in base.operation[b_errors].tolist())
    b_tot = Counter(base.operations[o] for o in base.operation.tolist())
    keys: list[tuple[object, ...]] = [
        (o, p) for o, p in zip(frame.operation.tolist(), frame.pod.tolist(), strict=True)
    ]
    group, labels = _encode(keys)
    shares = np.zeros(len(labels))
    out: list[tuple[str, str, str]] = []
    for g, (o, p) in enumerate(labels):
        assert isinstance(o, int) and isinstance(p, int)
        op = frame.operations[o]
        shares[g] = baseline_share(b_err.get(op, 0), b_tot.get(op, 0), per_min.get(op, []), *model)
        out.append((op[0], op[1], frame.pods[p]))
    details = ["failed"] * len(labels)
    return _Family(Reason.ERROR_ORIGIN, group, errors, shares, out, details)


def _changed(fam: _Family, z: float) -> F64:
    """Per window span: the strength of its group's change when the span is affected and
    its group's affected share rose beyond the baseline (lower bound minus baseline share);
    0 otherwise (every span when the family formed no group: a window or baseline too
    small to judge it)."""
    m = len(fam.labels)
    if m == 0:
        return np.zeros(fam.group.size, dtype=np.float64)
    tested = fam.group >= 0
    n = fam.sizes(np.ones(fam.group.size, dtype=bool))
    k = np.bincount(fam.group[tested & fam.affected], minlength=m).astype(np.float64)
    strength = np.maximum(wilson_lower(k, n, z) - fam.base_share, 0.0)
    return np.where(tested & fam.affected, strength[np.maximum(fam.group, 0)], 0.0)


# Families whose rows are the callers' spans, grouped by callee: a group's pod is the
# callee's, known from its span or not at all, never the pod the callers' spans ran on.
_CALLER_ROWS = frozenset({Reason.SLOW_CALLS_INTO, Reason.FAILED_CALLS_INTO})


def _findings(fam: _Family, flagged: B, below: B, frame: SpanFrame, z: float) -> list[Finding]:
    """Per group, the changed share among its requests with nothing changed below them.

    A caller that only reacts to a failing callee changes (almost) only in requests where
    the callee changed too; among the others its share is the baseline's. A service that
    changed on its own keeps its share there. So the share is taken over the requests with
    no flagged descendant (``below`` false), at its lower confidence bound.
    """
    m = len(fam.labels)
    if m == 0:
        return []
    tested = fam.group >= 0
    n_all = fam.sizes(np.ones(fam.group.size, dtype=bool))
    n = n_all
    hit = tested & fam.affected & flagged
    k_flag = np.bincount(fam.group[hit], minlength=m).astype(np.float64)
    k_orig = np.bincount(fam.group[hit & ~below], minlength=m).astype(np.float64)
    effect = wilson_lower(k_orig, n, z) - fam.base_share
    out: list[Finding] = []
    for g in np.nonzero(effect > 0)[0].tolist():
        service, operation, pod = fam.labels[g]
        rows = hit & ~below & (fam.group == g)
        if not pod and fam.reason not in _CALLER_ROWS:  # the rows are the service's own spans
            pods = Counter(frame.pods[p] for p in frame.pod[rows].tolist()).most_common(1)
            pod = pods[0][0] if pods else ""
        where = f"{service}: {operation}" if operation else service
        if pod and fam.reason is not Reason.LOG_PATTERN:
            where += f" on {pod}"
        text = (
            f"{where}: {int(k_orig[g])} of {int(n[g])} requests with nothing changed below them"
            f" {fam.details[g]} ({k_orig[g] / max(n[g], 1):.0%} vs baseline {fam.base_share[g]:.0%}"
            + (
                f"; {int(k_flag[g] - k_orig[g])} more only passed on a change from below"
                if k_flag[g] > k_orig[g]
                else ""
            )
            + ")"
        )
        idx = np.nonzero(rows)[0]
        starts = frame.start[idx]
        traces = dict.fromkeys(frame.trace_ids[t] for t in frame.trace[idx[: _SAMPLE_TRACES * 4]].tolist())
        logs: tuple[LogEvidence, ...] = ()
        if fam.changes is not None:
            new, missing = fam.changes[g]
            logs = tuple(LogEvidence(k, LogChange.NEW, "", "") for k in new) + tuple(
                LogEvidence(k, LogChange.MISSING, "", "") for k in missing
            )
        out.append(
            Finding(
                service=service,
                reason=fam.reason,
                operation=operation,
                pod=pod,
                effect=float(effect[g]),
                z=count_surprise(k_orig[g], n[g] * fam.base_share[g]),
                evidence=text,
                first_ns=int(starts.min()) if idx.size else None,
                last_ns=int(starts.max()) if idx.size else None,
                trace_ids=tuple(list(traces)[:_SAMPLE_TRACES]),
                logs=logs,
            )
        )
    return out


def span_evidence(
    frame: SpanFrame,
    signatures: list[str],
    base: SpanFrame,
    base_signatures: list[str],
    usual: dict[tuple[str, str], str],
    cfg: RcaConfig,
) -> SpanEvidence:
    """Run the four test families, resolve origins over the traces, and report findings."""
    is_call, child_of, edge_time = call_spans(frame)
    b_call, b_child, b_edge = call_spans(base)

    # Shared key spaces: operations by (service, name), callees by service name.
    op_names = sorted({*frame.operations, *base.operations})
    op_index = {op: i for i, op in enumerate(op_names)}
    op_key = np.asarray([op_index[frame.operations[o]] for o in range(len(frame.operations))], dtype=np.int64)
    b_op_key = np.asarray([op_index[base.operations[o]] for o in range(len(base.operations))], dtype=np.int64)
    names = [f"{s}\x1f{o}" for s, o in op_names]
    svc_names = sorted({*frame.services, *base.services})
    svc_index = {s: i for i, s in enumerate(svc_names)}
    svc_key = np.asarray([svc_index[s] for s in frame.services], dtype=np.int64)
    b_svc_key = np.asarray([svc_index[s] for s in base.services], dtype=np.int64)

    families: list[_Family] = [
        _log_family(frame, signatures, base, base_signatures, usual, _baseline_model(cfg))
    ]
    if frame.n and base.n:
        families.append(
            _threshold_family(
                Reason.SLOW_EXECUTION,
                frame,
                base,
                frame.exclusive_time(),
                base.exclusive_time(),
                ~is_call,
                ~b_call,
                (op_key[frame.operation], b_op_key[base.operation]),
                frame.pod.astype(np.int64),
                names,
                "took exclusive time",
                cfg,
            )
        )
        callee = np.maximum(child_of, 0)
        b_callee = np.maximum(b_child, 0)
        families.append(
            _threshold_family(
                Reason.SLOW_CALLS_INTO,
                frame,
                base,
                edge_time,
                b_edge,
                is_call,
                b_call,
                (svc_key[frame.service[callee]], b_svc_key[base.service[b_callee]]),
                frame.pod[callee].astype(np.int64),
                [f"{s}\x1f" for s in svc_names],
                "waited on the call beyond the callee's own time",
                cfg,
            )
        )
    calls = client_calls(frame, svc_key, svc_index)
    b_calls = client_calls(base, b_svc_key, svc_index)
    failed_calls = _failed_calls_family(frame, base, calls, b_calls, svc_names, _baseline_model(cfg))
    if failed_calls is not None:
        families.append(failed_calls)
    err = _error_family(frame, base, _baseline_model(cfg), calls[3], b_calls[3])
    if err is not None:
        families.append(err)

    strength = np.zeros(frame.n, dtype=np.float64)
    for fam in families:
        strength = np.maximum(strength, _changed(fam, cfg.confidence_z))
    flagged = strength > 0
    # A flagged span only passed a change on when a change below it is at least
    # ``explain_ratio`` as strong as its own: a weak, common shift deep in the trace does
    # not explain away a strong one above it.
    below = flagged & (strongest_descendant(frame, strength) >= cfg.explain_ratio * strength)
    originated = flagged & ~below
    findings: list[Finding] = []
    for fam in families:
        findings.extend(_findings(fam, flagged, below, frame, cfg.confidence_z))
    findings.sort(key=lambda f: (-f.effect, f.service, f.reason.value, f.operation, f.pod))
    return SpanEvidence(flagged, originated, tuple(findings))
