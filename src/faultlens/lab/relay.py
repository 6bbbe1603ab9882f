"""The recording relay: OTLP/HTTP in, every request on disk, then forwarded to an endpoint.

::

    services ─OTLP/HTTP protobuf─> RecordingRelay ─> RecordWriter (otlp.jsonl.gz, flushed)
                                        │   answers 200 once the body is written
                                        └─> forward queue ─> one sender thread ─> --endpoint
                                            (faultlens.datasets.sender: retries per OTLP)

A body that is not the signal's export request is answered 400 with the reason and is not
recorded; a gzip body is inflated first (what is recorded is the protobuf). What cannot be
forwarded (the endpoint refused it after the sender's retries, or the forward queue was
full) is counted, never hidden: the recording still holds it, and ``stats`` says how many.
The relay runs in the lab runner's process, in threads of its own (``http.server``).
"""

from __future__ import annotations

import gzip
import queue
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from google.protobuf.message import DecodeError, Message

from faultlens.datasets.sender import OtlpSender
from faultlens.lab.recording import RecordWriter, count_items, parse_request
from faultlens.types import Signal

__all__ = ["RecordingRelay", "RelayStats"]

MAX_BODY_BYTES = 32 * 1024 * 1024
FORWARD_QUEUE = 10_000
_EMPTY_RESPONSE = b""  # an empty Export*ServiceResponse: full success


@dataclass(slots=True)
class RelayStats:
    received: dict[str, int] = field(default_factory=dict)  # items per signal, recorded
    refused: int = 0  # requests answered 400
    forwarded: int = 0  # items the endpoint accepted
    not_forwarded: int = 0  # items the endpoint did not take (refused, failed, queue full)
    forward_errors: list[str] = field(default_factory=list)


class RecordingRelay:
    """Start with :meth:`start`; ``url`` is what the services export to; :meth:`shutdown` drains."""

    def __init__(self, directory: Path, sender: OtlpSender | None) -> None:
        self.writer = RecordWriter(directory)
        self.sender = sender
        self.stats = RelayStats()
        self._queue: queue.Queue[tuple[Signal, Message, int] | None] = queue.Queue(FORWARD_QUEUE)
        self._lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                code, message = relay._handle(self)
                body = _EMPTY_RESPONSE if code == 200 else message.encode()
                self.send_response(code)
                ctype = "application/x-protobuf" if code == 200 else "text/plain; charset=utf-8"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._server.serve_forever, name="lab-relay", daemon=True)]
        if self.sender is not None:
            self._threads.append(
                threading.Thread(target=self._forward, name="lab-relay-forward", daemon=True)
            )
        for t in self._threads:
            t.start()

    def _handle(self, req: BaseHTTPRequestHandler) -> tuple[int, str]:
        path = req.path.split("?", 1)[0].rstrip("/")
        try:
            length = int(req.headers.get("Content-Length") or 0)
        except ValueError:
            req.close_connection = True
            return 400, "Content-Length is not a number"
        if length > MAX_BODY_BYTES:
            req.close_connection = True  # its body is not read: the connection cannot go on
            return 413, f"body of {length} bytes is over {MAX_BODY_BYTES}"
        body = req.rfile.read(length)  # read whatever the answer, so the next request parses
        try:
            signal = Signal(path.removeprefix("/v1/"))
        except ValueError:
            return 404, f"no OTLP signal at {path}: use /v1/traces, /v1/metrics or /v1/logs"
        if (req.headers.get("Content-Encoding") or "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error) as e:
                return self._refuse(f"gzip body does not inflate: {e}")
        try:
            msg = parse_request(signal, body)
        except DecodeError as e:
            return self._refuse(f"not an OTLP {signal.value} export request: {e}")
        items = count_items(signal, msg)
        self.writer.append(time.time_ns(), signal, body, items)
        with self._lock:
            self.stats.received[signal.value] = self.stats.received.get(signal.value, 0) + items
        if self.sender is not None:
            try:
                self._queue.put_nowait((signal, msg, items))
            except queue.Full:
                with self._lock:
                    self.stats.not_forwarded += items
        return 200, ""

    def _refuse(self, reason: str) -> tuple[int, str]:
        with self._lock:
            self.stats.refused += 1
        return 400, reason

    def _forward(self) -> None:
        assert self.sender is not None
        while (item := self._queue.get()) is not None:
            signal, msg, items = item
            result = self.sender.send(signal, msg, items)
            with self._lock:
                self.stats.forwarded += result.accepted
                self.stats.not_forwarded += items - result.accepted
                if result.error and len(self.stats.forward_errors) < 10:
                    self.stats.forward_errors.append(result.error)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop receiving, forward what is queued (bounded), close the recording. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        if self.sender is not None:
            self._queue.put(None)
            for t in self._threads[1:]:
                t.join(timeout_s)
            self.sender.close()
        self.writer.close()
