"""BARO's root-cause scoring (Pham, Ha, Zhang, FSE 2024), as described in notes/baselines.md.

Per metric series (metric name x pod), fit the median and the inter-quartile range on the
normal period; score the series by its largest robust z ``(x - median) / IQR`` after the
fault starts; a service scores its best series. BARO's Bayesian change-point step only
finds the fault start, which the evaluation gives every method, so it is left out.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.rca.model import Observations

__all__ = ["baro"]


def _series(t: pa.Table) -> dict[tuple[str, str], tuple[str, np.ndarray]]:
    if t.num_rows == 0:
        return {}
    pods = pc.coalesce(t.column("k8s_pod_name"), t.column("service_name"), pa.scalar("")).to_pylist()
    names = t.column("metric_name").to_pylist()
    services = t.column("service_name").to_pylist()
    values = pc.fill_null(t.column("value"), np.nan).to_numpy()
    acc: dict[tuple[str, str], list[float]] = {}
    svc: dict[tuple[str, str], str] = {}
    for i, key in enumerate(zip(names, pods, strict=True)):
        acc.setdefault(key, []).append(float(values[i]))
        svc[key] = services[i] or key[1]
    return {k: (svc[k], np.asarray(v)) for k, v in acc.items()}


def baro(current: Observations, baseline: Observations) -> dict[str, float]:
    """Service -> its largest robust z over all its metric series."""
    cur, base = _series(current.metrics), _series(baseline.metrics)
    scores: dict[str, float] = {}
    for key, (service, v) in cur.items():
        b = base.get(key, (service, np.zeros(0)))[1]
        v, b = v[np.isfinite(v)], b[np.isfinite(b)]
        if v.size == 0 or b.size == 0:
            continue
        q1, med, q3 = np.percentile(b, [25, 50, 75])
        iqr = float(q3 - q1)
        if iqr < 10 * np.finfo(np.float64).eps:
            iqr = 1.0  # as scikit-learn's RobustScaler (which BARO uses) treats a zero scale
        z = float(np.max(np.abs(v - med)) / iqr)
        scores[service] = max(scores.get(service, 0.0), z)
    return scores
