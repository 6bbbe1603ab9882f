"""The intake log: an OTLP request is acknowledged only once its bytes are durable.

::

    request ──> decode ──> append(body) ──> consume(batch, seq) ──> OK to the client
                            │  write(2) (process kill)              │
                            │  + fdatasync, group commit (power)    └─> store writer: rows and
                            v                                           seq in one transaction
                 intake/<first seq>.log  (segments, append-only)         │
                            ^                                            │ applied(seqs)
                            └──── trim: a segment goes once every ───────┘
                                  request in it is applied or cancelled

    start: read every segment (a torn tail is cut off and reported) ──> ask the store which
           sequence numbers it already holds ──> replay the rest through the pipeline

What the Collector's persistent queue and a database's WAL do, for the same reason: the
store writer coalesces requests for ~2 s before a DuckDB insert, so an acknowledgement sent
when a batch was queued in memory lost everything of the last seconds on ``kill -9``. Now the
request body, as it came (after inflation), is written to the log before the answer. With
``durability: process`` (the default) that is one ``write(2)`` per request: the kernel holds
the bytes, so they survive the process, not the machine. ``durability: fsync`` also waits
for ``fdatasync`` (one per group of requests that arrived while the last one ran), so they
survive power loss. ``durability: none`` keeps no log (the acknowledgement then means
"queued").

Exactly once into the store. The writer records each request's sequence number in the
store in the same transaction as its rows (``intake_applied``); a replay skips what the
store holds, and a write whose COMMIT raised is retried only if its numbers are not there
(DuckDB can fail a COMMIT after making it durable, when the checkpoint after it fails). A
request refused after it was appended (the store queue is full) gets a *cancel* record, so a
replay does not store what the client was told to send again.

Record layout (little-endian)::

    magic "FLI1" | crc32 u32 | seq u64 | kind u8 | signal u8 | flags u16 | length u32 | body
    crc32 covers seq..length and the body; kind 1 = request (body = OTLP request), 2 = cancel
    (no body); flags bit 0 = the body is OTLP/JSON.

A record cut short by a crash, or whose checksum does not match, ends its segment: what
follows is dropped with a warning that says how many bytes, and the segment is truncated
there so that new records follow valid ones.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from faultlens.decode import decode_request
from faultlens.decode.base import DecodedBatch
from faultlens.errors import FaultlensError, Overloaded
from faultlens.fsync import sync_directory
from faultlens.pipeline.base import BatchConsumer
from faultlens.types import Signal

__all__ = ["Durability", "IntakeLog", "IntakeRecord", "ReplayStats", "replay_intake"]

log = logging.getLogger(__name__)

_MAGIC = b"FLI1"
_HEADER = struct.Struct("<4sIQBBHI")
_CRC = struct.Struct("<I")
_CRC_PART = struct.Struct("<QBBHI")  # the header after magic and crc, which the crc covers
_KIND_REQUEST = 1
_KIND_CANCEL = 2
_FLAG_JSON = 1
_SIGNALS = list(Signal)
_SUFFIX = ".log"


class Durability(enum.StrEnum):
    """What an acknowledged request survives."""

    NONE = "none"  # nothing: acknowledged when queued in memory
    PROCESS = "process"  # the process being killed (written to the kernel before the answer)
    FSYNC = "fsync"  # power loss too (fdatasync before the answer, group committed)


@dataclass(frozen=True, slots=True)
class IntakeRecord:
    """A request found in the log at start that the store may not hold yet."""

    seq: int
    signal: Signal
    json: bool
    body: bytes


@dataclass(frozen=True, slots=True)
class ReplayStats:
    """What opening the log found."""

    records: int  # request records in the log
    cancelled: int  # of them, cancelled (refused after they were written)
    torn_bytes: int  # bytes cut off the end of segments (a crash mid-write, or corruption)
    segments: int


@dataclass(slots=True)
class _Segment:
    first_seq: int
    path: Path
    last_seq: int  # the highest sequence number written into it (first_seq - 1 when empty)
    size: int


class IntakeLog:
    """Append-only segments of request bodies in one directory; see the module docstring.

    Thread-safe: the receivers append and cancel from the event loop, the store writer
    reports applied sequence numbers from its thread. :meth:`open` must be called first;
    :meth:`close` is safe to call twice.
    """

    def __init__(
        self,
        directory: Path,
        *,
        durability: Durability = Durability.PROCESS,
        segment_bytes: int = 64 * 2**20,
        max_bytes: int = 4 * 2**30,
        retry_after_s: float = 1.0,
    ) -> None:
        """``segment_bytes``: a segment is closed and a new one started past this size.
        ``max_bytes``: past this much log not yet applied, appends are refused as retryable
        (the store is far behind or failing: the clients keep their data)."""
        if durability is Durability.NONE:
            raise ValueError("an intake log with durability 'none' is no log: do not build one")
        self.directory = directory
        self.durability = durability
        self._segment_bytes = segment_bytes
        self._max_bytes = max_bytes
        self._retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._next_seq = 1
        # Requests still needed, with how many holders still need them: the one who appended
        # (ingest, or the replay at start) until it handed the batch on, and each consumer that
        # took it and makes it durable on its own (the store writer, each export disk queue).
        self._outstanding: dict[int, int] = {}
        self._bytes = 0  # bytes of every segment on disk
        # fsync group commit: ``_written`` counts bytes written, ``_synced`` those made durable.
        self._sync_cond = threading.Condition()
        self._written = 0
        self._synced = 0
        self._syncing = False

    # --- start ---------------------------------------------------------------------------

    def open(self) -> ReplayStats:
        """Read the segments on disk (cutting off a torn tail), then start a new segment.

        The records that may still need replaying are read back with :meth:`pending_records`.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        records = cancelled = torn = 0
        cancels: set[int] = set()
        requests: set[int] = set()
        for path in sorted(self.directory.glob("*" + _SUFFIX)):
            first = _first_seq(path)
            if first is None:
                continue
            seg = _Segment(first, path, first - 1, 0)
            valid_end = 0
            for seq, kind, _signal, _json, _body, end in _scan(path):
                valid_end = end
                seg.last_seq = max(seg.last_seq, seq)
                if kind == _KIND_CANCEL:
                    cancels.add(seq)
                else:
                    requests.add(seq)
            size = path.stat().st_size
            if size > valid_end:
                torn += size - valid_end
                log.warning(
                    "intake log %s: %d bytes after offset %d are torn or corrupt (a crash while "
                    "writing, or a damaged disk); cut off: the requests in them were never acknowledged",
                    path,
                    size - valid_end,
                    valid_end,
                )
                with open(path, "r+b") as f:
                    f.truncate(valid_end)
                size = valid_end
            seg.size = size
            self._segments.append(seg)
            self._next_seq = max(self._next_seq, seg.last_seq + 1)
        records = len(requests)
        cancelled = len(requests & cancels)
        self._outstanding = dict.fromkeys(sorted(requests - cancels), 1)  # the replay holds them
        self._bytes = sum(s.size for s in self._segments)
        # Numbers never go back, even when the log was deleted: the store keeps the numbers it
        # applied for a while, and a new request must not look applied. Microseconds since the
        # epoch at start are above any number used before unless the clock went back.
        self._next_seq = max(self._next_seq, time.time_ns() // 1000)
        self._start_segment()
        return ReplayStats(records, cancelled, torn, len(self._segments) - 1)

    def pending_records(self) -> Iterator[IntakeRecord]:
        """The request records not cancelled nor reported applied, in sequence order."""
        with self._lock:
            wanted = set(self._outstanding)
            segments = list(self._segments)
        for seg in segments:
            for seq, kind, signal, is_json, body, _end in _scan(seg.path):
                if kind == _KIND_REQUEST and seq in wanted:
                    yield IntakeRecord(seq, signal, is_json, body)

    # --- the hot path --------------------------------------------------------------------

    def append(self, signal: Signal, body: bytes, *, json: bool) -> int:
        """Write one request record; its sequence number once it is in the kernel's hands.

        With ``fsync`` durability the caller must also await :meth:`wait_durable` before
        answering. Raises :class:`Overloaded` (retryable) when the log cannot be written
        (disk full, I/O error) or holds ``max_bytes`` not yet applied.
        """
        with self._lock:
            if self._fd is None:
                raise Overloaded("the intake log is closed", self._retry_after_s)
            if self._bytes >= self._max_bytes:
                raise Overloaded(
                    f"the intake log holds {self._bytes} bytes not yet stored (limit {self._max_bytes})",
                    self._retry_after_s,
                )
            seq = self._next_seq
            self._write(_record(seq, _KIND_REQUEST, signal, json, body))
            self._next_seq += 1
            self._outstanding[seq] = 1  # the appender's hold, released once it handed the batch on
            self._segments[-1].last_seq = seq
            return seq

    def cancel(self, seq: int) -> None:
        """The request ``seq`` was refused after it was appended: a replay must skip it.

        Best effort: if the cancel record cannot be written, a replay may store a request the
        client was told to retry (a duplicate, never a loss)."""
        with self._lock:
            self._outstanding.pop(seq, None)
            if self._fd is None:
                return
            try:
                self._write(_record(seq, _KIND_CANCEL, Signal.TRACES, False, b""))
            except Overloaded as e:
                log.warning("cannot write the cancel record of intake request %d: %s", seq, e)

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        seg = self._segments[-1]
        if seg.size and seg.size + len(data) > self._segment_bytes:
            self._start_segment()
            seg = self._segments[-1]
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as e:
            # A partial record may be on disk: cut it off so the next record follows a valid one.
            try:
                os.ftruncate(self._fd, seg.size)
                os.lseek(self._fd, seg.size, os.SEEK_SET)
            except OSError:
                log.exception("cannot cut a partial record off the intake log %s", seg.path)
            raise Overloaded(f"cannot write the intake log: {e}", self._retry_after_s) from e
        seg.size += len(data)
        self._bytes += len(data)
        with self._sync_cond:
            self._written += len(data)

    def wait_durable_blocking(self) -> None:
        """Return once everything appended so far is on stable storage (``fsync`` mode):
        one caller runs ``fdatasync`` for all who wait meanwhile (group commit)."""
        with self._sync_cond:
            target = self._written
            while self._synced < target:
                if self._syncing:
                    self._sync_cond.wait()
                    continue
                self._syncing = True
                upto = self._written
                fd = self._fd
                self._sync_cond.release()
                error: OSError | None = None
                try:
                    if fd is not None:
                        os.fdatasync(fd)
                except OSError as e:
                    error = e
                finally:
                    self._sync_cond.acquire()
                    self._syncing = False
                    if error is None:
                        self._synced = max(self._synced, upto)
                    self._sync_cond.notify_all()
                if error is not None:
                    raise Overloaded(f"cannot sync the intake log: {error}", self._retry_after_s) from error

    # --- trimming ------------------------------------------------------------------------

    def hold(self, seq: int) -> None:
        """A consumer took request ``seq`` and will :meth:`release` it once it is durable in
        its own keeping (:class:`~faultlens.pipeline.base.IntakeHolds`)."""
        with self._lock:
            if seq in self._outstanding:
                self._outstanding[seq] += 1

    def release(self, seqs: list[int]) -> None:
        """One holder of each request in ``seqs`` let go (the store committed it, an export
        queue committed or dropped it, the appender handed it on); a request nobody holds any
        more may be trimmed."""
        if not seqs:
            return
        with self._lock:
            for seq in seqs:
                left = self._outstanding.get(seq)
                if left is None:
                    continue
                if left <= 1:
                    del self._outstanding[seq]
                else:
                    self._outstanding[seq] = left - 1

    def trim(self) -> int:
        """Delete the closed segments whose every request is applied or cancelled; returns
        the sequence number below which nothing is kept (for the store's ``forget_intake``)."""
        with self._lock:
            low = min(self._outstanding, default=self._next_seq)
            current = self._segments[-1] if self._segments else None
            if current is not None and current.size and current.last_seq < low and self._fd is not None:
                self._start_segment()  # all of it is applied: close it so that it can go too
            keep: list[_Segment] = []
            last = len(self._segments) - 1
            for i, seg in enumerate(self._segments):
                if i < last and seg.last_seq < low and not keep:
                    try:
                        seg.path.unlink()
                    except FileNotFoundError:
                        pass
                    except OSError as e:
                        log.warning("cannot delete the applied intake segment %s: %s", seg.path, e)
                        keep.append(seg)
                        continue
                    self._bytes -= seg.size
                    continue
                keep.append(seg)
            self._segments = keep
            return keep[0].first_seq if keep else self._next_seq

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def outstanding(self) -> int:
        with self._lock:
            return len(self._outstanding)

    def close(self) -> None:
        """Close the active segment (its records stay for the next start); safe twice."""
        with self._lock:
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                except OSError as e:
                    log.warning("cannot sync the intake log at close: %s", e)
                os.close(self._fd)
                self._fd = None

    def _start_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        first = self._next_seq
        path = self.directory / f"{first:020d}{_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        size = os.fstat(self._fd).st_size
        existing = [s for s in self._segments if s.path == path]
        if existing:
            existing[0].size = size
            self._segments.remove(existing[0])
            self._segments.append(existing[0])
        else:
            self._segments.append(_Segment(first, path, first - 1, size))
        if self.durability is Durability.FSYNC:  # a new name survives a process kill without it
            sync_directory(self.directory)


def _record(seq: int, kind: int, signal: Signal, json: bool, body: bytes) -> bytes:
    part = _CRC_PART.pack(seq, kind, _SIGNALS.index(signal), _FLAG_JSON if json else 0, len(body))
    return _MAGIC + _CRC.pack(zlib.crc32(body, zlib.crc32(part))) + part + body


def _scan(path: Path) -> Iterator[tuple[int, int, Signal, bool, bytes, int]]:
    """(seq, kind, signal, json, body, end offset) of each valid record, up to the first bad one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    pos = 0
    n = len(data)
    while pos + _HEADER.size <= n:
        magic, crc, seq, kind, sig, flags, length = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if magic != _MAGIC or kind not in (_KIND_REQUEST, _KIND_CANCEL) or sig >= len(_SIGNALS) or end > n:
            return
        body = data[pos + _HEADER.size : end]
        if zlib.crc32(body, zlib.crc32(data[pos + 8 : pos + _HEADER.size])) != crc:
            return
        yield seq, kind, _SIGNALS[sig], bool(flags & _FLAG_JSON), body, end
        pos = end


def _first_seq(path: Path) -> int | None:
    try:
        return int(path.name[: -len(_SUFFIX)])
    except ValueError:
        log.warning("ignoring %s in the intake log directory: not a segment", path)
        return None


class _AppliedReader(Protocol):
    def applied_intake(self, seqs: Sequence[int]) -> set[int]: ...


def replay_intake(
    intake: IntakeLog,
    store: _AppliedReader,
    consumer: BatchConsumer,
    *,
    forward: BatchConsumer | None = None,
    limit: Callable[[DecodedBatch], DecodedBatch] = lambda batch: batch,
    wait_for_room: Callable[[], object],
    timeout_s: float = 300.0,
    chunk: int = 256,
) -> int:
    """Hand on every request of the log that some consumer may not have made durable.

    Called at start, after the consumers and before the receivers. A request the store does
    not hold is decoded again and handed to ``consumer`` (the whole pipeline) with its
    sequence number, so the store writes it once. A request the store holds but the log
    still keeps may not have reached an export queue: it goes to ``forward`` (the exporters)
    alone, so forwarding is at least once. ``limit`` applies the attribute and record limits
    to each decoded request, as ingest does. When ``consumer`` is full, ``wait_for_room`` is
    called (the store writer's flush) and the request is offered again, for at most
    ``timeout_s`` in all; requests still not taken then stay in the log for the next start.
    Returns how many requests went to ``consumer``.
    """
    deadline = time.monotonic() + timeout_s
    handed = 0
    batch: list[IntakeRecord] = []

    def flush_chunk() -> bool:
        nonlocal handed
        held = store.applied_intake([r.seq for r in batch])
        for record in batch:
            if record.seq in held and forward is None:
                intake.release([record.seq])
                continue
            try:
                decoded = decode_request(record.signal, record.body, json=record.json)
            except FaultlensError as e:
                log.error("intake request %d cannot be decoded again (%s); dropped", record.seq, e)
                intake.cancel(record.seq)
                continue
            decoded = dataclasses.replace(limit(decoded), intake_seq=record.seq)
            if record.seq in held:
                assert forward is not None
                forward.consume(decoded)
                intake.release([record.seq])
                continue
            while True:
                try:
                    consumer.consume(decoded)
                    break
                except Overloaded:
                    if time.monotonic() >= deadline:
                        return False
                    wait_for_room()
                    time.sleep(0.05)
            intake.release([record.seq])
            handed += 1
        batch.clear()
        return True

    for record in intake.pending_records():
        batch.append(record)
        if len(batch) >= chunk and not flush_chunk():
            break
    else:
        if batch:
            flush_chunk()
    if time.monotonic() >= deadline:
        log.warning(
            "intake replay stopped after %.0f s; what is left is replayed at the next start", timeout_s
        )
    return handed
