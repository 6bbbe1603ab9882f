"""Small synthetic Nezha-layout directories for the reader and replay tests.

The synthetic layout holds the messy cases real directories of this layout have: plain
``.csv`` next to ``.csv.gz``, a missing minute, a missing log directory, files with other
columns, rows that do not split into the right number of fields, rows repeated by two
overlapping minute files, and pods named the OnlineBoutique way rather than Train-Ticket's.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

DAY = dt.date(2024, 3, 1)
T0 = int(dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
S = 1_000_000_000
FRONTEND = "frontend-7d4b9c8f6d-x2x4z"
CART = "cartservice-5b8c9d7f6c-q7k2m"
REDIS = "redis-cart-0"
TRACE_HEADER = [
    "TraceID", "SpanID", "ParentID", "PodName", "OperationName",
    "StartTimeUnixNano", "EndTimeUnixNano", "Duration",
]  # fmt: skip
LOG_HEADER = ["Timestamp", "TimeUnixNano", "Node", "PodName", "Container", "TraceID", "SpanID", "Log"]
METRIC_HEADER = ["Time", "TimeStamp", "PodName", "CpuUsage(m)", "MemoryUsage(Mi)", "PodLatencyP90(s)"]


def write_csv(
    path: Path, header: list[str], rows: list[list[str]], *, raw_lines: tuple[str, ...] = ()
) -> None:
    """Write a CSV (gzip if the name ends in .gz); ``raw_lines`` are appended verbatim (broken rows)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    for line in raw_lines:
        buf.write(line + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = buf.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def tid(n: int) -> str:
    return f"{n:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


def span_row(
    trace: int, span: int, parent: int | None, pod: str, op: str, start: int, dur_us: int
) -> list[str]:
    return [
        tid(trace), sid(span), "root" if parent is None else sid(parent), pod, op,
        str(start), str(start + dur_us * 1000), str(dur_us),
    ]  # fmt: skip


def log_row(t: int, pod: str, trace: int, span: int, level: str, logger: str, msg: str) -> list[str]:
    stamp = dt.datetime.fromtimestamp(t / S, tz=dt.UTC)
    line = f"{stamp:%H:%M:%S}.000 {level}  {logger} TraceID: {tid(trace)} SpanID: {sid(span)} {msg}\n"
    runtime = json.dumps({"log": line, "stream": "stdout", "time": stamp.isoformat()})
    return [stamp.isoformat(), str(t), "10.0.0.7", pod, "server", tid(trace), sid(span), runtime]


@dataclass(frozen=True)
class Synthetic:
    root: Path
    spans: int  # usable distinct spans written
    logs: int  # usable distinct log lines written
    metric_rows: int  # usable distinct metric rows


def build_synthetic(base: Path) -> Synthetic:
    """Write a small, messy Nezha-layout directory under ``base`` and say what is usable in it."""
    rca = base / "rca_data" / DAY.isoformat()
    construct = base / "construct_data" / DAY.isoformat()
    spans = logs = 0

    # Minute 10_01 (data of 10:00:xx), gzip. Two traces frontend -> cart, one with a redis call.
    rows = []
    for k in range(5):
        start = T0 + k * 10 * S
        rows.append(span_row(k + 1, 100 + k, None, FRONTEND, "GET /cart", start, 5000))
        rows.append(span_row(k + 1, 200 + k, 100 + k, CART, "GetCart", start + 1000, 3000))
    rows.append(span_row(9, 300, 200, REDIS, "HGET", T0 + 3 * S, 100))
    write_csv(
        rca / "trace" / "10_01_trace.csv.gz", TRACE_HEADER, rows, raw_lines=("broken,row,with,too,few",)
    )
    spans += len(rows)

    # Minute 10_02 plain .csv; repeats the last row of 10_01 (overlapping files) and adds 4 spans.
    rows = [span_row(5, 204, 104, CART, "GetCart", T0 + 40 * S + 1000, 3000)]
    rows += [
        span_row(10 + k, 400 + k, None, FRONTEND, "POST /checkout", T0 + (60 + k * 10) * S, 9000)
        for k in range(4)
    ]
    write_csv(rca / "trace" / "10_02_trace.csv", TRACE_HEADER, rows)
    spans += 4

    # Minute 10_03 is missing; 10_04 exists (and an unrelated file sits beside it).
    rows = [span_row(20, 500, None, FRONTEND, "GET /", T0 + 185 * S, 1000)]
    write_csv(rca / "trace" / "10_04_trace.csv.gz", TRACE_HEADER, rows)
    spans += 1
    (rca / "trace" / "README.txt").write_text("not data")

    # Logs for 10_01 only; one row with an unescaped quote splits into too many fields.
    rows = [
        log_row(T0 + 1 * S, FRONTEND, 1, 100, "INFO", "f.c.CartController#12", "[getCart][ok]"),
        log_row(T0 + 2 * S, CART, 1, 200, "ERROR", "c.s.CartServiceImpl#88", "[getCart][cart not found]"),
        log_row(T0 + 3 * S, CART, 2, 201, "WARN", "c.s.CartServiceImpl#90", "[getCart][slow]"),
    ]
    # An unquoted JSON field: its commas split it into more fields than the header has.
    broken = (
        ",".join(log_row(T0 + 4 * S, CART, 3, 202, "INFO", "x.Y#1", "m")[:7]) + ',{"log":"a","stream":"b"}'
    )
    write_csv(rca / "log" / "10_01_log.csv.gz", LOG_HEADER, rows, raw_lines=(broken,))
    logs += 3

    # Pod metrics: whole day; one file with other columns; one NaN value.
    metric_rows = 0
    for pod in (FRONTEND, CART):
        rows = []
        for m in range(6):
            t = T0 // S - 60 + m * 60
            rows.append([f"{t} UTC", str(t), pod, "12.5", "300.25", "NaN" if m == 2 else "0.05"])
        write_csv(rca / "metric" / f"{pod}_metric.csv.gz", METRIC_HEADER, rows)
        metric_rows += len(rows)
    write_csv(rca / "metric" / "unrelated.csv", ["a", "b"], [["1", "2"]])
    write_csv(
        rca / "metric" / "front_service.csv.gz",
        ["Time", "TimeStamp", "ServiceName", "SuccessRate(%)", "LatencyP50(s)"],
        [["x", str(T0 // S), "Frontend", "99.5", "0.02"]],
    )
    metric_rows += 1

    faults = {
        "10": [
            {
                "inject_time": "2024-03-01 10:01:30",
                "inject_timestamp": str(T0 // S + 90 - 8 * 3600),  # 8 h off, as in the real data
                "inject_pod": CART,
                "inject_type": "exception",
            },
            {"inject_time": "not a time", "inject_pod": CART, "inject_type": "exception"},
        ]
    }
    (rca / f"{DAY.isoformat()}-fault_list.json").write_text(json.dumps(faults))

    # Fault-free period: a trace minute, no log directory at all, a copy of one metric file.
    rows = [span_row(30, 600, None, FRONTEND, "GET /", T0 - 300 * S, 2000)]
    write_csv(construct / "trace" / "09_56_trace.csv.gz", TRACE_HEADER, rows)
    spans += 1
    (construct / "metric").mkdir(parents=True)
    src = rca / "metric" / f"{FRONTEND}_metric.csv.gz"
    (construct / "metric" / src.name).write_bytes(src.read_bytes())
    return Synthetic(base, spans=spans, logs=logs, metric_rows=metric_rows)
