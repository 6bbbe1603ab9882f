"""Read a Nezha-layout directory as typed records, streaming one minute file at a time.

A minute file holds a few thousand rows, so each is read whole, sorted by time and handed
out; a day is never held in memory. Per-pod metric files cover a whole day and are merged
row by row. Minute files overlap their neighbours and repeat some rows (the same span or
log line in two files, in Train-Ticket about 2 % of them), so records already handed out
recently are recognised and skipped as duplicates: a replay sends each item once.

Every row that cannot be used is counted in :attr:`NezhaDataset.report` with its reason.
Nothing here is keyed to a service, pod, operation or date of any particular dataset.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import math
import re
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path

from faultlens.datasets.logline import parse_line
from faultlens.datasets.nezha.csvfile import read_csv
from faultlens.datasets.nezha.layout import (
    CONSTRUCT,
    NS_PER_MIN,
    NS_PER_S,
    EdgeFile,
    MinuteFile,
    day_start_ns,
    edge_file,
    fault_list_path,
    find_days,
    metric_files,
    minute_files,
    open_text,
)
from faultlens.datasets.nezha.model import Fault, NormalPeriod, service_of_pod
from faultlens.datasets.records import LogRecord, MetricRecord, Record, SpanRecord
from faultlens.datasets.report import ReadReport
from faultlens.types import TimeRange

TRACE_COLUMNS = (
    "TraceID",
    "SpanID",
    "ParentID",
    "PodName",
    "OperationName",
    "StartTimeUnixNano",
    "EndTimeUnixNano",
)
LOG_COLUMNS = ("TimeUnixNano", "PodName", "Log")
METRIC_TIME = "TimeStamp"
METRIC_TIME_TEXT = "Time"
EDGE_TIME = "timestamp"
# Columns of a metric file that identify or date a row rather than measure something.
METRIC_KEY_COLUMNS = frozenset({"Time", "TimeStamp", "PodName", "ServiceName", "Node", "NodeName"})

# A minute file holds rows from up to ~3 minutes before to ~2 minutes after its label.
FILE_MARGIN_NS = 4 * NS_PER_MIN
DAY_NS = 24 * 60 * NS_PER_MIN
# A row's time must lie within this distance of its file's minute label to be believed.
PLAUSIBLE_NS = 6 * 60 * NS_PER_MIN
# How many recent record keys are remembered to drop rows repeated by overlapping files.
DEDUP_CAPACITY = 50_000
_JSON = json.JSONDecoder()


class NezhaDataset:
    """A directory in the Nezha layout (``rca_data/DATE/...``, ``construct_data/DATE/...``).

    Reading methods may be called any number of times; each call reads the files again.
    ``report`` accumulates over all calls.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        report: ReadReport | None = None,
        service_of: Callable[[str], str] = service_of_pod,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"not a directory: {self.root}")
        self.report = report if report is not None else ReadReport()
        self._service_of = service_of
        self._services: dict[str, str] = {}

    # ---- labels -----------------------------------------------------------------------

    def days(self) -> list[dt.date]:
        return find_days(self.root, self.report)

    def faults(self, day: dt.date | None = None) -> list[Fault]:
        """Faults of one day (or of every day), ordered by injection time, duplicates removed."""
        found: set[Fault] = set()
        for d in [day] if day is not None else self.days():
            found.update(self._read_fault_list(d))
        return sorted(found, key=lambda f: (f.inject_time_ns, f.pod))

    def normal_periods(self, day: dt.date | None = None) -> list[NormalPeriod]:
        """Fault-free periods: one per minute label in ``construct_data``, spanning its data."""
        periods: list[NormalPeriod] = []
        for d in [day] if day is not None else self.days():
            labels: dict[int, list[MinuteFile]] = {}
            for kind in ("trace", "log"):
                for f in minute_files(self.root, d, kind, self.report):
                    if f.root == CONSTRUCT:
                        labels.setdefault(f.minute_ns, []).append(f)
            for minute, files in sorted(labels.items()):
                lo, hi = math.inf, -math.inf
                for f in files:
                    for rec in self._file_records(f, None, report=ReadReport()):
                        lo = min(lo, rec.time_ns)
                        hi = max(hi, rec.end_ns if isinstance(rec, SpanRecord) else rec.time_ns)
                if lo > hi:  # no usable rows: fall back to the minute its name says
                    lo, hi = minute, minute + NS_PER_MIN - 1
                periods.append(NormalPeriod(d, minute, TimeRange(int(lo), int(hi) + 1)))
        return periods

    def time_bounds(self) -> TimeRange | None:
        """The earliest and latest time of any minute file or metric row; None if no data."""
        lo, hi = math.inf, -math.inf
        for d in self.days():
            for kind in ("trace", "log"):
                files = minute_files(self.root, d, kind, self.report)
                if files:
                    lo = min(lo, files[0].minute_ns - NS_PER_MIN)
                    hi = max(hi, files[-1].minute_ns + NS_PER_MIN)
            for path in metric_files(self.root, d, ReadReport()):
                for rec in self._metric_file(path, None, ReadReport()):
                    lo, hi = min(lo, rec.time_ns), max(hi, rec.time_ns + 1)
        return None if lo > hi else TimeRange(int(lo), int(hi))

    # ---- records ----------------------------------------------------------------------

    def spans(self, time_range: TimeRange | None = None) -> Iterator[SpanRecord]:
        """Spans whose start lies in ``time_range`` (all when None), about in start order."""
        for rec in self._minute_stream("trace", time_range):
            assert isinstance(rec, SpanRecord)
            yield rec

    def logs(self, time_range: TimeRange | None = None) -> Iterator[LogRecord]:
        """Log records whose time lies in ``time_range``, about in time order."""
        for rec in self._minute_stream("log", time_range):
            assert isinstance(rec, LogRecord)
            yield rec

    def metrics(self, time_range: TimeRange | None = None) -> Iterator[MetricRecord]:
        """Metric rows (pods and services) in ``time_range``, merged across files in time order."""
        seen = _RecentKeys(DEDUP_CAPACITY)
        for d in self._days_for(time_range):
            files = metric_files(self.root, d, self.report, skip_identical=True)
            streams = [
                self._edge_file(p, edge, time_range, self.report)
                if (edge := edge_file(p)) is not None
                else self._metric_file(p, time_range, self.report)
                for p in files
            ]
            for rec in heapq.merge(*streams, key=lambda r: r.time_ns):
                if seen.add((rec.service, rec.pod, rec.peer, rec.time_ns)):
                    self.report.row_read("metric")
                    yield rec
                else:
                    self.report.row_skipped("metric", "duplicate row")

    def records(self, time_range: TimeRange | None = None) -> Iterator[Record]:
        """Spans, logs and metric rows merged into one stream in (about) time order."""
        return heapq.merge(
            self.spans(time_range), self.logs(time_range), self.metrics(time_range), key=_time_of
        )

    def pod_nodes(self, time_range: TimeRange | None = None, max_files: int = 3) -> dict[str, str]:
        """Pod -> node, learnt from the first few log files in range (logs name the node)."""
        nodes: dict[str, str] = {}
        files = [f for d in self._days_for(time_range) for f in self._files_for(d, "log", time_range)]
        for f in files[:max_files]:
            for rec in self._file_records(f, None, report=ReadReport()):
                if isinstance(rec, LogRecord) and rec.node:
                    nodes.setdefault(rec.pod, rec.node)
        return nodes

    # ---- internals --------------------------------------------------------------------

    def _service(self, pod: str) -> str:
        service = self._services.get(pod)
        if service is None:
            service = self._services[pod] = self._service_of(pod)
        return service

    def _days_for(self, time_range: TimeRange | None) -> list[dt.date]:
        days = self.days()
        if time_range is None:
            return days
        return [
            d
            for d in days
            if day_start_ns(d) - FILE_MARGIN_NS < time_range.end_ns
            and day_start_ns(d) + DAY_NS + FILE_MARGIN_NS > time_range.start_ns
        ]

    def _files_for(self, day: dt.date, kind: str, time_range: TimeRange | None) -> list[MinuteFile]:
        files = minute_files(self.root, day, kind, self.report)
        if time_range is None:
            return files
        return [
            f
            for f in files
            if time_range.start_ns - FILE_MARGIN_NS <= f.minute_ns < time_range.end_ns + FILE_MARGIN_NS
        ]

    def _minute_stream(self, kind: str, time_range: TimeRange | None) -> Iterator[SpanRecord | LogRecord]:
        seen = _RecentKeys(DEDUP_CAPACITY)
        for d in self._days_for(time_range):
            files = self._files_for(d, kind, time_range)
            for f in files:
                batch = [r for r in self._file_records(f, time_range, seen=seen)]
                batch.sort(key=_time_of)
                self.report.row_read(kind, len(batch))
                yield from batch

    def _file_records(
        self,
        f: MinuteFile,
        time_range: TimeRange | None,
        *,
        seen: _RecentKeys | None = None,
        report: ReadReport | None = None,
    ) -> Iterator[SpanRecord | LogRecord]:
        report = report if report is not None else self.report
        plausible = TimeRange(f.minute_ns - PLAUSIBLE_NS, f.minute_ns + PLAUSIBLE_NS)
        if f.kind == "trace":
            return self._trace_rows(f.path, time_range, plausible, seen, report)
        return self._log_rows(f.path, time_range, plausible, seen, report)

    def _trace_rows(
        self,
        path: Path,
        time_range: TimeRange | None,
        plausible: TimeRange,
        seen: _RecentKeys | None,
        report: ReadReport,
    ) -> Iterator[SpanRecord]:
        table = read_csv(path, "trace", TRACE_COLUMNS, report)
        if table is None:
            return
        cols, rows = table
        i_tid, i_sid, i_pid = cols["TraceID"], cols["SpanID"], cols["ParentID"]
        i_pod, i_name = cols["PodName"], cols["OperationName"]
        i_start, i_end = cols["StartTimeUnixNano"], cols["EndTimeUnixNano"]
        for row in rows:
            try:
                trace_id, span_id = bytes.fromhex(row[i_tid]), bytes.fromhex(row[i_sid])
            except ValueError:
                report.row_skipped("trace", "invalid TraceID or SpanID")
                continue
            if len(trace_id) != 16 or len(span_id) != 8:
                report.row_skipped("trace", "invalid TraceID or SpanID")
                continue
            try:
                start, end = int(row[i_start]), int(row[i_end])
            except ValueError:
                start = end = -1
            if not plausible.contains(start) or end < 0 or end - start > PLAUSIBLE_NS:
                report.row_skipped("trace", "invalid start or end time")
                continue
            if time_range is not None and not time_range.contains(start):
                continue
            if seen is not None and not seen.add((trace_id, span_id)):
                report.row_skipped("trace", "duplicate span")
                continue
            pod = row[i_pod]
            yield SpanRecord(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=_parent_id(row[i_pid]),
                name=row[i_name],
                start_ns=start,
                end_ns=max(end, start),
                service=self._service(pod),
                pod=pod,
            )

    def _log_rows(
        self,
        path: Path,
        time_range: TimeRange | None,
        plausible: TimeRange,
        seen: _RecentKeys | None,
        report: ReadReport,
    ) -> Iterator[LogRecord]:
        table = read_csv(path, "log", LOG_COLUMNS, report)
        if table is None:
            return
        cols, rows = table
        i_time, i_pod, i_log = cols["TimeUnixNano"], cols["PodName"], cols["Log"]
        i_node, i_container = cols.get("Node"), cols.get("Container")
        i_tid, i_sid = cols.get("TraceID"), cols.get("SpanID")
        i_stamp = cols.get("Timestamp")
        for row in rows:
            try:
                t = int(row[i_time])
            except ValueError:
                t = -1
            if not plausible.contains(t):
                # Some rows carry a garbage TimeUnixNano but a good Timestamp: use that.
                t = _iso_ns(row[i_stamp]) if i_stamp is not None else -1
                if not plausible.contains(t):
                    report.row_skipped("log", "invalid TimeUnixNano and Timestamp")
                    continue
                report.value_skipped("log", "invalid TimeUnixNano (time taken from Timestamp)")
            if time_range is not None and not time_range.contains(t):
                continue
            line, stream = _runtime_line(row[i_log])
            if line is None:
                report.row_skipped("log", "Log is not valid JSON")
                continue
            if seen is not None and not seen.add(hash(tuple(row))):
                report.row_skipped("log", "duplicate line")
                continue
            parsed = parse_line(line)
            pod = row[i_pod]
            yield LogRecord(
                time_ns=t,
                service=self._service(pod),
                pod=pod,
                node=row[i_node] if i_node is not None else "",
                container=row[i_container] if i_container is not None else "",
                trace_id=_hex_id(row[i_tid], 16) if i_tid is not None else b"",
                span_id=_hex_id(row[i_sid], 8) if i_sid is not None else b"",
                severity_text=parsed.severity_text,
                severity_number=parsed.severity_number,
                logger=parsed.logger,
                body=parsed.message,
                stream=stream,
            )

    def _metric_file(
        self, path: Path, time_range: TimeRange | None, report: ReadReport
    ) -> Iterator[MetricRecord]:
        table = read_csv(path, "metric", (METRIC_TIME,), report)
        if table is None:
            return
        cols, rows = table
        i_pod, i_service = cols.get("PodName"), cols.get("ServiceName")
        if i_pod is None and i_service is None:
            report.file_skipped("metric", "other columns (no PodName or ServiceName)", path)
            rows.close()
            return
        i_time, i_text = cols[METRIC_TIME], cols.get(METRIC_TIME_TEXT)
        value_cols = [(name, i) for name, i in cols.items() if name not in METRIC_KEY_COLUMNS]
        in_order, last = True, -1
        shift: int | None = None  # ns added to TimeStamp, decided by the file's first row
        for row in rows:
            try:
                t = int(float(row[i_time]) * NS_PER_S)
            except ValueError:
                report.row_skipped("metric", "invalid TimeStamp")
                continue
            if shift is None:
                shift = _timestamp_shift(t, row[i_text] if i_text is not None else "")
            if shift:  # a file whose TimeStamp is wrong: each row's own text, else the shift
                text_ns = _iso_ns(_time_text(row[i_text])) if i_text is not None else -1
                t = text_ns if text_ns >= 0 else t + shift
                report.row_corrected("metric", "TimeStamp contradicts the Time text: the text is used")
            in_order, last = in_order and t >= last, t
            if time_range is not None and not time_range.contains(t):
                if in_order and t >= time_range.end_ns:
                    rows.close()
                    return  # a whole-day file in time order: nothing later is in range
                continue
            values: list[tuple[str, float]] = []
            for name, i in value_cols:
                v = _number(row[i])
                if v is None:
                    report.value_skipped("metric", "NaN, empty or non-numeric value")
                else:
                    values.append((name, v))
            if not values:
                report.row_skipped("metric", "no numeric values")
                continue
            if i_pod is not None:
                pod = row[i_pod]
                service = self._service(pod)
            else:
                pod, service = "", row[i_service] if i_service is not None else ""
            yield MetricRecord(time_ns=t, service=service, pod=pod, values=tuple(values))

    def _edge_file(
        self, path: Path, edge: EdgeFile, time_range: TimeRange | None, report: ReadReport
    ) -> Iterator[MetricRecord]:
        """Rows of ``CALLER_CALLEE`` latency columns, one record per edge and minute, from the
        end that reported them (the caller in ``source_*`` files, the callee in ``destination_*``)."""
        table = read_csv(path, "metric", (EDGE_TIME,), report)
        if table is None:
            return
        cols, rows = table
        edges = [(pair.split("_"), i) for pair, i in cols.items() if pair.count("_") == 1]
        if not edges:
            report.file_skipped("metric", "other columns (no CALLER_CALLEE columns)", path)
            rows.close()
            return
        column = f"{edge.side.title()}LatencyP{edge.quantile}(s)"
        for row in rows:
            try:
                t = int(float(row[cols[EDGE_TIME]]) * NS_PER_S)
            except ValueError:
                report.row_skipped("metric", "invalid timestamp")
                continue
            if time_range is not None and not time_range.contains(t):
                continue
            for (caller, callee), i in edges:
                v = _number(row[i])
                if v is None:
                    report.value_skipped("metric", "NaN, empty or non-numeric value")
                    continue
                service, peer = (caller, callee) if edge.side == "client" else (callee, caller)
                yield MetricRecord(time_ns=t, service=service, pod="", values=((column, v),), peer=peer)

    def _read_fault_list(self, day: dt.date) -> Iterable[Fault]:
        path = fault_list_path(self.root, day)
        if path is None:
            self.report.file_skipped("fault_list", "no fault list for a day", day)
            return []
        try:
            with open_text(path) as fh:
                doc = json.load(fh)
        except (OSError, EOFError, ValueError) as e:
            self.report.file_skipped("fault_list", f"unreadable fault list ({type(e).__name__})", path)
            return []
        self.report.file_read("fault_list")
        entries: list[object] = []
        if isinstance(doc, dict):
            for group in doc.values():
                entries.extend(group if isinstance(group, list) else [group])
        elif isinstance(doc, list):
            entries = doc
        faults: list[Fault] = []
        for entry in entries:
            fault = self._fault(day, entry)
            if fault is not None:
                self.report.row_read("fault_list")
                faults.append(fault)
        return faults

    def _fault(self, day: dt.date, entry: object) -> Fault | None:
        if not isinstance(entry, dict):
            self.report.row_skipped("fault_list", "entry is not an object")
            return None
        when, pod, kind = entry.get("inject_time"), entry.get("inject_pod"), entry.get("inject_type")
        if not (isinstance(when, str) and isinstance(pod, str) and isinstance(kind, str)):
            self.report.row_skipped("fault_list", "entry lacks inject_time, inject_pod or inject_type")
            return None
        try:
            t = dt.datetime.fromisoformat(when.strip())
        except ValueError:
            self.report.row_skipped("fault_list", "unparseable inject_time")
            return None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)  # inject_time is in the data's clock, which is UTC
        ns = int(t.timestamp()) * NS_PER_S + t.microsecond * 1000
        return Fault(day=day, inject_time_ns=ns, pod=pod, service=self._service(pod), fault_type=kind)


