"""Root-cause ranking with evidence: which service, operation, pod and reason started a change.

Entry point (pure: tables and a config in, typed values out; no I/O, no clock)::

    result = rank_root_causes(Observations(spans, logs, metrics),      # the window
                              Observations(b_spans, b_logs, b_metrics), # its baseline
                              RcaConfig())
    result.candidates[0].service, .operation, .pod, .reason, .evidence

How: :mod:`.spans` tests every span of the window against the baseline (log signatures,
exclusive time, time added on calls, errors), keeps the spans that *originate* a change
in their trace, and measures each group's changed share; :mod:`.resources` adds CPU and
memory utilisation rises; :mod:`.rank` ranks services by their strongest finding.
"""

from faultlens.rca.model import BaselineModel, Candidate, Finding, Observations, RcaConfig, RcaResult, Reason
from faultlens.rca.rank import rank_root_causes

__all__ = [
    "BaselineModel",
    "Candidate",
    "Finding",
    "Observations",
    "RcaConfig",
    "RcaResult",
    "Reason",
    "rank_root_causes",
]
