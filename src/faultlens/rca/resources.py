"""Metric evidence: a pod's CPU or memory utilisation above its normal range, time added on
call edges, and the failed share a service's success or error ratio gauge reports.

Only *utilisation* series are read: a share of a capacity (unit ``%`` or ``1``) of CPU or
memory of a container or pod, recognised by name and unit, never by which system sent
them. Utilisation has a natural scale, the capacity, so its evidence is the rise of the
window's highest value above the baseline's highest value as a share of capacity: CPU
stress that pins a pod at 100 % from a normal 3 % is an effect of 0.97, the same scale as
"97 % of an operation's requests changed" in :mod:`faultlens.rca.spans`. Rises smaller
than ``resource_floor`` are ignored. The robust z against the baseline is reported too.

A success or error ratio gauge (:func:`~faultlens.analysis.anomaly.signals.error_ratio`)
has a natural scale too: the share of requests that failed, the scale of every span finding.

Other series (byte counters, syscalls, latency gauges) are left out on purpose: without
a capacity their rises have no common scale, and spans measure latency better.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.anomaly.signals import UtilisationOf, error_ratio, outgoing, peer_column, utilisation
from faultlens.analysis.anomaly.types import GAUGE_ERROR_RATE_FLOOR
from faultlens.rca.model import Finding, RcaConfig, Reason
from faultlens.rca.stats import MAD_TO_SD

__all__ = ["edge_findings", "error_ratio_findings", "resource_findings", "utilisation_kind"]

_REASONS = {UtilisationOf.CPU: Reason.CPU_SATURATION, UtilisationOf.MEMORY: Reason.MEMORY_PRESSURE}


def utilisation_kind(name: str, unit: str | None) -> tuple[Reason, float] | None:
    """(reason, capacity in the series' unit) when the series is a CPU or memory utilisation."""
    found = utilisation(name, unit)
    return None if found is None else (_REASONS[found.of], found.capacity)


def _unit_by_name(metrics: pa.Table) -> dict[str, str | None]:
    """Metric name -> its unit (the last row's, when rows disagree), names in first-seen order."""
    return dict(
        zip(metrics.column("metric_name").to_pylist(), metrics.column("metric_unit").to_pylist(), strict=True)
    )


def _pod_column(t: pa.Table) -> pa.ChunkedArray:
    return pc.coalesce(t.column("k8s_pod_name"), t.column("service_instance_id"), pa.scalar(""))


def resource_findings(metrics: pa.Table, base_metrics: pa.Table, cfg: RcaConfig) -> list[Finding]:
    """Utilisation rises per (pod, series) of the window against the baseline."""
    if metrics.num_rows == 0 or base_metrics.num_rows == 0:
        return []
    out: list[Finding] = []
    units = _unit_by_name(metrics)
    for name in units:
        kind = utilisation_kind(name, units.get(name))
        if kind is None:
            continue
        reason, capacity = kind
        cur = metrics.filter(pc.equal(metrics.column("metric_name"), name))
        base = base_metrics.filter(pc.equal(base_metrics.column("metric_name"), name))
        cur_pods = np.asarray(_pod_column(cur).to_pylist(), dtype=object)
        base_pods = np.asarray(_pod_column(base).to_pylist(), dtype=object)
        cur_v = pc.fill_null(cur.column("value"), np.nan).to_numpy()
        cur_t = pc.fill_null(cur.column("time_unix_nano"), 0).to_numpy().astype(np.int64)
        base_v = pc.fill_null(base.column("value"), np.nan).to_numpy()
        services = dict(zip(cur_pods.tolist(), cur.column("service_name").to_pylist(), strict=True))
        for pod in sorted(set(cur_pods.tolist())):
            v = cur_v[cur_pods == pod]
            t = cur_t[cur_pods == pod]
            b = base_v[base_pods == pod]
            t, v, b = t[np.isfinite(v)], v[np.isfinite(v)], b[np.isfinite(b)]
            if v.size == 0 or b.size == 0:
                continue
            top, normal_top = float(v.max()), float(b.max())
            effect = (top - normal_top) / capacity
            if effect < cfg.resource_floor:
                continue
            med = float(np.median(b))
            scale = max(MAD_TO_SD * float(np.median(np.abs(b - med))), 1e-3 * capacity)
            z = (top - med) / scale
            pct = 100.0 / capacity  # printed as a percentage of capacity
            text = (
                f"{services.get(pod) or pod}: pod {pod}: {name} {top * pct:.0f}% vs baseline"
                f" median {med * pct:.0f}%, max {normal_top * pct:.0f}% (robust z {z:.1f})"
            )
            above = t[v > normal_top]  # when the pod was above anything the baseline saw
            out.append(_gauge_finding(services.get(pod) or pod, reason, pod, effect, z, text, above))
    return out


def _gauge_finding(
    service: str, reason: Reason, pod: str, effect: float, z: float, text: str, above: np.ndarray
) -> Finding:
    """A finding on one gauge of a service (or pod); ``above``: the times of the window's points
    above anything the baseline showed."""
    first, last = (int(above.min()), int(above.max())) if above.size else (None, None)
    return Finding(service, reason, "", pod, effect, float(z), text, first_ns=first, last_ns=last)


def error_ratio_findings(metrics: pa.Table, base_metrics: pa.Table) -> list[Finding]:
    """Services whose own success or error ratio gauge reports more failed requests than ever
    in the baseline.

    Per (service, gauge, pod), each value becomes the failed share, 0..1. The effect is the
    window's highest failed share less the baseline's highest: a share of requests, the scale
    of the span findings (a fall from 100 % to 96 % success is an effect of 0.04). The robust
    z is taken against the baseline's median and spread, with the spread's floor the
    detector's for these gauges (half a point, the error budget of a 99.5 % objective), so a
    gauge that never moved is not infinitely surprised. Only rises count: the gauge is the
    service's callers' view of it, and a drop in failures is no one's fault. A gauge with no
    baseline point of its own is not judged.
    """
    if metrics.num_rows == 0 or base_metrics.num_rows == 0:
        return []
    out: list[Finding] = []
    units = _unit_by_name(metrics)
    for name in sorted(units):
        ratio = error_ratio(name, units[name])
        if ratio is None:
            continue
        cur = metrics.filter(pc.equal(metrics.column("metric_name"), name))
        base = base_metrics.filter(pc.equal(base_metrics.column("metric_name"), name))
        fail = np.vectorize(ratio.failed_share, otypes=[float])
        cur_v = pc.fill_null(cur.column("value"), np.nan).to_numpy(zero_copy_only=False)
        base_v = pc.fill_null(base.column("value"), np.nan).to_numpy(zero_copy_only=False)
        cur_t = pc.fill_null(cur.column("time_unix_nano"), 0).to_numpy().astype(np.int64)
        cur_rows, base_rows = _rows_by_service_pod(cur), _rows_by_service_pod(base)
        for (service, pod), rows in sorted(cur_rows.items()):
            v, t, b = cur_v[rows], cur_t[rows], base_v[base_rows.get((service, pod), [])]
            t, v, b = t[np.isfinite(v)], v[np.isfinite(v)], b[np.isfinite(b)]
            if not service or v.size == 0 or b.size == 0:
                continue
            now, before = fail(v), fail(b)
            top, normal_top = float(now.max()), float(before.max())
            effect = top - normal_top
            if effect <= 0:
                continue
            med = float(np.median(before))
            z = (top - med) / max(MAD_TO_SD * float(np.median(np.abs(before - med))), GAUGE_ERROR_RATE_FLOOR)
            above = t[now > normal_top]
            where = f" on {pod}" if pod else ""
            text = (
                f"{service}: {name}{where} reports {top:.1%} of requests failed vs baseline median "
                f"{med:.1%}, max {normal_top:.1%} (robust z {z:.1f})"
            )
            out.append(_gauge_finding(service, Reason.FAILED_REQUESTS, pod, effect, z, text, above))
    return out


def _rows_by_service_pod(t: pa.Table) -> dict[tuple[str, str], list[int]]:
    """(service, pod) -> the rows of ``t`` that series holds."""
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    services = pc.fill_null(t.column("service_name"), "").to_pylist()
    for i, key in enumerate(zip(services, _pod_column(t).to_pylist(), strict=True)):
        out[key].append(i)
    return out


def edge_findings(metrics: pa.Table, base_metrics: pa.Table, cfg: RcaConfig) -> list[Finding]:
    """Calls into a service slower as their callers report them than as the callee does.

    Gauges with a ``peer.service`` attribute in a time unit measure one call edge from one end
    (the caller's side when the name says client, else the callee's). Per edge and minute, the
    *added time* is how much the caller's side rose above its baseline median, less how much
    the callee's side of the same minute rose above its own (rises only; the callee's side
    counts as unchanged when it reports nothing): time spent between the ends (network,
    proxies, queueing before the callee's handler). The two ends measure differently, so each
    is compared with itself. Evidence against the callee, on the scale of every other finding:
    the window's highest added time beyond the baseline's highest, as a share of the caller's
    time in that minute; at least ``min_excess_ns`` of it, and a robust z.

    **Every caller must see it.** Time added on the way into a pod (a slow network, a queue
    before its handler) slows every call into it, whoever makes the call. So a callee gets
    this evidence only when each of its callers whose side of the metric can be judged (it
    reports calls in the window and has a baseline) saw added time. When some callers saw it and
    others did not, the time was added on those callers' side (their own CPU, their
    connection pools), not on the callee's, and the finding is dropped.
    """
    cur, base = _edge_points(metrics), _edge_points(base_metrics)
    out: list[tuple[tuple[str, str], Finding]] = []
    judged: dict[tuple[str, str], set[str]] = defaultdict(set)  # (callee, metric) -> callers
    flagged: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (caller, callee, name), points in sorted(cur.items()):
        normal = base.get((caller, callee, name))
        if not normal or len(normal) < 2:
            continue
        c_med = float(np.median([c for _, c, _ in normal]))
        served = [s for _, _, s in normal if s is not None]
        s_med = float(np.median(served)) if served else 0.0
        now = np.asarray([_added(c, s, c_med, s_med) for _, c, s in points])
        before = np.asarray([_added(c, s, c_med, s_med) for _, c, s in normal])
        top_i = int(np.argmax(now))
        top_time, top_client = points[top_i][0], points[top_i][1]
        excess = float(now[top_i]) - max(float(before.max()), 0.0)
        if top_client <= 0:
            continue  # no calls to judge in the window
        judged[(callee, name)].add(caller)
        if excess * 1e9 < cfg.min_excess_ns:
            continue
        effect = excess / top_client
        med = float(np.median(before))
        scale = max(MAD_TO_SD * float(np.median(np.abs(before - med))), 0.1 * c_med, 1e-9)
        z = (float(now[top_i]) - med) / scale
        if effect < cfg.resource_floor:
            continue
        above = [t for (t, _, _), a in zip(points, now, strict=True) if a > max(float(before.max()), 0.0)]
        text = (
            f"{callee}: calls from {caller} took {top_client:.3g} s by {name} as {caller} saw them "
            f"(baseline median {c_med:.3g} s), {float(now[top_i]):.3g} s more than {callee}'s own side "
            f"explains; the baseline's most was {float(before.max()):.3g} s (robust z {z:.1f})"
        )
        flagged[(callee, name)].add(caller)
        out.append(
            (
                (callee, name),
                Finding(
                    callee,
                    Reason.SLOW_CALLS_INTO,
                    "",
                    "",
                    min(effect, 1.0),
                    float(z),
                    text,
                    first_ns=min(above) if above else top_time,
                    last_ns=max(above) if above else top_time,
                ),
            )
        )
    return [f for key, f in out if flagged[key] == judged[key]]


def _added(client: float, server: float | None, client_med: float, server_med: float) -> float:
    """How much more the caller's side rose than the callee's side did (rises only)."""
    return (client - client_med) - (max(server - server_med, 0.0) if server is not None else 0.0)


_TO_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60.0}


