"""Resource evidence: a pod's CPU or memory utilisation above its normal range.

Only *utilisation* series are read: a share of a capacity (unit ``%`` or ``1``) of CPU or
memory of a container or pod, recognised by name and unit, never by which system sent
them. Utilisation has a natural scale, the capacity, so its evidence is the rise of the
window's highest value above the baseline's highest value as a share of capacity: CPU
stress that pins a pod at 100 % from a normal 3 % is an effect of 0.97, the same scale as
"97 % of an operation's requests changed" in :mod:`faultlens.rca.spans`. Rises smaller
than ``resource_floor`` are ignored. The robust z against the baseline is reported too.

Other series (byte counters, syscalls, latency gauges) are left out on purpose: without
a capacity their rises have no common scale, and spans measure latency better.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.anomaly.signals import UtilisationOf, utilisation
from faultlens.rca.model import Finding, RcaConfig, Reason
from faultlens.rca.stats import MAD_TO_SD

__all__ = ["resource_findings", "utilisation_kind"]

_REASONS = {UtilisationOf.CPU: Reason.CPU_SATURATION, UtilisationOf.MEMORY: Reason.MEMORY_PRESSURE}


def utilisation_kind(name: str, unit: str | None) -> tuple[Reason, float] | None:
    """(reason, capacity in the series' unit) when the series is a CPU or memory utilisation."""
    found = utilisation(name, unit)
    return None if found is None else (_REASONS[found.of], found.capacity)


def _pod_column(t: pa.Table) -> pa.ChunkedArray:
    return pc.coalesce(t.column("k8s_pod_name"), t.column("service_instance_id"), pa.scalar(""))


def resource_findings(metrics: pa.Table, base_metrics: pa.Table, cfg: RcaConfig) -> list[Finding]:
    """Utilisation rises per (pod, series) of the window against the baseline."""
    if metrics.num_rows == 0 or base_metrics.num_rows == 0:
        return []
    out: list[Finding] = []
    names = pc.unique(metrics.column("metric_name")).to_pylist()
    units = dict(
        zip(metrics.column("metric_name").to_pylist(), metrics.column("metric_unit").to_pylist(), strict=True)
    )
    for name in names:
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
            out.append(
                Finding(
                    services.get(pod) or pod,
                    reason,
                    "",
                    pod,
                    effect,
                    float(z),
                    text,
                    first_ns=int(above.min()) if above.size else None,
                    last_ns=int(above.max()) if above.size else None,
                )
            )
    return out