class _RecentKeys:
    """A set that forgets its oldest keys beyond ``capacity``: enough to catch rows
    repeated by neighbouring files without growing with the dataset."""

    def __init__(self, capacity: int) -> None:
        self._keys: set[Hashable] = set()
        self._order: deque[Hashable] = deque()
        self._capacity = capacity

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; False if it was already remembered."""
        if key in self._keys:
            return False
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self._capacity:
            self._keys.discard(self._order.popleft())
        return True


def _time_of(rec: Record) -> int:
    return rec.time_ns


def _parent_id(text: str) -> bytes:
    """``root`` (or anything that is not an 8-byte hex id) means no parent."""
    return _hex_id(text, 8)


def _hex_id(text: str, size: int) -> bytes:
    if len(text) != 2 * size:
        return b""
    try:
        value = bytes.fromhex(text)
    except ValueError:
        return b""
    return b"" if value == bytes(size) else value


_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\d*\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def _iso_ns(text: str) -> int:
    """ISO 8601 time (nanosecond fractions allowed, UTC when no zone) as Unix ns; -1 if not one."""
    m = _ISO.match(text.strip())
    if m is None:
        return -1
    date, hh, mm, ss, frac, zone = m.groups()
    try:
        when = dt.datetime.fromisoformat(f"{date}T{hh}:{mm}:{ss}{'' if zone in (None, 'Z') else zone}")
    except ValueError:
        return -1
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * NS_PER_S + int((frac or "0").ljust(9, "0"))


def _time_text(text: str) -> str:
    """The time of a Go-printed ``time.Time`` (``... +0000 UTC m=+0.11``) without its tail."""
    return text.split(" UTC", 1)[0].split(" m=", 1)[0].strip()


def _timestamp_shift(stamp_ns: int, text: str) -> int:
    """Whole seconds to add to a file's Unix TimeStamp column so that it agrees with its Time
    text (``2022-08-22 03:51:19.607158889 +0000 UTC m=+0.11``), when the two disagree by more
    than a minute; 0 when they agree or the text is not a time. Some exporters wrote one of
    the two wrongly for a whole file (years apart); the text is what a person reads."""
    text_ns = _iso_ns(_time_text(text))
    if text_ns < 0 or abs(text_ns - stamp_ns) <= 60 * NS_PER_S:
        return 0
    return round((text_ns - stamp_ns) / NS_PER_S) * NS_PER_S


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _runtime_line(text: str) -> tuple[str | None, str]:
    """The printed line and its stream from a container runtime record (``{"log": ...}``).

    Text that is not a JSON object is taken as the line itself (other collectors store the
    line plain). A JSON object followed by stray text still yields its line. Returns
    ``(None, "")`` when the text looks like JSON but cannot be read.
    """
    if not text.lstrip().startswith("{"):
        return text, ""
    try:
        obj, _ = _JSON.raw_decode(text.lstrip())
    except ValueError:
        return None, ""
    if not isinstance(obj, dict):
        return None, ""
    line = obj.get("log")
    if not isinstance(line, str):
        return text, ""  # a structured application log: parse_line understands it
    stream = obj.get("stream")
    return line, stream if isinstance(stream, str) else ""