def _edge_points(metrics: pa.Table) -> dict[tuple[str, str, str], list[tuple[int, float, float | None]]]:
    """(caller, callee, caller-side metric) -> [(time, caller side s, callee side s or None)] per minute."""
    if metrics.num_rows == 0:
        return {}
    peers = peer_column(metrics)
    keep = pc.and_(
        pc.not_equal(peers, ""), pc.is_in(metrics.column("metric_unit"), pa.array(sorted(_TO_SECONDS)))
    )
    t = metrics.filter(keep)
    if t.num_rows == 0:
        return {}
    names = t.column("metric_name").to_pylist()
    units = t.column("metric_unit").to_pylist()
    services = pc.fill_null(t.column("service_name"), "").to_pylist()
    others = peer_column(t).to_pylist()
    values = pc.fill_null(t.column("value"), np.nan).to_numpy()
    times = t.column("time_unix_nano").to_pylist()
    client: dict[tuple[str, str, int], tuple[str, int, float]] = {}
    server: dict[tuple[str, str, int], float] = {}
    for name, unit, svc, peer, v, when in zip(names, units, services, others, values, times, strict=True):
        if not np.isfinite(v) or when is None:
            continue
        minute, seconds = int(when) // 60_000_000_000, float(v) * _TO_SECONDS[unit]
        if outgoing(name):
            client[(svc, peer, minute)] = (name, int(when), seconds)
        else:
            server[(peer, svc, minute)] = seconds
    out: dict[tuple[str, str, str], list[tuple[int, float, float | None]]] = {}
    for (caller, callee, minute), (name, when, v) in client.items():
        out.setdefault((caller, callee, name), []).append((when, v, server.get((caller, callee, minute))))
    return out
