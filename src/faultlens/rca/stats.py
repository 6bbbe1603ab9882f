"""Small robust statistics shared by the RCA signals, on one scale: a z-like surprise.

Every signal reports how surprising its observation is against the baseline as a number
on the scale of a standard normal z (3 is "unusual", 10 is "certainly changed"), so that
counts, latencies and resource metrics can be compared and combined without per-signal
weights tuned on one dataset.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["MAD_TO_SD", "count_surprise", "robust_z"]

MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation


def count_surprise(observed: float, expected: float) -> float:
    """Signed z-like surprise of a Poisson count ``observed`` when ``expected`` was due.

    ``sign * sqrt(G)`` with the likelihood-ratio statistic
    ``G = 2 (o ln(o/e) - (o - e))``: about ``(o - e) / sqrt(e)`` for large counts, and
    still sensible for zeros and tiny expectations (where a Gaussian z is not).
    """
    e = max(expected, 1e-9)
    o = max(observed, 0.0)
    g = 2.0 * ((o * math.log(o / e) if o > 0 else 0.0) - (o - e))
    z = math.sqrt(max(g, 0.0))
    return z if o >= e else -z


def robust_z(values: npt.NDArray[np.float64], baseline: npt.NDArray[np.float64], floor: float) -> float:
    """The largest robust z of ``values`` against ``baseline``: (x - median) / (1.4826 MAD).

    ``floor`` bounds the scale from below (in the values' unit), so that a flat baseline
    (MAD 0) does not turn a small wobble into a huge score. NaN when either side is empty.
    """
    v = values[np.isfinite(values)]
    b = baseline[np.isfinite(baseline)]
    if v.size == 0 or b.size == 0:
        return float("nan")
    med = float(np.median(b))
    scale = max(MAD_TO_SD * float(np.median(np.abs(b - med))), floor)
    return float((np.max(v) - med) / scale)
