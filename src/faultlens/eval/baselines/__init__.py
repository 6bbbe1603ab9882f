"""Published RCA methods re-implemented as baselines, evaluated on the same cases as ours.

Every baseline is a pure function ``(current, baseline) -> {service: score}`` over the same
:class:`faultlens.rca.Observations` our ranking gets (see ``notes/baselines.md``):

- :func:`baro` - BARO (Pham et al., FSE 2024): robust z of every metric series;
- :func:`microrank` - MicroRank (Yu et al., WWW 2021): personalized PageRank + spectrum;
- :func:`tracerca` - TraceRCA (Li et al., IWQoS 2021): support/confidence of slow operations;
- :func:`largest_latency_increase` - the on-call rule of thumb: the service whose own
  requests slowed down most.
"""

from faultlens.eval.baselines.baro import baro
from faultlens.eval.baselines.latency import largest_latency_increase
from faultlens.eval.baselines.microrank import microrank
from faultlens.eval.baselines.tracerca import tracerca

__all__ = ["baro", "largest_latency_increase", "microrank", "tracerca"]
