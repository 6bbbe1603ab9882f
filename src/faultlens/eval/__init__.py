"""Evaluation of root-cause ranking against labelled fault data, with published baselines.

- :mod:`faultlens.eval.cases` - the one place that decides each fault's window and baseline;
- :mod:`faultlens.eval.metrics` - AC@k and Avg@k with ties counted against the method;
- :mod:`faultlens.eval.baselines` - BARO, TraceRCA and the largest-latency-increase rule;
- :mod:`faultlens.eval.rca` - the runner (``python -m faultlens.eval.rca DIR --json``);
- :mod:`faultlens.eval.cli` - ``register(app)`` adds ``faultlens eval rca``.
"""
