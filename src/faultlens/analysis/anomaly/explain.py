"""One line of words per anomaly, with the figures a person can check."""

from __future__ import annotations

from faultlens.analysis.anomaly.types import SeriesKey, SeriesKind

_WHAT = {
    SeriesKind.LATENCY_P90: "p90 latency",
    SeriesKind.LATENCY_P99: "p99 latency",
    SeriesKind.SELF_TIME_P90: "p90 self time",
    SeriesKind.ERROR_RATE: "error rate",
    SeriesKind.THROUGHPUT: "throughput",
    SeriesKind.EDGE_LATENCY_P90: "p90 latency of calls",
    SeriesKind.EDGE_ERROR_RATE: "error rate of calls",
    SeriesKind.LOG_COUNT: "count of log",
    SeriesKind.ERROR_LOGS: "error logs",
    SeriesKind.RESOURCE: "",
    SeriesKind.GAUGE_ERROR_RATE: "failed share",
    SeriesKind.NEW_LOG_TEMPLATE: "new log template",
    SeriesKind.MISSING_LOG_TEMPLATE: "missing log template",
    SeriesKind.NEW_ERROR: "new error",
}


def format_value(kind: SeriesKind, value: float) -> str:
    if kind in (SeriesKind.ERROR_RATE, SeriesKind.EDGE_ERROR_RATE, SeriesKind.GAUGE_ERROR_RATE):
        return f"{value * 100:.1f}%"
    if kind == SeriesKind.THROUGHPUT:
        return f"{value:.2f} req/s"
    if kind in (
        SeriesKind.LATENCY_P90,
        SeriesKind.LATENCY_P99,
        SeriesKind.SELF_TIME_P90,
        SeriesKind.EDGE_LATENCY_P90,
    ):
        ms = value / 1e6
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.2f} ms"
    return f"{value:.4g}"


def explain(key: SeriesKey, observed: float, expected: float) -> str:
    """E.g. ``p99 latency of ts-order-service GET /order was 820 ms, expected 120 ms (+583%)``."""
    change = f"{(observed - expected) / abs(expected) * 100:+.0f}%" if expected else "from zero"
    obs, exp = format_value(key.kind, observed), format_value(key.kind, expected)
    if key.kind == SeriesKind.RESOURCE and key.peer:
        seen_by = key.resource or key.service
        subject = f"{key.name} of calls from {key.service} to {key.peer} (as {seen_by} saw them)"
    elif key.kind == SeriesKind.RESOURCE:
        subject = f"{key.name} of {key.resource or key.service}"
    elif key.kind == SeriesKind.GAUGE_ERROR_RATE:
        calls = f"calls from {key.service} to {key.peer}" if key.peer else (key.resource or key.service)
        subject = f"failed share of {calls} (from {key.name})"
    elif key.kind in (SeriesKind.EDGE_LATENCY_P90, SeriesKind.EDGE_ERROR_RATE):
        subject = f"{_WHAT[key.kind]} from {key.service} to {key.peer}"
    elif key.kind == SeriesKind.LOG_COUNT:
        subject = f"count of log {key.name!r} in {key.service}"
    elif key.kind == SeriesKind.ERROR_LOGS:
        subject = f"error logs (severity ERROR and above) of {key.service}"
    else:
        subject = f"{_WHAT[key.kind]} of {key.service}" + (f" {key.name}" if key.name else "")
    return f"{subject} was {obs}, expected {exp} ({change})"
