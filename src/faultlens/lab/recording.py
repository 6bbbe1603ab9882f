"""A recorded lab run on disk: every OTLP request the services sent, the labels, a manifest.

::

    DIR/
      otlp.jsonl.gz    one JSON line per request: {"t": receive ns, "signal": "traces",
                       "body": base64 of the ExportTraceServiceRequest protobuf, inflated}
      labels.jsonl     the ground truth (faultlens.lab.faults: start and end lines)
      manifest.json    {"format": 1, "topology": ..., "start_ns": ..., "end_ns": ...,
                       "version": faultlens version, "requests": {...}, "items": {...}}

The gzip stream is flushed (``Z_SYNC_FLUSH``) after every request, so a run that was killed
still reads back up to its last whole line; a torn tail is cut off and counted. Replay
(:mod:`faultlens.lab.replay`) sends the bodies again in receive-time order.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from faultlens import __version__
from faultlens.types import Signal

__all__ = [
    "LABELS_FILE",
    "MANIFEST_FILE",
    "RECORD_FILE",
    "Manifest",
    "ReadReport",
    "RecordWriter",
    "RecordedRequest",
    "count_items",
    "parse_request",
    "read_manifest",
    "read_recording",
]

RECORD_FILE = "otlp.jsonl.gz"
LABELS_FILE = "labels.jsonl"
MANIFEST_FILE = "manifest.json"
FORMAT = 1

_REQUESTS: dict[Signal, type[Message]] = {
    Signal.TRACES: trace_service_pb2.ExportTraceServiceRequest,
    Signal.METRICS: metrics_service_pb2.ExportMetricsServiceRequest,
    Signal.LOGS: logs_service_pb2.ExportLogsServiceRequest,
}


def parse_request(signal: Signal, body: bytes) -> Message:
    """The export request of ``signal`` in ``body``; raises ``DecodeError`` when it is not one."""
    msg = _REQUESTS[signal]()
    msg.ParseFromString(body)
    return msg


def count_items(signal: Signal, msg: Any) -> int:
    """Spans, log records or metric data points in an export request."""
    if signal is Signal.TRACES:
        return sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
    if signal is Signal.LOGS:
        return sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs)
    n = 0
    for rm in msg.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind:
                    n += len(getattr(m, kind).data_points)
    return n


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    time_ns: int
    signal: Signal
    body: bytes


@dataclass(slots=True)
class Manifest:
    topology: str
    start_ns: int
    end_ns: int | None = None
    version: str = __version__
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys((s.value for s in Signal), 0))
    items: dict[str, int] = field(default_factory=lambda: dict.fromkeys((s.value for s in Signal), 0))

    def write(self, directory: Path) -> None:
        data = {
            "format": FORMAT,
            "topology": self.topology,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "version": self.version,
            "requests": self.requests,
            "items": self.items,
        }
        tmp = directory / (MANIFEST_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(directory / MANIFEST_FILE)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
        return Manifest(
            topology=str(data["topology"]),
            start_ns=int(data["start_ns"]),
            end_ns=None if data.get("end_ns") is None else int(data["end_ns"]),
            version=str(data.get("version", "")),
            requests={str(k): int(v) for k, v in dict(data.get("requests") or {}).items()},
            items={str(k): int(v) for k, v in dict(data.get("items") or {}).items()},
        )
    except FileNotFoundError:
        raise ValueError(f"{directory} is not a recorded lab run: no {MANIFEST_FILE}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a lab manifest: {e}") from None


class RecordWriter:
    """Appends requests to ``DIR/otlp.jsonl.gz``; thread-safe; counts what it wrote."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / RECORD_FILE
        self._file = gzip.open(self.path, "ab")  # noqa: SIM115 - open for the whole run, closed by close()
        self._lock = threading.Lock()
        self.requests: dict[Signal, int] = dict.fromkeys(Signal, 0)
        self.items: dict[Signal, int] = dict.fromkeys(Signal, 0)

    def append(self, time_ns: int, signal: Signal, body: bytes, items: int) -> None:
        line = json.dumps({"t": time_ns, "signal": signal.value, "body": base64.b64encode(body).decode()})
        with self._lock:
            if self._file.closed:
                raise ValueError("the recording is closed")
            self._file.write(line.encode() + b"\n")
            self._file.flush()  # Z_SYNC_FLUSH: a kill keeps every whole line so far
            self.requests[signal] += 1
            self.items[signal] += items

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()


@dataclass(slots=True)
class ReadReport:
    requests: int = 0
    torn_tail: bool = False
    bad_lines: int = 0


def read_recording(directory: Path, report: ReadReport | None = None) -> Iterator[RecordedRequest]:
    """The recorded requests in file (receive) order; a torn tail ends the iteration."""
    path = directory / RECORD_FILE
    if not path.is_file():
        raise ValueError(f"{directory} is not a recorded lab run: no {RECORD_FILE}")
    rep = report if report is not None else ReadReport()
    with gzip.open(path, "rb") as f:
        while True:
            try:
                line = f.readline()
            except (EOFError, gzip.BadGzipFile, zlib.error):
                rep.torn_tail = True
                return
            if not line:
                return
            if not line.endswith(b"\n"):
                rep.torn_tail = True
                return
            try:
                row = json.loads(line)
                req = RecordedRequest(int(row["t"]), Signal(row["signal"]), base64.b64decode(row["body"]))
            except (ValueError, KeyError, TypeError, binascii.Error):
                rep.bad_lines += 1
                continue
            rep.requests += 1
            yield req
