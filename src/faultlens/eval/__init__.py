"""Evaluation of root-cause ranking against labelled fault data, with published baselines.

- :mod:`faultlens.eval.cases` - the one place that decides each fault's window and baseline;
- :mod:`faultlens.eval.metrics` - AC@k and Avg@k with ties counted against the method;
- :mod:`faultlens.eval.baselines` - BARO, TraceRCA and the largest-latency-increase rule;
- :mod:`faultlens.eval.rca` - the runner (``python -m faultlens.eval.rca DIR --json``);
- :mod:`faultlens.eval.live` - ``faultlens eval live``: a data set replayed into a real server as
  live telemetry, scored from what its HTTP API answers;
- :mod:`faultlens.eval.matching` - the one rule that matches incidents to labelled faults;
- :mod:`faultlens.eval.cli` - ``register(app)`` adds ``faultlens eval rca`` and ``eval live``.
"""
